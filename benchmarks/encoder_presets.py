"""What each x264 preset costs and keeps on real clips: encoding time, file size and picture.

    python benchmarks/encoder_presets.py [--data ../shared/data] [--crf 18]

Each clip's frames are decoded once, then encoded with every preset (and the settings
`VideoWriter` adds to it) at the same CRF on one thread (CPU time of the encoding thread, so a busy
machine still compares presets fairly), decoded back and compared with the input (PSNR); and its
first frame, repeated 100 times, is encoded the same way, to see whether a still picture stays
still (largest mean step between decoded frames, grey levels). Chooses `DEFAULT_PRESET` in
`runtime/io/video_writer.py`.
Not a test: speed is never asserted.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import av
import click
import numpy as np

from edge_retalk.io.media import iter_video_frames
from edge_retalk.io.video_writer import PRESET_SETTINGS, PRESETS

CLIPS = ("clips/hdtf_wda_aoc_8s.mp4", "clips/gfpgan_kim_7s.mp4")


def encode(frames: list[np.ndarray], output: Path, preset: str, crf: int) -> float:
    """Encode `frames` to `output`; returns milliseconds of CPU per frame."""
    height, width = frames[0].shape[:2]
    with av.open(str(output), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset, "threads": "1",
                          **({"x264-params": PRESET_SETTINGS[preset]} if preset in PRESET_SETTINGS else {})}
        started = time.thread_time()
        for frame in frames:
            picture = np.ascontiguousarray(frame[: stream.height, : stream.width])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="bgr24")))
        container.mux(stream.encode())
        return (time.thread_time() - started) / len(frames) * 1000


def largest_step(frames: list[np.ndarray]) -> float:
    return max(float(np.abs(a.astype(np.int16) - b).mean()) for a, b in zip(frames, frames[1:]))


def psnr(original: list[np.ndarray], decoded: list[np.ndarray]) -> float:
    errors = [np.mean((a[: b.shape[0], : b.shape[1]].astype(np.float64) - b) ** 2) for a, b in zip(original, decoded)]
    return float(10 * np.log10(255 ** 2 / max(np.mean(errors), 1e-12)))


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("../shared/data"))
@click.option("--crf", default=18, show_default=True)
@click.option("--frames", "limit", default=150, show_default=True, help="Frames per clip.")
def main(data: Path, crf: int, limit: int) -> None:
    """Print a Markdown table: per clip and preset, ms of CPU per frame, KB, PSNR, still-picture step."""
    print(f"x264 CRF {crf}, one thread, first {limit} frames")
    print("| clip | preset | ms per frame | size KB | PSNR dB | still picture: largest step |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "encoded.mp4"
        for clip in CLIPS:
            frames = [frame for _, frame in zip(range(limit), iter_video_frames(data / clip))]
            for preset in PRESETS[:4]:
                milliseconds = encode(frames, output, preset, crf)
                quality, size = psnr(frames, list(iter_video_frames(output))), output.stat().st_size // 1024
                encode([frames[0]] * 100, output, preset, crf)
                step = largest_step(list(iter_video_frames(output)))
                print(f"| {Path(clip).name} ({frames[0].shape[1]}x{frames[0].shape[0]}) | {preset} | "
                      f"{milliseconds:.1f} | {size} | {quality:.1f} | {step:.3f} |")


if __name__ == "__main__":
    main()
