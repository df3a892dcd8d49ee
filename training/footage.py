"""Real talking-head footage, measured once and cached for training.

    python -m edge_retalk.training.footage --data ../shared/data --cache ~/.cache/edge-retalk/footage

Every clip in `clips/`, `train/` and `long/` (less those whose audio is not their own) is tracked
frame by frame (unsmoothed face mesh); the cache keeps, per clip, the landmarks, a lower-face crop
in the canonical face frame and the 16 kHz speech. The canonical face frame is the shipped
networks' (so retrained models fit them), or with `--new-template` the Procrustes mean of the
clips' first faces. The last `LONG_HELD_OUT` of each `long/` recording is left out of the
generic models, so personal models (`enroll`) can be compared with them on footage neither saw.
The shared data's licences forbid copying it into the repository: the cache lives outside it.
"""

from __future__ import annotations

import csv
import json
import re
from fnmatch import fnmatch
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from ..face.frame import CropBox, mean_template
from ..face.landmarks import STABLE_POINTS
from ..io.media import iter_video_frames, load_audio, probe_face
from ..generators.render_inputs import crop_of
from ..face.tracker import FaceTracker
from ..engines.manifest import load_manifest
from ..generators.learned import RENDERER_MODEL
from ..models import model_path

SETS = ("clips", "train", "long")
EXCLUDED = {
    "latentsync_demo1_10s.mp4": "audio not verified as its own",
    "latentsync_demo2_20s.mp4": "audio not verified as its own",
    "retalking_face4_7s.mp4": "audio offset of about 0.4 s",
    "sobanejaz_adapta_man_4s.mp4": "sync not verified (z 0.2)",
}
SAME_SPEAKER = {"retalking_face3_5s": "aoc", "vexpress_aoc_gt_4s": "aoc", "hdtf_wda_aoc_8s": "aoc"}
LONG_HELD_OUT = 0.15
CROP = CropBox(centre_x=0.0, centre_y=0.85, side=1.6, size=128)


@dataclass(frozen=True)
class Clip:
    """One recording: where it is, which set it came from, who speaks in it."""

    path: Path
    set: str
    speaker: str
    speech: Path | None = None
    """The person's own speech beside the video, when it is not the video's sound track."""

    @property
    def name(self) -> str:
        return f"{self.set}/{self.path.stem}"

    @property
    def audio(self) -> Path:
        own = self.path.with_suffix(".own_audio.wav")
        return self.speech or (own if own.exists() else self.path)


def speaker_of(stem: str) -> str:
    """Group recordings by person, so that held-out speakers are never trained on."""
    if stem in SAME_SPEAKER:
        return SAME_SPEAKER[stem]
    for pattern in (r"styletalk_([a-z]+)", r"lrs3gt_([\w-]{11})_", r"(talkvid_buffett)", r"(dfrf_french_macron)"):
        if match := re.match(pattern, stem):
            return match.group(1)
    return stem


def list_clips(data: Path) -> list[Clip]:
    """Every usable recording in the shared data, by its manifest."""
    clips = []
    for name in SETS:
        with open(data / name / "manifest.csv", newline="") as handle:
            files = [row["file"] for row in csv.DictReader(handle)]
        clips += [Clip(data / name / f, name, speaker_of(Path(f).stem)) for f in files if f not in EXCLUDED]
    return clips


def first_face(clip: Clip) -> np.ndarray | None:
    """Stable points of the first tracked face in the clip's first second."""
    tracker = FaceTracker(25.0, smooth=False)
    for index, frame in enumerate(iter_video_frames(clip.path)):
        if (points := tracker(frame)) is not None:
            return points[list(STABLE_POINTS), :2]
        if index > 30:
            return None
    return None


def measure(clip: Clip, template: np.ndarray, out: Path, on_frame=None) -> str:
    """Track one clip and write its landmarks, crops and speech to `out`(.npz, .crops.npy);
    `on_frame` is called after each frame."""
    info = probe_face(clip.path)
    tracker = FaceTracker(float(info.fps), smooth=False)
    points, crops, matrices = [], [], []
    blank = np.zeros((CROP.size, CROP.size, 3), np.uint8)
    for frame in iter_video_frames(clip.path):
        if on_frame is not None:
            on_frame()
        found = tracker(frame)
        if found is None:
            points.append(np.full((468, 3), np.nan, np.float32))
            matrices.append(np.full((2, 3), np.nan, np.float32))
            crops.append(blank)
            continue
        image, matrix = crop_of(frame, found, template, CROP)
        points.append(found.astype(np.float32))
        matrices.append(matrix.astype(np.float32))
        crops.append(image)
    samples = load_audio(clip.audio)
    np.save(out.parent / f"{out.name}.crops.npy", np.stack(crops))
    partial = out.parent / f"{out.name}.part.npz"
    np.savez(partial, points=np.stack(points), matrices=np.stack(matrices), samples=samples, fps=np.float64(info.fps))
    partial.replace(out.parent / f"{out.name}.npz")
    return f"{clip.name}: {len(points)} frames, {int(np.isfinite(np.stack(matrices)[:, 0, 0]).sum())} with a face"


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("../shared/data"))
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--workers", type=int, default=2)
@click.option("--only", multiple=True, help="Only clips whose name (e.g. clips/grid_bbaf2n) matches this pattern.")
@click.option("--new-template", is_flag=True,
              help="Align faces on the Procrustes mean of these clips' first faces instead of the shipped networks' "
                   "face frame (models trained on such a cache do not fit the shipped ones).")
def main(data: Path, cache: Path, workers: int, only: tuple[str, ...], new_template: bool) -> None:
    """Track every clip once; skip clips already cached (re-runnable after a stop)."""
    clips = [c for c in list_clips(data) if not only or any(fnmatch(c.name, pattern) for pattern in only)]
    cache.mkdir(parents=True, exist_ok=True)
    index_file = cache / "index.json"
    if index_file.exists():
        template = np.asarray(json.loads(index_file.read_text())["template"], np.float32)
    elif new_template:
        with ProcessPoolExecutor(workers) as pool:
            faces = [f for f in pool.map(first_face, clips) if f is not None]
        template = mean_template(faces)
    else:
        template = np.asarray(load_manifest(model_path(RENDERER_MODEL))[0].metadata["template"], np.float32)
    index = {"template": template.tolist(), "crop": CROP.__dict__, "long_held_out": LONG_HELD_OUT,
             "clips": [{"name": c.name, "path": str(c.path), "set": c.set, "speaker": c.speaker} for c in clips]}
    index_file.write_text(json.dumps(index, indent=1))
    todo = [c for c in clips if not (cache / f"{c.name}.npz").exists()]
    for name in SETS:
        (cache / name).mkdir(exist_ok=True)
    todo.sort(key=lambda c: -c.path.stat().st_size)
    with ProcessPoolExecutor(workers) as pool:
        for line in pool.map(measure, todo, [template] * len(todo), [cache / c.name for c in todo]):
            click.echo(line, err=True)


if __name__ == "__main__":
    main()
