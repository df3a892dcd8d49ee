"""Contact sheet of the demo's mouth: the bundled photo, then the same frames with each built-in
renderer (painted, network, learned), written to docs/demo_mouths.png (the portrait is public domain)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from edge_retalk.generators.options import RenderOptions
from edge_retalk.face.landmarks import MOUTH_CORNERS
from edge_retalk.io.media import iter_video_frames, read_image
from edge_retalk.models import model_path
from edge_retalk.file_mode import RunOptions, lipsync
from edge_retalk.face.tracker import FaceTracker

FRAMES = (12, 30, 45, 60, 80, 100)
SIZE = 128


def mouth_box(points: np.ndarray) -> tuple[int, int, int, int]:
    centre = points[list(MOUTH_CORNERS), :2].mean(axis=0)
    half = int(np.linalg.norm(points[MOUTH_CORNERS[0], :2] - points[MOUTH_CORNERS[1], :2]) * 1.1)
    x, y = int(centre[0]), int(centre[1] + half * 0.2)
    return x - half, y - half, x + half, y + half


def main() -> None:
    photo = read_image(model_path("demo_portrait.png"))
    x0, y0, x1, y1 = mouth_box(FaceTracker(25.0, smooth=False)(photo))
    crop = lambda image: cv2.resize(image[y0:y1, x0:x1], (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)  # noqa: E731
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for renderer in ("painted", "network", "learned"):
            out = Path(folder) / f"{renderer}.mp4"
            lipsync(model_path("demo_portrait.png"), model_path("demo_speech.wav"), out,
                    RunOptions(render=RenderOptions(renderer=renderer), label=False))
            frames = [frame for index, frame in enumerate(iter_video_frames(out)) if index in FRAMES]
            rows.append(np.concatenate([crop(photo)] + [crop(f) for f in frames], axis=1))
    target = Path(__file__).resolve().parents[1] / "docs" / "demo_mouths.png"
    target.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(target), np.concatenate(rows, axis=0))
    print(f"wrote {target} (rows: painted, network, learned; first column: the photo)")


if __name__ == "__main__":
    main()
