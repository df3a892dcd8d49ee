"""Live-mode soak: latency p50/p95, dropped frames, memory and A/V offset over a long run.

    python benchmarks/live_soak.py [--minutes 30] [--face FACE] [--generator MODEL] [--realtime]

Speech (the bundled sentence unless --speech is given) arrives at real-time pace in 20 ms chunks,
with a 2-second pause after each utterance, so the avatar keeps going from idle to speech and
back. By default the clock is simulated: waits are skipped but all work takes its real time, so
30 minutes run in a few, and the latency figures are those of a real-time run on an otherwise
idle machine (`--realtime` runs on the wall clock instead). Everything shown is recorded; at the
end the recording's first and last minute are scored for A/V offset with the evaluation metric.
`--no-record` leaves the recording out (a kiosk that only shows), to see memory without the mp4's
growing index.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from edge_retalk.audio.features import SAMPLE_RATE
from edge_retalk.avatar import Avatar, prepare_avatar
from edge_retalk.provenance.labels import SyntheticLabel
from edge_retalk.live.clock import RealClock, SimulatedClock
from edge_retalk.live.loop import LiveOptions, LiveReport, live_driver, run_live
from edge_retalk.live.outputs import Recorder
from edge_retalk.io.media import iter_video_frames, load_audio
from edge_retalk.quality.metrics import best_lag
from edge_retalk.models import model_path
from edge_retalk.audio.features import frame_energy_db
from edge_retalk.face.landmarks import mouth_opening
from edge_retalk.io.timing import memory_mb
from edge_retalk.face.tracker import FaceTracker

CHUNK = SAMPLE_RATE // 50
PAUSE_SECONDS = 2.0


class RepeatedSpeech:
    """An utterance, a pause, the utterance again..., delivered at real-time pace from `poll`."""

    name = "repeated speech"
    continuous = False

    def __init__(self, speech: np.ndarray, seconds: float):
        self.unit = np.concatenate([speech, np.zeros(int(PAUSE_SECONDS * SAMPLE_RATE), np.float32)])
        self.speech_length = speech.size
        self.total = int(seconds * SAMPLE_RATE)
        self.position = 0
        self.timeline = None

    def start(self, timeline) -> None:
        self.timeline = timeline

    def _next_chunk_end(self) -> int:
        """End of the next speech chunk (pauses are simply not sent, like a quiet TTS)."""
        offset = self.position % self.unit.size
        if offset >= self.speech_length:
            self.position += self.unit.size - offset
            offset = 0
        return self.position + min(CHUNK, self.speech_length - offset)

    def poll(self, now: float) -> None:
        while self.position < self.total:
            end = self._next_chunk_end()
            arrival = self.timeline.start + end / SAMPLE_RATE
            if arrival > now:
                return
            offset = self.position % self.unit.size
            self.timeline.push(self.unit[offset:offset + end - self.position], arrival)
            self.position = end

    def next_arrival(self) -> float | None:
        if self.position >= self.total:
            return None
        return self.timeline.start + self._next_chunk_end() / SAMPLE_RATE

    def finished(self) -> bool:
        return self.position >= self.total

    def close(self) -> None:
        """Nothing to release."""


def first_and_last_offsets(record: Path, total: int, stretch: int, fps: float) -> tuple[int, tuple, tuple]:
    """Frames in the recording, and the evaluation metric's A/V lag and peak correlation over its
    first and last `stretch` frames (tracked as they are decoded, so memory stays small)."""
    audio = load_audio(record)
    trackers = FaceTracker(fps, smooth=False), FaceTracker(fps, smooth=False)
    openings: tuple[list[float], list[float]] = ([], [])
    count = 0
    for index, frame in enumerate(iter_video_frames(record)):
        count += 1
        for part in (part for part, inside in enumerate((index < stretch, index >= total - stretch)) if inside):
            points = trackers[part](frame)
            openings[part].append(np.nan if points is None else float(mouth_opening(points)))
    spf = SAMPLE_RATE / fps
    results = []
    for part, first in ((0, 0), (1, count - len(openings[1]))):
        segment = audio[int(first * spf):int((first + len(openings[part])) * spf)]
        results.append(best_lag(np.array(openings[part]), frame_energy_db(segment, fps, len(openings[part]))))
    return count, results[0], results[1]


@click.command()
@click.option("--minutes", default=30.0, show_default=True)
@click.option("--face", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Avatar video or photo [default: the bundled portrait].")
@click.option("--speech", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--generator", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--realtime", is_flag=True, help="Run on the wall clock instead of the simulated one.")
@click.option("--no-record", is_flag=True, help="Show only: no recording, so no A/V offset at the end.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write JSON.")
def main(minutes: float, face: Path | None, speech: Path | None, generator: Path | None, realtime: bool,
         no_record: bool, output: Path | None) -> None:
    """Run live mode for MINUTES and print latency, drops and memory per minute."""
    face = face or model_path("demo_portrait.png")
    utterance = load_audio(speech or model_path("demo_speech.wav"))
    rows: list[dict] = []
    previous = [np.zeros(1, np.int64), 0, 0]

    def on_stats(report: LiveReport) -> None:
        counts = report.latency.counts - (previous[0] if previous[0].size > 1 else 0)
        cumulative = np.cumsum(counts)
        total = int(cumulative[-1])
        p50 = float(np.searchsorted(cumulative, 0.5 * total) + 1) if total else None
        p95 = float(np.searchsorted(cumulative, 0.95 * total) + 1) if total else None
        rows.append({"minute": round(report.seconds / 60), "frames": report.frames - previous[1],
                     "dropped": report.dropped - previous[2], "p50_ms": p50, "p95_ms": p95,
                     "memory_mb": round(memory_mb(), 1)})
        previous[:] = [report.latency.counts.copy(), report.frames, report.dropped]

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        prepare_avatar(face, Path(tmp) / "avatar")
        loaded = time.perf_counter()
        avatar = Avatar(Path(tmp) / "avatar")
        load_ms = (time.perf_counter() - loaded) * 1000
        options = LiveOptions(duration=minutes * 60, generator=generator, stats_every=60.0)
        driver = live_driver(options, float(avatar.fps))
        record = Path(tmp) / "live.mp4"
        recorder = None if no_record else Recorder(record, avatar.info.width, avatar.info.height, avatar.fps,
                                                   SyntheticLabel(driver.generator.name))
        clock = RealClock() if realtime else SimulatedClock()
        wall = time.perf_counter()
        outputs = [recorder] if recorder else []
        report = run_live(avatar, RepeatedSpeech(utterance, minutes * 60), outputs, driver, options, clock,
                          on_stats=on_stats)
        if recorder is not None:
            recorder.close()
        wall = time.perf_counter() - wall
        fps = float(avatar.fps)
        recorded_frames, first, last = ((0, (0, float("nan")), (0, float("nan"))) if no_record else
                                        first_and_last_offsets(record, report.frames, int(60 * fps), fps))

    summary = {
        "face": face.name, "generator": driver.generator.name, "minutes": minutes,
        "clock": "real" if realtime else "simulated", "wall_seconds": round(wall, 1),
        "avatar_prepare_seconds": round(loaded - started, 2), "avatar_load_ms": round(load_ms, 1),
        "frames": report.frames, "recorded_frames": recorded_frames, "dropped": report.dropped,
        "speech_frames": report.speech_frames,
        "latency_p50_ms": report.latency.percentile(50), "latency_p95_ms": report.latency.percentile(95),
        "peak_memory_mb": round(report.peak_memory_mb, 1),
        "offset_first_minute": first[0], "offset_last_minute": last[0],
        "per_minute": rows,
    }
    click.echo(f"live soak: {minutes:g} min, face {face.name}, generator {summary['generator']}, "
               f"{summary['clock']} clock, {wall:.0f} s wall")
    click.echo("| minute | frames | dropped | latency p50 ms | p95 ms | resident MB |")
    click.echo("|---|---|---|---|---|---|")
    for row in rows:
        click.echo(f"| {row['minute']} | {row['frames']} | {row['dropped']} | {row['p50_ms']} | {row['p95_ms']} | "
                   f"{row['memory_mb']} |")
    click.echo(f"overall: {report.frames} frames ({recorded_frames} recorded), {report.dropped} dropped, "
               f"latency p50 {summary['latency_p50_ms']} ms, p95 {summary['latency_p95_ms']} ms, "
               f"peak memory {summary['peak_memory_mb']} MB, avatar loads in {load_ms:.0f} ms")
    click.echo(f"A/V offset (evaluation metric): first minute {first[0]:+d} frames (peak r {first[1]:.2f}), "
               f"last minute {last[0]:+d} frames (peak r {last[1]:.2f})")
    if output is not None:
        output.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
