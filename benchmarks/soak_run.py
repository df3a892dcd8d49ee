"""Soak: a long `run` (default 30 minutes of audio, faster than real time), with memory over time.

    python benchmarks/soak_run.py [--minutes 30] [--face FACE]

Uses the bundled portrait and speech (the speech looped) unless --face is given; samples the
process's resident memory every 30 s of output video and prints it as a table, then the run's
completion, frame count and fps. Not a test: nothing is asserted.
"""

from __future__ import annotations

import tempfile
import time
import wave
from pathlib import Path

import click
import numpy as np

from edge_retalk.io.media import load_audio
from edge_retalk.models import model_path
from edge_retalk.file_mode import RunOptions, lipsync
from edge_retalk.io.timing import memory_mb


@click.command()
@click.option("--minutes", default=30.0, show_default=True)
@click.option("--face", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
def main(minutes: float, face: Path | None) -> None:
    """Run the soak and print memory over time."""
    face = face or model_path("demo_portrait.png")
    speech = load_audio(model_path("demo_speech.wav"))
    pause = np.zeros(8000, np.float32)
    unit = np.concatenate([speech, pause])
    samples = np.tile(unit, int(np.ceil(minutes * 60 * 16000 / unit.size)))[: int(minutes * 60 * 16000)]
    frames_per_mark = 30 * 25
    marks: list[tuple[int, float, float]] = []
    started = time.perf_counter()

    def on_progress(done: int, total: int) -> None:
        if done % frames_per_mark == 0 or done == total:
            marks.append((done, time.perf_counter() - started, memory_mb()))

    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "long.wav"
        with wave.open(str(audio), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(16000)
            handle.writeframes((samples * 32767).astype(np.int16).tobytes())
        del samples
        report = lipsync(face, audio, Path(tmp) / "out.mp4", RunOptions(), on_progress)
    click.echo(f"soak: {minutes:g} min of audio, face {face.name}")
    click.echo("| output minute | wall s | resident MB |")
    click.echo("|---|---|---|")
    for done, wall, mb in marks[:: max(1, len(marks) // 20)] + ([marks[-1]] if len(marks) > 20 else []):
        click.echo(f"| {done / 25 / 60:.1f} | {wall:.0f} | {mb:.0f} |")
    rss = [mb for _, _, mb in marks]
    click.echo(f"completed: {report.frames} frames in {report.seconds:.0f} s ({report.fps:.0f} fps); resident memory "
               f"first {rss[0]:.0f} MB, max {max(rss):.0f} MB, last {rss[-1]:.0f} MB")


if __name__ == "__main__":
    main()
