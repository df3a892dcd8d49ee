"""An invisible watermark in every labelled video: a fixed noise pattern in the brightness, found
again after re-encoding, resizing and cropping (`edge-retalk inspect`).

Embedding adds a smooth pseudo-random field of about +-AMPLITUDE grey levels, stretched to the frame
height, to every frame (the same field each time, so it costs two saturating adds). Detection averages
the brightness of frames spread over the video, keeps its fine detail (weighted down where the
picture is busy), and for each scale the video may have been cropped or resized to, correlates it
with the field (spectrally whitened, so that the picture's own structure does not dominate). Natural pictures reach
different correlation peaks with any random field, so the peak of our field is compared with the peaks
CONTROL_FIELDS other fields reach on the same video: the score is in standard deviations of those, and
a video with a score above THRESHOLD carries the mark. `benchmarks/watermark_check.py` measures the
scores on marked-and-attacked and on unmarked real videos.

The fields come from SHAKE-256 of fixed labels, so they never change with a library version.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..io.media import iter_video_frames

FIELD_HEIGHT = 128
FIELD_WIDTH = 512
FIELD_SMOOTHING = 0.8
AMPLITUDE = 2.0
CONTROL_FIELDS = 16
THRESHOLD = 5.0
DETECT_FRAMES = 48
READ_FRAMES = 250
CONTENT_SIGMA = 3.0
LOCAL_VARIANCE_SIGMA = 3.0
KEPT_HEIGHTS = np.arange(0.80, 1.03, 0.004)


@functools.lru_cache(maxsize=None)
def noise_field(label: str) -> np.ndarray:
    """A smooth +-1 noise field of FIELD_HEIGHT x FIELD_WIDTH with unit standard deviation."""
    bits = np.unpackbits(np.frombuffer(hashlib.shake_256(label.encode()).digest(FIELD_HEIGHT * FIELD_WIDTH // 8),
                                       np.uint8))
    field = cv2.GaussianBlur((bits.reshape(FIELD_HEIGHT, FIELD_WIDTH) * 2.0 - 1.0).astype(np.float32), (0, 0),
                             FIELD_SMOOTHING)
    return field / field.std()


MARK = "edge-retalk watermark 1"
CONTROLS = tuple(f"edge-retalk control {index}" for index in range(CONTROL_FIELDS))


@functools.lru_cache(maxsize=8)
def _frame_pattern(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The mark at one frame size, as the grey levels to add and to subtract (BGR, uint8)."""
    field = noise_field(MARK)
    span = min(FIELD_WIDTH, max(1, round(FIELD_HEIGHT * width / height)))
    start = (FIELD_WIDTH - span) // 2
    pattern = np.rint(cv2.resize(field[:, start:start + span], (width, height), interpolation=cv2.INTER_LINEAR)
                      * AMPLITUDE)
    pattern = np.repeat(pattern[..., None], 3, axis=2)
    return np.clip(pattern, 0, 255).astype(np.uint8), np.clip(-pattern, 0, 255).astype(np.uint8)


def embed(frame: np.ndarray) -> np.ndarray:
    """A copy of a BGR uint8 frame with the mark added."""
    add, subtract = _frame_pattern(*frame.shape[:2])
    return cv2.subtract(cv2.add(frame, add), subtract)


@dataclass(frozen=True)
class WatermarkReading:
    """What detection found: the score (standard deviations above the control fields) and its verdict."""

    present: bool
    score: float
    threshold: float
    frames: int


def _without_content(image: np.ndarray) -> np.ndarray:
    return image - cv2.GaussianBlur(image, (0, 0), CONTENT_SIGMA)


def _weighted_detail(brightness: np.ndarray) -> np.ndarray:
    """The picture's fine detail divided by its local variance: busy areas (edges, hair) hide the
    mark under their own detail, so they count for less than flat ones (the matched filter for
    noise whose strength varies over the picture)."""
    detail = _without_content(brightness)
    return detail / (cv2.GaussianBlur(detail * detail, (0, 0), LOCAL_VARIANCE_SIGMA) + 1.0)


def _field_spectra(shape: tuple[int, int]) -> np.ndarray:
    """The spectra of the mark and the control fields (content removed), zero-padded to `shape`."""
    padded = np.zeros((1 + CONTROL_FIELDS, *shape), np.float32)
    for index, label in enumerate((MARK, *CONTROLS)):
        padded[index, :FIELD_HEIGHT, :FIELD_WIDTH] = _without_content(noise_field(label))
    return np.fft.rfft2(padded)


def _peaks(brightness: np.ndarray, kept_height: float, spectra: np.ndarray) -> np.ndarray:
    """For each field, its highest whitened correlation with the picture scaled as if `kept_height`
    of the original frame height were left, in standard deviations of that correlation."""
    height, width = brightness.shape
    scale = FIELD_HEIGHT * kept_height / height
    small_w, small_h = max(8, round(width * scale)), max(8, round(height * scale))
    if small_h > FIELD_HEIGHT or small_w > FIELD_WIDTH:
        return np.zeros(len(spectra))
    image = _weighted_detail(cv2.resize(brightness, (small_w, small_h), interpolation=cv2.INTER_AREA))
    shape = spectra.shape[1], 2 * (spectra.shape[2] - 1)
    padded = np.zeros(shape, np.float32)
    padded[:small_h, :small_w] = image - image.mean()
    spectrum = np.conj(np.fft.rfft2(padded))
    whitened = spectrum / (cv2.GaussianBlur(np.abs(spectrum), (0, 0), 2) + 1e-6)
    correlations = np.fft.irfft2(spectra * whitened, s=shape)
    inside = correlations[:, : FIELD_HEIGHT - small_h + 1, : FIELD_WIDTH - small_w + 1]
    spread = correlations.std(axis=(1, 2))
    return (inside.max(axis=(1, 2)) - correlations.mean(axis=(1, 2))) / np.maximum(spread, 1e-12)


def detect_in_frames(frames: list[np.ndarray]) -> WatermarkReading:
    """Look for the mark in BGR frames of one video."""
    chosen = np.linspace(0, len(frames) - 1, min(DETECT_FRAMES, len(frames))).astype(int)
    brightness = sum(cv2.cvtColor(frames[index], cv2.COLOR_BGR2GRAY).astype(np.float32) for index in chosen) / len(chosen)
    height, width = brightness.shape
    largest = FIELD_HEIGHT * KEPT_HEIGHTS.max() / height
    shape = (FIELD_HEIGHT + round(height * largest) + 1, FIELD_WIDTH + round(width * largest) + 1)
    shape = (shape[0], shape[1] + shape[1] % 2)
    spectra = _field_spectra(shape)
    best = np.full(1 + CONTROL_FIELDS, -np.inf)
    for kept_height in KEPT_HEIGHTS:
        best = np.maximum(best, _peaks(brightness, kept_height, spectra))
    controls = best[1:]
    score = float((best[0] - controls.mean()) / max(controls.std(), 1e-6))
    return WatermarkReading(score > THRESHOLD, score, THRESHOLD, len(chosen))


def detect(path: Path) -> WatermarkReading:
    """Look for the mark in the first READ_FRAMES frames of a video or in a picture."""
    return detect_in_frames(list(itertools.islice(iter_video_frames(path), READ_FRAMES)))
