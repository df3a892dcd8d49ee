"""Audio to mouth opening: a ridge regressor on a centred log-mel window, shipped as numpy weights.

Speech predicts the shape of the mouth's motion over time, not a person's absolute opening, so
the model outputs a z-score; `MouthMotion` turns it into an opening with a scale taken from the
face and closes the mouth where the audio is silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import MEL_FPS, frame_energy_db, log_mel
from .errors import EdgeRetalkError
from .models import model_path

CONTEXT = 8
BAND_POOL = 2
SMOOTHING_FRAMES = 1.0
PREDICT_BLOCK = 2048
SILENCE_BELOW_PEAK_DB = 38.0
SILENCE_FLOOR_DBFS = -55.0


def mel_features(mel: np.ndarray, fps: float, n_frames: int, first: int = 0) -> np.ndarray:
    """Per video frame (from `first`, `n_frames` of them): the mel frames centred on it (2*CONTEXT
    of them), bands pooled in pairs.

    The file's mean spectrum is removed first, so a voice's timbre and the recording's
    colouring matter less than how the spectrum moves.
    """
    pooled = mel.reshape(mel.shape[0] // BAND_POOL, BAND_POOL, -1).mean(axis=1)
    pooled = pooled - pooled.mean(axis=1, keepdims=True)
    centres = np.round((np.arange(first, first + n_frames) + 0.5) * MEL_FPS / fps).astype(int)
    idx = np.clip(centres[:, None] + np.arange(-CONTEXT, CONTEXT)[None, :], 0, pooled.shape[1] - 1)
    return pooled[:, idx].transpose(1, 0, 2).reshape(n_frames, -1)


def silence_mask(samples: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """True for video frames whose audio is silent (far below the file's loud parts, or near digital silence)."""
    energy = frame_energy_db(samples, fps, n_frames)
    loud = np.percentile(energy, 95) if energy.size else SILENCE_FLOOR_DBFS
    return (energy < loud - SILENCE_BELOW_PEAK_DB) | (energy < SILENCE_FLOOR_DBFS)


@dataclass(frozen=True)
class MouthModel:
    """Linear map from standardised mel features to a z-scored mouth opening.

    `opening_mean` and `opening_std` (in face heights) are typical of the training speakers;
    `prediction_std` rescales the regressor's shrunken output back to unit variance.
    """

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    opening_mean: float
    opening_std: float
    prediction_std: float

    @classmethod
    def load(cls, path: Path | None = None) -> MouthModel:
        path = path or model_path("mouth_model.npz")
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(data["mean"], data["scale"], data["weights"], float(data["bias"]),
                           float(data["opening_mean"]), float(data["opening_std"]), float(data["prediction_std"]))
        except (OSError, KeyError, ValueError) as exc:
            raise EdgeRetalkError(f"{path}: not a valid mouth model ({exc})") from None

    def predict(self, features: np.ndarray) -> np.ndarray:
        """z-scored mouth opening per row of `features`."""
        return ((features - self.mean) / self.scale) @ self.weights + self.bias

    def save(self, path: Path) -> None:
        np.savez(path, mean=self.mean, scale=self.scale, weights=self.weights, bias=np.float64(self.bias),
                 opening_mean=np.float64(self.opening_mean), opening_std=np.float64(self.opening_std),
                 prediction_std=np.float64(self.prediction_std))


def smooth_opening(series: np.ndarray, sigma: float = SMOOTHING_FRAMES) -> np.ndarray:
    """Gaussian smoothing over time (edges held), which removes frame-to-frame chatter."""
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    padded = np.pad(series, radius, mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid")


def predict_opening_z(model: MouthModel, samples: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """z-scored mouth opening per video frame for 16 kHz mono speech (in blocks, to bound memory)."""
    mel = log_mel(samples)
    return np.concatenate([model.predict(mel_features(mel, fps, min(PREDICT_BLOCK, n_frames - first), first))
                           for first in range(0, n_frames, PREDICT_BLOCK)])
