"""Mouth targets from timed phones: where the words are known, the lips can be exact.

The audio-driven shape network guesses the mouth from sound and smooths it, so a short /m/, /b/
or /p/ between two vowels often never closes. Given phone timing (from the TTS voice itself, or
an alignment), each visible articulation becomes a limit on the lip shape in the frames it spans:
closed lips on m/b/p, the lower lip up to the teeth (a small gap, upper lip raised) on f/v,
rounded (narrow) on w and oo/oh, open on a. The shape is changed as little as possible to meet
the limits that the audio-driven shape breaks (a least-squares step in the motion-coefficient
space the renderer consumes); everywhere else, and in every component no limit speaks about, the
audio-driven shape stays, so timing and the rest of the motion come from the audio.

Limits are in inter-ocular distances, relative to the person's closed mouth; for scale, the
audio-driven inner-lip gap of the demo speech has median 0.055 and 95th percentile 0.127.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..face.landmarks import MOUTH_CORNERS, SHAPE_POINTS, UPPER_OUTER_LIP
from .lip_shape import LOWER_GAP, UPPER_GAP, ShapeSpace

FULL = 1e-4
"""A weight of 1 is met to within this fraction."""


@dataclass(frozen=True)
class Phone:
    """A phone (an IPA symbol, or an ARPAbet one from an aligner) from `start` to `end`, seconds."""

    symbol: str
    start: float
    end: float


def _opening(shape: np.ndarray) -> float:
    return float((shape[LOWER_GAP, 1] - shape[UPPER_GAP, 1]).mean())


def mouth_width(shape: np.ndarray) -> float:
    left, right = (SHAPE_POINTS.index(i) for i in MOUTH_CORNERS)
    return float(shape[right, 0] - shape[left, 0])


def _upper_lip(shape: np.ndarray) -> float:
    return float(shape[[SHAPE_POINTS.index(i) for i in UPPER_OUTER_LIP[3:8]], 1].mean())


FEATURES = {"opening": _opening, "width": mouth_width, "upper_lip": _upper_lip}
"""Linear measures of a shape change (P, 2), inter-ocular units (y grows downwards)."""


@dataclass(frozen=True)
class Limit:
    feature: str
    bound: float
    upper: bool
    """True: the feature may be at most `bound`; False: at least."""


CLOSED = "closed"
"""Closed lips are the person's closed mouth itself, the shape silence shows: limiting the gap
alone left the jaw and lip outline of the vowel around it, which the face mesh read as 0.035
inter-ocular distances open where silence reads 0.016."""
VISEMES: dict[str, tuple[Limit, ...]] = {
    "closed": (),
    "lip_to_teeth": (Limit("opening", 0.03, True), Limit("upper_lip", -0.015, True)),
    "rounded": (Limit("width", -0.06, True), Limit("opening", 0.06, True)),
    "open": (Limit("opening", 0.12, False),),
}
SYMBOLS = {
    **dict.fromkeys(["m", "b", "p", "M", "B", "P"], "closed"),
    **dict.fromkeys(["f", "v", "F", "V"], "lip_to_teeth"),
    **dict.fromkeys(["w", "ʍ", "u", "uː", "ʊ", "o", "oː", "ɔ", "ɔː", "W", "UW", "UH", "OW", "AO"], "rounded"),
    **dict.fromkeys(["ɑ", "ɑː", "a", "aː", "æ", "ʌ", "AA", "AE", "AW", "AY"], "open"),
}
"""Which phones are seen on the lips (espeak-ng IPA as Piper splits it, and CMU ARPAbet)."""


def viseme_of(symbol: str) -> str | None:
    return SYMBOLS.get(symbol.rstrip("012"))


def frame_weights(phones: Sequence[Phone], fps: float, n_frames: int, first: int = 0) -> dict[str, np.ndarray]:
    """Per viseme, how strongly each of the frames `first` to `first + n_frames` shows it (0 to
    1): the share of the frame (or of the phone, if shorter) it spans, and 1 on the frame holding
    the phone's middle, so that even a phone shorter than a frame is reached on one frame."""
    weights = {name: np.zeros(n_frames, np.float32) for name in VISEMES}
    starts = (first + np.arange(n_frames)) / fps
    for phone in phones:
        viseme = viseme_of(phone.symbol)
        if viseme is None or phone.end <= phone.start:
            continue
        overlap = np.clip(np.minimum(starts + 1 / fps, phone.end) - np.maximum(starts, phone.start), 0, None)
        share = overlap / min(1 / fps, phone.end - phone.start)
        middle = int((phone.start + phone.end) / 2 * fps) - first
        if 0 <= middle < n_frames:
            share[middle] = 1.0
        weights[viseme] = np.maximum(weights[viseme], share)
    return weights


def feature_rows(space: ShapeSpace) -> dict[str, np.ndarray]:
    """Each feature as a row over the motion coefficients (the basis is linear)."""
    points = space.basis.shape[1] // 2
    return {name: np.array([measure(b.reshape(points, 2)) for b in space.basis]) for name, measure in FEATURES.items()}


def steer(motion: np.ndarray, phones: Sequence[Phone], fps: float, space: ShapeSpace, first: int = 0) -> np.ndarray:
    """The audio-driven motion (n, K) of frames `first` on (live mode steers one frame at a time)
    moved, frame by frame, the least needed to meet the limits of the visemes the phones put
    there: towards the closed mouth on m/b/p, and for the others, a limit of weight w alone goes
    that fraction of the way (its cost c|r|^2 = w / (1 - w) against the unit cost of leaving the
    audio's shape)."""
    rows = feature_rows(space)
    weights = frame_weights(phones, fps, len(motion), first)
    steered = motion.astype(np.float64).copy()
    for i, audio in enumerate(motion.astype(np.float64) * (1 - weights[CLOSED][:, None])):
        normal, target = np.eye(len(audio)), audio.copy()
        for viseme, limits in VISEMES.items():
            weight = float(weights[viseme][i]) * (1 - float(weights[CLOSED][i]))
            if weight <= 0:
                continue
            for limit in limits:
                row, value = rows[limit.feature], float(rows[limit.feature] @ audio)
                if (value > limit.bound) if limit.upper else (value < limit.bound):
                    cost = weight / max(1 - weight, FULL) / float(row @ row)
                    normal += cost * np.outer(row, row)
                    target += cost * limit.bound * row
        steered[i] = np.linalg.solve(normal, target)
    return steered.astype(motion.dtype)
