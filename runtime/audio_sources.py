"""Where live speech comes from: a microphone, stdin, a TCP socket (raw PCM from a TTS engine), or a
file played at real-time speed. Every source delivers 16 kHz mono float32 to an `AudioTimeline`.

Raw PCM (stdin, TCP) is 16-bit signed little-endian mono at a stated sample rate; other rates are
resampled by FFmpeg's resampler (PyAV).
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

import av
import numpy as np

from .audio import SAMPLE_RATE
from .errors import EdgeRetalkError
from .live import AudioTimeline
from .media import check_readable, load_audio
from .quiet import native_stderr_silenced

CHUNK_SECONDS = 0.02
PORTAUDIO_HINT = "install it with: pip install 'edge-retalk[live]' and, on Debian/Ubuntu, apt install libportaudio2"


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


@dataclass
class Utterance:
    """Speech queued through the API: a whole file, or a stream that grows until it is closed."""

    id: int
    unplayed: deque[np.ndarray] = field(default_factory=deque)
    size: int = 0
    closed: bool = False
    played: int = 0

    def append(self, samples: np.ndarray) -> None:
        self.unplayed.append(samples)
        self.size += samples.size

    def take(self, count: int) -> np.ndarray:
        """The next `count` samples (fewer at the end); only those are copied, so a long stream
        costs no more per chunk than a short one."""
        taken = []
        while count and self.unplayed:
            head = self.unplayed.popleft()
            taken.append(head[:count])
            if head.size > count:
                self.unplayed.appendleft(head[count:])
            count -= taken[-1].size
        chunk = np.concatenate(taken) if taken else np.zeros(0, np.float32)
        self.played += chunk.size
        return chunk


class SpeechQueue:
    """Utterances from the HTTP API (`POST /speech`, the `/pcm` WebSocket), played one after
    another at real-time pace in 20 ms chunks, like `PacedFileSource`; `interrupt` drops the one
    playing and those waiting. A streamed utterance plays as its samples come; if they come slower
    than real time, the avatar waits for them (the live loop fills the gap with silence). Runs
    until the live run is stopped."""

    name = "the HTTP API (POST /speech, WebSocket /pcm)"
    continuous = False
    MAX_QUEUED_SECONDS = 600

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: deque[Utterance] = deque()
        self._playing: Utterance | None = None
        self._due = 0.0
        self._chunk = int(CHUNK_SECONDS * SAMPLE_RATE)
        self._next_id = 0
        self._timeline: AudioTimeline | None = None

    def start(self, timeline: AudioTimeline) -> None:
        self._timeline = timeline

    def open(self, interrupt: bool = False) -> Utterance:
        """A new utterance at the end of the queue (alone in it with `interrupt`)."""
        with self._lock:
            if interrupt:
                self._drop_all()
            if self.queued_seconds() > self.MAX_QUEUED_SECONDS:
                raise EdgeRetalkError(f"more than {self.MAX_QUEUED_SECONDS} s of speech already queued")
            self._next_id += 1
            utterance = Utterance(self._next_id)
            self._waiting.append(utterance)
            return utterance

    def add(self, samples: np.ndarray, interrupt: bool = False) -> Utterance:
        """Queue a whole utterance."""
        utterance = self.open(interrupt)
        with self._lock:
            utterance.append(np.asarray(samples, np.float32))
            utterance.closed = True
        return utterance

    def extend(self, utterance: Utterance, samples: np.ndarray) -> None:
        with self._lock:
            utterance.append(np.asarray(samples, np.float32))

    def close_utterance(self, utterance: Utterance) -> None:
        with self._lock:
            utterance.closed = True

    def interrupt(self) -> int:
        """Stop the utterance playing and drop those waiting; returns how many were dropped."""
        with self._lock:
            return self._drop_all()

    def _drop_all(self) -> int:
        dropped = len(self._waiting) + (self._playing is not None)
        self._waiting.clear()
        self._playing = None
        return dropped

    def queued_seconds(self) -> float:
        """Speech not yet played (streams count what has come so far)."""
        waiting = sum(u.size for u in self._waiting)
        playing = self._playing.size - self._playing.played if self._playing is not None else 0
        return (waiting + playing) / SAMPLE_RATE

    def state(self) -> dict:
        with self._lock:
            return {"speaking": self._playing is not None, "utterances_waiting": len(self._waiting),
                    "queued_seconds": round(self.queued_seconds(), 2)}

    def poll(self, now: float) -> None:
        with self._lock:
            while True:
                if self._playing is None:
                    if not self._waiting or self._waiting[0].size == 0 and not self._waiting[0].closed:
                        return
                    self._playing = self._waiting.popleft()
                    self._due = max(self._due, now + CHUNK_SECONDS)
                utterance = self._playing
                left = utterance.size - utterance.played
                if left == 0 and utterance.closed:
                    self._playing = None
                    continue
                if left < self._chunk and not utterance.closed:
                    self._due = max(self._due, now + CHUNK_SECONDS)  # a stream running late: wait for it
                    return
                if self._due > now:
                    return
                self._timeline.push(utterance.take(self._chunk), self._due)
                self._due += CHUNK_SECONDS

    def next_arrival(self) -> float | None:
        with self._lock:
            return self._due if self._playing is not None else None

    def finished(self) -> bool:
        return False

    def close(self) -> None:
        self.interrupt()


class _ThreadedSource:
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


class StreamSource(_ThreadedSource):
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


class TcpSource(_ThreadedSource):
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


def _sounddevice():
    try:
        import sounddevice
    except ImportError:
        raise EdgeRetalkError(f"--audio-source mic needs sounddevice, which is not installed; {PORTAUDIO_HINT}") from None
    except OSError:
        raise EdgeRetalkError(f"--audio-source mic needs the PortAudio library, which was not found; {PORTAUDIO_HINT}") from None
    return sounddevice


def list_audio_devices() -> list[tuple[int, str, int, int]]:
    """(index, name, input channels, default sample rate) of every capture device PortAudio sees."""
    sounddevice = _sounddevice()
    with native_stderr_silenced():
        devices = sounddevice.query_devices()
    return [(int(d["index"]), str(d["name"]), int(d["max_input_channels"]), int(d["default_samplerate"]))
            for d in devices if d["max_input_channels"] > 0]


def find_audio_device(wanted: str | None) -> tuple[int | None, int]:
    """(index, sample rate) of the capture device given by index or (part of its) name; the
    default device (index None) when nothing is asked."""
    devices = list_audio_devices()
    if not devices:
        raise EdgeRetalkError("no audio capture device found (see --list-audio-devices)")
    if wanted is None:
        return None, SAMPLE_RATE
    matches = [d for d in devices if (wanted.isdigit() and d[0] == int(wanted)) or wanted.lower() in d[1].lower()]
    if not matches:
        names = ", ".join(f"{d[0]}: {d[1]}" for d in devices)
        raise EdgeRetalkError(f"no capture device matches {wanted!r}; available: {names}")
    return matches[0][0], matches[0][3]


class MicSource(_ThreadedSource):
    """A capture device through sounddevice (PortAudio, binary wheels on every board), read in
    20 ms blocks."""

    continuous = True

    def __init__(self, device: str | None = None, sample_rate: int | None = None):
        sounddevice = _sounddevice()
        self._device, default_rate = find_audio_device(device)
        super().__init__(sample_rate or default_rate)
        self.name = f"mic {device or 'default'}"
        self._decoder = PcmDecoder(self.sample_rate)
        try:
            with native_stderr_silenced():
                self._stream = sounddevice.RawInputStream(samplerate=self.sample_rate, channels=1, dtype="int16",
                                                          device=self._device,
                                                          blocksize=int(self.sample_rate * CHUNK_SECONDS))
                self._stream.start()
        except (sounddevice.PortAudioError, ValueError) as exc:
            raise EdgeRetalkError(f"{self.name}: cannot open the capture device ({exc})") from None

    def _read(self, timeline: AudioTimeline) -> None:
        block = int(self.sample_rate * CHUNK_SECONDS)
        while not self._closing.is_set():
            data, _overflowed = self._stream.read(block)
            timeline.push(self._decoder.decode(bytes(data)))

    def close(self) -> None:
        super().close()
        self._stream.stop()
        self._stream.close()


def open_audio_source(spec: str, sample_rate: int | None = None, device: str | None = None):
    """The source named by `spec`: mic, api (the live page's HTTP API), stdin (or -),
    tcp://HOST:PORT, or a speech file.
    `sample_rate` is that of raw PCM (16 kHz unless said) or the microphone's (its default)."""
    if spec == "mic":
        return MicSource(device, sample_rate)
    if spec == "api":
        return SpeechQueue()
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
