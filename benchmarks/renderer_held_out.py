"""Score a mouth-renderer checkpoint on the recipe's held-out speakers and write their contact sheets.

    python benchmarks/renderer_held_out.py --cache CACHE CHECKPOINT -o SHEETS_DIR [--every 8]

The reconstruction test of `edge_retalk.training.renderer` (every frame rendered from the clip's
first frame with its real lip shape; PSNR and SSIM in the lip area, painted renderer beside it),
for any checkpoint, e.g. one saved mid-run or an experiment's; twice: with the first frame's open
mouth lent to the renderer (a photo), and with the widest-open mouth of the first two seconds (a
video; those seconds are not scored). Sheets: real / painted / network / network with the lent
mouth. Not part of the package.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import torch

from edge_retalk.export.checkpoints import load_checkpoint
from edge_retalk.export.models.mouth_renderer import MouthRenderer
from edge_retalk.face.frame import CropBox
from edge_retalk.training.renderer import (HELD_OUT, contact_sheet, load_footage, reconstruction, region_scores,
                                           torch_runner)


LENDER_WINDOW = 50
"""The video case: the open mouth lent to the renderer is the widest in the clip's first two
seconds, which are not scored."""


@click.command()
@click.option("--cache", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--every", type=int, default=8, help="Score every n-th frame.")
def main(cache: Path, checkpoint: Path, output: Path, every: int) -> None:
    torch.set_num_threads(2)
    output.mkdir(parents=True, exist_ok=True)
    index = json.loads((cache / "index.json").read_text())
    template, crop = np.asarray(index["template"]), CropBox(**index["crop"])
    model = load_checkpoint(MouthRenderer(), checkpoint).eval()
    for case, window in (("photo", 0), ("video", LENDER_WINDOW)):
        scores = {}
        for clip in load_footage(cache, list(HELD_OUT), 0.0, template, crop):
            rows = reconstruction(torch_runner(model), clip, template, crop, every=every, lender_window=window)
            scores[clip.name] = region_scores(rows)
            contact_sheet(rows, output / f"{clip.name.split('/')[-1]}.{case}.png", 4)
        mean = {k: float(np.mean([s[k] for s in scores.values()])) for k in next(iter(scores.values()))}
        click.echo(f"{case}: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()))


if __name__ == "__main__":
    main()
