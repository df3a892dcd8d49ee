"""Inference engines, one module per runtime, chosen by the model file's format."""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgeRetalkError


ORT_PROVIDERS = {"onnxruntime:tensorrt": "TensorrtExecutionProvider", "onnxruntime:cuda": "CUDAExecutionProvider",
                 "onnxruntime:openvino": "OpenVINOExecutionProvider", "onnxruntime:cpu": "CPUExecutionProvider"}


def open_engine(model: Path, threads: int = 1, provider: str | None = None, options: dict[str, str] | None = None):
    """An engine that runs `model` (.onnx with ONNX Runtime, .xml with OpenVINO, .tflite with LiteRT),
    on `provider` ("onnxruntime:cuda", "openvino:gpu", ...) or the CPU; `options` go to that
    provider (e.g. TensorRT's FP16 and engine cache)."""
    if model.suffix == ".onnx":
        from .onnxruntime import OnnxRuntimeEngine
        chosen = (ORT_PROVIDERS[provider],) if provider in ORT_PROVIDERS else ()
        return OnnxRuntimeEngine(model, threads, tuple(dict.fromkeys(chosen + ("CPUExecutionProvider",))),
                                 options if chosen else None)
    if model.suffix == ".xml":
        from .openvino import OpenVINOEngine
        device = provider.split(":")[1].upper() if provider and provider.startswith("openvino:") else "CPU"
        return OpenVINOEngine(model, threads, device)
    if model.suffix == ".tflite":
        from .litert import LiteRTEngine
        return LiteRTEngine(model, threads)
    raise EdgeRetalkError(f"{model}: no engine for {model.suffix or 'this'} files (use .onnx, .xml or .tflite)")
