"""edge-retalk: offline audio-driven lip sync for kiosk and robot avatars."""

import os
from importlib.metadata import PackageNotFoundError, version

# OpenCV reads this once, when it loads: images over 4096x4096 pixels are refused from their header,
# before a decoder allocates gigabytes for them (the same cap as for videos, `media.MAX_PIXELS`).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(4096 * 4096))

from .errors import EdgeRetalkError

try:
    __version__ = version("edge-retalk")
except PackageNotFoundError:
    __version__ = "0.0.0"

from .api import LipSync, LiveFrame, LiveStream  # noqa: E402
from .avatar import prepare_avatar  # noqa: E402
from .file_mode import RunReport  # noqa: E402

__all__ = ["EdgeRetalkError", "LipSync", "LiveFrame", "LiveStream", "RunReport", "__version__", "prepare_avatar"]
