"""The table of model formats: one named row per format and precision, the facts about each in one place.

A row says where the artefact is written and looked for, which engine runs it, whether its batch
is fixed at export time, and (for the export toolchain) which converter makes it and the parity it
must reach against PyTorch FP32 on held-out real inputs before it is kept. The runtime reads the
same rows to open, choose and autotune artefacts, so the two sides cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ENGINE_OF_FORMAT = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert", "rknn": "rknn"}
SUFFIX_OF_FORMAT = {"onnx": ".onnx", "openvino": ".xml", "tflite": ".tflite", "rknn": ".rknn"}
STATIC_BATCH_FORMATS = {"tflite", "rknn"}
"""Formats whose batch size is part of the converted graph (LiteRT, RKNN): one artefact per batch."""
BOARD_ONLY_FORMATS = {"rknn"}
"""Formats whose engine runs only on its board (the RK3588's NPU): the export checks them in the
vendor's simulator, and a PC never picks them."""


@dataclass(frozen=True)
class ExportFormat:
    key: str
    format: str
    precision: str
    converter: str
    min_psnr_db: float
    mixed_precision: bool = True
    """Whether its INT8 recipe can leave chosen layers in float when the plain recipe fails parity."""

    @property
    def suffix(self) -> str:
        return SUFFIX_OF_FORMAT[self.format]

    @property
    def engine(self) -> str:
        return ENGINE_OF_FORMAT[self.format]

    @property
    def static_batch(self) -> bool:
        return self.format in STATIC_BATCH_FORMATS

    def file_name(self, arch: str = "wav2lip") -> str:
        """Where this target is written in an export folder, and where profiles look for it."""
        return f"{arch}.{self.precision}{self.suffix}"


FORMATS = {row.key: row for row in (
    ExportFormat("onnx:fp32", "onnx", "fp32", "onnx.onnx_fp32", 60.0),
    ExportFormat("onnx:fp16", "onnx", "fp16", "onnx.onnx_fp16", 45.0),
    ExportFormat("onnx:int8", "onnx", "int8", "onnx.onnx_int8", 30.0),
    ExportFormat("openvino:fp16", "openvino", "fp16", "openvino.openvino_fp16", 45.0),
    ExportFormat("openvino:int8", "openvino", "int8", "openvino.openvino_int8", 30.0),
    ExportFormat("tflite:fp32", "tflite", "fp32", "tflite.tflite_fp32", 60.0),
    ExportFormat("tflite:fp16", "tflite", "fp16", "tflite.tflite_fp16", 45.0),
    ExportFormat("tflite:int8", "tflite", "int8", "tflite.tflite_int8", 30.0),
    ExportFormat("rknn:fp16", "rknn", "fp16", "rockchip.rknn_fp16", 45.0),
    ExportFormat("rknn:int8", "rknn", "int8", "rockchip.rknn_int8", 30.0, mixed_precision=False),
)}


def format_of(model: Path) -> str | None:
    """The format of a model file, from its suffix (None when no engine reads it)."""
    return next((name for name, suffix in SUFFIX_OF_FORMAT.items() if model.suffix == suffix), None)
