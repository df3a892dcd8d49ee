"""ONNX Runtime engine (CPU here; CUDA, TensorRT or OpenVINO execution providers where installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EdgeRetalkError


class OnnxRuntimeEngine:
    """Loads an .onnx file and runs a dict of named arrays through it."""

    name = "onnxruntime"

    def __init__(self, model: Path, threads: int = 1, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                 first_provider_options: dict[str, str] | None = None):
        try:
            import onnxruntime
        except ImportError as exc:
            raise EdgeRetalkError("ONNX Runtime is not installed: pip install onnxruntime") from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        available = set(onnxruntime.get_available_providers())
        chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        provider_options = [dict(first_provider_options or {}) if p == providers[0] else {} for p in chosen]
        cache = provider_options[0].get("trt_engine_cache_path")
        if cache:
            Path(cache).mkdir(parents=True, exist_ok=True)
        try:
            self._session = onnxruntime.InferenceSession(str(model), options, providers=chosen,
                                                         provider_options=provider_options)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own hierarchy of errors
            raise EdgeRetalkError(f"{model}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:160]})") from None
        self.providers = self._session.get_providers()

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self._session.get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self._session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._session.get_outputs()]
        return dict(zip(names, self._session.run(names, inputs)))
