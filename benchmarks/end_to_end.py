"""End-to-end speed of `edge-retalk run` with the default generator: frames per second and peak memory.

    python benchmarks/end_to_end.py [--data ../shared/data] [--preset superfast]

Each case runs in a fresh process (so peak memory is that run's own) on a real clip driven by its
own audio: a 512x512 clip and a 1920x1080 clip. Not a test: speed is never asserted.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from edge_retalk.io.video_writer import DEFAULT_PRESET

CASES = {"512x512": "clips/hdtf_wda_aoc_8s.mp4", "1920x1080": "clips/gfpgan_kim_7s.mp4"}

CHILD = """
import json, sys
from pathlib import Path
from edge_retalk.file_mode import RunOptions, lipsync
from edge_retalk.io.timing import peak_memory_mb
face, out, preset, threads = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
report = lipsync(face, face, out, RunOptions(preset=preset, threads=threads))
print(json.dumps({"frames": report.frames, "seconds": report.seconds,
                  "peak_mb": peak_memory_mb()}))
"""


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("../shared/data"))
@click.option("--preset", default=DEFAULT_PRESET, show_default=True)
@click.option("--threads", default=1, show_default=True)
@click.option("--repeat", default=3, show_default=True, help="Runs per case; the best is reported.")
def main(data: Path, preset: str, threads: int, repeat: int) -> None:
    """Print a Markdown table of end-to-end fps and peak memory per case."""
    import os
    click.echo(f"machine: {cpu_name()}, {os.cpu_count()} cores; H.264 preset {preset}; face-model threads {threads}")
    click.echo("| input | frames | seconds | fps (end to end) | peak memory MB |")
    click.echo("|---|---|---|---|---|")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, clip in CASES.items():
            runs = []
            for _ in range(repeat):
                out = subprocess.run([sys.executable, "-c", CHILD, str(data / clip), f"{tmp}/out.mp4", preset, str(threads)],
                                     capture_output=True, text=True, check=True)
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            best = min(runs, key=lambda r: r["seconds"])
            results[name] = best
            click.echo(f"| {name} ({clip}) | {best['frames']} | {best['seconds']:.2f} | "
                       f"{best['frames'] / best['seconds']:.0f} | {best['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
