"""ONNX Runtime engine (CPU here; CUDA, TensorRT or OpenVINO execution providers where installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EdgeRetalkError


EXECUTION_PROVIDERS = {"onnxruntime:tensorrt": "TensorrtExecutionProvider",
                       "onnxruntime:cuda": "CUDAExecutionProvider",
                       "onnxruntime:openvino": "OpenVINOExecutionProvider",
                       "onnxruntime:cpu": "CPUExecutionProvider"}


class OnnxRuntimeEngine:
    """Loads an .onnx file and runs a dict of named arrays through it, on the execution provider
    asked for (the CPU by default); the session's actual first provider is checked, since ONNX
    Runtime itself falls back to the CPU without an error."""

    name = "onnxruntime"

    def __init__(self, model: Path, threads: int = 1, provider: str | None = None,
                 provider_options: dict[str, str] | None = None):
        try:
            import onnxruntime
        except ImportError as exc:
            raise EdgeRetalkError("ONNX Runtime is not installed: pip install onnxruntime") from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.provider = provider or "onnxruntime:cpu"
        if self.provider not in EXECUTION_PROVIDERS:
            raise EdgeRetalkError(f"unknown ONNX Runtime provider {self.provider!r}; "
                                  f"choose from {', '.join(EXECUTION_PROVIDERS)}")
        wanted = EXECUTION_PROVIDERS[self.provider]
        if wanted not in onnxruntime.get_available_providers():
            raise EdgeRetalkError(f"{self.provider} is not available in this ONNX Runtime "
                                  f"(it has {', '.join(onnxruntime.get_available_providers())})")
        chosen = list(dict.fromkeys([wanted, "CPUExecutionProvider"]))
        settings = [dict(provider_options or {}) if p == wanted else {} for p in chosen]
        cache = settings[0].get("trt_engine_cache_path")
        if cache:
            Path(cache).mkdir(parents=True, exist_ok=True)
        try:
            self._session = onnxruntime.InferenceSession(str(model), options, providers=chosen,
                                                         provider_options=settings)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own hierarchy of errors
            raise EdgeRetalkError(f"{model}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:160]})") from None
        actual = self._session.get_providers()[0]
        if actual != wanted:
            raise EdgeRetalkError(f"{model}: ONNX Runtime could not start {self.provider} here "
                                  f"(it runs on {actual}); is the accelerator's driver installed?")

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self._session.get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self._session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._session.get_outputs()]
        return dict(zip(names, self._session.run(names, inputs)))
