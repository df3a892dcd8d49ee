"""OpenVINO engine (CPU, or GPU where the board has one) for IR (.xml + .bin) models."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from ..errors import EdgeRetalkError
from .cache import cache_dir


CONVERTER = "openvino.tools.ovc"


def import_openvino() -> ModuleType:
    """`import openvino` for running models. The package also imports its model converter (for
    `openvino.convert_model`: argparse, its command line, 45 ms on the Xeon), which running never
    needs; it is hidden while the package loads and importable again afterwards, so the export
    toolchain imports it itself (`from openvino.tools.ovc import convert_model`)."""
    if "openvino" in sys.modules:
        import openvino
        return openvino
    hidden = CONVERTER not in sys.modules
    if hidden:
        sys.modules[CONVERTER] = None
    try:
        import openvino
    finally:
        if hidden:
            del sys.modules[CONVERTER]
    return openvino


class OpenVINOEngine:
    """Compiles an IR model and runs a dict of named arrays through it.

    The precision hint is f32 by default: on CPUs with bf16 support OpenVINO otherwise computes
    in bf16, which changes the numbers. Compiled models are kept in the cache folder
    (`openvino/` beside the autotune cache; OpenVINO keys them by model and settings), so a
    second start loads the compiled form instead of compiling again: 0.4 s -> 0.05 s for an
    INT8 Wav2Lip. A cache that cannot be written only means compiling every time."""

    name = "openvino"

    def __init__(self, model: Path, threads: int = 1, provider: str | None = None,
                 options: dict[str, str] | None = None, precision_hint: str = "f32"):
        try:
            openvino = import_openvino()
        except ImportError as exc:
            raise EdgeRetalkError("OpenVINO is not installed: pip install openvino") from exc
        self.provider = provider or "openvino:cpu"
        device = self.provider.split(":", 1)[1].upper()
        core = openvino.Core()
        if device not in {d.split(".")[0] for d in core.available_devices}:
            raise EdgeRetalkError(f"{self.provider}: OpenVINO has no {device} device here "
                                  f"(it has {', '.join(core.available_devices)})")
        config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision_hint, **(options or {})}
        if "CACHE_DIR" not in config:
            compiled_cache = cache_dir() / "openvino"
            with contextlib.suppress(OSError):
                compiled_cache.mkdir(parents=True, exist_ok=True)
            if os.access(compiled_cache, os.W_OK):
                config["CACHE_DIR"] = str(compiled_cache)
        try:
            self._compiled = core.compile_model(str(model), device, config)
        except RuntimeError as exc:
            raise EdgeRetalkError(f"{model}: OpenVINO cannot load it ({str(exc).splitlines()[0][:160]})") from None
        self._request = self._compiled.create_infer_request()

    @property
    def input_names(self) -> list[str]:
        return [port.get_any_name() for port in self._compiled.inputs]

    @property
    def output_names(self) -> list[str]:
        return [port.get_any_name() for port in self._compiled.outputs]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self._request.infer(inputs)
        return {port.get_any_name(): np.asarray(value) for port, value in results.items()}
