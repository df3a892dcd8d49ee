"""A training run's state on disk (weights, optimiser, schedule, step, random generator), so that a
stopped run continues where it was with `--resume`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def save_state(path: Path, step: int, rng: np.random.Generator, model: torch.nn.Module,
               optimiser: torch.optim.Optimizer, schedule=None) -> None:
    state = {"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step, "rng": rng}
    if schedule is not None:
        state["schedule"] = schedule.state_dict()
    torch.save(state, path)


def resume_state(path: Path, rng: np.random.Generator, model: torch.nn.Module, optimiser: torch.optim.Optimizer,
                 schedule=None) -> tuple[int, np.random.Generator]:
    """Load `path` into the model, optimiser and schedule; returns the step to continue from and
    the random generator (step 0 and `rng` when there is nothing to resume). Our own file: it holds
    the generator's state, so it is loaded with `weights_only=False`."""
    if not path.exists():
        return 0, rng
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    if schedule is not None:
        schedule.load_state_dict(state["schedule"])
    return state["step"], state["rng"]
