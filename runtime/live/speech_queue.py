"""Speech sent through the live server's HTTP API (`POST /speech`, the `/pcm` WebSocket) or pushed
from Python (`LiveStream.push`): utterances queued and played one after another at real-time pace."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..audio.features import SAMPLE_RATE
from ..audio.visemes import Phone
from ..errors import EdgeRetalkError
from ..io.media import AudioTooLong
from .timeline import AudioTimeline

CHUNK_SECONDS = 0.02
MAX_QUEUED_SECONDS = 600.0


class QueueFull(EdgeRetalkError):
    """The speech would take the queue past its limit; the client may send it again later."""


@dataclass
class Utterance:
    """Speech queued through the API: a whole file, or a stream that grows until it is closed;
    with the timed phones of its words where they are known (`POST /say`), seconds from its start."""

    id: int
    unplayed: deque[np.ndarray] = field(default_factory=deque)
    size: int = 0
    closed: bool = False
    played: int = 0
    phones: deque[Phone] = field(default_factory=deque)

    def append(self, samples: np.ndarray, phones: Sequence[Phone] = ()) -> None:
        """`samples` at the end, with their `phones` timed from their first sample."""
        offset = self.size / SAMPLE_RATE
        self.phones.extend(Phone(p.symbol, p.start + offset, p.end + offset) for p in phones)
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

    def take_phones(self, first: int) -> list[Phone]:
        """The phones starting in what has been played and not yet taken, timed from sample `first`."""
        taken = []
        while self.phones and self.phones[0].start * SAMPLE_RATE < self.played:
            phone = self.phones.popleft()
            taken.append(Phone(phone.symbol, phone.start - first / SAMPLE_RATE, phone.end - first / SAMPLE_RATE))
        return taken


class SpeechQueue:
    """Utterances from the HTTP API (`POST /speech`, the `/pcm` WebSocket), played one after
    another at real-time pace in 20 ms chunks, like `PacedFileSource`; `interrupt` drops the one
    playing and those waiting. A streamed utterance plays as its samples come; if they come slower
    than real time, the avatar waits for them (the live loop fills the gap with silence). Runs
    until the live run is stopped. At most `max_seconds` of speech wait, counting what is being
    added: each queued second holds 64 kB."""

    name = "the HTTP API (POST /speech, WebSocket /pcm)"
    continuous = False

    def __init__(self, max_seconds: float = MAX_QUEUED_SECONDS) -> None:
        if not max_seconds > 0:
            raise EdgeRetalkError(f"the speech queue's limit must be a positive number of seconds, not {max_seconds}")
        self.max_seconds = max_seconds
        self._lock = threading.Lock()
        self._waiting: deque[Utterance] = deque()
        self._playing: Utterance | None = None
        self._due = 0.0
        self._chunk = int(CHUNK_SECONDS * SAMPLE_RATE)
        self._next_id = 0
        self._timeline: AudioTimeline | None = None

    def start(self, timeline: AudioTimeline) -> None:
        self._timeline = timeline

    def _make_room(self, samples: int, queued: float) -> None:
        """Refuse `samples` more if, with the `queued` seconds, they would pass the limit."""
        if samples > self.max_seconds * SAMPLE_RATE:
            raise AudioTooLong(f"speech longer than the queue's limit of {self.max_seconds:g} s")
        if queued + samples / SAMPLE_RATE > self.max_seconds:
            raise QueueFull(f"the speech queue holds {queued:.1f} s; with {samples / SAMPLE_RATE:.1f} s more "
                            f"it would pass its limit of {self.max_seconds:g} s")

    def open(self, interrupt: bool = False, samples: np.ndarray | None = None,
             phones: Sequence[Phone] = ()) -> Utterance:
        """A new utterance at the end of the queue (alone in it with `interrupt`), holding `samples`
        and their `phones` (closed) when given."""
        with self._lock:
            self._make_room(0 if samples is None else samples.size, 0.0 if interrupt else self.queued_seconds())
            if interrupt:
                self._drop_all()
            self._next_id += 1
            utterance = Utterance(self._next_id)
            if samples is not None:
                utterance.append(samples, phones)
                utterance.closed = True
            self._waiting.append(utterance)
            return utterance

    def add(self, samples: np.ndarray, interrupt: bool = False, phones: Sequence[Phone] = ()) -> Utterance:
        """Queue a whole utterance (with its timed `phones`, seconds from its start, where known)."""
        return self.open(interrupt, np.asarray(samples, np.float32), phones)

    def extend(self, utterance: Utterance, samples: np.ndarray, phones: Sequence[Phone] = ()) -> None:
        """More of a streamed utterance, with the `phones` of these samples (seconds from their start)."""
        with self._lock:
            self._make_room(samples.size, self.queued_seconds())
            utterance.append(np.asarray(samples, np.float32), phones)

    def close_utterance(self, utterance: Utterance) -> None:
        with self._lock:
            utterance.closed = True

    def interrupt(self) -> int:
        """Stop the utterance playing and drop those waiting; returns how many were dropped."""
        with self._lock:
            return self._drop_all()

    def _drop_all(self) -> int:
        """Drop every utterance; the phones of the one playing go with its audio."""
        dropped = len(self._waiting) + (self._playing is not None)
        if self._playing is not None and self._timeline is not None:
            self._timeline.cut_phones()
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
                    # paced from where it lands on the timeline, not from when this poll ran: a poll
                    # that came late (a busy machine) must not leave the speech behind the frames
                    start = min(now, self._timeline.time_of(self._timeline.end))
                    self._due = max(self._due, start + CHUNK_SECONDS)
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
                first = utterance.played
                self._timeline.push(utterance.take(self._chunk), self._due, utterance.take_phones(first))
                self._due += CHUNK_SECONDS

    def next_arrival(self) -> float | None:
        with self._lock:
            return self._due if self._playing is not None else None

    def finished(self) -> bool:
        return False

    def close(self) -> None:
        self.interrupt()
