"""edge-retalk: offline audio-driven lip sync for kiosk and robot avatars."""

import os
import sys
from importlib.metadata import PackageNotFoundError, version

# OpenCV reads this once, when it loads: images over 4096x4096 pixels are refused from their header,
# before a decoder allocates gigabytes for them (the same cap as for videos, `media.MAX_PIXELS`).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(4096 * 4096))
# numpy's OpenBLAS starts one thread per core, which spin between calls and take CPU from the
# pipeline's own stages; its matrices here are small. One BLAS thread: 0.3 s less CPU in a 200-frame
# run on a 2-core Xeon. Read once, when numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# `import openvino` sends a usage event to Google Analytics from a forked process (opt-out, and it
# writes ~/intel/openvino_ga_cid) unless CI=true. edge-retalk is offline: OpenVINO and NNCF both
# fall back to no telemetry when this module cannot be imported.
sys.modules.setdefault("openvino_telemetry", None)

from .errors import EdgeRetalkError

try:
    __version__ = version("edge-retalk")
except PackageNotFoundError:
    __version__ = "0.0.0"

_FRONT_DOOR = {"LipSync": ".api", "LiveFrame": ".api", "LiveStream": ".api", "prepare_avatar": ".avatar",
               "RunReport": ".file_mode"}


def __getattr__(name: str):
    """The front door loads on first use (numpy, OpenCV, PyAV: a quarter of a second), so that the
    `edge-retalk` command imports it inside its Ctrl-C guard (`launcher`)."""
    if name not in _FRONT_DOOR:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_FRONT_DOOR[name], __name__), name)

__all__ = ["EdgeRetalkError", "LipSync", "LiveFrame", "LiveStream", "RunReport", "__version__", "prepare_avatar"]
