"""Held-out opening r of variants of the lip-shape recipe (4 speaker folds, as the recipe scores).

    python benchmarks/lip_shape_variants.py --cache CACHE base|open1|after14 [--steps 600]

`base` is the shipped recipe's loss; `open1` adds a loss on the standardised opening itself;
`after14` reads 14 mel frames past the centre (about 175 ms) instead of 6. Scratch experiments
whose results the README lists under "What did not help"; not part of the package.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import click
import numpy as np
import torch

import edge_retalk.export.models.lip_shape as network_module
import edge_retalk.audio.lip_shape as shape_module
from edge_retalk.export.models.lip_shape import COMPONENTS
from edge_retalk.audio.lip_shape import LOWER_GAP, UPPER_GAP
from edge_retalk.training import lip_shape as recipe


def opening_of_coefficients(space) -> np.ndarray:
    """The inner-lip gap that each motion component adds (K,)."""
    basis = space.basis.reshape(space.components, -1, 2)
    return (basis[:, LOWER_GAP, 1] - basis[:, UPPER_GAP, 1]).mean(axis=1)


def opening_loss(recordings, space):
    """A loss on the error of the opening itself, in units of each recording's opening spread."""
    standard = [recipe.standardised(r, space) for r in recordings]
    spreads = np.concatenate([np.repeat(s[None], r.usable.stop, 0) for r, (_, s) in zip(recordings, standard)])
    opening = opening_of_coefficients(space)
    unit = np.concatenate([np.repeat(((z[r.usable] * s) @ opening).std(), r.usable.stop)
                           for r, (z, s) in zip(recordings, standard)])
    to_opening = torch.from_numpy(opening.astype(np.float32))

    def loss(predicted: torch.Tensor, truth: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        spread = torch.from_numpy(spreads[rows].astype(np.float32))
        return (((predicted - truth) * spread) @ to_opening / torch.from_numpy(unit[rows].astype(np.float32))
                ).pow(2).mean()
    return loss


@click.command()
@click.option("--cache", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--steps", type=int, default=600)
@click.argument("variant", type=click.Choice(["base", "open1", "after14"]))
def main(cache: Path, steps: int, variant: str) -> None:
    torch.set_num_threads(2)
    if variant == "after14":
        shape_module.MEL_AFTER = 14
        shape_module.MEL_STEPS = network_module.MEL_STEPS = recipe.MEL_STEPS = shape_module.MEL_BEFORE + 14
    started = time.time()
    recordings, template, _ = recipe.load_recordings(cache)
    speakers = sorted({r.speaker for r in recordings if not r.name.startswith("long/")})
    random.Random(recipe.SEED).shuffle(speakers)
    held_out = {}
    for fold in range(4):
        group = set(speakers[fold::4])
        train_on = [r for r in recordings if r.speaker not in group]
        space = recipe.fit_space(train_on, template, COMPONENTS)
        model = recipe.train_model(train_on, space, steps, None, False, f"fold {fold + 1}/4",
                                   opening_loss(train_on, space) if variant == "open1" else None)
        held_out |= {r.name: recipe.score(model, space, r) for r in recordings if r.speaker in group}
    click.echo(f"{variant}, {steps} steps: held-out median opening r {recipe.summarise(held_out)['r_opening']:.3f} "
               f"({(time.time() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()
