"""Train the default generator's audio-to-mouth regressor on real talking-head clips.

    python -m edge_retalk.training.mouth_opening --clips ../shared/data/clips -o models/mouth_model.npz

Each clip gives, per video frame, the mouth opening measured by the face mesh (z-scored per
clip: audio says when the mouth moves, the face says how far) and the mel window around the frame.
A ridge regressor is fitted; its quality is reported with leave-one-speaker-out
cross-validation, because figures on the training speakers flatter.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import click
import numpy as np

from ..audio.features import log_mel
from ..face.landmarks import mouth_opening
from ..io.media import iter_video_frames, load_audio, probe_face
from ..audio.mouth_opening import CONTEXT_AFTER, CONTEXT_BEFORE, MouthModel, mean_spectrum, mel_features, smooth_track
from ..face.tracker import FaceTracker

EXCLUDED = {
    "latentsync_demo1_10s.mp4": "audio not verified as its own",
    "latentsync_demo2_20s.mp4": "audio not verified as its own",
    "retalking_face4_7s.mp4": "audio offset of about 0.4 s",
}
SAME_SPEAKER = {"retalking_face3_5s.mp4": "aoc", "vexpress_aoc_gt_4s.mp4": "aoc", "hdtf_wda_aoc_8s.mp4": "aoc"}


def speaker_of(name: str) -> str:
    """Group clips by person so cross-validation never tests on a speaker it trained on."""
    return SAME_SPEAKER.get(name, re.sub(r"\.\w+$", "", name))


def clip_audio_path(clip: Path) -> Path:
    own = clip.with_suffix(".own_audio.wav")
    return own if own.exists() else clip


def measure_clip(clip: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Mel features, per-clip z-scored mouth opening, the raw opening (for frames with a face)
    and the clip's mean spectrum."""
    info = probe_face(clip)
    tracker = FaceTracker(float(info.fps), smooth=False)
    openings = [np.nan if (p := tracker(f)) is None else float(mouth_opening(p)) for f in iter_video_frames(clip)]
    openings = np.asarray(openings)
    samples = load_audio(clip_audio_path(clip))
    mel = log_mel(samples)
    features = mel_features(mel, float(info.fps), openings.size)
    valid = np.isfinite(openings)
    if valid.sum() < 20:
        return None
    target = (openings - np.nanmean(openings)) / max(np.nanstd(openings), 1e-6)
    return features[valid], target[valid], openings[valid], mean_spectrum(mel)


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float, openings: np.ndarray | None = None,
              spectrum: np.ndarray | None = None) -> MouthModel:
    """Ridge fit on standardised features; `openings` (raw, face heights) sets the typical scale,
    `spectrum` the typical mean spectrum."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = (x - mean) / scale
    weights = np.linalg.solve(xs.T @ xs + alpha * len(xs) * np.eye(xs.shape[1]), xs.T @ (y - y.mean()))
    raw = openings if openings is not None else np.zeros(1)
    return MouthModel(mean.astype(np.float32), scale.astype(np.float32), weights.astype(np.float32),
                      float(y.mean()), float(np.mean(raw)), float(np.std(raw)), float(np.std(xs @ weights)),
                      (spectrum if spectrum is not None else np.zeros((x.shape[1] // (CONTEXT_BEFORE + CONTEXT_AFTER), 1)))
                      .astype(np.float32))


def cross_validate(data: dict[str, tuple[np.ndarray, np.ndarray]], alpha: float) -> dict[str, float]:
    """Pearson r on each held-out speaker, training on all the others."""
    speakers = sorted({speaker_of(n) for n in data})
    result = {}
    for held in speakers:
        train = [v for n, v in data.items() if speaker_of(n) != held]
        model = fit_ridge(np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), alpha)
        for name, (x, y, _, _) in data.items():
            if speaker_of(name) == held:
                result[name] = float(np.corrcoef(smooth_track(model.predict(x)), y)[0, 1])
    return result


@click.command()
@click.option("--clips", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--alpha", type=float, multiple=True, default=(0.1, 0.3, 1.0))
def main(clips: Path, output: Path, alpha: tuple[float, ...]) -> None:
    """Measure the clips, pick the ridge strength by held-out speakers, fit on all, save."""
    with open(clips / "manifest.csv", newline="") as handle:
        names = [row["file"] for row in csv.DictReader(handle) if row["file"] not in EXCLUDED]
    data = {}
    for name in names:
        measured = measure_clip(clips / name)
        if measured is not None:
            data[name] = measured
            click.echo(f"measured {name}: {len(measured[1])} frames")
    scores = {a: cross_validate(data, a) for a in alpha}
    for a, per_clip in scores.items():
        click.echo(f"alpha {a}: held-out-speaker median r = {np.median(list(per_clip.values())):.3f}")
    best = max(scores, key=lambda a: np.median(list(scores[a].values())))
    x, y, openings = (np.concatenate([d[i] for d in data.values()]) for i in range(3))
    model = fit_ridge(x, y, best, openings, np.mean([d[3] for d in data.values()], axis=0))
    model.save(output)
    click.echo(f"saved {output} (alpha {best})")


if __name__ == "__main__":
    main()
