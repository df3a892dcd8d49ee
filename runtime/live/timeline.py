"""The one place that knows which audio belongs to which live frame: received speech on one
continuous 16 kHz timeline that runs with the clock (silence fills the gaps), and the loudness
test that tells speech from silence the way file mode does."""

from __future__ import annotations

import bisect
import threading
from collections import deque
from typing import Sequence

import numpy as np

from ..audio.features import SAMPLE_RATE
from ..audio.visemes import Phone
from ..audio.mouth_opening import SILENCE_BELOW_PEAK_DB, SILENCE_FLOOR_DBFS
from .clock import Clock

HISTORY_SECONDS = 4.0
MAX_QUEUE_SECONDS = 120.0
LATE_WINDOW_SECONDS = 0.3
LOUDNESS_MEMORY_FRAMES = 250


class AudioTimeline:
    """Received speech on a continuous timeline (sample 0 = start of the live run), with when each
    stretch arrived; stretches of filled-in silence have no arrival. Thread-safe: sources push,
    the live loop reads. Stretches are found by bisection, so a source that queues minutes ahead
    (a TTS engine sending at once, a capture device faster than real time) costs no more per frame
    than one that keeps pace. A source that pushes more than `max_ahead_seconds` ahead of the
    frames waits, so no sender can grow memory beyond that."""

    def __init__(self, clock: Clock, start: float, max_ahead_seconds: float = MAX_QUEUE_SECONDS):
        self.clock = clock
        self.start = start
        self.max_ahead = round(max_ahead_seconds * SAMPLE_RATE)
        self.condition = threading.Condition()
        self._firsts: list[int] = []
        self._samples: list[np.ndarray] = []
        self._arrivals: list[float | None] = []
        self._phones: list[Phone] = []
        """Timed phones of the speech pushed (seconds on the timeline), which steer its frames' mouths."""
        self.end = 0
        self.received_end = 0
        self.gaps_in_speech = 0
        self._played = 0

    def time_of(self, position: int) -> float:
        """When sample `position` is due at real-time pace, on the clock."""
        return self.start + position / SAMPLE_RATE

    def _append(self, samples: np.ndarray, arrival: float | None) -> None:
        self._firsts.append(self.end)
        self._samples.append(samples)
        self._arrivals.append(arrival)
        self.end += samples.size

    def _index(self, position: int) -> int:
        """Index of the stretch holding `position` (or the last one before it; -1 if none)."""
        return bisect.bisect_right(self._firsts, position) - 1

    def push(self, samples: np.ndarray, arrival: float | None = None, phones: Sequence[Phone] = ()) -> None:
        """Append speech that arrived at `arrival` (now by default), with the `phones` that start in
        it (seconds from its first sample). It follows what came before without a gap: the live loop
        fills silence only where it had to show a frame without audio."""
        samples = np.asarray(samples, np.float32)
        if samples.size == 0:
            return
        arrival = self.clock.now() if arrival is None else arrival
        with self.condition:
            # a source faster than real time (stdin, TCP, a capture device) waits here while more
            # than `max_ahead`, counting these samples, would be queued ahead of the frames
            self.condition.wait_for(lambda: self.end - self._played + samples.size <= self.max_ahead
                                    or self.end <= self._played)
            if 0 < self.end - self.received_end < LATE_WINDOW_SECONDS * SAMPLE_RATE and self.received_end:
                self.gaps_in_speech += 1
            offset = self.end / SAMPLE_RATE
            self._phones += [Phone(p.symbol, p.start + offset, p.end + offset) for p in phones]
            self._append(samples, arrival)
            self.received_end = self.end
            self.condition.notify_all()

    def cut_phones(self) -> None:
        """The speech was cut off where the timeline ends (an interrupt): its phones end there too,
        so none reaches into the speech that follows."""
        with self.condition:
            cut = self.end / SAMPLE_RATE
            self._phones = [Phone(p.symbol, p.start, min(p.end, cut)) for p in self._phones if p.start < cut]

    def phones(self, start: int, stop: int) -> list[Phone]:
        """The phones overlapping samples [start, stop), in seconds on the timeline."""
        with self.condition:
            return [p for p in self._phones if p.end * SAMPLE_RATE > start and p.start * SAMPLE_RATE < stop]

    def fill_silence(self, until: int) -> int:
        """Silence up to sample `until` where nothing has arrived (the speaker is quiet or late);
        returns how many samples were filled."""
        with self.condition:
            filled = max(0, until - self.end)
            if filled:
                self._append(np.zeros(filled, np.float32), None)
            return filled

    def _split(self, position: int) -> int:
        """Make `position` the start of a stretch (splitting the one holding it); returns its index."""
        index = self._index(position)
        if index < 0:
            return 0
        offset = position - self._firsts[index]
        if offset >= self._samples[index].size:
            return index + 1
        if offset > 0:
            head, tail = self._samples[index][:offset], self._samples[index][offset:]
            self._samples[index:index + 1] = [head, tail]
            self._firsts.insert(index + 1, position)
            self._arrivals.insert(index + 1, self._arrivals[index])
            return index + 1
        return index

    def drop(self, start: int, count: int) -> None:
        """Remove samples [start, start + count) and move everything after them earlier (used to
        shorten silence when audio has queued up, so latency does not creep up)."""
        with self.condition:
            begin = self._split(start)
            stop = self._split(start + count)
            del self._firsts[begin:stop], self._samples[begin:stop], self._arrivals[begin:stop]
            self._firsts[begin:] = [first - count for first in self._firsts[begin:]]
            self.end -= count
            if self.received_end > start:
                self.received_end = max(start, self.received_end - count)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop); zeros before the start, in silent gaps and where already forgotten."""
        out = np.zeros(max(0, stop - start), np.float32)
        with self.condition:
            index = max(0, self._index(start))
            while index < len(self._firsts) and self._firsts[index] < stop:
                first, samples = self._firsts[index], self._samples[index]
                lo, hi = max(first, start), min(first + samples.size, stop)
                if lo < hi:
                    out[lo - start:hi - start] = samples[lo - first:hi - first]
                index += 1
        return out

    def arrival(self, position: int) -> float | None:
        """When the sample at `position` arrived; None if it is filled-in silence or forgotten."""
        with self.condition:
            index = self._index(position)
            if index >= 0 and position < self._firsts[index] + self._samples[index].size:
                return self._arrivals[index]
        return None

    def played(self, position: int) -> None:
        """Samples before `position` are shown; keep only a few seconds of them."""
        with self.condition:
            self._played = position
            keep_from = position - int(HISTORY_SECONDS * SAMPLE_RATE)
            forgotten = max(0, self._index(keep_from))
            del self._firsts[:forgotten], self._samples[:forgotten], self._arrivals[:forgotten]
            self._phones = [p for p in self._phones if p.end * SAMPLE_RATE > keep_from]
            self.condition.notify_all()


class Loudness:
    """Tells speech from silence the way file mode does (far below the loud parts, or near digital
    silence), with the loud parts taken from the last 10 s instead of the whole file."""

    def __init__(self) -> None:
        self._levels: deque[float] = deque(maxlen=LOUDNESS_MEMORY_FRAMES)

    def _silent(self, levels: np.ndarray) -> np.ndarray:
        loud = np.percentile(self._levels, 95) if self._levels else SILENCE_FLOOR_DBFS
        return (levels < loud - SILENCE_BELOW_PEAK_DB) | (levels < SILENCE_FLOOR_DBFS)

    def is_silent(self, samples: np.ndarray, remember: bool = True) -> bool:
        power = float(np.mean(samples.astype(np.float64) ** 2)) if samples.size else 0.0
        level = 10 * np.log10(max(power, 1e-12))
        if remember and level > SILENCE_FLOOR_DBFS:
            self._levels.append(level)
        return bool(self._silent(np.array([level]))[0])

    def leading_silent_frames(self, samples: np.ndarray, frame: int) -> int:
        """How many whole frames of `frame` samples at the start of `samples` are silent (judged as
        `is_silent` would, without remembering them)."""
        frames = samples[: samples.size // frame * frame].astype(np.float64).reshape(-1, frame)
        levels = 10 * np.log10(np.maximum(np.mean(frames ** 2, axis=1), 1e-12))
        loud = ~self._silent(levels)
        return int(np.argmax(loud)) if loud.any() else len(levels)
