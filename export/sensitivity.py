"""Which parts of a network an INT8 recipe must leave in float for the artefact to keep parity.

A trained network usually has a few layers whose weights or activations eight bits cannot carry
(wide activation ranges, a last layer whose small errors show in every pixel); quantising them
takes the whole output down, while the rest quantises cleanly. When a plain INT8 recipe fails
parity, each candidate module is tried in float alone (everything else INT8) and ranked by the
parity that buys; modules are then kept in float in that order until the target passes, and
each layer inside them that INT8 can take after all is put back in INT8. The layers kept in
float go in the export report, so nobody ships a half-float model unknowingly.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

MARGIN_DB = 1.0
"""Parity asked of the search above the target's own minimum, so that a model that passes on the
held-out crops by a hair is not kept."""


def _has_weights(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def candidate_modules(model: nn.Module) -> list[str]:
    """The network's top-level modules, with the blocks of a ModuleList as separate candidates
    (Wav2Lip: the audio encoder, each face encoder and decoder block, the output block)."""
    found = []
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            found += [f"{name}.{index}" for index, block in enumerate(child) if _has_weights(block)]
        elif _has_weights(child):
            found.append(name)
    return found


def _parts(model: nn.Module, path: str) -> list[str]:
    """The layers directly inside the module at `path` (together, the whole module)."""
    return [f"{path}.{name}" for name, _ in model.get_submodule(path).named_children()]


def keep_sensitive_in_float(parity: Callable[[tuple[str, ...]], float], model: nn.Module,
                            already: tuple[str, ...], needed_db: float,
                            progress: Callable[[str], None]) -> tuple[str, ...] | None:
    """The fewest modules of `model` (in order of sensitivity) to leave in float, besides
    `already`, for `parity(float_modules)` to reach `needed_db` + MARGIN_DB, narrowed down to the
    layers inside them that need it; None if even all modules in float do not reach it."""
    goal = needed_db + MARGIN_DB

    def trial(kept: tuple[str, ...]) -> float:
        psnr = parity((*already, *kept))
        progress(f"  {', '.join(kept)} in float: {psnr:.1f} dB")
        return psnr

    candidates = [m for m in candidate_modules(model) if m not in already]
    gains = []
    kept: tuple[str, ...] | None = None
    for module in candidates:
        psnr = trial((module,))
        gains.append((psnr, module))
        if psnr >= goal:
            kept = (module,)
            break
    ranked = [module for _, module in sorted(gains, reverse=True)]
    for count in range(2, len(ranked) + 1 if kept is None else 0):
        if trial(tuple(ranked[:count])) >= goal:
            kept = tuple(ranked[:count])
            break
    if kept is None:
        return None
    layers = [layer for module in kept for layer in (_parts(model, module) or [module])]
    for layer in list(layers):
        if len(layers) == 1:
            break
        fewer = tuple(other for other in layers if other != layer)
        if trial(fewer) >= goal:
            layers = list(fewer)
    return (*already, *layers)
