"""Inference engines, one module per runtime, chosen by the model file's format.

Every engine is an `Engine`: named float32 arrays in, named arrays out, and the provider it
really runs on. An engine never falls back silently: asked for an accelerator it cannot use, it
raises, and the caller (a board profile walking its preferences) says so and steps down."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import EdgeRetalkError
from .formats import ENGINE_OF_FORMAT, SUFFIX_OF_FORMAT, format_of


class Engine(Protocol):
    """What every engine offers."""

    name: str
    provider: str
    """The engine:accelerator it actually runs on ("onnxruntime:cpu", "openvino:gpu", ...)."""

    @property
    def input_names(self) -> list[str]: ...

    @property
    def output_names(self) -> list[str]: ...

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class FixedNames:
    """The tensor names of an engine that keeps them in `_inputs` and `_outputs` (lists, or dicts
    keyed by name), in the model's order."""

    _inputs: list[str] | dict
    _outputs: list[str] | dict

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)


ENGINES = {"onnxruntime": "onnxruntime.OnnxRuntimeEngine", "openvino": "openvino.OpenVINOEngine",
           "litert": "litert.LiteRTEngine", "rknn": "rknn.RknnEngine"}
"""Engine name -> its class in this package (imported only when used)."""
ENGINE_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai_edge_litert",
                   "rknn": "rknnlite"}
"""Engine name -> the package it needs (an optional extra, or a board's own runtime)."""


def engine_installed(model: Path) -> bool:
    """Whether this environment has the package of the engine that runs `model` (found, not imported)."""
    fmt = format_of(model)
    try:
        return fmt is not None and importlib.util.find_spec(ENGINE_PACKAGES[ENGINE_OF_FORMAT[fmt]]) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules (blocked)
        return False


def open_engine(model: Path, threads: int = 1, provider: str | None = None,
                options: dict[str, str] | None = None) -> Engine:
    """An engine that runs `model` (.onnx with ONNX Runtime, .xml with OpenVINO, .tflite with LiteRT,
    .rknn with the RK3588's NPU runtime),
    on `provider` ("onnxruntime:cuda", "openvino:gpu", ...; default: the engine's CPU path);
    `options` go to that provider (e.g. TensorRT's FP16 and engine cache)."""
    fmt = format_of(model)
    if fmt is None:
        raise EdgeRetalkError(f"{model}: no engine for {model.suffix or 'this'} files "
                              f"(use {', '.join(SUFFIX_OF_FORMAT.values())})")
    engine = ENGINE_OF_FORMAT[fmt]
    if provider is not None and not provider.startswith(engine + ":"):
        raise EdgeRetalkError(f"{model}: {provider} cannot run {model.suffix} files (its engine is {engine})")
    module, cls = ENGINES[engine].rsplit(".", 1)
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)(model, threads, provider, options)


MAX_INPUT_ELEMENTS = 64 * 1024 * 1024


def open_model(model: Path, threads: int = 1, provider: str | None = None, options: dict[str, str] | None = None):
    """A model's manifest and an engine running it, after checking that they describe the same
    network: the tensor names agree and no input asks for more than `MAX_INPUT_ELEMENTS` per frame
    (a tampered manifest fails here with one line, not mid-run with an engine traceback)."""
    from .manifest import load_manifest

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
