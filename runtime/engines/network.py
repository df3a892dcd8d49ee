"""An exported network with its manifest, as the generators and the speech encoder use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import open_model
from ..errors import EdgeRetalkError


class Network:
    """An exported network and its manifest, run in chunks its batch axis allows; run once on
    opening, so that the engine's first-call set-up does not fall on a live frame."""

    def __init__(self, model: Path, arch: str, threads: int, provider: str | None, options: dict | None):
        self.manifest, self.engine = open_model(model, threads, provider, options)
        if self.manifest.arch != arch:
            raise EdgeRetalkError(f"{model}: is a {self.manifest.arch!r} network, not a {arch!r} one")
        self._input = self.manifest.inputs[0].name
        first = self.manifest.inputs[0].shape[0]
        self._batch = first if isinstance(first, int) else 64
        self(np.zeros([1, *self.manifest.inputs[0].shape[1:]], np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        outputs = [next(iter(self.engine.run({self._input: x[i:i + self._batch]}).values()))
                   for i in range(0, len(x), self._batch)]
        return np.concatenate(outputs)
