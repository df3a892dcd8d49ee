"""Live mode: speech arrives while it is being spoken; the avatar's mouth follows it in real time.

The clock is here. Received speech is laid on one continuous 16 kHz timeline that runs with the
wall clock (`AudioTimeline`): silence fills the gaps between utterances, and speech that arrives
faster than real time (a TTS engine sending a sentence at once) queues up. Video frame k shows
timeline samples [k/fps, (k+1)/fps). It is rendered as soon as the audio it needs has arrived (the
generator's look-ahead included), but never before real time allows; if that audio is late, the
frame is rendered with silence after a short grace period, and the late audio follows that
silence; while no audio comes at all (an idle sender), frames do not wait for the grace period. So that such delays cannot add up over hours in a microphone's endless stream, silence
queued up in it beyond 0.2 s is skipped (streamed speech, such as a TTS engine's, is shown in
full and in its own time, since the speaker plays it that way). When the machine cannot keep up,
frames are dropped (and counted) rather than letting the picture fall more than two frames
behind; the recording repeats the previous frame there, so its sound and picture stay in step.

Idle needs no special case: without speech the timeline is silent, so the mouth closes while the
avatar's loop keeps playing, and speech that starts mid-loop opens it smoothly.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np

from ..audio.features import SAMPLE_RATE
from ..avatar import Avatar
from ..io.timing import memory_mb, peak_memory_mb
from ..errors import EdgeRetalkError
from ..generators import LiveGenerator, open_generator
from ..generators.learned import is_enrolled
from ..generators.options import RenderOptions
from ..io.workers import ReadAhead
from ..provenance.labels import draw_watermark
from .clock import Clock, RealClock
from .timeline import MAX_QUEUE_SECONDS, AudioTimeline, Loudness

GRACE_SECONDS = 0.1
IDLE_TAIL_SECONDS = 0.5
MAX_BACKLOG_SECONDS = 0.2
MAX_BEHIND_FRAMES = 2
MAX_SKIP_SECONDS = 10.0

class AudioSource(Protocol):
    """Where speech comes from. Threaded sources push from their own thread; paced sources push
    from `poll`, which the live loop calls. A `continuous` source (a microphone) never stops
    sending, so queued silence in it may be skipped; the others are played in full."""

    name: str
    continuous: bool

    def start(self, timeline: AudioTimeline) -> None: ...

    def poll(self, now: float) -> None: ...

    def next_arrival(self) -> float | None: ...

    def finished(self) -> bool: ...

    def close(self) -> None: ...


class Output(Protocol):
    """Where live frames go (a window, an MJPEG stream, a recording)."""

    def show(self, frame: np.ndarray, audio: np.ndarray, dropped: bool, delay: float | None) -> None:
        """`audio` is the frame's speech (silence where none came); `dropped` says the frame
        repeats the previous one; `delay` is the seconds from that speech's arrival to now (None
        in silence)."""

    def close(self) -> None: ...


class LatencyStats:
    """Delay from a speech sample's arrival to the frame that shows it, as a fixed histogram
    (1 ms bins), so an all-day run keeps constant memory."""

    BINS = 5000

    def __init__(self) -> None:
        self.counts = np.zeros(self.BINS + 1, np.int64)

    def add(self, seconds: float) -> None:
        self.counts[min(self.BINS, max(0, int(seconds * 1000)))] += 1

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def percentile(self, q: float) -> float | None:
        """Milliseconds (upper edge of the bin), or None before any speech was shown."""
        if self.count == 0:
            return None
        return float(np.searchsorted(np.cumsum(self.counts), q / 100 * self.count) + 1)


@dataclass
class LiveReport:
    """What a live run did. `gaps_in_speech` counts pauses under 0.3 s that had to be filled with
    silence because speech came late (jitter in the source or a stalled machine)."""

    frames: int = 0
    dropped: int = 0
    speech_frames: int = 0
    gaps_in_speech: int = 0
    trimmed_silence: int = 0
    seconds: float = 0.0
    latency: LatencyStats = field(default_factory=LatencyStats)
    memory_mb: float = 0.0
    peak_memory_mb: float = 0.0

    def line(self) -> str:
        p50, p95 = self.latency.percentile(50), self.latency.percentile(95)
        latency = f"latency p50 {p50:.0f} ms, p95 {p95:.0f} ms" if p50 is not None else "no speech shown yet"
        return (f"{self.seconds:.0f} s: {self.frames} frames ({self.speech_frames} with speech), "
                f"{self.dropped} dropped, {latency}, {self.gaps_in_speech} gaps where speech came late, "
                f"{self.trimmed_silence} frames of queued silence skipped, memory {self.memory_mb:.0f} MB (peak {self.peak_memory_mb:.0f})")


@dataclass(frozen=True)
class LiveOptions:
    """Settings of one live run."""

    duration: float | None = None
    threads: int = 1
    generator: Path | None = None
    provider: str | None = None
    provider_options: dict[str, str] = field(default_factory=dict)
    render: RenderOptions = field(default_factory=RenderOptions)
    stats_every: float | None = None
    watermark: bool = False
    max_ahead_seconds: float = MAX_QUEUE_SECONDS
    """Speech a stdin, TCP or microphone source may push ahead of the frames before it waits."""


def with_avatar_networks(options: LiveOptions, avatar: Path) -> LiveOptions:
    """An enrolled avatar brings its own networks, unless a generator was chosen."""
    return replace(options, generator=avatar) if options.generator is None and is_enrolled(avatar) else options


def live_driver(options: LiveOptions, fps: float) -> LiveGenerator:
    """The generator chosen by `options`, ready to be fed from a live stream (its `.generator.name`
    goes into labels)."""
    return open_generator(options.generator, options.render, options.threads, options.provider,
                          options.provider_options).live(fps)


def run_live(avatar: Avatar, source: AudioSource, outputs: list[Output], driver: LiveGenerator,
             options: LiveOptions | None = None, clock: Clock | None = None, stop: threading.Event | None = None,
             on_stats: Callable[[LiveReport], None] | None = None, report: LiveReport | None = None) -> LiveReport:
    """Drive `avatar` with speech from `source` until the source ends, `options.duration` passes
    or `stop` is set; every frame goes to every output. The caller owns (and closes) the source
    and the outputs; a `report` it passes in is filled as the run goes (for a status page)."""
    options = options or LiveOptions()
    clock = clock or RealClock()
    stop = stop or threading.Event()
    fps = float(avatar.fps)
    report = report if report is not None else LiveReport()
    ahead = ReadAhead(avatar.frames())
    taken = iter(ahead)
    first_frame = next(taken)
    _warm_up(driver, fps, *first_frame)
    frames: Iterator = itertools.chain([first_frame], taken)
    start = clock.now()
    timeline = AudioTimeline(clock, start, options.max_ahead_seconds)
    source.start(timeline)
    last_shown: np.ndarray | None = None
    loudness = Loudness()
    next_stats = options.stats_every
    starved = False
    index = 0
    try:
        while not stop.is_set():
            first, last = round(index * SAMPLE_RATE / fps), round((index + 1) * SAMPLE_RATE / fps)
            if options.duration is not None and last > options.duration * SAMPLE_RATE:
                break
            if source.finished() and first >= timeline.received_end + IDLE_TAIL_SECONDS * SAMPLE_RATE:
                break
            needed = driver.samples_needed(index)
            earliest = start + needed / SAMPLE_RATE
            deadline = earliest + (0.0 if starved else GRACE_SECONDS)
            clock.sleep_until(earliest)
            behind = clock.now() > earliest + MAX_BEHIND_FRAMES / fps
            while True:
                source.poll(clock.now())
                wake = min(deadline, source.next_arrival() or deadline)
                if source.finished():
                    break
                with timeline.condition:
                    clock.wait(timeline.condition, lambda: timeline.end >= needed, wake)
                if timeline.end >= needed or clock.now() >= deadline or stop.is_set():
                    break
            starved = timeline.end < needed
            timeline.fill_silence(needed)
            audio = timeline.read(first, last)
            silent = loudness.is_silent(audio)
            if source.continuous and silent:
                skipped = _skippable_silence(timeline, loudness, first, last - first, needed)
                if skipped:
                    timeline.drop(first, skipped * (last - first))
                    report.trimmed_silence += skipped
                    audio = timeline.read(first, last)
                    silent = loudness.is_silent(audio, remember=False)
            frame, points = next(frames)
            dropped = (behind or clock.now() > deadline + 1.0 / fps) and last_shown is not None
            delay = None
            if dropped:
                report.dropped += 1
                driver.follow(index, timeline.read, silent)
                shown = last_shown
            else:
                shown = driver.render(frame, points, index, timeline.read, silent, timeline.phones(first, last))
                if options.watermark:
                    shown = draw_watermark(shown.copy() if shown is frame else shown)
                arrival = timeline.arrival((first + last) // 2)
                if arrival is not None:
                    delay = clock.now() - arrival
                    report.speech_frames += 1
                    report.latency.add(delay)
            report.frames += 1  # counted before it is shown: /status never says fewer than were served
            for output in outputs:
                output.show(shown, audio, dropped, delay)
            last_shown = shown
            timeline.played(last)
            index += 1
            report.seconds = index / fps
            if next_stats is not None and report.seconds >= next_stats and on_stats is not None:
                _measure(report, timeline)
                on_stats(report)
                next_stats += options.stats_every
    finally:
        ahead.close()
    _measure(report, timeline)
    return report


def _warm_up(driver: LiveGenerator, fps: float, frame: np.ndarray, points: np.ndarray | None) -> None:
    """Render the avatar's first frame once, with silence, before the clock starts: an engine's
    first run allocates and tunes, and on a busy machine that would otherwise freeze the first
    second of the picture. A fresh live adapter is used, so no motion carries over."""
    driver.generator.live(fps).render(frame, points, 0, _silence, True)


def _silence(start: int, stop: int) -> np.ndarray:
    return np.zeros(stop - start, np.float32)


def _skippable_silence(timeline: AudioTimeline, loudness: Loudness, first: int, frame: int, needed: int) -> int:
    """How many frames of silence from `first` on may be skipped, at once, so that no more than
    `MAX_BACKLOG_SECONDS` stay queued beyond what frame `first` needs (a continuous source only)."""
    excess = timeline.end - needed - MAX_BACKLOG_SECONDS * SAMPLE_RATE
    if excess <= 0:
        return 0
    most = min(-(-int(excess) // frame), int(MAX_SKIP_SECONDS * SAMPLE_RATE) // frame)
    return loudness.leading_silent_frames(timeline.read(first, first + most * frame), frame)


def _measure(report: LiveReport, timeline: AudioTimeline) -> None:
    """Fill in the figures that are read rather than counted frame by frame."""
    report.gaps_in_speech = timeline.gaps_in_speech
    report.memory_mb, report.peak_memory_mb = memory_mb(), peak_memory_mb()


def require_frames(report: LiveReport) -> None:
    """A live run that showed nothing is an error, not an empty success."""
    if report.frames == 0:
        raise EdgeRetalkError("the live run ended before its first frame")
