"""What every converter gets: the PyTorch model, example and calibration inputs, a scratch folder,
and the parts of the graph that INT8 recipes keep in float."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    float_scope: tuple[str, ...] = ()
    """Graph-node name prefixes (from the module path, e.g. "/low_res") left unquantised."""
