"""Audio features: the Wav2Lip / VideoReTalking log-mel spectrogram and speech energy, in numpy.

Constants follow the Wav2Lip `hparams` so exported Wav2Lip-convention generators get exactly
the input they were trained on.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 800
HOP = 200
WIN = 800
N_MELS = 80
FMIN, FMAX = 55.0, 7600.0
PREEMPHASIS = 0.97
REF_LEVEL_DB = 20.0
MIN_LEVEL_DB = -100.0
MAX_ABS_VALUE = 4.0
MEL_FPS = SAMPLE_RATE / HOP
MEL_WINDOW = 16


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz,
                    min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep,
                    hz / f_sp)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), mel * f_sp)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """80 Slaney-normalised triangular mel filters over the rfft bins, shape (80, N_FFT//2+1)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    widths = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]
    return weights.astype(np.float32)


def _stft_magnitude(samples: np.ndarray) -> np.ndarray:
    """|STFT| with a centred, reflect-padded Hann window, shape (frames, N_FFT//2+1)."""
    padded = np.pad(samples, N_FFT // 2, mode="reflect" if samples.size > N_FFT // 2 else "constant")
    n_frames = 1 + (padded.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    window = np.hanning(WIN + 1)[:-1].astype(np.float32)
    return np.abs(np.fft.rfft(frames * window, axis=1)).astype(np.float32)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """Wav2Lip normalised log-mel of 16 kHz mono PCM, shape (80, frames), values in [-4, 4]."""
    samples = np.asarray(samples, dtype=np.float32)
    emphasised = np.append(samples[:1], samples[1:] - PREEMPHASIS * samples[:-1])
    mel = mel_filterbank() @ _stft_magnitude(emphasised).T
    level_db = 20.0 * np.log10(np.maximum(1e-5, mel)) - REF_LEVEL_DB
    normalised = 2 * MAX_ABS_VALUE * ((level_db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return np.clip(normalised, -MAX_ABS_VALUE, MAX_ABS_VALUE).astype(np.float32)


def mel_window_start(frame_index: int, fps: float) -> int:
    """First mel frame of video frame `frame_index` (Wav2Lip convention: int(i * 80 / fps))."""
    return int(frame_index * MEL_FPS / fps)


def mel_window(mel: np.ndarray, frame_index: int, fps: float, size: int = MEL_WINDOW) -> np.ndarray:
    """The `size` mel frames starting at the frame's start, edge-padded past the end, (80, size)."""
    start = mel_window_start(frame_index, fps)
    idx = np.clip(np.arange(start, start + size), 0, mel.shape[1] - 1)
    return mel[:, idx]


def frame_energy_db(samples: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """RMS level in dBFS of the audio under each video frame (one value per frame)."""
    edges = (np.arange(n_frames + 1) * SAMPLE_RATE / fps).astype(np.int64)
    squares = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    edges = np.clip(edges, 0, samples.size)
    counts = np.maximum(np.diff(edges), 1)
    rms = np.sqrt((squares[edges[1:]] - squares[edges[:-1]]) / counts)
    return 20 * np.log10(np.maximum(rms, 1e-6))
