"""Audio features of a stream that is still arriving (live mode): the log-mel of the stretch a
frame needs, read from wherever the stream is kept, and the stream's running mean spectrum."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .features import HOP, log_mel
from .mouth_opening import mel_centre, pool_bands, voiced

Reader = Callable[[int, int], np.ndarray]
"""read(start, stop): the stream's samples [start, stop), zeros where none came."""


class RunningSpectrum:
    """A live stream's mean spectrum over its voiced frames: the model's typical one, outweighed as
    the stream's own accumulates, then a running mean over the last 10 s of voice."""

    PRIOR_FRAMES = 80
    MEMORY_FRAMES = 800

    def __init__(self, typical: np.ndarray, bands: Callable[[np.ndarray], np.ndarray] = pool_bands):
        self.mean = typical.astype(np.float64).copy()
        self._bands = bands
        self._seen = 0

    def update(self, mel: np.ndarray) -> np.ndarray:
        """Add these mel frames (80, n); returns the current mean spectrum (bands, 1) of the
        model's bands (the default generator's pooled pairs, or all 80)."""
        for column in self._bands(mel[:, voiced(mel)]).T:
            self._seen += 1
            weight = max(1.0 / (self.PRIOR_FRAMES + self._seen), 1.0 / self.MEMORY_FRAMES)
            self.mean += weight * (column[:, None] - self.mean)
        return self.mean


def frame_mel(read: Reader, spectrum: RunningSpectrum, index: int, fps: float, before: int,
              needed: int) -> tuple[np.ndarray, int, np.ndarray]:
    """For video frame `index`: the stream's log-mel from `before` mel frames ahead of its centre
    (with `segment_mel`'s margin), the mel frame that stretch starts at, and the running mean
    spectrum, fed once with the mel frames since the previous video frame's centre."""
    centre = int(mel_centre(index, fps))
    first_mel = centre - before
    mel = segment_mel(read, first_mel, needed)
    since_previous = centre - int(mel_centre(index - 1, fps))
    return mel, first_mel - 2, spectrum.update(mel[:, 2 + before - since_previous:2 + before])


def segment_mel(read: Reader, first_mel: int, needed: int) -> np.ndarray:
    """Log-mel of the stream from mel frame `first_mel - 2` on (two frames of margin, so the
    frames used are not affected by the edge of the stretch), up to sample `needed`."""
    start = (first_mel - 2) * HOP
    return log_mel(read(start, needed))
