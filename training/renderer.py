"""Train the learned mouth renderer on the cached footage, and score it on held-out speakers.

    python -m edge_retalk.training.renderer --cache ~/.cache/edge-retalk/footage -o models/mouth_renderer.pt

Each step shows the network frames of many people with their mouth region blanked, a reference
frame of the same person and the real lip shape of the blanked frame; it learns to paint the real
mouth back (L1 and image-gradient losses inside the region; with `--adversarial`, also a small
patch discriminator, trained from scratch beside it, that tells real mouths from painted ones and
so pushes teeth and lip edges away from the blurry average). Speakers in `HELD_OUT` are never
trained on: the reconstruction test renders their frames from their first frame and the real
lip shape, and compares the mouth region with the real frames, beside the painted renderer.
Checkpoints every few minutes; `--resume` continues; `--minutes` bounds the run.

Longer than most modules (about 330 lines) on purpose: one recipe, with the data, losses,
discriminator, held-out scoring and its command line kept together so the run is reproducible
from this file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import click
import cv2
import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ..export.models.mouth_renderer import MouthRenderer
from ..face.frame import CropBox, apply
from ..generators.painted import PaintedRenderer
from ..face.landmarks import mouth_opening
from ..audio.lip_shape import canonical_shape, shape_opening
from ..quality.metrics import psnr, ssim
from .state import resume_state, save_state
from ..generators.mouth_interior import MouthInterior
from ..generators.render_inputs import ROWS, blend_output, network_input, repaint_mask, shape_raster

SEED = 1234
BATCH = 16
HELD_OUT = ("clips/hdtf_wda_katiehill_8s", "clips/vox2_00098", "clips/lrs2_00019", "clips/mimictalk_trump_10s",
            "clips/retalking_face2_5s", "clips/geneface_may_5s", "clips/grid_bbaf2n")


@dataclass
class Footage:
    """One clip's crops with, per frame with a face, its canonical lip shape and shape raster."""

    name: str
    crops: np.ndarray
    frames: np.ndarray
    shapes: np.ndarray
    rasters: np.ndarray
    points: np.ndarray
    matrices: np.ndarray


def footage_of(name: str, stem: Path, template: np.ndarray, crop: CropBox, part: slice = slice(None)) -> Footage | None:
    """One cached clip (`stem`.npz and `stem`.crops.npy) with masks and shape rasters of the frames
    with a face in `part` (a slice of those frames); None if fewer than ten."""
    with np.load(stem.parent / f"{stem.name}.npz") as data:
        points, matrices = data["points"], data["matrices"]
    frames = np.nonzero(np.isfinite(points[:, 0, 0]))[0][part]
    if len(frames) < 10:
        return None
    crops = np.load(stem.parent / f"{stem.name}.crops.npy")
    shapes = np.stack([canonical_shape(points[i], template) for i in frames])
    rasters = np.stack([(shape_raster(shape, crop) * 255).astype(np.uint8) for shape in shapes])
    return Footage(name, crops, frames, shapes, rasters, points, matrices)


def load_footage(cache: Path, names: list[str] | None, held_out_tail: float, template: np.ndarray,
                 crop: CropBox) -> list[Footage]:
    """The cached clips (those in `names`, or all with the long recordings' held-out tail left out)."""
    index = json.loads((cache / "index.json").read_text())
    result = []
    for clip in index["clips"]:
        if names is not None and clip["name"] not in names:
            continue
        tail = held_out_tail if clip["set"] == "long" and names is None else 0.0
        with np.load(cache / f"{clip['name']}.npz") as data:
            with_face = int(np.isfinite(data["points"][:, 0, 0]).sum())
        footage = footage_of(clip["name"], cache / clip["name"], template, crop,
                             slice(0, int(round(with_face * (1 - tail)))))
        if footage is not None:
            result.append(footage)
    return result


def make_batch(footage: list[Footage], rng: np.random.Generator, size: int, crop: CropBox) -> tuple[np.ndarray, ...]:
    """Inputs, targets and masks for `size` random frames, each with a random reference frame of
    the same clip and a mask around its lips and (as at run time, where the frame's own mouth
    differs from the target) another frame's; flipped and colour-jittered at random."""
    weights = np.sqrt([len(f.frames) for f in footage])
    picks = rng.choice(len(footage), size, p=weights / weights.sum())
    inputs, target, masks = [], [], []
    for clip in (footage[p] for p in picks):
        k, j, other = rng.integers(0, len(clip.frames), 3)
        image, reference = clip.crops[clip.frames[k]], clip.crops[clip.frames[j]]
        mask = repaint_mask([clip.shapes[k], clip.shapes[other]], crop)
        raster = clip.rasters[k].astype(np.float32) / 255.0
        gain, bias = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
        image = np.clip(image * gain + bias, 0, 255)
        reference = np.clip(reference * gain + bias, 0, 255)
        x = network_input(image, mask, reference, raster)
        y = image[ROWS].astype(np.float32).transpose(2, 0, 1) / 255.0
        if rng.random() < 0.5:
            x, y, mask = x[..., ::-1], y[..., ::-1], mask[..., ::-1]
        inputs.append(x)
        target.append(y)
        masks.append(mask)
    return np.ascontiguousarray(inputs), np.ascontiguousarray(target), np.ascontiguousarray(masks)[:, None]


def gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return image[..., :, 1:] - image[..., :, :-1], image[..., 1:, :] - image[..., :-1, :]


def renderer_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, inputs: torch.Tensor,
                  mouth_weight: float = 1.0) -> torch.Tensor:
    """L1 and image-gradient L1 of the composite (output inside the region, input outside),
    averaged over the region's pixels; pixels inside the target's open mouth (the filled plane of
    the shape raster) count `mouth_weight` times, so that the small area that shows the opening,
    teeth and tongue is not averaged away by the much larger skin around it."""
    composite = mask * output + inputs[:, :3]
    weight = mask * (1 + (mouth_weight - 1) * inputs[:, 7:8])
    area = weight.sum() * 3 + 1.0
    l1 = (torch.abs(composite - target) * weight).sum() / area
    gx, gy = gradients(composite)
    tx, ty = gradients(target)
    edge = (torch.abs(gx - tx) * weight[..., :, 1:]).sum() / area + (torch.abs(gy - ty) * weight[..., 1:, :]).sum() / area
    return l1 + edge


class PatchCritic(torch.nn.Module):
    """Scores overlapping patches of a crop (BGR with its repaint mask and target lip-shape raster,
    so it judges whether the mouth is real *and* has the asked-for shape); spectral-normalised
    strided convolutions, trained only here."""

    def __init__(self, width: int = 32):
        super().__init__()
        sn = torch.nn.utils.parametrizations.spectral_norm
        layers, channels = [], 7
        for out, stride in ((width, 2), (width * 2, 2), (width * 4, 2), (width * 4, 1)):
            layers += [sn(torch.nn.Conv2d(channels, out, 4, stride, 1)), torch.nn.LeakyReLU(0.2)]
            channels = out
        layers.append(sn(torch.nn.Conv2d(channels, 1, 3, 1, 1)))
        self.body = torch.nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, raster: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([image * 2 - 1, mask, raster], dim=1))


def critic_step(critic: PatchCritic, optimiser: torch.optim.Optimizer, composite: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """One hinge-loss update of the critic on real and painted crops; returns the renderer's
    adversarial loss on `composite`. Patch scores count by how much of the patch is repainted
    (outside the mask real and painted crops are the same pixels)."""
    raster = inputs[:, 7:10]

    def score(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = critic(image, mask, raster)
        weights = torch.nn.functional.adaptive_avg_pool2d(mask, scores.shape[-2:])
        return scores, weights / (weights.sum() + 1e-6)

    real, weights = score(target)
    fake, _ = score(composite.detach())
    critic_loss = ((torch.relu(1 - real) + torch.relu(1 + fake)) * weights).sum()
    optimiser.zero_grad()
    critic_loss.backward()
    optimiser.step()
    fake, weights = score(composite)
    return -(fake * weights).sum()


def render_crop(model, image: np.ndarray, mask: np.ndarray, reference: np.ndarray, raster: np.ndarray) -> np.ndarray:
    """The network's composite for one crop, as a BGR uint8 crop (the rows it sees)."""
    x = network_input(image, mask, reference, raster)
    composite = blend_output(x, model(x[None])[0])
    return np.clip(composite.transpose(1, 2, 0) * 255 + 0.5, 0, 255).astype(np.uint8)


def reconstruction(run_model, clip: Footage, template: np.ndarray, crop: CropBox, every: int = 4,
                   reference: np.ndarray | None = None, reference_shape: np.ndarray | None = None,
                   lender_window: int = 0):
    """For frames of a held-out clip: the real crop, the painted renderer's, the learned
    renderer's (`run_model`) and the learned one's with its open mouth filled from the base face's
    own (as the runtime does where that face shows its mouth open), all painting the frame's real
    lip shape, and the repaint mask.

    Without `reference`, as for a photo: every frame is made from the clip's first frame (which is
    also the learned renderer's reference). With a `reference` crop (and its canonical lip shape
    `reference_shape`), as for a video or an enrolled avatar's loop: every frame keeps its own
    face and only its mouth region is repainted.

    The open mouth lent to the renderer is the reference's (the first frame's for a photo); with
    `lender_window`, as where the face is a video, the widest-open mouth among the clip's first
    `lender_window` frames, which are then left out of the scores."""
    first = clip.frames[0]
    painted = PaintedRenderer()
    if reference is None:
        reference_shape = canonical_shape(clip.points[first], template)
    lender = reference if reference is not None else clip.crops[first]
    if lender_window:
        shapes = np.stack([canonical_shape(clip.points[f], template) for f in clip.frames[:lender_window]])
        widest = int(np.argmax(shape_opening(shapes)))
        lender, reference_shape = clip.crops[clip.frames[widest]], shapes[widest]
    interior = None if reference_shape is None else MouthInterior.of(lender, reference_shape, crop)
    rows = []
    for k in range(lender_window, len(clip.frames), every):
        frame = clip.frames[k] if reference is not None else first
        base, base_points = clip.crops[frame], clip.points[frame]
        in_crop = base_points.copy()
        in_crop[:, :2] = apply(clip.matrices[frame].astype(np.float64), base_points[:, :2].astype(np.float64))
        real = clip.crops[clip.frames[k]][ROWS]
        shape = canonical_shape(clip.points[clip.frames[k]], template)
        mask = repaint_mask([shape, canonical_shape(base_points, template)], crop)
        learned = render_crop(run_model, base, mask, base if reference is None else reference,
                              shape_raster(shape, crop))
        opening = float(mouth_opening(clip.points[clip.frames[k]]))
        paint = painted.render(np.ascontiguousarray(base), in_crop, opening)[ROWS]
        filled = learned
        if interior is not None:
            canvas = base.copy()
            canvas[ROWS] = learned
            filled = interior.fill(canvas, shape, crop)[ROWS]
        rows.append((real, paint, learned, filled, mask))
    return rows


def region_scores(rows) -> dict[str, float]:
    """Mean PSNR and SSIM inside the lip region's box, painted, learned and learned with the
    face's own open mouth inside (`interior`), against real."""
    names = ("painted", "learned", "interior")
    out: dict[str, list[float]] = {f"{metric}_{name}": [] for metric in ("psnr", "ssim") for name in names}
    for real, *images, mask in rows:
        ys, xs = np.nonzero(mask > 0.5)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        for name, image in zip(names, images):
            out[f"psnr_{name}"].append(psnr(real[box], image[box]))
            out[f"ssim_{name}"].append(ssim(real[box], image[box]))
    return {k: float(np.mean(v)) for k, v in out.items()}


def contact_sheet(rows, path: Path, count: int = 6) -> None:
    """Real / painted / learned / learned with the face's own open mouth, side by side, one row per frame."""
    picks = np.linspace(0, len(rows) - 1, min(count, len(rows))).astype(int)
    cv2.imwrite(str(path), np.concatenate([np.concatenate(rows[i][:4], axis=1) for i in picks], axis=0))


def torch_runner(model: MouthRenderer):
    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    return run


@click.command()
@click.option("--cache", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--steps", type=int, default=20000)
@click.option("--minutes", type=float, default=60.0, help="Stop (and save) after this long.")
@click.option("--lr", type=float, default=1e-3)
@click.option("--resume", is_flag=True)
@click.option("--init", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start from these weights (a new schedule), e.g. an earlier run's.")
@click.option("--adversarial", type=float, default=0.0,
              help="Weight of the patch critic's loss (0: L1 and gradient losses only).")
@click.option("--mouth-weight", type=float, default=1.0,
              help="How many times a pixel inside the target's open mouth counts in the L1 losses.")
def main(cache: Path, output: Path, steps: int, minutes: float, lr: float, resume: bool, init: Path | None,
         adversarial: float, mouth_weight: float) -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    output.parent.mkdir(parents=True, exist_ok=True)
    index = json.loads((cache / "index.json").read_text())
    template, crop = np.asarray(index["template"]), CropBox(**index["crop"])
    everyone = load_footage(cache, None, index["long_held_out"], template, crop)
    train = [f for f in everyone if f.name not in HELD_OUT]
    click.echo(f"training on {len(train)} clips, {sum(len(f.frames) for f in train)} frames; "
               f"held out: {', '.join(HELD_OUT)}")
    model = MouthRenderer()
    model.template.copy_(torch.from_numpy(template))
    model.crop.copy_(torch.tensor([crop.centre_x, crop.centre_y, crop.side, crop.size], dtype=torch.float32))
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.03)
    if init is not None:
        model.load_state_dict(torch.load(init, weights_only=True)["state_dict"])
    critic = PatchCritic() if adversarial > 0 else None
    critic_optimiser = (torch.optim.AdamW(critic.parameters(), lr=2e-4, betas=(0.5, 0.99))
                        if critic is not None else None)
    rng, start = np.random.default_rng(SEED), 0
    state_file, critic_file = output.with_suffix(".state"), output.with_suffix(".critic.state")
    if resume:
        start, rng = resume_state(state_file, rng, model, optimiser, schedule)
        if critic is not None:
            resume_state(critic_file, rng, critic, critic_optimiser)
        click.echo(f"resumed at step {start}")

    def save(step: int) -> None:
        save_state(state_file, step, rng, model, optimiser, schedule)
        if critic is not None:
            save_state(critic_file, step, rng, critic, critic_optimiser)
        torch.save({"state_dict": model.state_dict()}, output)

    started, saved, losses = time.time(), time.time(), []
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeRemainingColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("renderer", total=steps, completed=start)
        step = start
        for step in range(start, steps):
            x, y, m = (torch.from_numpy(a) for a in make_batch(train, rng, BATCH, crop))
            output_ = model(x)
            loss = renderer_loss(output_, y, m, x, mouth_weight)
            if critic is not None:
                loss = loss + adversarial * critic_step(critic, critic_optimiser, m * output_ + x[:, :3], y, m, x)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
            progress.update(task, advance=1, description=f"renderer loss {np.mean(losses[-100:]):.4f}")
            if (step + 1) % 200 == 0:
                print(f"step {step + 1} loss {np.mean(losses[-200:]):.4f} {time.time() - started:.0f}s", flush=True)
            if time.time() - saved > 240:
                save(step + 1)
                saved = time.time()
            if time.time() - started > minutes * 60:
                break
        save(step + 1)
    model.eval()
    held = load_footage(cache, list(HELD_OUT), 0.0, template, crop)
    if not held:
        click.echo("none of the held-out speakers is in the cache: no reconstruction scores")
        return
    scores, sheets = {}, []
    for clip in held:
        rows = reconstruction(torch_runner(model), clip, template, crop)
        scores[clip.name] = region_scores(rows)
        sheets.append(rows)
        click.echo(f"{clip.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores[clip.name].items()))
    for clip, rows in zip(held, sheets):
        contact_sheet(rows, output.with_name(f"{output.stem}.sheet.{clip.name.split('/')[-1]}.png"), 4)
    mean = {k: float(np.mean([s[k] for s in scores.values()])) for k in next(iter(scores.values()))}
    report = {"seed": SEED, "steps_done": step + 1, "batch": BATCH, "adversarial": adversarial, "mouth_weight": mouth_weight,
              "held_out": list(HELD_OUT), "scores": scores,
              "mean": mean, "trained_on": [f.name for f in train]}
    output.with_suffix(".report.json").write_text(json.dumps(report, indent=1))
    click.echo("held-out mean: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()))


if __name__ == "__main__":
    main()
