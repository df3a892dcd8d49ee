"""Where live frames go besides the web server (`live_server`): a window when a display and an
OpenCV build with GUI support exist, and a recording to an mp4 that carries the audio actually
received, in step with the picture."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from ..audio.features import SAMPLE_RATE
from ..errors import EdgeRetalkError
from ..provenance.labels import SyntheticLabel
from ..io.video_writer import VideoWriter
from ..io.workers import WriteBehind


class Window:
    """An OpenCV window; needs a display and an OpenCV build with GUI support."""

    TITLE = "edge-retalk"

    def __init__(self) -> None:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise EdgeRetalkError("--window needs a display (DISPLAY is not set); use the --serve page instead")
        try:
            cv2.namedWindow(self.TITLE, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise EdgeRetalkError("--window needs OpenCV with GUI support (pip install opencv-python instead of "
                                  "opencv-python-headless); use the --serve page instead") from None

    def show(self, frame: np.ndarray, audio: np.ndarray, dropped: bool, delay: float | None) -> None:
        if not dropped:
            cv2.imshow(self.TITLE, frame)
            cv2.waitKey(1)

    def close(self) -> None:
        cv2.destroyWindow(self.TITLE)


class Recorder:
    """An mp4 of what was shown, with the received audio (silence where none came) in step; encoded
    in a background thread, written atomically when the run ends."""

    def __init__(self, output: Path, width: int, height: int, fps: Fraction, label: SyntheticLabel | None):
        self._writer = VideoWriter(output, width, height, fps, None, label=label, audio_rate=SAMPLE_RATE)
        self._encoder = WriteBehind(lambda item: self._writer.write(*item), depth=8)
        self.output = output

    def show(self, frame: np.ndarray, audio: np.ndarray, dropped: bool, delay: float | None) -> None:
        self._encoder.put((frame, audio))

    def close(self) -> None:
        try:
            self._encoder.finish()
            self._writer.close()
        except BaseException:
            self._writer.abort()
            raise

    def abort(self) -> None:
        try:
            self._encoder.finish()
        except BaseException:  # noqa: BLE001 - the partial recording is dropped either way
            pass
        self._writer.abort()
