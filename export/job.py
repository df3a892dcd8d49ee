"""What every converter gets: the PyTorch model, example and calibration inputs, a scratch folder,
and the parts of the graph that INT8 recipes keep in float."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn


@dataclass
class ExportJob:
    model: nn.Module
    example: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    calibration: dict[str, np.ndarray]
    work_dir: Path
    float_modules: tuple[str, ...] = ()
    """Module paths (e.g. "low_res", "face_decoder_blocks.3") whose layers INT8 recipes leave in float."""
    host_engines: dict[Path, object] = field(default_factory=dict)
    """Engines, by artefact, that run an artefact on this machine where the runtime's own engine
    cannot (a board NPU's model in its vendor's simulator); set by the converter, used for parity."""

    def in_float(self, node_name: str) -> bool:
        """Whether an ONNX node (or the OpenVINO op converted from it) belongs to a float module:
        torch.onnx names nodes by the modules they are in, each level by its path,
        "/face_decoder_blocks.3/face_decoder_blocks.3.0/conv_block/conv_block.0/Conv"."""
        return any(f"/{module}/" in node_name for module in self.float_modules)

    def tflite_float_patterns(self) -> list[str]:
        """Regular expressions for the TFLite tensors of the float modules. litert-torch names
        them by each module's class and attribute, leaving ModuleLists out:
        ".../edge_retalk.export.models.wav2lip.FaceDecoderBlock_3/...Conv2dTranspose_0/...", so
        the blocks of different ModuleLists are told apart by their classes."""
        patterns = []
        for module in self.float_modules:
            parent, segments = self.model, []
            for name in module.split("."):
                child = parent.get_submodule(name)
                if not isinstance(child, nn.ModuleList):
                    kind = type(child)
                    segments.append(re.escape(f"{kind.__module__}.{kind.__qualname__}_{name}"))
                parent = child
            patterns.append("(^|/)" + "/".join(segments) + "(/|;|$)")
        return patterns


@contextlib.contextmanager
def litert_form(model: nn.Module) -> Iterator[nn.Module]:
    """`model` as litert-torch can convert it, for the length of the block: modules with a
    `for_litert` switch (layers it cannot convert as they are, such as transposed convolutions
    with output padding) take their equivalent form, and take their own back afterwards."""
    switches = [module for module in model.modules() if hasattr(module, "for_litert")]
    for module in switches:
        module.for_litert = True
    try:
        yield model
    finally:
        for module in switches:
            module.for_litert = False


def glue_into_float(nodes: list[tuple[str, list, list]], glue: set[str], in_float: set[str]) -> set[str]:
    """`in_float` plus the glue nodes (ops outside every module: a U-Net's concatenations of
    decoder and skip features) whose outputs only float nodes read. Quantised, such a node would
    still squeeze both of its inputs into one 8-bit range on the way to float layers. `nodes` are
    (key, input tensors, output tensors) in graph order; keys name nodes in `glue` and `in_float`."""
    readers: dict[object, list[str]] = {}
    for key, inputs, _ in nodes:
        for tensor in inputs:
            readers.setdefault(tensor, []).append(key)
    in_float = set(in_float)
    changed = True
    while changed:
        changed = False
        for key, _, outputs in nodes:
            consumers = [reader for tensor in outputs for reader in readers.get(tensor, [])]
            if key in glue and key not in in_float and consumers and all(c in in_float for c in consumers):
                in_float.add(key)
                changed = True
    return in_float
