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

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np

from .audio import HOP, N_FFT, SAMPLE_RATE, log_mel, mel_window_start
from .avatar import Avatar
from .errors import EdgeRetalkError
from .labels import draw_watermark
from .generator import MAX_OPENING, PaintedGenerator, RenderOptions
from .generators import open_generator
from .learned_generator import SILENCE_RAMP_FRAMES, LearnedGenerator
from .lip_shape import MEL_BEFORE, mel_windows
from .lip_shape import samples_needed as shape_samples_needed
from .mouth_model import (CONTEXT_BEFORE, SILENCE_BELOW_PEAK_DB, SILENCE_FLOOR_DBFS, mel_centre, mel_features,
                          pool_bands, samples_needed, smooth_latest, voiced)
from .neural_generator import NeuralGenerator
from .stream import read_ahead
from .timing import memory_mb, peak_memory_mb

GRACE_SECONDS = 0.1
HISTORY_SECONDS = 4.0
MAX_QUEUE_SECONDS = 120.0
LOUDNESS_MEMORY_FRAMES = 250
IDLE_TAIL_SECONDS = 0.5
LATE_WINDOW_SECONDS = 0.3
MAX_BACKLOG_SECONDS = 0.2
MAX_BEHIND_FRAMES = 2


class Clock(Protocol):
    """Time for the live loop: real, or simulated (waits skipped) for long benchmarks."""

    def now(self) -> float: ...

    def sleep_until(self, moment: float) -> None: ...

    def wait(self, condition: threading.Condition, ready: Callable[[], bool], until: float) -> None:
        """With `condition` held: return when `ready()` or at `until`."""


class RealClock:
    """The wall clock (monotonic)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, moment: float) -> None:
        delay = moment - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def wait(self, condition: threading.Condition, ready: Callable[[], bool], until: float) -> None:
        condition.wait_for(ready, timeout=max(0.0, until - time.monotonic()))


class SimulatedClock:
    """Real time plus every wait skipped: work takes as long as it really does, idle time takes none.

    Used by the soak benchmark to run an hour of live mode in minutes; only paced sources (which
    push from `poll`) work with it, since a thread waiting on the real clock would never catch up."""

    def __init__(self) -> None:
        self._skipped = 0.0

    def now(self) -> float:
        return time.monotonic() + self._skipped

    def sleep_until(self, moment: float) -> None:
        self._skipped += max(0.0, moment - self.now())

    def wait(self, condition: threading.Condition, ready: Callable[[], bool], until: float) -> None:
        if not ready():
            self.sleep_until(until)


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


def _frame_mel(timeline: AudioTimeline, spectrum: RunningSpectrum, index: int, fps: float, before: int,
               needed: int) -> tuple[np.ndarray, int, np.ndarray]:
    """For video frame `index`: the timeline's log-mel from `before` mel frames ahead of its centre
    (with `_segment_mel`'s margin), the mel frame that stretch starts at, and the running mean
    spectrum, fed once with the mel frames since the previous video frame's centre."""
    centre = int(mel_centre(index, fps))
    first_mel = centre - before
    mel = _segment_mel(timeline, first_mel, needed)
    since_previous = centre - int(mel_centre(index - 1, fps))
    return mel, first_mel - 2, spectrum.update(mel[:, 2 + before - since_previous:2 + before])


def _segment_mel(timeline: AudioTimeline, first_mel: int, needed: int) -> np.ndarray:
    """Log-mel of the timeline from mel frame `first_mel - 2` on (two frames of margin, so the
    frames used are not affected by the edge of the stretch), up to sample `needed`."""
    start = (first_mel - 2) * HOP
    return log_mel(timeline.read(start, needed))


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


class RunningSpectrum:
    """A live stream's mean spectrum over its voiced frames: the model's typical one, outweighed as
    the stream's own accumulates, then a running mean over the last 10 s of voice."""

    PRIOR_FRAMES = 80
    MEMORY_FRAMES = 800

    def __init__(self, typical: np.ndarray, bands: Callable[[np.ndarray], np.ndarray] = pool_bands):
        self.mean = typical.astype(np.float64).copy()
        self._bands = bands
        self._seen = 0

    def update(self, mel: np.ndarray) -> np.ndarray:
        """Add these mel frames (80, n); returns the current mean spectrum (bands, 1) of the
        model's bands (the default generator's pooled pairs, or all 80)."""
        for column in self._bands(mel[:, voiced(mel)]).T:
            self._seen += 1
            weight = max(1.0 / (self.PRIOR_FRAMES + self._seen), 1.0 / self.MEMORY_FRAMES)
            self.mean += weight * (column[:, None] - self.mean)
        return self.mean


class _PaintedDriver:
    """The default generator, fed frame by frame from the timeline."""

    def __init__(self, generator: PaintedGenerator, fps: float):
        self.generator, self.fps = generator, fps
        self._raw: deque[float] = deque(maxlen=3)
        self._spectrum = RunningSpectrum(generator.model.typical_spectrum)

    def samples_needed(self, index: int) -> int:
        return samples_needed(index, self.fps)

    def render(self, frame: np.ndarray, points: np.ndarray | None, index: int, timeline: AudioTimeline,
               silent: bool) -> np.ndarray:
        mel, offset, spectrum = _frame_mel(timeline, self._spectrum, index, self.fps, CONTEXT_BEFORE,
                                           self.samples_needed(index))
        z = self.generator.model.predict(mel_features(mel, self.fps, 1, index, offset, spectrum))
        opening = self.generator.target_opening(z, np.array([silent]))[0]
        self._raw.append(float(opening))
        smoothed = float(smooth_latest(np.array(self._raw)))
        if points is None:
            return frame
        return self.generator.renderer.render(frame, points, float(np.clip(smoothed, 0.0, MAX_OPENING)))


class _LearnedDriver:
    """The learned generator, fed its mel window from the timeline; the lip-shape motion is
    smoothed causally and eases to the closed mouth over a few frames of silence."""

    def __init__(self, generator: LearnedGenerator, fps: float):
        self.generator, self.fps = generator, fps
        self._recent: deque[np.ndarray] = deque(maxlen=3)
        self._spectrum = RunningSpectrum(generator.shapes.typical_spectrum, bands=lambda mel: mel)
        self._quiet = 1.0

    def samples_needed(self, index: int) -> int:
        return shape_samples_needed(index, self.fps)

    def render(self, frame: np.ndarray, points: np.ndarray | None, index: int, timeline: AudioTimeline,
               silent: bool) -> np.ndarray:
        mel, offset, spectrum = _frame_mel(timeline, self._spectrum, index, self.fps, MEL_BEFORE,
                                           self.samples_needed(index))
        shapes = self.generator.shapes
        coefficients = shapes.predict(mel_windows(mel, self.fps, 1, index, offset, spectrum))
        self._quiet += (float(silent) - self._quiet) / (1 + SILENCE_RAMP_FRAMES)
        self._recent.append(shapes.motion(coefficients, np.array([self._quiet]), self.generator.options.amplitude)[0])
        return self.generator.render(frame, points, smooth_latest(np.array(self._recent)))


class _NeuralDriver:
    """An exported Wav2Lip-convention network, fed its 16-frame mel window from the timeline."""

    def __init__(self, generator: NeuralGenerator, fps: float):
        self.generator, self.fps = generator, fps
        self.steps = generator.manifest.mel_steps

    def samples_needed(self, index: int) -> int:
        return (mel_window_start(index, self.fps) + self.steps - 1) * HOP + N_FFT // 2

    def render(self, frame: np.ndarray, points: np.ndarray | None, index: int, timeline: AudioTimeline,
               silent: bool) -> np.ndarray:
        if points is None:
            return frame
        first = mel_window_start(index, self.fps)
        mel = _segment_mel(timeline, first, self.samples_needed(index))
        return self.generator.generate_from_window(frame, points, mel[:, 2:2 + self.steps])


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


LiveDriver = _PaintedDriver | _LearnedDriver | _NeuralDriver


def live_driver(options: LiveOptions, fps: float) -> LiveDriver:
    """The generator chosen by `options`, ready to be fed from a timeline (its `.generator.name`
    goes into labels)."""
    generator = open_generator(options.generator, options.render, options.threads, options.provider,
                               options.provider_options)
    drivers = {NeuralGenerator: _NeuralDriver, PaintedGenerator: _PaintedDriver, LearnedGenerator: _LearnedDriver}
    return drivers[type(generator)](generator, fps)


def run_live(avatar: Avatar, source: AudioSource, outputs: list[Output], driver: LiveDriver,
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
    frames: Iterator = read_ahead(avatar.frames())
    start = clock.now()
    timeline = AudioTimeline(clock, start)
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
            while source.continuous and silent and timeline.end - needed > MAX_BACKLOG_SECONDS * SAMPLE_RATE:
                timeline.drop(first, last - first)
                report.trimmed_silence += 1
                audio = timeline.read(first, last)
                silent = loudness.is_silent(audio, remember=False)
            frame, points = next(frames)
            dropped = (behind or clock.now() > deadline + 1.0 / fps) and last_shown is not None
            delay = None
            if dropped:
                report.dropped += 1
                shown = last_shown
            else:
                shown = driver.render(frame, points, index, timeline, silent)
                if options.watermark:
                    shown = draw_watermark(shown.copy() if shown is frame else shown)
                arrival = timeline.arrival((first + last) // 2)
                if arrival is not None:
                    delay = clock.now() - arrival
                    report.speech_frames += 1
                    report.latency.add(delay)
            for output in outputs:
                output.show(shown, audio, dropped, delay)
            last_shown = shown
            timeline.played(last)
            report.frames += 1
            index += 1
            report.seconds = index / fps
            if next_stats is not None and report.seconds >= next_stats and on_stats is not None:
                _measure(report, timeline)
                on_stats(report)
                next_stats += options.stats_every
    finally:
        frames.close()
    _measure(report, timeline)
    return report


def _measure(report: LiveReport, timeline: AudioTimeline) -> None:
    """Fill in the figures that are read rather than counted frame by frame."""
    report.gaps_in_speech = timeline.gaps_in_speech
    report.memory_mb, report.peak_memory_mb = memory_mb(), peak_memory_mb()


def require_frames(report: LiveReport) -> None:
    """A live run that showed nothing is an error, not an empty success."""
    if report.frames == 0:
        raise EdgeRetalkError("the live run ended before its first frame")
