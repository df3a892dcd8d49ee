"""The table of export targets: one named row per format and precision; the CLI's choices come from it.

Each row names its converter (module and function in this package) and the parity it must reach
against PyTorch FP32 on held-out real inputs before the artefact is kept."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportFormat:
    key: str
    format: str
    precision: str
    suffix: str
    converter: str
    min_psnr_db: float

    def file_name(self, arch: str = "wav2lip") -> str:
        """Where this target is written in an export folder, and where profiles look for it."""
        return f"{arch}.{self.precision}{self.suffix}"


FORMATS = {row.key: row for row in (
    ExportFormat("onnx:fp32", "onnx", "fp32", ".onnx", "onnx.onnx_fp32", 60.0),
    ExportFormat("onnx:fp16", "onnx", "fp16", ".onnx", "onnx.onnx_fp16", 45.0),
    ExportFormat("onnx:int8", "onnx", "int8", ".onnx", "onnx.onnx_int8", 30.0),
    ExportFormat("openvino:fp16", "openvino", "fp16", ".xml", "openvino.openvino_fp16", 45.0),
    ExportFormat("openvino:int8", "openvino", "int8", ".xml", "openvino.openvino_int8", 30.0),
    ExportFormat("tflite:fp32", "tflite", "fp32", ".tflite", "tflite.tflite_fp32", 60.0),
    ExportFormat("tflite:fp16", "tflite", "fp16", ".tflite", "tflite.tflite_fp16", 45.0),
    ExportFormat("tflite:int8", "tflite", "int8", ".tflite", "tflite.tflite_int8", 30.0),
)}
