"""ONNX export with torch.onnx: FP32, dynamic batch axis."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

OPSET = 17


def to_onnx(model: nn.Module, example: tuple[torch.Tensor, ...], input_names: list[str], output_names: list[str],
            target: Path) -> Path:
    """Write `model` as ONNX FP32 with a dynamic batch axis; returns the file."""
    axes = {name: {0: "batch"} for name in input_names + output_names}
    torch.onnx.export(model, example, str(target), input_names=input_names, output_names=output_names,
                      dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return target
