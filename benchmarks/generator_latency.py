"""Wav2Lip-96 generator latency per exported format and precision (ONNX Runtime, one thread).

    python benchmarks/generator_latency.py [--calib ../shared/data/clips/hdtf_wda_aoc_8s.mp4]

Latency does not depend on the weights, so this exports a freshly initialised Wav2Lip (no
checkpoint needed) through `edge-retalk export` and prints its report. PSNR figures in that
report describe these untrained weights, not a real checkpoint. Needs the export extra.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import torch

from edge_retalk.export.formats import FORMATS
from edge_retalk.export.models.wav2lip import Wav2Lip
from edge_retalk.export.pipeline import export_wav2lip


@click.command()
@click.option("--calib", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("../shared/data/clips/hdtf_wda_aoc_8s.mp4"), show_default=True)
def main(calib: Path) -> None:
    """Export every ONNX target of an untrained Wav2Lip and print the latency table."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "untrained.pth"
        torch.save({"state_dict": Wav2Lip().state_dict()}, checkpoint)
        export_wav2lip(checkpoint, list(FORMATS), calib, Path(tmp) / "out")
        click.echo((Path(tmp) / "out" / "report.md").read_text())


if __name__ == "__main__":
    main()
