"""TFLite targets with litert-torch (batch 1: a dynamic batch converts but fails at run time):
FP16 weights by casting, and full-integer INT8 (int8 weights and activations, int8 inputs and
outputs) with ai-edge-quantizer calibrated on the job's real inputs, the job's float modules left
unquantised."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Iterator

from ..io.quiet import logger_level, native_stderr_silenced
from .job import ExportJob, glue_into_float, litert_form


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """litert-torch and ai-edge-quantizer print native logs, progress bars and debugging warnings on
    every run; keep the CLI's output to its own lines (failures still raise)."""
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        with logger_level(logging.ERROR), warnings.catch_warnings(), native_stderr_silenced(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous


def tflite_fp32(job: ExportJob, target: Path) -> Path:
    """The model as TFLite FP32 (once per job; later calls copy it)."""
    cached = job.work_dir / "fp32.tflite"
    if not cached.exists():
        with _quiet():
            import litert_torch

            with litert_form(job.model) as model:
                litert_torch.convert(model, job.example).export(str(cached))
    shutil.copyfile(cached, target)
    return target


def tflite_fp16(job: ExportJob, target: Path) -> Path:
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    source = tflite_fp32(job, job.work_dir / "fp16-source.tflite")
    recipe = quantizer.Quantizer(str(source))
    recipe.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                  algorithm_key=AlgorithmName.FLOAT_CASTING)
    with _quiet():
        recipe.quantize(enable_progress_report=False).export_model(str(target), overwrite=True)
    return target


def tflite_int8(job: ExportJob, target: Path) -> Path:
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    source = tflite_fp32(job, job.work_dir / "int8-source.tflite")
    signatures = Interpreter(model_path=str(source)).get_signature_list()
    key = next(iter(signatures))
    names = signatures[key]["inputs"]
    count = len(next(iter(job.calibration.values())))
    samples = [{name: job.calibration[original][i:i + 1] for name, original in zip(names, job.input_names)}
               for i in range(count)]
    quantiser = quantizer.Quantizer(str(source), recipe.static_wi8_ai8())
    for pattern in _with_glue_of_float_ops(source, job.tflite_float_patterns()):
        quantiser.update_quantization_recipe(pattern, qtyping.TFLOperationName.ALL_SUPPORTED,
                                             algorithm_key=AlgorithmName.NO_QUANTIZE)
    with _quiet():
        calibration = quantiser.calibrate({key: samples})
        quantiser.quantize(calibration, enable_progress_report=False).export_model(str(target), overwrite=True)
    return target



def _with_glue_of_float_ops(model: Path, patterns: list[str]) -> list[str]:
    """`patterns` plus one for each top-level op whose readers all stay in float (`glue_into_float`;
    LiteRT names a top-level op's output by the model class alone: "...wav2lip.Wav2Lip;6").
    ai-edge-quantizer matches patterns against an op's scope: its output tensor names, each
    followed by ";"."""
    import re

    from ai_edge_litert.interpreter import Interpreter

    if not patterns:
        return patterns
    interpreter = Interpreter(model_path=str(model))
    names = {tensor["index"]: tensor["name"] for tensor in interpreter.get_tensor_details()}
    ops = [("".join(names[i] + ";" for i in op["outputs"]), op["inputs"], op["outputs"])
           for op in interpreter._get_ops_details()]
    glue = {scope for scope, _, outputs in ops if all("/" not in names[i] for i in outputs)}
    in_float = {scope for scope, _, _ in ops if any(re.search(pattern, scope) for pattern in patterns)}
    added = glue_into_float(ops, glue, in_float) - in_float
    return [*patterns, *(f"^{re.escape(scope)}$" for scope, _, _ in ops if scope in added)]
