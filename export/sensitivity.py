"""Which parts of a network an INT8 recipe must leave in float for the artefact to keep parity.

A trained network usually has a few layers whose weights or activations eight bits cannot carry
(wide activation ranges, a last layer whose small errors show in every pixel); quantising them
takes the whole output down, while the rest quantises cleanly. When a plain INT8 recipe fails
parity, each candidate module is measured by the damage it does alone: that module in INT8, every
other one in float. Ranked from the most harmless, the longest run of modules that can be INT8
together while the target still passes is found by bisection, and each layer of the modules left
in float that INT8 can take after all is put back in INT8. Measuring each module alone in INT8,
rather than alone in float, matters: where two modules both wreck the output (a U-Net's last
decoder block and its output block), keeping either one in float alone buys nothing, and a
search ranked that way ends up keeping everything. The layers kept in float go in the export
report, so nobody ships a half-float model unknowingly.
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
    """The modules of `model` (besides `already`) to leave in float for `parity(float_modules)` to
    reach `needed_db` + MARGIN_DB, narrowed down to the layers inside them that need it; None if
    even every module in float does not reach it (the loss is outside them)."""
    goal = needed_db + MARGIN_DB

    def trial(kept: tuple[str, ...], label: str) -> float:
        psnr = parity((*already, *kept))
        progress(f"  {label}: {psnr:.1f} dB")
        return psnr

    candidates = [m for m in candidate_modules(model) if m not in already]
    if trial(tuple(candidates), "every module in float") < goal:
        return None
    alone = {module: trial(tuple(m for m in candidates if m != module), f"only {module} in INT8")
             for module in candidates}
    harmless_first = sorted(candidates, key=lambda m: -alone[m])
    passing, failing = 0, len(harmless_first)
    while failing - passing > 1:
        count = (passing + failing) // 2
        kept = tuple(harmless_first[count:])
        if trial(kept, f"{', '.join(kept)} in float") >= goal:
            passing = count
        else:
            failing = count
    kept = tuple(harmless_first[passing:])
    layers = [layer for module in kept for layer in (_parts(model, module) or [module])]
    for layer in list(layers):
        if len(layers) == 1:
            break
        fewer = tuple(other for other in layers if other != layer)
        if trial(fewer, f"{', '.join(fewer)} in float") >= goal:
            layers = list(fewer)
    return (*already, *layers)
