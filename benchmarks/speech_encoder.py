"""What the speech encoder costs: CPU time per second of speech in file mode (one window a second)
and per video frame in live mode (one window a frame), for each shipped form, one thread.

    python benchmarks/speech_encoder.py [--speech ../shared/data/speech/musetalk_eng_60s.wav]

Writes its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from edge_retalk.audio.speech_encoder import ENCODER_FORMS, SpeechEncoder
from edge_retalk.io.media import load_audio
from edge_retalk.models import model_path

from results import record


def cpu_seconds(work) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


@click.command()
@click.option("--speech", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path(__file__).resolve().parents[2] / "shared/data/speech/musetalk_eng_60s.wav",
              show_default=True)
@click.option("--fps", type=float, default=25.0, show_default=True)
def main(speech: Path, fps: float) -> None:
    samples = load_audio(speech)
    seconds = samples.size / 16000
    frames = np.arange(int(seconds * fps))
    rows = []
    for form in ENCODER_FORMS:
        try:
            encoder = SpeechEncoder(model_path(form), threads=1)
        except Exception as exc:  # noqa: BLE001 - an engine that is not installed is reported, not fatal
            rows.append(f"| {form} | cannot run here: {str(exc)[:80]} | | |")
            continue
        file_cpu = min(cpu_seconds(lambda: encoder.for_file(samples, fps, len(frames))) for _ in range(3))
        live = frames[: int(10 * fps)]
        started = time.perf_counter()
        live_cpu = cpu_seconds(lambda: [encoder.for_live_frame(np.zeros(32000, np.float32) + samples[:32000], i, fps)
                                        for i in live])
        live_wall = (time.perf_counter() - started) / len(live) * 1000
        rows.append(f"| {form} | {file_cpu / seconds * 1000:.1f} | {live_cpu / len(live) * 1000:.1f} | "
                    f"{live_cpu / len(live) * fps * 1000:.0f} ({live_wall:.1f} ms wall a frame) |")
        click.echo(rows[-1])
    record("Speech encoder cost", f"Speech: `{speech.name}` ({seconds:.0f} s), {fps:g} fps, one thread.\n\n"
           "| form | file mode: CPU ms per s of speech | live mode: CPU ms per frame | live mode: CPU ms per s |\n"
           "|---|---|---|---|\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
