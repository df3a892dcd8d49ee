"""The table of export targets: one named row per format and precision; the CLI's choices come from it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportFormat:
    """One export target and the parity it must reach against PyTorch on held-out real inputs."""

    key: str
    format: str
    precision: str
    suffix: str
    min_psnr_db: float


FORMATS = {row.key: row for row in (
    ExportFormat("onnx:fp32", "onnx", "fp32", ".onnx", 60.0),
)}
