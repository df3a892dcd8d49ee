"""What every converter gets: the PyTorch model, example and calibration inputs, a scratch folder."""

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
