"""Held-out opening r of variants of the log-mel lip-shape recipe (4 speaker folds, as the recipe
scores): the network before the speech encoder, kept to compare departures from it.

    python benchmarks/lip_shape_variants.py --cache CACHE [options]

With no option it scores the shipped recipe; each option departs from it in one way (see
`--help`), and several combine. Scratch experiments whose results the README lists under "What
did not help"; not part of the package. About a minute per run of 600 steps on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

import click
import numpy as np
import scipy.fft
import torch

import edge_retalk.audio.lip_shape as shape_module
import edge_retalk.export.models.lip_shape as network_module
from edge_retalk.audio.lip_shape import shape_opening
from edge_retalk.audio.mouth_opening import smooth_track
from edge_retalk.export.models.lip_shape import COMPONENTS, N_MELS, WIDTH
from edge_retalk.training import lip_shape as recipe


def opening_losses(recordings, space, run_frames: int, opening_weight: float, correlation_weight: float):
    """Losses on the opening itself: its squared error in units of each recording's opening spread,
    and one minus its correlation over each run of `run_frames` consecutive frames."""
    standard = [recipe.standardised(r, space) for r in recordings]
    spreads = np.concatenate([np.repeat(s[None], r.usable.stop, 0) for r, (_, s) in zip(recordings, standard)])
    opening = shape_opening(space.basis.reshape(space.components, -1, 2))  # the gap each component adds
    unit = np.concatenate([np.repeat(((z[r.usable] * s) @ opening).std(), r.usable.stop)
                           for r, (z, s) in zip(recordings, standard)])
    to_opening = torch.from_numpy(opening.astype(np.float32))

    def loss(predicted: torch.Tensor, truth: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        spread = torch.from_numpy(spreads[rows].astype(np.float32))
        error = ((predicted - truth) * spread) @ to_opening
        total = opening_weight * (error / torch.from_numpy(unit[rows].astype(np.float32))).pow(2).mean()
        if correlation_weight:
            runs = [((x * spread) @ to_opening).reshape(-1, run_frames) for x in (predicted, truth)]
            a, b = (x - x.mean(dim=1, keepdim=True) for x in runs)
            r = (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-6)
            total = total + correlation_weight * (1 - r).mean()
        return total
    return loss


def batch_transform(spec_masks: bool, warp: float, noise: float):
    """Mel-window augmentation: frequency and time masks (SpecAugment), a random stretch of the
    mel axis by up to `warp` (vocal tract length perturbation) and Gaussian noise of `noise`."""
    def transform(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        batch = batch.copy()
        if spec_masks:
            for window in batch:
                if rng.random() < 0.5:
                    low = rng.integers(0, N_MELS - 10)
                    window[low:low + rng.integers(1, 11)] = 0
                if rng.random() < 0.3:
                    first = rng.integers(0, window.shape[1] - 3)
                    window[:, first:first + rng.integers(1, 4)] = 0
        if warp:
            source = np.clip(np.arange(N_MELS)[None] * rng.uniform(1 - warp, 1 + warp, (len(batch), 1)), 0, N_MELS - 1)
            low = np.floor(source).astype(int)
            high = np.minimum(low + 1, N_MELS - 1)
            part = (source - low)[:, :, None]
            rows = np.arange(len(batch))[:, None]
            batch = batch[rows, low] * (1 - part) + batch[rows, high] * part
        if noise:
            batch = batch + noise * rng.standard_normal(batch.shape)
        return batch.astype(np.float32)
    return transform


def as_cepstra(recording: recipe.Recording, keep: int) -> recipe.Recording:
    """The recording's windows as their first `keep` cepstral coefficients (a DCT over the mel
    bands), zero-padded to the network's 80 input channels."""
    def cepstra(windows: np.ndarray) -> np.ndarray:
        out = np.zeros_like(windows)
        out[:, :keep] = scipy.fft.dct(windows, axis=1, norm="ortho")[:, :keep]
        return out
    return dataclasses.replace(recording, windows=[cepstra(w) for w in recording.windows])


class Ensemble(torch.nn.Module):
    """The mean of several networks' outputs (the buffers the scorer reads are the first's)."""

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self.silent, self.gain, self.scale = members[0].silent, members[0].gain, members[0].scale

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return sum(member(mel) for member in self.members) / len(self.members)


@click.command()
@click.option("--cache", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--steps", type=int, default=600, show_default=True)
@click.option("--width", type=int, default=WIDTH, show_default=True, help="Channels of the network's convolutions.")
@click.option("--seeds", default=str(recipe.SEED), show_default=True,
              help="Comma-separated seeds: one network per seed, their outputs averaged.")
@click.option("--opening-loss", type=float, default=0.0, help="Weight of a loss on the standardised opening's error.")
@click.option("--run-frames", type=int, default=1, help="Batches of runs of this many consecutive frames.")
@click.option("--correlation-loss", type=float, default=0.0,
              help="Weight of 1 - the opening's correlation over each run (needs --run-frames).")
@click.option("--spec-masks", is_flag=True, help="SpecAugment-style frequency and time masks.")
@click.option("--mel-warp", type=float, default=0.0, help="Random stretch of the mel axis by up to this fraction.")
@click.option("--input-noise", type=float, default=0.0, help="Gaussian noise added to the normalised log-mel.")
@click.option("--weight-average", type=float, default=0.0, help="Score the moving average of the weights (decay).")
@click.option("--target-smoothing", type=float, default=0.0, help="Gaussian smoothing (frames) of the training shapes.")
@click.option("--score-smoothing", type=float, default=None, help="Gaussian smoothing (frames) of the predictions.")
@click.option("--cepstra", type=int, default=0, help="Feed the first N cepstral coefficients instead of the mel bands.")
@click.option("--before", type=int, default=shape_module.MEL_BEFORE, show_default=True, help="Mel frames before the centre.")
@click.option("--after", type=int, default=shape_module.MEL_AFTER, show_default=True, help="Mel frames from the centre on.")
def main(cache: Path, steps: int, width: int, seeds: str, opening_loss: float, run_frames: int, correlation_loss: float,
         spec_masks: bool, mel_warp: float, input_noise: float, weight_average: float, target_smoothing: float,
         score_smoothing: float | None, cepstra: int, before: int, after: int) -> None:
    torch.set_num_threads(2)
    if (before + after) % 8:
        raise click.BadParameter("--before + --after must be a multiple of 8")
    shape_module.MEL_BEFORE, shape_module.MEL_AFTER = before, after
    shape_module.MEL_STEPS = network_module.MEL_STEPS = before + after
    if score_smoothing is not None:
        recipe.smooth_track = lambda series: smooth_track(series, score_smoothing)
    started = time.time()
    recordings, template, _ = recipe.load_recordings(cache, "mel")
    if cepstra:
        recordings = [as_cepstra(r, cepstra) for r in recordings]
    augment = spec_masks or mel_warp or input_noise
    speakers = sorted({r.speaker for r in recordings if not r.name.startswith("long/")})
    random.Random(recipe.SEED).shuffle(speakers)
    held_out = {}
    for fold in range(4):
        group = set(speakers[fold::4])
        train_on = [r for r in recordings if r.speaker not in group]
        if target_smoothing:
            train_on = [dataclasses.replace(r, shapes=smooth_track(r.shapes, target_smoothing).astype(np.float32))
                        for r in train_on]
        space = recipe.fit_space(train_on, template, COMPONENTS)
        extra = (opening_losses(train_on, space, run_frames, opening_loss, correlation_loss)
                 if opening_loss or correlation_loss else None)
        members = [recipe.train_model(train_on, space, steps, None, False, f"fold {fold + 1}/4", recipe.Variant(
            width=width, seed=int(seed), run_frames=run_frames, extra_loss=extra, weight_average=weight_average,
            transform=batch_transform(spec_masks, mel_warp, input_noise) if augment else None))
            for seed in seeds.split(",")]
        model = members[0] if len(members) == 1 else Ensemble(members)
        held_out |= {r.name: recipe.score(model, space, r) for r in recordings if r.speaker in group}
    summary = recipe.summarise(held_out)
    click.echo(f"held-out median opening r {summary['r_opening']:.3f}, lip-landmark distance {summary['lmd']:.4f} "
               f"(frozen {summary['lmd_frozen']:.4f}), {steps} steps ({(time.time() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()
