"""A briefly trained Wav2Lip-96: a checkpoint whose weights and activations look trained, for
checking the INT8 export recipes on something other than random weights.

    python -m edge_retalk.training.wav2lip_brief --cache CACHE -o wav2lip_brief.pt [--steps 400] [--resume]

Pretrained Wav2Lip weights cannot be obtained here, and an untrained network's output is nearly
constant, so INT8 parity on it says little. This trains the official architecture for a while on
the cached footage (face crops cut the way the runtime cuts them, from the cached landmarks; the
lower half masked; a reference crop from another frame of the same clip; L1 to the real crop).
It learns to reconstruct faces, not to lip-sync (there is no sync expert): do not ship it as a
generator. Mixed precision (bfloat16) only where the CPU does bfloat16 in hardware: on a 2-core
Intel Xeon with AMX a step of 8 takes 1.35 s (a step of 16: 2.3 s, against 4.5 s in float32); on a
2-core AMD EPYC (AVX2) float32, about 1.6 s a step of 8. Seeded; checkpoints every 50 steps;
`--resume` continues from the last one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np
import torch
from rich.progress import Progress

from ..audio.features import log_mel
from ..export.models.wav2lip import FACE_SIZE, Wav2Lip
from ..io.media import iter_video_frames
from ..generators.neural import face_box, wav2lip_inputs
from ..devices.system import read_system_file
from ..quant.calibration import MEL_STEPS
from .state import resume_state, save_state

SEED = 1234
BATCH = 8
FRAMES_PER_CLIP = 150


def clip_crops(clip: dict, cache: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(mel windows (n, 1, 80, 16), real crops (n, 3, 96, 96) BGR in [0, 1]) of up to
    FRAMES_PER_CLIP frames with a face, spread over the clip."""
    with np.load(cache / f"{clip['name']}.npz") as data:
        points, samples, fps = data["points"], data["samples"], float(data["fps"])
    with_face = np.nonzero(np.isfinite(points[:, 0, 0]))[0]
    if len(with_face) < 10:
        return None
    wanted = set(with_face[np.linspace(0, len(with_face) - 1, min(FRAMES_PER_CLIP, len(with_face))).astype(int)])
    mel = log_mel(samples)
    mels, crops = [], []
    for index, frame in enumerate(iter_video_frames(Path(clip["path"]))):
        if index >= len(points):
            break
        box = face_box(points[index], frame.shape) if index in wanted else None
        if box is not None:
            window, face = wav2lip_inputs(frame, box, mel, index, fps, FACE_SIZE, MEL_STEPS)
            mels.append(window)
            crops.append(face[3:])
    return (np.stack(mels), np.stack(crops)) if len(crops) >= 10 else None


def load_crops(cache: Path, data_root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every cached clip of `clips/` and `train/` as crops (kept in `cache/wav2lip_crops.npz`)."""
    stored = cache / "wav2lip_crops.npz"
    if stored.is_file():
        with np.load(stored) as data:
            return [(data[f"mel{k}"], data[f"crop{k}"]) for k in range(int(data["count"]))]
    index = json.loads((cache / "index.json").read_text())
    clips = [dict(c, path=str(data_root / Path(c["path"]).relative_to("../shared/data")))
             for c in index["clips"] if c["set"] in ("clips", "train")]
    found = [crops for crops in (clip_crops(c, cache) for c in clips) if crops is not None]
    np.savez(stored, count=len(found), **{f"mel{k}": m for k, (m, _) in enumerate(found)},
             **{f"crop{k}": c for k, (_, c) in enumerate(found)})
    return found


def batch_of(clips: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mels, faces, targets = [], [], []
    for k in rng.integers(0, len(clips), BATCH):
        mel, crops = clips[k]
        i, j = rng.integers(0, len(crops), 2)
        masked = crops[i].copy()
        masked[:, FACE_SIZE // 2:] = 0.0
        mels.append(mel[i])
        faces.append(np.concatenate([masked, crops[j]]))
        targets.append(crops[i])
    return tuple(torch.from_numpy(np.stack(a).astype(np.float32)) for a in (mels, faces, targets))


@click.command()
@click.option("--cache", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="The footage cache (python -m edge_retalk.training.footage).")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path("../shared/data"), show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--steps", type=int, default=400, show_default=True)
@click.option("--resume", is_flag=True)
def main(cache: Path, data: Path, output: Path, steps: int, resume: bool) -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    rng = np.random.default_rng(SEED)
    started = time.time()
    clips = load_crops(cache, data)
    click.echo(f"{len(clips)} clips, {sum(len(c) for _, c in clips)} face crops ({(time.time() - started) / 60:.1f} min)")
    hardware_bfloat16 = bool({"amx_bf16", "avx512_bf16"} & set(read_system_file("/proc/cpuinfo").split()))
    model = Wav2Lip()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    start = 0
    if resume:
        start, rng = resume_state(output.with_suffix(".state"), rng, model, optimiser)
    model.train()
    with Progress() as progress:
        task = progress.add_task("wav2lip", total=steps, completed=start)
        for step in range(start, steps):
            mel, face, target = batch_of(clips, rng)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=hardware_bfloat16):
                loss = (model(mel, face).float() - target).abs().mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            progress.update(task, advance=1, description=f"wav2lip L1 {loss.item():.4f}")
            if (step + 1) % 50 == 0 or step + 1 == steps:
                progress.console.log(f"step {step + 1}: L1 {loss.item():.4f}")
                save_state(output.with_suffix(".state"), step + 1, rng, model, optimiser)
    torch.save({"state_dict": model.state_dict()}, output)
    click.echo(f"saved {output} after {steps} steps, last L1 {loss.item():.4f} ({(time.time() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()
