"""The speech encoder: Whisper tiny.en's audio encoder (pretrained on 680,000 hours of speech, MIT
licence), exported through `edge-retalk export` and run by any engine, turns speech into features
that tell sounds apart for any voice. The lip-shape network reads them.

The encoder runs on fixed 2 s windows (`WINDOW_SAMPLES`) of Whisper's log-mel. A video frame's
input is `STEPS_BEFORE` feature steps (50 a second) before its centre and `STEPS_AFTER` from it on,
taken from one window:
- live mode (`live_window_start`): the window ends `LOOK_AHEAD_S` after the frame's centre, so a
  frame needs 100 ms of speech beyond it; one encoder run per frame.
- file mode (`file_windows`): windows every second, each serving the frames whose centre lies in
  its middle second (half a second of context each side); one run per second of speech.
The network is trained on both kinds of input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from .features import SAMPLE_RATE, mel_filterbank
from ..devices.autotune import fastest
from ..engines.network import Network
from ..models import model_path

N_MELS = 80
N_FFT = 400
HOP = 160
WINDOW_SAMPLES = 2 * SAMPLE_RATE
WINDOW_MEL_FRAMES = WINDOW_SAMPLES // HOP
ENCODER_FRAMES = WINDOW_MEL_FRAMES // 2
STEP_RATE = SAMPLE_RATE / HOP / 2
"""Encoder feature steps per second."""
LOOK_AHEAD_S = 0.1
STEPS_BEFORE = 20
STEPS_AFTER = 5
FEATURE_STEPS = STEPS_BEFORE + STEPS_AFTER
FILE_HOP_SAMPLES = SAMPLE_RATE
FILE_MARGIN_SAMPLES = (WINDOW_SAMPLES - FILE_HOP_SAMPLES) // 2
ENCODER_FORMS = ("whisper_encoder.int8.xml", "whisper_encoder.int8.tflite")
"""The shipped encoder's exported forms (LiteRT runs on every install, OpenVINO where it is
installed); the fastest that runs here is measured on first use."""


def whisper_log_mel(windows: np.ndarray) -> np.ndarray:
    """Whisper's normalised log-mel of 16 kHz windows (n, WINDOW_SAMPLES) -> (n, 80, WINDOW_MEL_FRAMES):
    power spectrum of a periodic Hann window (centred frames, reflect-padded), Slaney mel filters
    to 8 kHz, log10 floored 8 decades below the window's peak, scaled to about [-1, 1]."""
    windows = np.asarray(windows, np.float32)
    padded = np.pad(windows, ((0, 0), (N_FFT // 2, N_FFT // 2)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=1)[:, ::HOP][:, :WINDOW_MEL_FRAMES]
    hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    power = np.abs(np.fft.rfft(frames * hann, axis=-1)) ** 2
    mel = np.log10(np.maximum(power.astype(np.float32) @ mel_filterbank(N_FFT, 0.0, 8000.0, N_MELS).T, 1e-10))
    mel = np.maximum(mel, mel.max(axis=(1, 2), keepdims=True) - 8.0)
    return np.ascontiguousarray(((mel + 4.0) / 4.0).transpose(0, 2, 1), dtype=np.float32)


def frame_centre_s(index: int | np.ndarray, fps: float) -> np.ndarray:
    return (np.asarray(index) + 0.5) / fps


def live_window_start(index: int | np.ndarray, fps: float) -> np.ndarray:
    """First sample of the window that live mode encodes for video frame `index`."""
    return np.round((frame_centre_s(index, fps) + LOOK_AHEAD_S) * SAMPLE_RATE).astype(np.int64) - WINDOW_SAMPLES


def samples_needed(index: int, fps: float) -> int:
    """How many samples (from the start) live mode needs for video frame `index`."""
    return int(live_window_start(index, fps)) + WINDOW_SAMPLES


def file_windows(fps: float, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """File mode's windows: their first samples, and for each video frame the window that serves it."""
    centres = np.round(frame_centre_s(np.arange(n_frames), fps) * SAMPLE_RATE).astype(np.int64)
    serving = centres // FILE_HOP_SAMPLES
    count = int(serving.max()) + 1 if n_frames else 0
    return np.arange(count) * FILE_HOP_SAMPLES - FILE_MARGIN_SAMPLES, serving


def cut(samples: np.ndarray, start: int, length: int = WINDOW_SAMPLES) -> np.ndarray:
    """`length` samples of `samples` from `start` (which may be negative), zeros outside."""
    window = np.zeros(length, np.float32)
    first, last = max(start, 0), min(start + length, samples.size)
    if last > first:
        window[first - start:last - start] = samples[first:last]
    return window


def frame_inputs(features: np.ndarray, starts: np.ndarray, which: np.ndarray, index: np.ndarray,
                 fps: float) -> np.ndarray:
    """The network input (n, C, FEATURE_STEPS) of video frames `index`, each from the encoded window
    `which` of `features` (m, ENCODER_FRAMES, C), whose first samples are `starts` (m,)."""
    position = np.round((frame_centre_s(index, fps) - starts[which] / SAMPLE_RATE) * STEP_RATE).astype(np.int64)
    steps = np.clip(position[:, None] + np.arange(-STEPS_BEFORE, STEPS_AFTER)[None], 0, ENCODER_FRAMES - 1)
    return np.ascontiguousarray(features[which[:, None], steps].transpose(0, 2, 1))


class SpeechEncoder:
    """The exported Whisper encoder, run on windows of speech."""

    BATCH = 8

    def __init__(self, model: Path | None = None, threads: int = 1, provider: str | None = None,
                 options: dict | None = None):
        model = model or fastest("whisper_encoder", [model_path(name) for name in ENCODER_FORMS], threads)
        self.network = Network(model, "whisper_encoder", threads, provider, options)

    def encode(self, windows: np.ndarray) -> np.ndarray:
        """Features (n, ENCODER_FRAMES, C) of speech windows (n, WINDOW_SAMPLES)."""
        return np.concatenate([self.network(whisper_log_mel(windows[i:i + self.BATCH]))
                               for i in range(0, len(windows), self.BATCH)])

    def file_blocks(self, samples: np.ndarray, fps: float, n_frames: int) -> Iterator[np.ndarray]:
        """Network inputs (frames, C, FEATURE_STEPS) of a whole recording (file mode), block by block
        in frame order (the frames of BATCH windows each), so memory stays bounded however long it is."""
        starts, serving = file_windows(fps, n_frames)
        for first in range(0, len(starts), self.BATCH):
            chunk = starts[first:first + self.BATCH]
            features = self.encode(np.stack([cut(samples, int(s)) for s in chunk]))
            frames = np.nonzero((serving >= first) & (serving < first + len(chunk)))[0]
            yield frame_inputs(features, chunk, serving[frames] - first, frames, fps)

    def for_file(self, samples: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
        """Network inputs (n_frames, C, FEATURE_STEPS) of a whole recording at once (file mode)."""
        blocks = list(self.file_blocks(samples, fps, n_frames))
        return np.concatenate(blocks) if blocks else np.zeros((0, 0, FEATURE_STEPS), np.float32)

    def for_live_frame(self, window: np.ndarray, index: int, fps: float) -> np.ndarray:
        """The network input (1, C, FEATURE_STEPS) of video frame `index` from its live window (the
        WINDOW_SAMPLES from `live_window_start`)."""
        start = live_window_start(np.array([index]), fps)
        return frame_inputs(self.encode(window[None]), start, np.zeros(1, np.int64), np.array([index]), fps)

    def for_live(self, samples: np.ndarray, fps: float, frames: np.ndarray) -> np.ndarray:
        """Network inputs (n, C, FEATURE_STEPS) of video frames `frames` as live mode sees them, each
        from its own window of `samples` (the stream from its start)."""
        starts = live_window_start(frames, fps)
        inputs = []
        for i in range(0, len(frames), self.BATCH):
            chunk = starts[i:i + self.BATCH]
            features = self.encode(np.stack([cut(samples, int(s)) for s in chunk]))
            inputs.append(frame_inputs(features, chunk, np.arange(len(chunk)), frames[i:i + self.BATCH], fps))
        return np.concatenate(inputs) if inputs else np.zeros((0, 0, FEATURE_STEPS), np.float32)
