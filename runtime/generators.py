"""Which lip generator a run uses: an exported network, the learned default, or the painted fallback."""

from __future__ import annotations

from pathlib import Path

from .errors import EdgeRetalkError
from .generator import RENDERERS, PaintedGenerator, RenderOptions
from .learned_generator import LearnedGenerator, LearnedOptions
from .neural_generator import NeuralGenerator

Generator = LearnedGenerator | PaintedGenerator | NeuralGenerator


def open_generator(generator: Path | None, render: RenderOptions, threads: int = 1, provider: str | None = None,
                   provider_options: dict[str, str] | None = None) -> Generator:
    """The exported network `generator` (or, given a folder, the enrolled person in it) if given,
    else the built-in renderer `render` names."""
    if generator is not None and generator.is_dir():
        return LearnedGenerator(LearnedOptions.enrolled(generator, render.amplitude, render.renderer != "network"),
                                threads)
    if generator is not None:
        return NeuralGenerator(generator, threads, provider, provider_options)
    if render.renderer not in RENDERERS:
        raise EdgeRetalkError(f"unknown renderer {render.renderer!r}; choose from {', '.join(RENDERERS)}")
    if render.renderer == "painted":
        return PaintedGenerator(options=render)
    return LearnedGenerator(LearnedOptions(amplitude=render.amplitude, own_lips=render.renderer != "network"), threads)
