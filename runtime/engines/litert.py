"""LiteRT (ai-edge-litert) engine: runs .tflite models on the CPU with XNNPACK."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EdgeRetalkError
from ..io.quiet import native_stderr_silenced
from . import FixedNames


class LiteRTEngine(FixedNames):
    """Loads a .tflite file and runs a dict of named arrays through it."""

    name = "litert"

    def __init__(self, model: Path, threads: int = 1, provider: str | None = None,
                 options: dict[str, str] | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise EdgeRetalkError("LiteRT is not installed: pip install ai-edge-litert") from exc
        self.provider = provider or "litert:xnnpack"
        if self.provider != "litert:xnnpack":
            raise EdgeRetalkError(f"{self.provider}: LiteRT runs here only on its CPU path (litert:xnnpack)")
        with native_stderr_silenced():
            self._interpreter = Interpreter(model_path=str(model), num_threads=threads)
            self._interpreter.allocate_tensors()
        self._inputs = {d["name"]: d for d in self._interpreter.get_input_details()}
        self._outputs = {d["name"]: d for d in self._interpreter.get_output_details()}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference; returns a copy of every output by name.

        Integer (fully quantised) tensors are quantised on the way in and dequantised on the way
        out with their own scale and zero point, so callers always deal in float32."""
        for name, value in inputs.items():
            detail = self._inputs[name]
            self._interpreter.set_tensor(detail["index"], _quantise(value, detail))
        self._interpreter.invoke()
        return {name: _dequantise(self._interpreter.get_tensor(d["index"]), d) for name, d in self._outputs.items()}


def _quantise(value: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return value.astype(dtype, copy=False)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(value / scale) + zero_point, info.min, info.max).astype(dtype)


def _dequantise(value: np.ndarray, detail: dict) -> np.ndarray:
    if not np.issubdtype(detail["dtype"], np.integer):
        return value.copy()
    scale, zero_point = detail["quantization"]
    return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
