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

from .api import LipSync, LiveFrame, LiveStream  # noqa: E402
from .avatar import prepare_avatar  # noqa: E402
from .file_mode import RunReport  # noqa: E402

__all__ = ["EdgeRetalkError", "LipSync", "LiveFrame", "LiveStream", "RunReport", "__version__", "prepare_avatar"]
