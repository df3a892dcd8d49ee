"""Lip shape from audio: what the mouth looks like per frame, as a few numbers.

A lip shape is the mouth's landmarks (`SHAPE_POINTS`: lips and lower face) in the canonical face
frame (`face_frame`). Its motion is described by a few components learned from real footage
(opening, width, rounding, jaw...): shape = rest + coefficients @ basis. Audio predicts the
coefficients (a small network run by an engine); the rest shape, the person's own mouth, comes
from the face: a linear estimator, trained with the network, removes from a face's shape the
part that is motion, so a photo taken mid-word still gets its own closed-mouth shape.

The network reads a window of `MEL_BEFORE` log-mel frames before a video frame's centre and
`MEL_AFTER` from it on (about 90 ms of audio past the centre, the FFT window included, which live
mode waits for), less the recording's mean spectrum over its voiced frames (loudness and
microphone colour drop out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import HOP, N_FFT
from ..face.frame import apply, to_canonical
from ..face.landmarks import CENTRAL_LOWER_INNER, CENTRAL_UPPER_INNER, LIPS, SHAPE_POINTS
from .mouth_opening import mel_centre, voiced

MEL_BEFORE = 26
MEL_AFTER = 6
MEL_STEPS = MEL_BEFORE + MEL_AFTER
UPPER_GAP = [SHAPE_POINTS.index(i) for i in CENTRAL_UPPER_INNER]
LOWER_GAP = [SHAPE_POINTS.index(i) for i in CENTRAL_LOWER_INNER]
LIP_ROWS = [SHAPE_POINTS.index(i) for i in LIPS]


def samples_needed(frame_index: int, fps: float) -> int:
    """How many samples (from the start) the window of video frame `frame_index` reads."""
    return int(mel_centre(frame_index, fps) + MEL_AFTER - 1) * HOP + N_FFT // 2


def mean_spectrum(mel: np.ndarray) -> np.ndarray:
    """Mean log-mel over the voiced frames (all frames when none is voiced), (80, 1)."""
    frames = voiced(mel)
    return (mel[:, frames] if frames.any() else mel).mean(axis=1, keepdims=True)


def mel_windows(mel: np.ndarray, fps: float, n_frames: int, first: int = 0, mel_offset: int = 0,
                spectrum: np.ndarray | None = None) -> np.ndarray:
    """The network input for video frames first..first+n_frames: (n, 80, MEL_STEPS) float32.

    `mel` may be a stretch of the audio's mel starting at mel frame `mel_offset` (live mode)."""
    normalised = mel - (mean_spectrum(mel) if spectrum is None else spectrum)
    centres = mel_centre(np.arange(first, first + n_frames), fps) - mel_offset
    idx = np.clip(centres[:, None] + np.arange(-MEL_BEFORE, MEL_AFTER)[None, :], 0, mel.shape[1] - 1)
    return np.ascontiguousarray(normalised[:, idx].transpose(1, 0, 2), dtype=np.float32)


def canonical_shape(points: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The mouth's landmarks in the canonical face frame, (len(SHAPE_POINTS), 2)."""
    return apply(to_canonical(points, template), points[list(SHAPE_POINTS), :2].astype(np.float64))


def shape_opening(shapes: np.ndarray) -> np.ndarray:
    """Inner-lip gap of canonical shapes (..., P, 2), in inter-ocular units."""
    return (shapes[..., LOWER_GAP, 1] - shapes[..., UPPER_GAP, 1]).mean(axis=-1)


@dataclass(frozen=True)
class ShapeSpace:
    """Motion components of the lip shape and the estimator of a face's rest shape.

    `basis` (K, 2P) is orthonormal; `rest_weights` (2P + 1, K) maps a flattened shape (and a
    constant) to the coefficients of its motion, which the rest shape leaves out."""

    template: np.ndarray
    basis: np.ndarray
    rest_weights: np.ndarray

    @property
    def components(self) -> int:
        return len(self.basis)

    def motion_of(self, shapes: np.ndarray) -> np.ndarray:
        """Estimated motion coefficients of canonical shapes (n, P, 2) -> (n, K)."""
        flat = shapes.reshape(len(shapes), -1)
        return np.hstack([flat, np.ones((len(flat), 1))]) @ self.rest_weights

    def rest_shape(self, shapes: np.ndarray) -> np.ndarray:
        """A person's rest shape (P, 2) from one or more of their canonical shapes (n, P, 2)."""
        rest = shapes.reshape(len(shapes), -1) - self.motion_of(shapes) @ self.basis
        return rest.mean(axis=0).reshape(-1, 2)

    def shapes(self, rest: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
        """Canonical shapes (n, P, 2) for motion coefficients (n, K) around `rest` (P, 2)."""
        return rest[None] + (coefficients @ self.basis).reshape(len(coefficients), -1, 2)


def lip_motion(coefficients: np.ndarray, silent: np.ndarray, gain: np.ndarray | float = 1.0,
               scale: float = 1.0) -> np.ndarray:
    """Motion away from the closed mouth (n, K) that the runtime asks the renderer for: the
    network's coefficients (n, K) less the closed mouth's (`silent`), the fluctuation scaled by
    the `gain` that undoes the regression's shrinkage, all by `scale`."""
    return scale * (gain * coefficients - silent)
