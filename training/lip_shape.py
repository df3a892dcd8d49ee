"""Train the audio-to-lip-shape network on the cached footage, with held-out-speaker figures.

    python -m edge_retalk.training.lip_shape --cache ~/.cache/edge-retalk/footage -o models/lip_shape.pt

First `--folds` runs, each training on all speakers but one group and scoring that group (opening
r, per-component r and lip-landmark distance with the rest shape taken from the clip's first
face, as for a photo); then one run on every speaker, saved for `edge-retalk export --arch
lip_shape`. The long recordings are trained on only up to their held-out tail. Seeded; `--resume`
continues the run in progress from its last checkpoint.
"""

from __future__ import annotations

import copy
import json
import random
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click
import numpy as np
import torch
from rich.progress import Progress

from ..audio.features import log_mel
from ..audio.lip_shape import (LIP_ROWS, ShapeSpace, canonical_shape, lip_motion, mean_spectrum,
                               mel_windows, shape_opening)
from ..audio.mouth_opening import silence_mask, smooth_track
from ..export.models.lip_shape import COMPONENTS, N_MELS, WIDTH, LipShapeNet
from ..audio.speech_encoder import SpeechEncoder
from .augment import augmented_versions
from .speech_features import speech_inputs
from .state import resume_state, save_state

SEED = 1234
BATCH = 256
RIDGE = 1e-3
CLOSED_QUANTILE = 0.1
MAX_GAIN = 1.6
RUN_FRAMES = 25
"""Speech-encoder networks train on runs of this many consecutive frames (1 s), for `motion_loss`."""
SPEECH_VERSIONS = ("file0", "live0", "file1", "live1", "file2", "live2")
"""Speech-encoder inputs of a recording, in `Recording.windows` order: file mode's clean first
(the figures' default), live mode's clean second."""


@dataclass
class Recording:
    """One clip's training material: canonical shapes of frames with a face, and mel windows
    (clean and augmented) for those frames."""

    name: str
    speaker: str
    shapes: np.ndarray
    windows: list[np.ndarray]
    usable: slice
    silent: np.ndarray
    spectrum: np.ndarray

    @property
    def closed(self) -> np.ndarray:
        """The recording's closed mouth: the mean shape of its least open tenth of usable frames."""
        shapes = self.shapes[self.usable]
        opening = shape_opening(shapes)
        return shapes[opening <= np.quantile(opening, CLOSED_QUANTILE)].mean(axis=0)


def recording_of(name: str, speaker: str, stem: Path, template: np.ndarray, held_out_tail: float = 0.0,
                 features: str = "speech", encoder: SpeechEncoder | None = None) -> Recording | None:
    """One cached clip as training material (None with fewer than 20 faces); the last
    `held_out_tail` of its frames is left out of `usable`. `features`: "speech" (the speech
    encoder's, file mode's and live mode's inputs of each speech version, from the clip's
    `.speech.npz` beside it, else computed with `encoder`) or "mel" (log-mel windows)."""
    with np.load(stem.parent / f"{stem.name}.npz") as data:
        points, samples, fps = data["points"], data["samples"], float(data["fps"])
    frames = np.nonzero(np.isfinite(points[:, 0, 0]))[0]
    if len(frames) < 20:
        return None
    shapes = np.stack([canonical_shape(points[i], template) for i in frames]).astype(np.float32)
    clean_mel = log_mel(samples)
    if features == "mel":
        mels = [log_mel(version) for version in augmented_versions(samples, seed=zlib.crc32(name.encode()))]
        windows = [mel_windows(mel, fps, len(points))[frames] for mel in mels]
    else:
        cached = stem.parent / f"{stem.name}.speech.npz"
        if cached.exists():
            with np.load(cached) as data:
                found = {key: data[key] for key in data.files}
        else:
            found = speech_inputs(encoder or SpeechEncoder(), name, samples, fps, frames, len(points))
        windows = [found[key] for key in SPEECH_VERSIONS]
    return Recording(name, speaker, shapes, windows, slice(0, int(round(len(frames) * (1 - held_out_tail)))),
                     silence_mask(samples, fps, len(points))[frames], mean_spectrum(clean_mel)[:, 0])


def load_recordings(cache: Path, features: str = "speech") -> tuple[list[Recording], np.ndarray, float]:
    index = json.loads((cache / "index.json").read_text())
    template = np.asarray(index["template"])
    recordings = [recording_of(clip["name"], clip["speaker"], cache / clip["name"], template,
                               index["long_held_out"] if clip["set"] == "long" else 0.0, features)
                  for clip in index["clips"]]
    return [r for r in recordings if r is not None], template, index["long_held_out"]


def fit_space(recordings: list[Recording], template: np.ndarray, components: int) -> ShapeSpace:
    """PCA of per-recording motion, and a ridge map from a shape to its motion coefficients away
    from the recording's closed mouth (so a face's rest shape is its closed mouth)."""
    shapes = [r.shapes[r.usable].reshape(len(r.shapes[r.usable]), -1) for r in recordings]
    motion = np.concatenate([s - s.mean(axis=0) for s in shapes])
    _, _, vt = np.linalg.svd(motion - motion.mean(axis=0), full_matrices=False)
    basis = vt[:components]
    x = np.concatenate(shapes)
    x = np.hstack([x, np.ones((len(x), 1))])
    y = np.concatenate([(s - r.closed.reshape(-1)) for s, r in zip(shapes, recordings)]) @ basis.T
    weights = np.linalg.solve(x.T @ x + RIDGE * len(x) * np.eye(x.shape[1]), x.T @ y)
    return ShapeSpace(template, basis, weights)


def targets(recording: Recording, space: ShapeSpace) -> np.ndarray:
    """Motion coefficients of every frame, around the recording's mean shape."""
    flat = recording.shapes.reshape(len(recording.shapes), -1)
    return ((flat - flat[recording.usable].mean(axis=0)) @ space.basis.T).astype(np.float32)


def closed_offset(recording: Recording, space: ShapeSpace) -> np.ndarray:
    """The closed mouth's coefficients relative to the recording's mean shape."""
    return ((recording.closed - recording.shapes[recording.usable].mean(axis=0)).reshape(-1) @ space.basis.T)


def standardised(recording: Recording, space: ShapeSpace) -> tuple[np.ndarray, np.ndarray]:
    """Motion coefficients divided by the recording's own spread (the audio says when and how the
    mouth moves; how far is the speaker's), and that spread."""
    motion = targets(recording, space)
    spread = motion[recording.usable].std(axis=0) + 1e-6
    return motion / spread, spread


@dataclass(frozen=True)
class Variant:
    """Departures from the shipped recipe, tried by `benchmarks/lip_shape_variants.py` (the
    defaults are the recipe). `run_frames` > 1 makes each batch of runs of that many consecutive
    frames of one recording; `transform(windows, rng)` alters a batch's mel windows;
    `extra_loss(predicted, truth, rows)` adds a term on the standardised predictions and targets
    of the batch's `rows` (indices into the usable frames of all recordings, in order);
    `weight_average` > 0 returns the exponential moving average of the weights with that decay."""

    width: int = WIDTH
    seed: int = SEED
    run_frames: int = 1
    transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None
    extra_loss: Callable[[torch.Tensor, torch.Tensor, np.ndarray], torch.Tensor] | None = None
    weight_average: float = 0.0


def batch_rows(recordings: list[Recording], run_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Rows (into the usable frames of all recordings, in order) of one batch: frames at random,
    or runs of `run_frames` consecutive frames, each run from one recording."""
    lengths = np.array([r.usable.stop for r in recordings])
    if run_frames == 1:
        return rng.integers(0, lengths.sum(), BATCH)
    starts = np.cumsum(lengths) - lengths
    runs = BATCH // run_frames
    long_enough = np.nonzero(lengths >= run_frames)[0]
    chosen = rng.choice(long_enough, runs, p=lengths[long_enough] / lengths[long_enough].sum())
    first = starts[chosen] + (rng.random(runs) * (lengths[chosen] - run_frames + 1)).astype(int)
    return (first[:, None] + np.arange(run_frames)[None]).reshape(-1)


def input_statistics(windows: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and spread of network inputs (from up to 4096 rows of the first version):
    the speech encoder's channels differ in scale by orders of magnitude."""
    rows = windows[0][rng.choice(len(windows[0]), min(4096, len(windows[0])), replace=False)].astype(np.float32)
    return rows.mean(axis=(0, 2)), rows.std(axis=(0, 2)) + 1e-3


def fold_input_statistics(model: LipShapeNet, mean: np.ndarray, spread: np.ndarray) -> LipShapeNet:
    """Fold the input standardisation into the first convolution (same outputs on raw inputs)."""
    first = model.encoder[0]
    with torch.no_grad():
        weight = first.weight / torch.from_numpy(spread)[None, :, None]
        first.bias.sub_((weight * torch.from_numpy(mean)[None, :, None]).sum(dim=(1, 2)))
        first.weight.copy_(weight)
    return model


def train_model(recordings: list[Recording], space: ShapeSpace, steps: int, checkpoint: Path | None,
                resume: bool, label: str, variant: Variant = Variant()) -> LipShapeNet:
    """Train on `recordings`; saves `checkpoint` every few hundred steps (and resumes from it)."""
    torch.manual_seed(variant.seed)
    rng = np.random.default_rng(variant.seed)
    versions = len(recordings[0].windows)
    windows = [np.concatenate([r.windows[v][r.usable] for r in recordings]) for v in range(versions)]
    channels, window_steps = windows[0].shape[1:]
    mean, spread = input_statistics(windows, np.random.default_rng(variant.seed)) if channels != N_MELS \
        else (np.zeros(channels, np.float32), np.ones(channels, np.float32))
    standard = [standardised(r, space) for r in recordings]
    y = np.concatenate([z[r.usable] for r, (z, _) in zip(recordings, standard)])
    scale = np.median([spread for r, (_, spread) in zip(recordings, standard) if len(r.shapes) >= 50], axis=0)
    model = LipShapeNet(space.components, variant.width, channels, window_steps)
    model.template.copy_(torch.from_numpy(space.template))
    model.basis.copy_(torch.from_numpy(space.basis))
    model.rest_weights.copy_(torch.from_numpy(space.rest_weights))
    model.scale.copy_(torch.from_numpy(scale))
    closed = np.median([closed_offset(r, space) / spread for r, (_, spread) in zip(recordings, standard)], axis=0)
    model.silent.copy_(torch.from_numpy(scale * closed))
    model.typical_spectrum.copy_(torch.from_numpy(np.mean([r.spectrum for r in recordings], axis=0)))
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    average = copy.deepcopy(model) if variant.weight_average else None
    start = 0
    if resume and checkpoint is not None:
        start, rng = resume_state(checkpoint.with_suffix(".state"), rng, model, optimiser, schedule)
    model.train()
    runs = BATCH // variant.run_frames
    with Progress(transient=True) as progress:
        task = progress.add_task(label, total=steps, completed=start)
        for step in range(start, steps):
            rows = batch_rows(recordings, variant.run_frames, rng)
            version = (rng.integers(0, versions, BATCH) if variant.run_frames == 1
                       else np.repeat(rng.integers(0, versions, runs), variant.run_frames))
            batch = (np.stack([windows[v][r] for v, r in zip(version, rows)]).astype(np.float32)
                     - mean[None, :, None]) / spread[None, :, None]
            if variant.transform is not None:
                batch = variant.transform(batch, rng)
            predicted = model(torch.from_numpy(batch)) / model.scale
            truth = torch.from_numpy(y[rows])
            loss = ((predicted - truth) ** 2).mean()
            if variant.extra_loss is not None:
                loss = loss + variant.extra_loss(predicted, truth, rows)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            if average is not None:
                decay = min(variant.weight_average, (step + 1) / (step + 10))
                with torch.no_grad():
                    for kept, current in zip(average.parameters(), model.parameters()):
                        kept.mul_(decay).add_(current, alpha=1 - decay)
            progress.update(task, advance=1, description=f"{label} loss {loss.item():.3f}")
            if checkpoint is not None and (step + 1) % 500 == 0:
                save_state(checkpoint.with_suffix(".state"), step + 1, rng, model, optimiser, schedule)
    return fold_input_statistics((average or model).eval(), mean, spread)


def motion_loss(run_frames: int, weight: float = 0.5) -> Callable[[torch.Tensor, torch.Tensor, np.ndarray],
                                                                    torch.Tensor]:
    """A loss on runs of `run_frames` consecutive frames that rewards motion of the right size and
    timing: per run and component, 1 - the correlation of predicted and real motion, and the
    squared error of the frame-to-frame velocity (plain squared error alone shrinks motion
    towards the average, which looks like mumbling)."""
    def loss(predicted: torch.Tensor, truth: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        p = predicted.reshape(-1, run_frames, predicted.shape[-1])
        t = truth.reshape(-1, run_frames, truth.shape[-1])
        pc, tc = p - p.mean(dim=1, keepdim=True), t - t.mean(dim=1, keepdim=True)
        r = (pc * tc).sum(dim=1) / (pc.norm(dim=1) * tc.norm(dim=1) + 1e-6)
        velocity = ((p[:, 1:] - p[:, :-1]) - (t[:, 1:] - t[:, :-1])) ** 2
        return weight * ((1 - r).mean() + velocity.mean())
    return loss


def fold_scale(model: LipShapeNet) -> LipShapeNet:
    """Fold the output scale into the last layer (same outputs, one multiply fewer, and a graph
    that full-integer quantisers accept)."""
    last = model.head[-1]
    with torch.no_grad():
        last.weight.mul_(model.scale[:, None])
        last.bias.mul_(model.scale)
        model.scale.fill_(1.0)
    return model


def predict(model: LipShapeNet, windows: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(windows[i:i + 1024].astype(np.float32))).numpy()
                               for i in range(0, len(windows), 1024)])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 1e-9 and b.std() > 1e-9 else 0.0


def score(model: LipShapeNet, space: ShapeSpace, recording: Recording, part: slice | None = None,
          rest: np.ndarray | None = None, run_scale: float | None = None, version: int = 0) -> dict[str, float]:
    """Held-out figures of one recording (its `part`: by default all of it, or a long recording's
    held-out tail), driven by its own clean speech; the rest shape is `rest` or estimated from
    the first frame, as for a photo. The shapes are the network's own regression, or with
    `run_scale` the motion the runtime draws (its gain, and that scale: see `lip_motion`).
    `version` picks the inputs (for speech-encoder networks 0: file mode's, 1: live mode's).
    `amplitude` is the spread of the predicted opening over the real one's (1: motion of the
    right size; below: shrunk towards the average)."""
    if part is None:
        part = slice(recording.usable.stop, None) if recording.name.startswith("long/") else slice(None)
    shapes = recording.shapes[part]
    coefficients = smooth_track(predict(model, recording.windows[version][part]))
    rest = space.rest_shape(shapes[:1]) if rest is None else rest
    silent = model.silent.numpy()
    motion = (coefficients - silent if run_scale is None
              else lip_motion(coefficients, silent, model.gain.numpy(), run_scale))
    predicted = space.shapes(rest, motion)
    truth = targets(recording, space)[part]
    distance = lambda a: float(np.linalg.norm(a[:, LIP_ROWS] - shapes[:, LIP_ROWS], axis=-1).mean())  # noqa: E731
    opening, real = shape_opening(predicted), shape_opening(shapes)
    return {"r_opening": pearson(opening, real), "amplitude": float(opening.std() / max(real.std(), 1e-9)),
            **{f"spread_ratio_c{k}": float(truth[:, k].std() / max(coefficients[:, k].std(), 1e-9))
               for k in range(space.components)},
            **{f"r_c{k}": pearson(coefficients[:, k], truth[:, k]) for k in range(space.components)},
            "lmd": distance(predicted), "lmd_frozen": distance(np.repeat(shapes[:1], len(shapes), axis=0))}


def summarise(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    keys = next(iter(rows.values())).keys()
    return {k: float(np.median([r[k] for r in rows.values()])) for k in keys}


@click.command()
@click.option("--cache", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--features", type=click.Choice(["speech", "mel"]), default="speech", show_default=True,
              help="speech: the speech encoder's (run `edge_retalk.training.speech_features` first); mel: log-mel.")
@click.option("--folds", type=int, default=4, help="Held-out speaker groups to score (0: train the final model only).")
@click.option("--steps", type=int, default=4000)
@click.option("--resume", is_flag=True, help="Continue the final run from its last checkpoint.")
def main(cache: Path, output: Path, features: str, folds: int, steps: int, resume: bool) -> None:
    random.seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(2)
    started = time.time()
    recordings, template, _ = load_recordings(cache, features)
    recipe = Variant(run_frames=RUN_FRAMES, extra_loss=motion_loss(RUN_FRAMES)) if features == "speech" else Variant()
    modes = {"": 0, "live_": 1} if features == "speech" else {"": 0}
    click.echo(f"{len(recordings)} recordings, {sum(len(r.shapes) for r in recordings)} frames with a face")
    speakers = sorted({r.speaker for r in recordings if not r.name.startswith("long/")})
    random.Random(SEED).shuffle(speakers)
    held_out: dict[str, dict[str, float]] = {}
    for fold in range(folds):
        group = set(speakers[fold::folds])
        train = [r for r in recordings if r.speaker not in group]
        space = fit_space(train, template, COMPONENTS)
        model = train_model(train, space, steps, None, False, f"fold {fold + 1}/{folds}", recipe)
        for r in recordings:
            if r.speaker in group:
                held_out[r.name] = {f"{mode}{k}": v for mode, version in modes.items()
                                    for k, v in score(model, space, r, version=version).items()}
        click.echo(f"fold {fold + 1}/{folds}: {len(group)} speakers held out; so far "
                   + ", ".join(f"{k} {v:.3f}" for k, v in summarise(held_out).items() if "_c" not in k))
    space = fit_space(recordings, template, COMPONENTS)
    model = fold_scale(train_model(recordings, space, steps, output, resume, "final", recipe))
    if held_out:
        ratios = [np.median([r[f"spread_ratio_c{k}"] for r in held_out.values()]) for k in range(COMPONENTS)]
        model.gain.copy_(torch.tensor(np.clip(ratios, 1.0, MAX_GAIN), dtype=torch.float32))
    torch.save({"state_dict": model.state_dict()}, output)
    report = {"seed": SEED, "steps": steps, "folds": folds, "components": COMPONENTS, "features": features,
              "trained_on": [r.name for r in recordings], "held_out_median": summarise(held_out) if held_out else {},
              "held_out": held_out,
              "long_tail": {r.name: score(model, space, r) for r in recordings if r.name.startswith("long/")},
              "minutes": (time.time() - started) / 60}
    output.with_suffix(".report.json").write_text(json.dumps(report, indent=1))
    click.echo(f"saved {output}; held-out-speaker medians: "
               + ", ".join(f"{k} {v:.3f}" for k, v in report["held_out_median"].items() if "_c" not in k))


if __name__ == "__main__":
    main()
