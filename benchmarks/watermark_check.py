"""How well the invisible watermark survives, and how often it is found where it is not.

    python benchmarks/watermark_check.py [--data ../shared/data] [--limit N]

First the cost of marking one frame at 512x512 and 1920x1080 (median of 200). Then every real clip (clips/ and train/, none of which carries the mark) is scored as it is: any score
above the threshold is a false positive. Each clip of clips/ is also marked, encoded as `run`
encodes (CRF 18), and then attacked: re-encoded at CRF 30 at half size, cropped by 10 % (5 % off
each side) and re-encoded at CRF 30, and both at once; each attacked copy is scored.
"""

from __future__ import annotations

import itertools
import time
from fractions import Fraction
from pathlib import Path

import av
import click
import cv2
import numpy as np

from edge_retalk.provenance import watermark
from edge_retalk.devices.autotune import machine
from edge_retalk.io.media import iter_video_frames, probe_face

ATTACK_FRAMES = 125
VIDEO_SUFFIXES = (".mp4", ".mov", ".mpg")


def write_video(path: Path, frames: list[np.ndarray], fps: Fraction, crf: int, scale: float = 1.0,
                crop: float = 0.0) -> None:
    """Encode BGR frames with libx264 at `crf`, first cutting `crop` of the height and width
    (half off each side) and then resizing by `scale`."""
    height, width = frames[0].shape[:2]
    top, left = round(height * crop / 2), round(width * crop / 2)
    out_w, out_h = round((width - 2 * left) * scale) // 2 * 2, round((height - 2 * top) * scale) // 2 * 2
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = out_w, out_h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            picture = cv2.resize(frame[top:height - top, left:width - left], (out_w, out_h), interpolation=cv2.INTER_AREA)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="bgr24")))
        container.mux(stream.encode(None))


ATTACKS = {"crf30_half": dict(crf=30, scale=0.5), "crop10_crf30": dict(crf=30, crop=0.1),
           "crop10_half_crf30": dict(crf=30, scale=0.5, crop=0.1)}


def videos(folder: Path, limit: int | None) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix in VIDEO_SUFFIXES)[:limit]


def first_frames(path: Path, count: int) -> list[np.ndarray]:
    return list(itertools.islice(iter_video_frames(path), count))


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("../shared/data"))
@click.option("--limit", type=int, default=None, help="Only the first N clips of each folder.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("watermark-check"))
def main(data: Path, limit: int | None, work: Path) -> None:
    work.mkdir(exist_ok=True)
    started = time.time()
    cpu = machine()["cpu"]
    for width, height in ((512, 512), (1920, 1080)):
        frame = cv2.resize(first_frames(videos(data / "clips", 1)[0], 1)[0], (width, height))
        times = []
        for _ in range(200):
            begin = time.perf_counter()
            watermark.embed(frame)
            times.append(time.perf_counter() - begin)
        print(f"marking a {width}x{height} frame: {np.median(times) * 1000:.2f} ms ({cpu})", flush=True)
    unmarked = []
    for path in videos(data / "clips", limit) + videos(data / "train", limit):
        reading = watermark.detect(path)
        unmarked.append(reading.score)
        print(f"unmarked {path.name}: {reading.score:.1f}", flush=True)
    attacked: dict[str, list[float]] = {name: [] for name in ATTACKS}
    for path in videos(data / "clips", limit):
        frames = first_frames(path, ATTACK_FRAMES)
        fps = probe_face(path).fps
        marked = work / "marked.mp4"
        write_video(marked, [watermark.embed(frame) for frame in frames], fps, crf=18)
        decoded = first_frames(marked, ATTACK_FRAMES)
        scores = []
        for name, attack in ATTACKS.items():
            write_video(work / f"{name}.mp4", decoded, fps, **attack)
            attacked[name].append(watermark.detect(work / f"{name}.mp4").score)
            scores.append(f"{name} {attacked[name][-1]:.1f}")
        print(f"marked {path.name} {frames[0].shape[1]}x{frames[0].shape[0]}: {', '.join(scores)}", flush=True)
    print(f"\nthreshold {watermark.THRESHOLD}; {len(unmarked)} unmarked real clips: highest score {max(unmarked):.1f}, "
          f"{sum(s > watermark.THRESHOLD for s in unmarked)} above the threshold (false positives)")
    for name, scores in attacked.items():
        print(f"{name}: found in {sum(s > watermark.THRESHOLD for s in scores)} of {len(scores)} marked clips, "
              f"lowest score {min(scores):.1f}, median {np.median(scores):.1f}")
    print(f"({(time.time() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()
