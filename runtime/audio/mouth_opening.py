"""Audio to mouth opening: a ridge regressor on a short log-mel window, shipped as numpy weights.

Speech predicts the shape of the mouth's motion over time, not a person's absolute opening, so
the model outputs a z-score; the generator turns it into an opening with a scale taken from the
face and closes the mouth where the audio is silent.

The features are local in time (8 mel frames before a video frame's centre and 6 from it on,
less the recording's mean spectrum), so live mode needs only about 90 ms of audio beyond a frame's
centre. Live mode differs from file mode only where it cannot see the future: the mean spectrum
is a running one, and the smoothing is causal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import HOP, MEL_FPS, N_FFT, N_MELS, frame_energy_db, log_mel
from ..errors import EdgeRetalkError
from ..models import model_path

CONTEXT_BEFORE = 8
CONTEXT_AFTER = 6
BAND_POOL = 2
SPECTRUM_FLOOR = -3.0
FEATURES = N_MELS // BAND_POOL * (CONTEXT_BEFORE + CONTEXT_AFTER)
SMOOTHING_FRAMES = 1.0
SMOOTHING_WEIGHTS = np.array([0.25, 0.5, 1.0]) / 1.75
PREDICT_BLOCK = 2048
SILENCE_BELOW_PEAK_DB = 38.0
SILENCE_FLOOR_DBFS = -55.0


def mel_centre(frame_index: int | np.ndarray, fps: float) -> int | np.ndarray:
    """Mel frame at the centre of video frame `frame_index`."""
    return np.round((np.asarray(frame_index) + 0.5) * MEL_FPS / fps).astype(int)


def samples_needed(frame_index: int, fps: float) -> int:
    """How many samples of audio (from the start) the features of video frame `frame_index` read."""
    return int(mel_centre(frame_index, fps) + CONTEXT_AFTER - 1) * HOP + N_FFT // 2


def pool_bands(mel: np.ndarray) -> np.ndarray:
    """Mel bands averaged in pairs, (40, frames)."""
    return mel.reshape(mel.shape[0] // BAND_POOL, BAND_POOL, -1).mean(axis=1)


def voiced(mel: np.ndarray) -> np.ndarray:
    """Mel frames louder than about -60 dBFS (silence is left out of the mean spectrum)."""
    return mel.mean(axis=0) > SPECTRUM_FLOOR


def mean_spectrum(mel: np.ndarray) -> np.ndarray:
    """The recording's mean pooled spectrum over its voiced frames, (40, 1). Removing it makes the
    features independent of loudness (a log spectrum shifts with gain) and of the recording's colour."""
    frames = voiced(mel)
    pooled = pool_bands(mel[:, frames] if frames.any() else mel)
    return pooled.mean(axis=1, keepdims=True)


def mel_features(mel: np.ndarray, fps: float, n_frames: int, first: int = 0, mel_offset: int = 0,
                 spectrum: np.ndarray | None = None) -> np.ndarray:
    """Per video frame (from `first`, `n_frames` of them): the mel frames around its centre
    (CONTEXT_BEFORE before, CONTEXT_AFTER from it on), bands pooled in pairs, minus the mean
    spectrum (`spectrum`, or that of `mel` itself).

    `mel` may be a stretch of the audio's mel starting at mel frame `mel_offset` (live mode)."""
    pooled = pool_bands(mel) - (mean_spectrum(mel) if spectrum is None else spectrum)
    centres = mel_centre(np.arange(first, first + n_frames), fps) - mel_offset
    idx = np.clip(centres[:, None] + np.arange(-CONTEXT_BEFORE, CONTEXT_AFTER)[None, :], 0, pooled.shape[1] - 1)
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
    `prediction_std` rescales the regressor's shrunken output back to unit variance;
    `typical_spectrum` (the training recordings' average mean spectrum) stands in for a live
    stream's own until enough of it has been heard.
    """

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    opening_mean: float
    opening_std: float
    prediction_std: float
    typical_spectrum: np.ndarray

    @classmethod
    def load(cls, path: Path | None = None) -> MouthModel:
        path = path or model_path("mouth_model.npz")
        try:
            with np.load(path, allow_pickle=False) as data:
                model = cls(data["mean"], data["scale"], data["weights"], float(data["bias"]),
                            float(data["opening_mean"]), float(data["opening_std"]), float(data["prediction_std"]),
                            data["typical_spectrum"])
        except (OSError, KeyError, ValueError) as exc:
            raise EdgeRetalkError(f"{path}: not a valid mouth model ({exc})") from None
        if model.weights.shape != (FEATURES,):
            raise EdgeRetalkError(f"{path}: mouth model has {model.weights.size} weights, this version needs {FEATURES}")
        return model

    def predict(self, features: np.ndarray) -> np.ndarray:
        """z-scored mouth opening per row of `features`."""
        return ((features - self.mean) / self.scale) @ self.weights + self.bias

    def save(self, path: Path) -> None:
        np.savez(path, mean=self.mean, scale=self.scale, weights=self.weights, bias=np.float64(self.bias),
                 opening_mean=np.float64(self.opening_mean), opening_std=np.float64(self.opening_std),
                 prediction_std=np.float64(self.prediction_std), typical_spectrum=self.typical_spectrum)


def smooth_track(series: np.ndarray, sigma: float = SMOOTHING_FRAMES) -> np.ndarray:
    """Gaussian smoothing over time of a (frames, ...) array, edges held: removes frame-to-frame
    chatter in file mode, where the whole track is known."""
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(series, [(radius, radius)] + [(0, 0)] * (series.ndim - 1), mode="edge")
    return sum(w * padded[i:i + len(series)] for i, w in enumerate(kernel))


def smooth_latest(recent: np.ndarray) -> np.ndarray:
    """Causal smoothing of the newest value (or vector) over the last three (live mode, which
    cannot wait for future frames; about half a frame later than `smooth_track`)."""
    recent = np.asarray(recent)
    padding = np.repeat(recent[:1], max(0, len(SMOOTHING_WEIGHTS) - len(recent)), axis=0)
    return np.tensordot(SMOOTHING_WEIGHTS, np.concatenate([padding, recent])[-len(SMOOTHING_WEIGHTS):], axes=1)


def predict_opening_z(model: MouthModel, samples: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """z-scored mouth opening per video frame for 16 kHz mono speech (in blocks, to bound memory)."""
    mel = log_mel(samples)
    spectrum = mean_spectrum(mel)
    return np.concatenate([model.predict(mel_features(mel, fps, min(PREDICT_BLOCK, n_frames - first), first,
                                                      spectrum=spectrum))
                           for first in range(0, n_frames, PREDICT_BLOCK)])
