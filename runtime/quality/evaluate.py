"""`edge-retalk eval`: lip-sync quality with the real mouth hidden from the generator.

Protocols: **photo** (the clip's first frame as a still) and **dub** (the clip played backwards,
so its mouth moves to other sounds). The generated video is scored against the real clip, and
so are two reference rows: the real clip itself (the ceiling) and the generator's input as if it
were the output (the floor).
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np

from ..audio.features import SAMPLE_RATE, frame_energy_db
from ..errors import EdgeRetalkError
from ..face.landmarks import mouth_opening
from ..io.media import iter_video_frames, load_audio, probe_face
from ..io.script import Cue
from ..io.video_writer import VideoWriter
from .metrics import (
    MAX_PSNR, aligned_mouth_crops, best_lag, jitter, lip_landmark_distance, pearson, psnr, silence_leakage, ssim,
)
from ..audio.mouth_opening import silence_mask
from ..file_mode import RunOptions, lipsync
from ..face.sources import FrameCache
from ..face.tracker import FaceTracker

PROTOCOLS = ("photo", "dub")
SHEET_FRAMES = 8
ROWS = ("generated", "input", "real")


def own_audio(clip: Path) -> Path:
    """A clip's own speech: its audio track, or a `.own_audio.wav` beside it when it has none."""
    beside = clip.with_suffix(".own_audio.wav")
    return beside if beside.exists() else clip


@dataclass
class Track:
    """Per-frame landmarks (NaN rows where no face) and the inner-lip opening they give."""

    points: np.ndarray

    @property
    def opening(self) -> np.ndarray:
        return mouth_opening(self.points)


@dataclass
class PairResult:
    """A candidate video measured against the real clip, frame by frame."""

    real: Track
    candidate: Track
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    sheet: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


def _points_or_nan(points: np.ndarray | None) -> np.ndarray:
    return np.full((468, 3), np.nan, np.float32) if points is None else points.astype(np.float32)


def measure_against(real_frames: Iterable[np.ndarray], candidates: dict[str, Iterable[np.ndarray]], fps: float,
                    n_frames: int) -> dict[str, PairResult]:
    """Track the real clip once and each candidate video (all unsmoothed) in one pass; mouth crops
    aligned to the real face give PSNR, SSIM and a contact sheet per candidate."""
    real_tracker = FaceTracker(fps, smooth=False)
    trackers = {name: FaceTracker(fps, smooth=False) for name in candidates}
    sheet_at = set(np.linspace(0, n_frames - 1, SHEET_FRAMES).astype(int).tolist())
    real_points: list[np.ndarray] = []
    points: dict[str, list[np.ndarray]] = {name: [] for name in candidates}
    results = {name: PairResult(Track(np.empty(0)), Track(np.empty(0))) for name in candidates}
    streams = zip(real_frames, *candidates.values())
    for index, (real, *frames) in enumerate(itertools.islice(streams, n_frames)):
        rp = real_tracker(real)
        real_points.append(_points_or_nan(rp))
        for name, frame in zip(candidates, frames):
            cp = trackers[name](frame)
            points[name].append(_points_or_nan(cp))
            if rp is None or cp is None:
                continue
            real_crop, candidate_crop = aligned_mouth_crops(real, rp, frame, cp)
            results[name].psnr.append(psnr(real_crop, candidate_crop))
            results[name].ssim.append(ssim(real_crop, candidate_crop))
            if index in sheet_at:
                results[name].sheet.append((real_crop, candidate_crop))
    real_track = Track(np.stack(real_points))
    for name, result in results.items():
        result.real, result.candidate = real_track, Track(np.stack(points[name]))
    return results


def measure_pair(real_frames: Iterable[np.ndarray], candidate_frames: Iterable[np.ndarray], fps: float,
                 n_frames: int) -> PairResult:
    """One candidate video measured against the real clip (see `measure_against`)."""
    return measure_against(real_frames, {"candidate": candidate_frames}, fps, n_frames)["candidate"]


def _mean_defined(values: np.ndarray) -> float:
    """Mean over the finite values; NaN (without a warning) when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def pair_metrics(real: Track, candidate: Track, energy_db: np.ndarray, silent: np.ndarray,
                 psnrs: list[float], ssims: list[float]) -> dict[str, float]:
    """Every metric of one candidate against the real clip."""
    n = min(len(real.points), len(candidate.points), len(energy_db))
    real_open, cand_open = real.opening[:n], candidate.opening[:n]
    real_lag, _ = best_lag(real_open, energy_db[:n])
    cand_lag, cand_peak = best_lag(cand_open, energy_db[:n])
    return {
        "r": pearson(cand_open, real_open),
        "mlmd": _mean_defined(lip_landmark_distance(candidate.points[:n], real.points[:n])),
        "offset": float(cand_lag - real_lag),
        "av_peak": cand_peak,
        "leakage": silence_leakage(cand_open, silent[:n]),
        "leakage_real": silence_leakage(real_open, silent[:n]),
        "jitter": jitter(candidate.points[:n]),
        "jitter_real": jitter(real.points[:n]),
        "psnr": float(np.mean(psnrs)) if psnrs else float("nan"),
        "ssim": float(np.mean(ssims)) if ssims else float("nan"),
    }


@dataclass
class ClipReport:
    """Scores of one clip under one protocol, the series to plot and the crops to look at."""

    clip: str
    protocol: str
    rows: dict[str, dict[str, float]]
    real_opening: np.ndarray
    generated_opening: np.ndarray
    silent: np.ndarray
    fps: float
    sheet: list[tuple[np.ndarray, np.ndarray]]
    generated_video: Path


def _first_frame(clip: Path) -> np.ndarray:
    frame = next(iter_video_frames(clip), None)
    if frame is None:
        raise EdgeRetalkError(f"{clip}: no video frames could be decoded")
    return frame


def _write_reversed(clip: Path, target: Path, fps: Fraction) -> int:
    """The clip's frames backwards, via a disk cache, as a near-lossless mp4 without sound."""
    cache = None
    try:
        for frame in iter_video_frames(clip):
            cache = cache or FrameCache(frame.shape)
            cache.append(frame, None)
        if cache is None:
            raise EdgeRetalkError(f"{clip}: no video frames could be decoded")
        height, width = cache.shape[:2]
        with VideoWriter(target, width, height, fps, None, crf=10, preset="ultrafast") as writer:
            for index in range(len(cache) - 1, -1, -1):
                writer.write(cache[index][0])
        return len(cache)
    finally:
        if cache is not None:
            cache.close()


def evaluate_clip(clip: Path, protocol: str, out_dir: Path, options: RunOptions | None = None,
                  script: Sequence[Cue] = ()) -> ClipReport:
    """Generate `clip`'s own speech on a face with the real mouth hidden, and score it; with the
    words it says (`script`), aligned to its speech, steering the mouth."""
    if protocol not in PROTOCOLS:
        raise EdgeRetalkError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    info = probe_face(clip)
    fps = float(info.fps)
    audio = own_audio(clip)
    samples = load_audio(audio)
    n_frames = max(1, round(samples.size / SAMPLE_RATE * fps))
    generated = out_dir / f"{clip.stem}.{protocol}.mp4"
    with tempfile.TemporaryDirectory(prefix="edge-retalk-eval-") as tmp:
        input_frames: Callable[[], Iterator[np.ndarray]]
        if protocol == "photo":
            still = _first_frame(clip)
            face = Path(tmp) / "face.png"
            cv2.imwrite(str(face), still)
            input_frames = lambda: itertools.repeat(still)  # noqa: E731
        else:
            face = Path(tmp) / "reversed.mp4"
            _write_reversed(clip, face, info.fps)
            input_frames = lambda: iter_video_frames(face)  # noqa: E731
        base = options or RunOptions()
        lipsync(face, audio, generated, RunOptions(threads=base.threads, render=base.render, photo_fps=info.fps),
                script=script)
        measured = measure_against(iter_video_frames(clip), {"generated": iter_video_frames(generated),
                                                              "input": input_frames()}, fps, n_frames)
        scored, baseline = measured["generated"], measured["input"]
    n = len(scored.real.points)
    energy = frame_energy_db(samples, fps, n)
    silent = silence_mask(samples, fps, n)
    rows = {
        "generated": pair_metrics(scored.real, scored.candidate, energy, silent, scored.psnr, scored.ssim),
        "input": pair_metrics(baseline.real, baseline.candidate, energy, silent, baseline.psnr, baseline.ssim),
        "real": pair_metrics(scored.real, scored.real, energy, silent, [MAX_PSNR], [1.0]),
    }
    return ClipReport(clip.name, protocol, rows, scored.real.opening, scored.candidate.opening, silent, fps,
                      scored.sheet, generated)


def score_generated(video: Path, audio: Path | None = None) -> dict[str, float]:
    """Scores that need no reference: A/V lag and its correlation, silence leakage, jitter."""
    info = probe_face(video)
    fps = float(info.fps)
    samples = load_audio(audio or video)
    tracker = FaceTracker(fps, smooth=False)
    track = Track(np.stack([_points_or_nan(tracker(frame)) for frame in iter_video_frames(video)]))
    n = len(track.points)
    lag, peak = best_lag(track.opening, frame_energy_db(samples, fps, n))
    return {"offset": float(lag), "av_peak": peak,
            "leakage": silence_leakage(track.opening, silence_mask(samples, fps, n)),
            "jitter": jitter(track.points), "frames": float(n),
            "frames_without_face": float(np.isnan(track.points[:, 0, 0]).sum())}


def medians(reports: list[ClipReport]) -> dict[str, dict[str, float]]:
    """Median of every metric over clips, per row (generated, input, real)."""
    out = {}
    for row in ROWS:
        keys = reports[0].rows[row].keys() if reports else []
        out[row] = {k: float(np.nanmedian([r.rows[row][k] for r in reports])) for k in keys}
    return out
