"""Inference engines, one module per runtime, chosen by the model file's format."""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgeRetalkError


def open_engine(model: Path, threads: int = 1):
    """An engine that runs `model` (.onnx with ONNX Runtime, .xml with OpenVINO, .tflite with LiteRT)."""
    if model.suffix == ".onnx":
        from .onnxruntime import OnnxRuntimeEngine
        return OnnxRuntimeEngine(model, threads)
    if model.suffix == ".xml":
        from .openvino import OpenVINOEngine
        return OpenVINOEngine(model, threads)
    if model.suffix == ".tflite":
        from .litert import LiteRTEngine
        return LiteRTEngine(model, threads)
    raise EdgeRetalkError(f"{model}: no engine for {model.suffix or 'this'} files (use .onnx, .xml or .tflite)")
