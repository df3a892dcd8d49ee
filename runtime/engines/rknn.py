"""RKNN engine: runs .rknn models on a Rockchip NPU (RK3588) through rknn-toolkit-lite2.

The board's runtime library (librknnrt.so, from Rockchip's BSP or the rknpu2 release) and the
Python package `rknn-toolkit-lite2` (aarch64 wheels on PyPI) must both be there. An .rknn file
holds no tensor names that the lite API reports, so the names come from the model's manifest.
Verified in rknn-toolkit2's simulator at export time; on hardware, only the API contract is."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from ..errors import EdgeRetalkError
from .manifest import load_manifest
from . import FixedNames

RUNTIME_LIBRARY = "librknnrt.so"


def npu_runtime_present() -> bool:
    """Whether the NPU runtime library loads here (it exists only on Rockchip boards)."""
    try:
        ctypes.CDLL(RUNTIME_LIBRARY)
    except OSError:
        return False
    return True


class RknnEngine(FixedNames):
    """Loads an .rknn file onto the NPU (all cores, the runtime chooses) and runs named NCHW
    float32 arrays through it; the runtime quantises inputs and dequantises outputs itself."""

    name = "rknn"

    def __init__(self, model: Path, threads: int = 1, provider: str | None = None,
                 options: dict[str, str] | None = None):
        self.provider = provider or "rknn:npu"
        if self.provider != "rknn:npu":
            raise EdgeRetalkError(f"{self.provider}: RKNN models run only on the NPU (rknn:npu)")
        try:
            from rknnlite.api import RKNNLite
        except ImportError as exc:
            raise EdgeRetalkError("the RKNN runtime is not installed: pip install rknn-toolkit-lite2 "
                                  "(on an RK3588 board, with librknnrt.so)") from exc
        if not npu_runtime_present():
            raise EdgeRetalkError(f"{RUNTIME_LIBRARY} is not on this machine: RKNN models run only on a Rockchip "
                                  "board with its NPU driver")
        manifest, _ = load_manifest(model)
        self._inputs = [spec.name for spec in manifest.inputs]
        self._outputs = [spec.name for spec in manifest.outputs]
        self._runtime = RKNNLite(verbose=False)
        if self._runtime.load_rknn(str(model)) != 0:
            raise EdgeRetalkError(f"{model}: the RKNN runtime cannot load it")
        if self._runtime.init_runtime(core_mask=RKNNLite.NPU_CORE_AUTO) != 0:
            raise EdgeRetalkError(f"{model}: the NPU did not start (is the rknpu driver loaded?)")

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = [np.ascontiguousarray(inputs[name], np.float32) for name in self._inputs]
        layouts = ["nchw" if array.ndim == 4 else None for array in arrays]  # as the export's simulator feeds them
        outputs = self._runtime.inference(inputs=arrays, data_format=layouts)
        if outputs is None:
            raise EdgeRetalkError("the NPU returned no output")
        return {name: np.asarray(value, np.float32) for name, value in zip(self._outputs, outputs)}
