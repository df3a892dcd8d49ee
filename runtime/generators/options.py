"""What a caller chooses about the built-in renderers, shared by all of them and by file mode,
live mode, the API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

RENDERERS = ("learned", "network", "painted")
"""learned: the face's own lips moved to the learned lip shape, the network painting the open
mouth; network: the network painting the whole lip area (softer); painted: no network at all."""


@dataclass(frozen=True)
class RenderOptions:
    """Which built-in renderer draws the mouth, and how wide the mouth moves relative to the
    speaker's typical range."""

    amplitude: float = 1.0
    renderer: str = "learned"
