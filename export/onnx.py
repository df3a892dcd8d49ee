"""ONNX targets: FP32 with torch.onnx (dynamic batch), FP16 with onnxconverter-common (float inputs
and outputs kept), INT8 as static QDQ with onnxruntime.quantization calibrated on real inputs
(per-channel S8 weights, U8 activations: S8/S8 and dynamic quantisation ran slower than FP32 here)."""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from ..io.quiet import logger_level
from .job import ExportJob, glue_into_float

OPSET = 17


def onnx_fp32(job: ExportJob, target: Path) -> Path:
    """Write the model as ONNX FP32 with a dynamic batch axis (once per job; later calls copy it)."""
    cached = job.work_dir / "fp32.onnx"
    if not cached.exists():
        axes = {name: {0: "batch"} for name in job.input_names + job.output_names}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(job.model, job.example, str(cached), input_names=job.input_names,
                              output_names=job.output_names, dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    shutil.copyfile(cached, target)
    return target


def onnx_fp16(job: ExportJob, target: Path) -> Path:
    """Half-precision weights and compute; inputs and outputs stay float32."""
    import onnx
    from onnxconverter_common import float16

    fp32 = onnx_fp32(job, job.work_dir / "fp16-source.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = float16.convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    onnx.save(converted, str(target))
    return target


class _CalibrationReader:
    """Feeds the job's calibration inputs (real face crops and mel windows) one at a time."""

    def __init__(self, job: ExportJob):
        self._batches = iter([{name: array[i:i + 1] for name, array in job.calibration.items()}
                              for i in range(len(next(iter(job.calibration.values()))))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def onnx_int8(job: ExportJob, target: Path) -> Path:
    """Static QDQ INT8: per-channel S8 weights, U8 activations, calibrated on real inputs; nodes
    of the job's float modules stay in float."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32 = onnx_fp32(job, job.work_dir / "int8-source.onnx")
    prepared = job.work_dir / "int8-prepared.onnx"
    with logger_level(logging.ERROR):
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared), load_external_data=False).graph
        in_float = glue_into_float([(node.name, node.input, node.output) for node in graph.node],
                                   {node.name for node in graph.node if node.name.count("/") == 1},
                                   {node.name for node in graph.node if job.in_float(node.name)})
        quantize_static(str(prepared), str(target), _CalibrationReader(job), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=sorted(in_float))
    return target

