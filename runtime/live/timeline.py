"""The one place that knows which audio belongs to which live frame: received speech on one
continuous 16 kHz timeline that runs with the clock (silence fills the gaps), and the loudness
test that tells speech from silence the way file mode does."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from ..audio.features import SAMPLE_RATE
from ..audio.mouth_opening import SILENCE_BELOW_PEAK_DB, SILENCE_FLOOR_DBFS
from .clock import Clock

HISTORY_SECONDS = 4.0
MAX_QUEUE_SECONDS = 120.0
LATE_WINDOW_SECONDS = 0.3
LOUDNESS_MEMORY_FRAMES = 250


class AudioTimeline:
    """Received speech on a continuous timeline (sample 0 = start of the live run), with when each
    stretch arrived; stretches of filled-in silence have no arrival. Thread-safe: sources push,
    the live loop reads."""

    def __init__(self, clock: Clock, start: float):
        self.clock = clock
        self.start = start
        self.condition = threading.Condition()
        self._chunks: deque[tuple[int, np.ndarray, float | None]] = deque()
        self.end = 0
        self.received_end = 0
        self.gaps_in_speech = 0
        self._played = 0

    def time_of(self, position: int) -> float:
        """When sample `position` is due at real-time pace, on the clock."""
        return self.start + position / SAMPLE_RATE

    def _append(self, samples: np.ndarray, arrival: float | None) -> None:
        self._chunks.append((self.end, samples, arrival))
        self.end += samples.size

    def push(self, samples: np.ndarray, arrival: float | None = None) -> None:
        """Append speech that arrived at `arrival` (now by default). It follows what came before
        without a gap: the live loop fills silence only where it had to show a frame without audio."""
        samples = np.asarray(samples, np.float32)
        if samples.size == 0:
            return
        arrival = self.clock.now() if arrival is None else arrival
        with self.condition:
            self.condition.wait_for(lambda: self.end - self._played < MAX_QUEUE_SECONDS * SAMPLE_RATE)
            if 0 < self.end - self.received_end < LATE_WINDOW_SECONDS * SAMPLE_RATE and self.received_end:
                self.gaps_in_speech += 1
            self._append(samples, arrival)
            self.received_end = self.end
            self.condition.notify_all()

    def fill_silence(self, until: int) -> int:
        """Silence up to sample `until` where nothing has arrived (the speaker is quiet or late);
        returns how many samples were filled."""
        with self.condition:
            filled = max(0, until - self.end)
            if filled:
                self._append(np.zeros(filled, np.float32), None)
            return filled

    def drop(self, start: int, count: int) -> None:
        """Remove samples [start, start + count) and move everything after them earlier (used to
        shorten silence when audio has queued up, so latency does not creep up)."""
        with self.condition:
            kept: deque[tuple[int, np.ndarray, float | None]] = deque()
            for first, samples, arrival in self._chunks:
                head = samples[: max(0, min(samples.size, start - first))]
                tail = samples[max(0, start + count - first):]
                if head.size:
                    kept.append((first, head, arrival))
                if tail.size:
                    kept.append((max(first, start + count) - count, tail, arrival))
            self._chunks = kept
            self.end -= count
            if self.received_end > start:
                self.received_end = max(start, self.received_end - count)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop); zeros before the start, in silent gaps and where already forgotten."""
        out = np.zeros(max(0, stop - start), np.float32)
        with self.condition:
            chunks = list(self._chunks)
        for first, samples, _ in chunks:
            lo, hi = max(first, start), min(first + samples.size, stop)
            if lo < hi:
                out[lo - start:hi - start] = samples[lo - first:hi - first]
        return out

    def arrival(self, position: int) -> float | None:
        """When the sample at `position` arrived; None if it is filled-in silence or forgotten."""
        with self.condition:
            for first, samples, arrival in reversed(self._chunks):
                if first <= position < first + samples.size:
                    return arrival
        return None

    def played(self, position: int) -> None:
        """Samples before `position` are shown; keep only a few seconds of them."""
        with self.condition:
            self._played = position
            keep_from = position - int(HISTORY_SECONDS * SAMPLE_RATE)
            while self._chunks and self._chunks[0][0] + self._chunks[0][1].size <= keep_from:
                self._chunks.popleft()
            self.condition.notify_all()


class Loudness:
    """Tells speech from silence the way file mode does (far below the loud parts, or near digital
    silence), with the loud parts taken from the last 10 s instead of the whole file."""

    def __init__(self) -> None:
        self._levels: deque[float] = deque(maxlen=LOUDNESS_MEMORY_FRAMES)

    def is_silent(self, samples: np.ndarray, remember: bool = True) -> bool:
        power = float(np.mean(samples.astype(np.float64) ** 2)) if samples.size else 0.0
        level = 10 * np.log10(max(power, 1e-12))
        if remember and level > SILENCE_FLOOR_DBFS:
            self._levels.append(level)
        loud = np.percentile(self._levels, 95) if self._levels else SILENCE_FLOOR_DBFS
        return level < loud - SILENCE_BELOW_PEAK_DB or level < SILENCE_FLOOR_DBFS
