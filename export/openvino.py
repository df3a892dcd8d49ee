"""OpenVINO IR targets: FP16 (weights compressed to half precision) and INT8 (NNCF post-training
quantisation calibrated on the job's real inputs, the job's float modules left unquantised). Both
start from the job's FP32 ONNX export.

INT8 activation ranges are NNCF's mean-quantile estimate (per calibration sample, the range that
leaves out its rarest values, averaged) rather than the extreme minimum and maximum over all
samples: a few outlying activations no longer stretch a layer's 8-bit grid. On a briefly trained
Wav2Lip this alone took plain INT8 from 26.9 to 32.7 dB against PyTorch, so no layer had to
stay in float."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

from ..io.quiet import logger_level
from .job import ExportJob
from .onnx import onnx_fp32


def _fp32_model(job: ExportJob):
    from openvino.tools.ovc import convert_model

    return convert_model(str(onnx_fp32(job, job.work_dir / "openvino-source.onnx")))


def openvino_fp16(job: ExportJob, target: Path) -> Path:
    import openvino

    openvino.save_model(_fp32_model(job), str(target), compress_to_fp16=True)
    return target


def openvino_int8(job: ExportJob, target: Path) -> Path:
    import nncf
    import openvino
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    samples = [{name: array[i:i + 1] for name, array in job.calibration.items()}
               for i in range(len(next(iter(job.calibration.values()))))]
    model = _fp32_model(job)
    in_float = [op.get_friendly_name() for op in model.get_ops() if job.in_float(op.get_friendly_name())]
    ignored = nncf.IgnoredScope(names=in_float, validate=False) if in_float else None
    with logger_level(logging.WARNING, "nncf"), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        ranges = AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MEAN_QUANTILE)
        quantised = nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples), ignored_scope=ignored,
                                  advanced_parameters=ranges)
    openvino.save_model(quantised, str(target), compress_to_fp16=False)
    return target
