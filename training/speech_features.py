"""Speech-encoder inputs of the cached footage, computed once beside the footage cache.

    python -m edge_retalk.training.speech_features --cache ~/.cache/edge-retalk/footage

For every cached clip and each of its speech versions (clean and the two degraded copies of
`augment`), the lip-shape network's inputs per frame with a face, as file mode makes them and as
live mode makes them (`audio/speech_encoder.py`), float16, in `<clip>.speech.npz`. The encoder is
the shipped exported one (or `--encoder`), so training sees what the runtime computes.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import click
import numpy as np
from rich.progress import Progress

from ..audio.speech_encoder import SpeechEncoder
from .augment import augmented_versions

PROTOCOLS = ("file", "live")


def speech_inputs(encoder: SpeechEncoder, name: str, samples: np.ndarray, fps: float,
                  frames: np.ndarray, n_frames: int) -> dict[str, np.ndarray]:
    """`{protocol}{version}` -> inputs (len(frames), C, FEATURE_STEPS) float16."""
    found = {}
    for version, speech in enumerate(augmented_versions(samples, seed=zlib.crc32(name.encode()))):
        found[f"file{version}"] = encoder.for_file(speech, fps, n_frames)[frames].astype(np.float16)
        found[f"live{version}"] = encoder.for_live(speech, fps, frames).astype(np.float16)
    return found


@click.command()
@click.option("--cache", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--encoder", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="An exported speech encoder (default: the shipped one that runs fastest here).")
@click.option("--threads", type=int, default=2)
def main(cache: Path, encoder: Path | None, threads: int) -> None:
    """Compute what is missing (re-runnable after a stop)."""
    speech_encoder = SpeechEncoder(encoder, threads)
    clips = json.loads((cache / "index.json").read_text())["clips"]
    todo = [c["name"] for c in clips if (cache / f"{c['name']}.npz").exists()
            and not (cache / f"{c['name']}.speech.npz").exists()]
    with Progress() as progress:
        task = progress.add_task("speech features", total=len(todo))
        for name in todo:
            with np.load(cache / f"{name}.npz") as data:
                points, samples, fps = data["points"], data["samples"], float(data["fps"])
            frames = np.nonzero(np.isfinite(points[:, 0, 0]))[0]
            found = speech_inputs(speech_encoder, name, samples, fps, frames, len(points))
            partial = cache / f"{name}.speech.part.npz"
            np.savez(partial, **found)
            partial.replace(cache / f"{name}.speech.npz")
            progress.update(task, advance=1, description=name)


if __name__ == "__main__":
    main()
