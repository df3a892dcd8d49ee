"""Measure the colours inside open mouths, over each speaker's skin, for the drawn mouth interior.

    python -m edge_retalk.training.mouth_interior --cache ~/.cache/edge-retalk/footage

For every cached recording, its three widest-open frames (inner-lip gap over 0.13 inter-ocular
units): the pixels inside the inner lips of the renderer's crop, divided by the skin colour
around the lips (`skin_colour`). Prints the medians that `generators/mouth_interior.py` keeps as
TEETH_OVER_SKIN (the brightest tenth, in frames where over a tenth is brighter than the skin),
CAVITY_OVER_SKIN (the darkest sixth) and TONGUE_OVER_SKIN (the lower middle of the inside where it
is neither), so they can be measured again on other footage.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from ..audio.lip_shape import canonical_shape, shape_opening
from ..face.frame import CropBox, apply
from ..generators.mouth_interior import skin_colour
from ..generators.painted import polygon_mask
from ..generators.render_inputs import INNER_OUTLINE

WIDE_OPEN = 0.13
FRAMES_PER_RECORDING = 3


def inside_over_skin(crop: np.ndarray, shape: np.ndarray, box: CropBox) -> tuple[np.ndarray, np.ndarray]:
    """The inside of the mouth's pixels over the skin colour (n, 3), and their height from the
    top of the inside (0) to its bottom (1)."""
    xy = apply(box.from_canonical(), shape.astype(np.float64))
    inside = polygon_mask(crop.shape[:2], xy[INNER_OUTLINE], 0.0) > 0.5
    rows = np.nonzero(inside)[0]
    height = (rows - rows.min()) / max(rows.max() - rows.min(), 1)
    columns = np.nonzero(inside)[1]
    middle = np.abs(columns - columns.mean()) < 0.25 * (columns.max() - columns.min() + 1)
    return crop[inside].astype(np.float32) / skin_colour(crop, xy), np.where(middle, height, -1.0)


@click.command()
@click.option("--cache", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
def main(cache: Path) -> None:
    index = json.loads((cache / "index.json").read_text())
    template, box = np.asarray(index["template"]), CropBox(**index["crop"])
    teeth, cavity, tongue = [], [], []
    for clip in index["clips"]:
        stem = cache / clip["name"]
        if not (stem.parent / f"{stem.name}.npz").exists():
            continue
        with np.load(stem.parent / f"{stem.name}.npz") as data:
            points = data["points"]
        frames = np.nonzero(np.isfinite(points[:, 0, 0]))[0]
        if len(frames) < 20:
            continue
        crops = np.load(stem.parent / f"{stem.name}.crops.npy", mmap_mode="r")
        shapes = np.stack([canonical_shape(points[i], template) for i in frames])
        opening = shape_opening(shapes)
        for k in np.argsort(-opening)[:FRAMES_PER_RECORDING]:
            if opening[k] < WIDE_OPEN:
                break
            ratio, height = inside_over_skin(np.asarray(crops[frames[k]]), shapes[k], box)
            light = ratio.mean(axis=1)
            if (light > 1.0).mean() > 0.1:
                teeth.append(np.median(ratio[light >= np.quantile(light, 0.9)], axis=0))
            cavity.append(np.median(ratio[light <= np.quantile(light, 1 / 6)], axis=0))
            lower = (height > 0.55) & (height < 0.8) & (light > np.quantile(light, 1 / 6)) & (light < 1.0)
            if lower.sum() >= 5:
                tongue.append(np.median(ratio[lower], axis=0))
    for name, found in (("TEETH_OVER_SKIN", teeth), ("CAVITY_OVER_SKIN", cavity), ("TONGUE_OVER_SKIN", tongue)):
        values = ", ".join(f"{v:.2f}" for v in np.median(found, axis=0))
        click.echo(f"{name} = [{values}]  # BGR, {len(found)} frames")


if __name__ == "__main__":
    main()
