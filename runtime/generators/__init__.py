"""Lip generators: what paints the mouth, behind one `Generator` interface.

`painted` (no network: the face's lips warped to a predicted opening, the inside painted),
`learned` (the default: the audio-to-lip-shape network and the learned mouth renderer, or an
enrolled person's own), `neural` (an exported Wav2Lip-convention network run by an engine).
The compositor pastes a generated mouth back inside a feathered region; `render_inputs` builds
what the learned renderer sees, the same way in training and at run time."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from ..audio.visemes import Phone
from ..errors import EdgeRetalkError
from .learned import LearnedGenerator, LearnedOptions
from .neural import NeuralGenerator
from .options import RENDERERS, RenderOptions
from .painted import PaintedGenerator


class LiveGenerator(Protocol):
    """A generator fed from a live stream: how much of the stream frame `index` needs, and the
    frame rendered from it (`read(start, stop)` gives the stream's samples)."""

    generator: Generator

    def samples_needed(self, index: int) -> int: ...

    def follow(self, index: int, read: Callable[[int, int], np.ndarray], silent: bool) -> None:
        """Keep a smoothed motion in step through frame `index` when it is dropped (not drawn)."""

    def render(self, frame: np.ndarray, points: np.ndarray | None, index: int,
               read: Callable[[int, int], np.ndarray], silent: bool, phones: Sequence[Phone] = ()) -> np.ndarray:
        """Frame `index` drawn; the timed `phones` overlapping it (seconds on the stream, where the
        words are known) steer its mouth in generators that can (the learned one), as in file mode."""


class Generator(Protocol):
    """What every lip generator offers: file mode prepares the whole speech once and generates
    frames in batches; live mode takes its `live` adapter."""

    name: str
    tracking_interval: int
    """Landmarks are needed on every this-many frames of a video face, interpolated in between
    (file mode; a board profile may ask for a longer interval): 1 for generators that move the
    face's own lips, 2 for those that only need its box and lip region."""

    def prepare(self, samples: np.ndarray, fps: float, n_frames: int) -> object: ...

    def generate_batch(self, items: list[tuple[np.ndarray, np.ndarray | None, int]]) -> list[np.ndarray]: ...

    def live(self, fps: float) -> LiveGenerator: ...


BUILT_IN: dict[str, Callable[[RenderOptions, int], Generator]] = {
    "learned": lambda render, threads: LearnedGenerator(LearnedOptions(amplitude=render.amplitude), threads),
    "network": lambda render, threads: LearnedGenerator(LearnedOptions(amplitude=render.amplitude, own_lips=False),
                                                        threads),
    "painted": lambda render, threads: PaintedGenerator(options=render),
}
"""The built-in renderers by name (`--renderer`)."""


def tracking_interval_of(generator: Path | None, render: RenderOptions) -> int:
    """The `tracking_interval` of what `open_generator` opens for these arguments, known before
    it loads, so that tracking can start meanwhile."""
    if generator is not None:
        return (LearnedGenerator if generator.is_dir() else NeuralGenerator).tracking_interval
    return (PaintedGenerator if render.renderer == "painted" else LearnedGenerator).tracking_interval


def open_generator(generator: Path | None, render: RenderOptions, threads: int = 1, provider: str | None = None,
                   provider_options: dict[str, str] | None = None) -> Generator:
    """The exported network `generator` (or, given a folder, the enrolled person in it) if given,
    else the built-in renderer `render` names."""
    if generator is not None and generator.is_dir():
        return LearnedGenerator(LearnedOptions.enrolled(generator, render.amplitude, render.renderer != "network"),
                                threads)
    if generator is not None:
        return NeuralGenerator(generator, threads, provider, provider_options)
    if render.renderer not in BUILT_IN:
        raise EdgeRetalkError(f"unknown renderer {render.renderer!r}; choose from {', '.join(RENDERERS)}")
    return BUILT_IN[render.renderer](render, threads)
