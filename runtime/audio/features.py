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


@lru_cache(maxsize=4)
def mel_filterbank(n_fft: int = N_FFT, fmin: float = FMIN, fmax: float = FMAX, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-normalised triangular mel filters over the rfft bins (librosa's default), shape
    (n_mels, n_fft//2+1); Wav2Lip's by default."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, n_fft // 2 + 1)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]
    return weights.astype(np.float32)


BLOCK_FRAMES = 4096


def _emphasised_padded_slice(samples: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Samples [start, stop) of the pre-emphasised signal with N_FFT/2 reflect padding each side,
    computed from `samples` without building the whole padded signal."""
    n = samples.size
    index = np.arange(start, stop) - N_FFT // 2
    if n > 1:
        index = np.abs(index)
        index = np.where(index >= n, 2 * (n - 1) - index, index)
    valid = (index >= 0) & (index < n)
    index = np.clip(index, 0, max(n - 1, 0))
    previous = samples[np.maximum(index - 1, 0)] * np.where(index > 0, PREEMPHASIS, 0.0).astype(np.float32)
    return np.where(valid, samples[index] - previous, 0.0).astype(np.float32)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """Wav2Lip normalised log-mel of 16 kHz mono PCM, shape (80, frames), values in [-4, 4].

    The STFT runs over blocks of frames, so memory beyond the result stays small however long
    the audio is (an hour of speech needs about 90 MB for the result)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.size == 0:
        samples = np.zeros(1, np.float32)
    n_frames = 1 + samples.size // HOP
    window = np.hanning(WIN + 1)[:-1].astype(np.float32)
    filters = mel_filterbank()
    out = np.empty((N_MELS, n_frames), np.float32)
    for start in range(0, n_frames, BLOCK_FRAMES):
        count = min(BLOCK_FRAMES, n_frames - start)
        segment = _emphasised_padded_slice(samples, start * HOP, (start + count - 1) * HOP + N_FFT)
        frames = np.lib.stride_tricks.sliding_window_view(segment, N_FFT)[::HOP][:count]
        magnitude = np.abs(np.fft.rfft(frames * window, axis=1)).astype(np.float32)
        level_db = 20.0 * np.log10(np.maximum(1e-5, filters @ magnitude.T)) - REF_LEVEL_DB
        out[:, start:start + BLOCK_FRAMES] = 2 * MAX_ABS_VALUE * ((level_db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return np.clip(out, -MAX_ABS_VALUE, MAX_ABS_VALUE, out=out)


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
    edges = np.clip((np.arange(n_frames + 1) * SAMPLE_RATE / fps).astype(np.int64), 0, samples.size)
    power = np.zeros(n_frames)
    for first in range(0, n_frames, BLOCK_FRAMES):
        last = min(first + BLOCK_FRAMES, n_frames)
        segment = samples[edges[first]:edges[last]].astype(np.float64)
        squares = np.concatenate([[0.0], np.cumsum(segment * segment)])
        local = edges[first:last + 1] - edges[first]
        power[first:last] = np.diff(squares[local]) / np.maximum(np.diff(local), 1)
    return 20 * np.log10(np.maximum(np.sqrt(power), 1e-6))
