"""LiteRT (ai-edge-litert) engine: runs .tflite models on the CPU with XNNPACK."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EdgeRetalkError
from ..quiet import native_stderr_silenced


class LiteRTEngine:
    """Loads a .tflite file and runs a dict of named arrays through it."""

    name = "litert"

    def __init__(self, model: Path, threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise EdgeRetalkError("LiteRT is not installed: pip install ai-edge-litert") from exc
        with native_stderr_silenced():
            self._interpreter = Interpreter(model_path=str(model), num_threads=threads)
            self._interpreter.allocate_tensors()
        self._inputs = {d["name"]: d for d in self._interpreter.get_input_details()}
        self._outputs = {d["name"]: d for d in self._interpreter.get_output_details()}

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Static input shape per input name."""
        return {name: tuple(d["shape"]) for name, d in self._inputs.items()}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference; returns a copy of every output by name."""
        for name, value in inputs.items():
            self._interpreter.set_tensor(self._inputs[name]["index"], value)
        self._interpreter.invoke()
        return {name: self._interpreter.get_tensor(d["index"]).copy() for name, d in self._outputs.items()}
