"""Generator latency per exported format and precision (the export report, one thread).

    python benchmarks/generator_latency.py [--arch wav2lip|videoretalking] [--to onnx:fp32,...]
                                           [--calib ../shared/data/clips/hdtf_wda_aoc_8s.mp4]

Latency does not depend on the weights, so this exports freshly initialised networks (no
checkpoint needed) through `edge-retalk export` and prints its report, failures included. PSNR
figures in that report describe these untrained weights, not a real checkpoint. Needs the
export extra.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import torch

from edge_retalk.engines.formats import FORMATS
from edge_retalk.export.pipeline import export_model


@click.command()
@click.option("--arch", type=click.Choice(["wav2lip", "videoretalking"]), default="wav2lip", show_default=True)
@click.option("--to", "targets", default=",".join(FORMATS), show_default=True)
@click.option("--calib", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("../shared/data/clips/hdtf_wda_aoc_8s.mp4"), show_default=True)
def main(arch: str, targets: str, calib: Path) -> None:
    """Export the chosen targets of an untrained network and print the report."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, enet = Path(tmp) / "untrained.pth", None
        if arch == "wav2lip":
            from edge_retalk.export.models.wav2lip import Wav2Lip

            torch.save({"state_dict": Wav2Lip().state_dict()}, checkpoint)
        else:
            from edge_retalk.export.models.enet import ENet

            model = ENet()
            torch.save({"state_dict": model.low_res.state_dict()}, checkpoint)
            enet = Path(tmp) / "untrained_enet.pth"
            torch.save({"state_dict": model.state_dict()}, enet)
        export_model(arch, checkpoint, targets.split(","), calib, Path(tmp) / "out", enet)
        click.echo((Path(tmp) / "out" / "report.md").read_text())


if __name__ == "__main__":
    main()
