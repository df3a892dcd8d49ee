"""edge-retalk: offline audio-driven lip sync for kiosk and robot avatars."""

from importlib.metadata import PackageNotFoundError, version

from .errors import EdgeRetalkError

try:
    __version__ = version("edge-retalk")
except PackageNotFoundError:
    __version__ = "0.0.0"

__all__ = ["EdgeRetalkError", "__version__"]
