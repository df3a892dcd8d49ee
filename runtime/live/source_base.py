"""What the sources that push raw PCM share: 16-bit PCM bytes decoded to 16 kHz float32 (stdin,
TCP, the microphone, the web server's uploads), and a reading thread whose errors surface in the
live loop."""

from __future__ import annotations

import threading

import av
import numpy as np

from ..audio.features import SAMPLE_RATE
from ..errors import EdgeRetalkError
from .speech_queue import CHUNK_SECONDS
from .timeline import AudioTimeline


class PcmDecoder:
    """16-bit mono PCM bytes at any rate in, 16 kHz float32 out, keeping odd bytes for the next call."""

    def __init__(self, sample_rate: int):
        if not 4000 <= sample_rate <= 192000:
            raise EdgeRetalkError(f"sample rate {sample_rate} Hz is outside 4000..192000")
        self.sample_rate = sample_rate
        self._resampler = (av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
                           if sample_rate != SAMPLE_RATE else None)
        self._odd = b""

    def decode(self, data: bytes) -> np.ndarray:
        data = self._odd + data
        usable = len(data) - len(data) % 2
        self._odd = data[usable:]
        pcm = np.frombuffer(data[:usable], "<i2")
        if self._resampler is None or pcm.size == 0:
            return pcm.astype(np.float32) / 32768.0
        frame = av.AudioFrame.from_ndarray(pcm[None], format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        return np.concatenate([f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)] or
                              [np.zeros(0, np.float32)])


class ThreadedSource:
    """A source that reads in its own thread; its errors surface in the live loop."""

    name = "source"
    continuous = False

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate
        self._chunk_bytes = max(2, int(sample_rate * CHUNK_SECONDS) * 2)
        self._closing = threading.Event()
        self._ended = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeline: AudioTimeline) -> None:
        self._thread = threading.Thread(target=self._guarded, args=(timeline,), name=self.name, daemon=True)
        self._thread.start()

    def _guarded(self, timeline: AudioTimeline) -> None:
        try:
            self._read(timeline)
        except BaseException as error:  # noqa: BLE001 - raised again in the live loop by poll()
            self._error = error
        finally:
            self._ended.set()

    def _read(self, timeline: AudioTimeline) -> None:
        raise NotImplementedError

    def poll(self, now: float) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            if isinstance(error, EdgeRetalkError):
                raise error
            raise EdgeRetalkError(f"{self.name}: {error}") from error

    def next_arrival(self) -> float | None:
        return None

    def finished(self) -> bool:
        return False

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
