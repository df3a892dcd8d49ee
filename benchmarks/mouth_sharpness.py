"""How sharp the inside of the generated open mouths is, against the real clips': the variance of
the Laplacian inside the inner lips (as the face mesh finds them in each video), on the frames
where the real mouth is open, for one or more `edge-retalk eval` folders.

    python benchmarks/mouth_sharpness.py EVAL_DIR [EVAL_DIR ...] --label "..." [--label "..."]

A soft painted mouth scores far below the real one; teeth with their gaps and a dark cavity come
closer. Writes its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

from pathlib import Path

import click
import cv2
import numpy as np

from edge_retalk.face.landmarks import INNER_LIP_OUTLINE, mouth_opening
from edge_retalk.face.tracker import FaceTracker
from edge_retalk.io.media import iter_video_frames
from results import record

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"
OPEN_QUANTILE = 0.75
"""Frames whose real mouth opening is in the clip's top quarter count as open."""


def mouth_detail(video: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the mouth opening and the Laplacian variance inside the inner lips (NaN where no
    face or a closed mouth)."""
    tracker = FaceTracker(25.0, smooth=False)
    openings, details = [], []
    for frame in iter_video_frames(video):
        points = tracker(frame)
        if points is None:
            openings.append(np.nan)
            details.append(np.nan)
            continue
        mouth = np.zeros(frame.shape[:2], np.uint8)
        cv2.fillPoly(mouth, [np.round(points[list(INNER_LIP_OUTLINE), :2]).astype(np.int32)], 1)
        detail = cv2.Laplacian(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.CV_32F)[mouth > 0]
        openings.append(float(mouth_opening(points)))
        details.append(float(detail.var()) if detail.size >= 20 else np.nan)
    return np.array(openings), np.array(details)


@click.command()
@click.argument("evals", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--label", "labels", multiple=True, required=True, help="One per eval folder, in order.")
@click.option("--section", default="Mouth interior sharpness", show_default=True)
def main(evals: tuple[Path, ...], labels: tuple[str, ...], section: str) -> None:
    if len(labels) != len(evals):
        raise click.UsageError("give one --label per eval folder")
    videos = sorted({p.name for p in evals[0].glob("*.mp4")})
    ratios: dict[str, list[float]] = {label: [] for label in labels}
    real_medians = []
    for name in videos:
        clip = CLIPS / f"{name.split('.')[0]}.mp4"
        if not clip.exists() or not all((folder / name).exists() for folder in evals):
            continue
        opening, real = mouth_detail(clip)
        open_frames = opening >= np.nanquantile(opening, OPEN_QUANTILE)
        real_open = np.nanmedian(real[open_frames])
        real_medians.append(real_open)
        for label, folder in zip(labels, evals):
            _, generated = mouth_detail(folder / name)
            count = min(len(generated), len(open_frames))
            ratios[label].append(float(np.nanmedian(generated[:count][open_frames[:count]]) / real_open))
        click.echo(f"{name}: real {real_open:.1f}, " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in ratios.items()))
    rows = "\n".join(f"| {label} | {len(values)} | {np.median(values):.2f} | {np.percentile(values, 25):.2f}-"
                     f"{np.percentile(values, 75):.2f} |" for label, values in ratios.items())
    record(section, f"""Variance of the Laplacian inside the inner lips on the frames where the real mouth is open
(its top quarter of openings), generated over real, per clip (real median {np.median(real_medians):.1f}).
1.0 is as detailed as the real mouth.

| build | clips | median ratio | quartiles |
|---|---|---|---|
{rows}
""")


if __name__ == "__main__":
    main()
