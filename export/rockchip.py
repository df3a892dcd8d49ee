"""RKNN targets for Rockchip NPUs (RK3588): `rknn:fp16` and `rknn:int8` (per-channel weights,
calibrated on the job's real inputs), converted by rknn-toolkit2 from our ONNX FP32 export.

rknn-toolkit2 pins numpy 1.x, onnx <= 1.18 and torch <= 2.4, which our export environment cannot
share, so it lives in an environment of its own (`python -m edge_retalk.export.rockchip setup` makes
one) and runs in a child process (`rockchip_worker.py`). The .rknn file runs only on the board's NPU;
the export checks it against PyTorch in the toolkit's simulator of that NPU, which the same child
serves, so the parity rule is the one every target meets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np

from ..errors import EdgeRetalkError
from ..engines import FixedNames
from .job import ExportJob
from .onnx import onnx_fp32
from .rockchip_worker import read_arrays, write_arrays

PLATFORM = "rk3588"
TOOLKIT_PYTHON_VARIABLE = "EDGE_RETALK_RKNN_PYTHON"
TOOLKIT_PACKAGES = ["rknn-toolkit2==2.5.0", "torch==2.13.0"]
"""Installed without their dependencies: the toolkit's torch pin (<= 2.4) is for its PyTorch
import path, which we do not use; its ONNX path runs with the torch our export extra pins."""
TOOLKIT_DEPENDENCIES = ["numpy==1.26.4", "onnx==1.18.0", "protobuf==4.25.4", "onnxruntime>=1.17",
                        "opencv-python-headless>=4.5,<4.12", "scipy>=1.9.3", "psutil>=5.9", "ruamel.yaml>=0.17.21",
                        "tqdm>=4.64.1", "fast-histogram>=0.11", "typing_extensions", "sympy", "filelock", "jinja2",
                        "networkx", "fsspec", "setuptools>=77,<81"]
WORKER = Path(__file__).with_name("rockchip_worker.py")


def toolkit_home() -> Path:
    """Where `setup` puts rknn-toolkit2's environment: $XDG_DATA_HOME/edge-retalk/rknn-toolkit2."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "edge-retalk" / "rknn-toolkit2"


def toolkit_python() -> Path:
    """The Python of rknn-toolkit2's own environment: $EDGE_RETALK_RKNN_PYTHON, else the one
    `setup` made."""
    named = os.environ.get(TOOLKIT_PYTHON_VARIABLE)
    python = Path(named) if named else toolkit_home() / "bin" / "python"
    if not python.is_file():
        raise EdgeRetalkError(f"rknn targets need rknn-toolkit2 in an environment of its own (it pins numpy 1.x and "
                              f"onnx <= 1.18): make it with `python -m edge_retalk.export.rockchip setup`, or point "
                              f"{TOOLKIT_PYTHON_VARIABLE} at a Python that has it")
    return python


def setup(home: Path | None = None) -> Path:
    """Create rknn-toolkit2's environment (a venv) and install it there; returns its Python."""
    home = home or toolkit_home()
    venv.create(home, with_pip=True, clear=home.exists())
    python = home / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts"]
    subprocess.run([*pip, "--no-deps", *TOOLKIT_PACKAGES], check=True)
    subprocess.run([*pip, *TOOLKIT_DEPENDENCIES], check=True)
    subprocess.run([str(python), "-c", "from rknn.api import RKNN"], check=True)
    return python


class RknnSimulator(FixedNames):
    """An engine (see `edge_retalk.engines.Engine`) that builds an .rknn file with rknn-toolkit2
    and runs it in the toolkit's simulator of the NPU, in the toolkit's own environment."""

    name = "rknn"
    provider = "rknn:simulator"

    def __init__(self, job: ExportJob, onnx: Path, target: Path, precision: str):
        self._inputs, self._outputs = list(job.input_names), list(job.output_names)
        request = {"onnx": str(onnx), "inputs": self._inputs, "target": str(target), "precision": precision,
                   "platform": PLATFORM, "shapes": [[1, *tensor.shape[1:]] for tensor in job.example],
                   "dataset": str(_dataset(job))}
        request_file = job.work_dir / f"rknn-{precision}.json"
        request_file.write_text(json.dumps(request))
        self._log = job.work_dir / f"rknn-{precision}.log"
        with self._log.open("wb") as log:
            self._process = subprocess.Popen([str(toolkit_python()), "-I", str(WORKER), str(request_file)],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        try:
            read_arrays(self._process.stdout)
        except EOFError:
            self.close()
            raise EdgeRetalkError(f"rknn-toolkit2 failed: {self._last_words()}") from None

    def _last_words(self) -> str:
        lines = [line for line in self._log.read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if "E " in line[:12] or "Error" in line]
        return ((errors or lines or ["no output"])[-1]).strip()[:200]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run each row of the batch through the simulator (RKNN models have batch 1)."""
        rows = len(inputs[self._inputs[0]])
        produced = []
        for row in range(rows):
            try:
                write_arrays(self._process.stdin,
                             [inputs[name][row:row + 1].astype(np.float32) for name in self._inputs])
                produced.append(read_arrays(self._process.stdout))
            except (EOFError, BrokenPipeError):
                raise EdgeRetalkError(f"rknn-toolkit2's simulator stopped: {self._last_words()}") from None
        return {name: np.concatenate([outputs[i] for outputs in produced]).astype(np.float32)
                for i, name in enumerate(self._outputs)}

    def close(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _dataset(job: ExportJob) -> Path:
    """The calibration inputs as .npy files and the toolkit's list of them (one row per line, the
    inputs of a row separated by spaces)."""
    folder = job.work_dir / "rknn-calibration"
    listing = job.work_dir / "rknn-dataset.txt"
    if not listing.exists():
        folder.mkdir(exist_ok=True)
        rows = len(next(iter(job.calibration.values())))
        lines = []
        for row in range(rows):
            files = []
            for name in job.input_names:
                file = folder / f"{row}-{name}.npy"
                np.save(file, job.calibration[name][row:row + 1].astype(np.float32))
                files.append(str(file))
            lines.append(" ".join(files))
        listing.write_text("\n".join(lines) + "\n")
    return listing


def _convert(job: ExportJob, target: Path, precision: str) -> Path:
    if precision == "int8" and job.float_modules:
        raise EdgeRetalkError(f"this network needs {', '.join(job.float_modules)} in float, which the RKNN INT8 "
                              "recipe cannot do")
    onnx = onnx_fp32(job, job.work_dir / "rknn-source.onnx")
    job.host_engines[target] = RknnSimulator(job, onnx, target, precision)
    return target


def rknn_fp16(job: ExportJob, target: Path) -> Path:
    """The NPU's float path (FP16 compute), checked in the simulator."""
    return _convert(job, target, "fp16")


def rknn_int8(job: ExportJob, target: Path) -> Path:
    """INT8 (per-channel weights, per-tensor activations) calibrated on the job's real inputs,
    checked in the simulator."""
    return _convert(job, target, "int8")


if __name__ == "__main__":
    if sys.argv[1:] != ["setup"]:
        sys.exit("usage: python -m edge_retalk.export.rockchip setup   (makes rknn-toolkit2's own environment)")
    try:
        print(f"rknn-toolkit2 ready: {setup()} (export with --to rknn:int8)")
    except (subprocess.CalledProcessError, OSError) as exc:
        sys.exit(f"error: could not set up rknn-toolkit2 ({exc}); pip's messages above say why")
