"""Where live speech comes from: stdin, a TCP socket (raw PCM from a TTS engine), a file played at
real-time speed, a microphone (`microphone`) or the web server's speech API (`speech_queue`). Every source delivers 16 kHz mono float32 to an `AudioTimeline`.

Raw PCM (stdin, TCP) is 16-bit signed little-endian mono at a stated sample rate; other rates are
resampled by FFmpeg's resampler (PyAV).
"""

from __future__ import annotations

import os
import select
import socket
import sys
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from ..audio.features import SAMPLE_RATE
from ..errors import EdgeRetalkError
from .speech_queue import CHUNK_SECONDS, MAX_QUEUED_SECONDS, SpeechQueue
from .source_base import PcmDecoder, ThreadedSource
from .timeline import AudioTimeline
from ..io.media import check_readable, load_audio


class PacedFileSource:
    """A speech file delivered at real-time speed, in 20 ms chunks, as if someone were saying it.

    It pushes from `poll` on the live loop's clock, so it also runs under a simulated clock."""

    continuous = False

    def __init__(self, path: Path):
        check_readable(path)
        self.name = f"file {path.name}"
        self.samples = load_audio(path)
        self._chunk = int(CHUNK_SECONDS * SAMPLE_RATE)
        self._count = -(-self.samples.size // self._chunk)
        self._next = 0
        self._timeline: AudioTimeline | None = None

    def start(self, timeline: AudioTimeline) -> None:
        self._timeline = timeline

    def _arrival(self, chunk: int) -> float:
        return self._timeline.start + min((chunk + 1) * self._chunk, self.samples.size) / SAMPLE_RATE

    def poll(self, now: float) -> None:
        while self._next < self._count and self._arrival(self._next) <= now:
            first = self._next * self._chunk
            self._timeline.push(self.samples[first:first + self._chunk], self._arrival(self._next))
            self._next += 1

    def next_arrival(self) -> float | None:
        return self._arrival(self._next) if self._next < self._count else None

    def finished(self) -> bool:
        return self._next >= self._count

    def close(self) -> None:
        """Nothing to release."""


class StreamSource(ThreadedSource):
    """Raw PCM from a byte stream (stdin by default) until its end."""

    def __init__(self, sample_rate: int, stream: BinaryIO | None = None):
        super().__init__(sample_rate)
        self.name = "stdin"
        self._decoder = PcmDecoder(sample_rate)
        self._stream = stream or sys.stdin.buffer

    def _read(self, timeline: AudioTimeline) -> None:
        descriptor = self._stream.fileno()
        while not self._closing.is_set():
            data = os.read(descriptor, self._chunk_bytes)
            if not data:
                return
            timeline.push(self._decoder.decode(data))

    def finished(self) -> bool:
        return self._ended.is_set()


class TcpSource(ThreadedSource):
    """Listens on HOST:PORT; each connection (a TTS engine, one utterance or many) sends raw PCM.
    Senders are served one after another until the run is stopped; one that has sent nothing for
    `IDLE_SECONDS` while another is waiting is disconnected, so a silent client cannot starve the
    rest."""

    IDLE_SECONDS = 1.0

    def __init__(self, host: str, port: int, sample_rate: int):
        super().__init__(sample_rate)
        PcmDecoder(sample_rate)  # refuses an impossible rate now, not when the first sender connects
        try:
            self._server = socket.create_server((host, port))
        except OSError as exc:
            raise EdgeRetalkError(f"tcp://{host}:{port}: cannot listen ({exc.strerror or exc})") from None
        self.name = f"tcp://{host}:{self.port}"

    @property
    def port(self) -> int:
        return self._server.getsockname()[1]

    def _read(self, timeline: AudioTimeline) -> None:
        connection: socket.socket | None = None
        decoder, last_data = PcmDecoder(self.sample_rate), 0.0
        try:
            while not self._closing.is_set():
                watched = [self._server] + ([connection] if connection is not None else [])
                ready, _, _ = select.select(watched, [], [], 0.2)
                waiting = self._server in ready
                if connection is None:
                    if waiting:
                        connection, _ = self._server.accept()
                        decoder, last_data = PcmDecoder(self.sample_rate), time.monotonic()
                    continue
                if connection in ready:
                    try:
                        data = connection.recv(self._chunk_bytes)
                    except OSError:
                        data = b""
                    if data:
                        timeline.push(decoder.decode(data))
                        last_data = time.monotonic()
                        continue
                elif not (waiting and time.monotonic() - last_data > self.IDLE_SECONDS):
                    continue
                connection.close()
                connection = None
        finally:
            if connection is not None:
                connection.close()

    def close(self) -> None:
        super().close()
        self._server.close()


def open_audio_source(spec: str, sample_rate: int | None = None, device: str | None = None,
                      max_queued_seconds: float = MAX_QUEUED_SECONDS):
    """The source named by `spec`: mic, api (the live page's HTTP API, queueing at most
    `max_queued_seconds`), stdin (or -), tcp://HOST:PORT, or a speech file.
    `sample_rate` is that of raw PCM (16 kHz unless said) or the microphone's (its default)."""
    if spec == "mic":
        from .microphone import MicSource  # the microphone needs the optional `live` extra

        return MicSource(device, sample_rate)
    if spec == "api":
        return SpeechQueue(max_queued_seconds)
    sample_rate = sample_rate or SAMPLE_RATE
    if spec in ("stdin", "-"):
        return StreamSource(sample_rate)
    if spec.startswith("tcp://"):
        address = urlparse(spec)
        try:
            port = address.port
        except ValueError:
            port = None
        if not address.hostname or port is None:
            raise EdgeRetalkError(f"{spec}: expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:7000")
        return TcpSource(address.hostname, port, sample_rate)
    path = Path(spec)
    if not path.exists():
        raise EdgeRetalkError(f"{spec}: no such file (an audio source is mic, stdin, tcp://HOST:PORT or a file)")
    return PacedFileSource(path)
