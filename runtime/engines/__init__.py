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


MAX_INPUT_ELEMENTS = 64 * 1024 * 1024


def open_model(model: Path, threads: int = 1, provider: str | None = None, options: dict[str, str] | None = None):
    """A model's manifest and an engine running it, after checking that they describe the same
    network: the tensor names agree and no input asks for more than `MAX_INPUT_ELEMENTS` per frame
    (a tampered manifest fails here with one line, not mid-run with an engine traceback)."""
    from ..manifest import load_manifest

    manifest, file = load_manifest(model)
    for spec in manifest.inputs:
        elements = 1
        for size in spec.shape[1:]:
            elements *= size if isinstance(size, int) else 1
        if elements > MAX_INPUT_ELEMENTS or any(isinstance(size, int) and size <= 0 for size in spec.shape):
            raise EdgeRetalkError(f"{model}: the manifest's input {spec.name!r} has an impossible shape {spec.shape}")
    engine = open_engine(file, threads, provider, options)
    for kind, declared, actual in (("inputs", [t.name for t in manifest.inputs], engine.input_names),
                                   ("outputs", [t.name for t in manifest.outputs], engine.output_names)):
        if sorted(declared) != sorted(actual):
            raise EdgeRetalkError(f"{model}: the manifest's {kind} {declared} are not the model's {list(actual)}")
    return manifest, engine
