"""`edge-retalk bench`: a fixed workload on bundled inputs, timed per stage, against a board profile.

The workload is a 10 s 512x512 video made from the bundled portrait (a gentle head sway, so
decoding and tracking do real work) with the bundled speech. Each case runs in a fresh process,
so its peak memory is its own: first as a file run (per-stage timings, fps), then in live mode on
an avatar made from the same video, with the speech arriving at real-time pace (latency from a
sample's arrival to its frame; the clock skips idle waits, so this takes seconds, not minutes).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from rich.table import Table

from .io import timing
from .devices.profiles import BoardProfile
from .io.timing import STAGES
from .errors import EdgeRetalkError
from .io.media import read_image
from .io.video_writer import VideoWriter
from .models import model_path
from .live.audio_sources import PacedFileSource
from .avatar import Avatar, prepare_avatar
from .live.clock import SimulatedClock
from .live.loop import LiveOptions, LiveReport, live_driver, run_live
from .file_mode import RunOptions, lipsync

WORKLOAD_SECONDS = 10
WORKLOAD_FPS = 25


def make_workload(folder: Path) -> tuple[Path, Path]:
    """The bench's face video (made from the bundled portrait) and speech (bundled)."""
    portrait = read_image(model_path("demo_portrait.png"))
    height, width = portrait.shape[:2]
    face = folder / "bench_face.mp4"
    with VideoWriter(face, width, height, Fraction(WORKLOAD_FPS), None, crf=18) as writer:
        for index in range(WORKLOAD_SECONDS * WORKLOAD_FPS):
            phase = 2 * np.pi * index / (4 * WORKLOAD_FPS)
            matrix = cv2.getRotationMatrix2D((width / 2, height / 3), 2.0 * np.sin(phase), 1.0)
            matrix[:, 2] += (4 * np.sin(phase / 2), 2 * np.cos(phase))
            writer.write(cv2.warpAffine(portrait, matrix, (width, height), borderMode=cv2.BORDER_REFLECT))
    return face, model_path("demo_speech.wav")


@dataclass(frozen=True)
class CaseResult:
    generator: str
    frames: int
    fps: float
    first_frame_s: float
    peak_mb: float
    stages: dict[str, dict[str, float]]
    live_latency_p50_ms: float | None = None
    live_latency_p95_ms: float | None = None
    live_dropped: int = 0


def live_latency(face: Path, audio: Path, folder: Path, options: LiveOptions) -> LiveReport:
    """Live mode on an avatar made from `face`, `audio` arriving at real-time pace (simulated clock)."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        prepare_avatar(face, Path(tmp) / "avatar")
        avatar = Avatar(Path(tmp) / "avatar")
        return run_live(avatar, PacedFileSource(audio), [], live_driver(options, float(avatar.fps)), options,
                        SimulatedClock())


def run_case(face: Path, audio: Path, output: Path, generator: Path | None, provider: str | None,
             threads: int, provider_options: dict[str, str] | None = None) -> CaseResult:
    """One timed run (call in a fresh process for a clean peak-memory figure)."""
    started = time.perf_counter()
    first: list[float] = []

    def on_progress(done: int, total: int) -> None:
        if not first:
            first.append(time.perf_counter() - started)

    timing.enable()
    report = lipsync(face, audio, output, RunOptions(threads=threads, generator=generator, provider=provider,
                                                     provider_options=provider_options or {}), on_progress)
    samples = timing.collected()
    stages = {name: {"median_ms": float(np.median(samples[name])), "p95_ms": float(np.percentile(samples[name], 95)),
                     "calls": len(samples[name])} for name in timing.STAGES if samples.get(name)}
    peak = timing.peak_memory_mb()
    live = live_latency(face, audio, output.parent, LiveOptions(threads=threads, generator=generator, provider=provider,
                                                                provider_options=provider_options or {}))
    label = "default" if generator is None else f"{generator.name}" + (f" on {provider}" if provider else "")
    return CaseResult(label, report.frames, report.fps, first[0] if first else float("nan"), peak, stages,
                      live.latency.percentile(50), live.latency.percentile(95), live.dropped)


def run_case_isolated(face: Path, audio: Path, output: Path, generator: Path | None, provider: str | None,
                      threads: int, provider_options: dict[str, str] | None = None) -> CaseResult:
    """`run_case` in a child process."""
    code = ("import json, sys; from dataclasses import asdict; from pathlib import Path; "
            "from edge_retalk.bench import run_case; "
            "g = None if sys.argv[4] == '-' else Path(sys.argv[4]); p = None if sys.argv[5] == '-' else sys.argv[5]; "
            "print(json.dumps(asdict(run_case(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), g, p, "
            "int(sys.argv[6]), json.loads(sys.argv[7])))))")
    result = subprocess.run([sys.executable, "-c", code, str(face), str(audio), str(output),
                             str(generator) if generator else "-", provider or "-", str(threads),
                             json.dumps(provider_options or {})],
                            capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise EdgeRetalkError(f"bench case {generator or 'default'} failed: {last}")
    return CaseResult(**json.loads(result.stdout.strip().splitlines()[-1]))


def save(results: list[CaseResult], profile: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"profile": profile, "cases": [asdict(r) for r in results]}, indent=2))
    return path


def bench_table(results: list[CaseResult], profile: BoardProfile) -> Table:
    """The verdict of a bench: each generator's fps and live latency against the profile's targets,
    and its time per stage."""
    table = Table(title=f"edge-retalk bench on {profile.name}: target {profile.target_fps:g} fps, "
                        f"{profile.target_latency_ms:g} ms live latency; median (p95) ms per frame")
    for column in ("generator", "fps", "meets fps target", "live latency p50 (p95) ms", "meets latency target",
                   "first frame s", "peak MB", *STAGES):
        table.add_column(column, justify="right")
    for r in results:
        cells = [f"{r.stages[s]['median_ms']:.2f} ({r.stages[s]['p95_ms']:.2f})" if s in r.stages else "-"
                 for s in STAGES]
        latency = (f"{r.live_latency_p50_ms:.0f} ({r.live_latency_p95_ms:.0f}), {r.live_dropped} dropped"
                   if r.live_latency_p95_ms is not None else "-")
        meets_latency = ("-" if r.live_latency_p95_ms is None
                         else "yes" if r.live_latency_p95_ms <= profile.target_latency_ms and not r.live_dropped
                         else "no")
        table.add_row(r.generator, f"{r.fps:.0f}", "yes" if r.fps >= profile.target_fps else "no", latency,
                      meets_latency, f"{r.first_frame_s:.2f}", f"{r.peak_mb:.0f}", *cells)
    return table
