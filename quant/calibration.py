"""Calibration and check data from real video: per frame with a tracked face, the network's face
input (masked crop and reference, BGR in [0, 1]) and its mel window. INT8 converters calibrate on
these and the export checks every artefact on held-out ones, never on random data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio import log_mel
from ..errors import EdgeRetalkError
from ..media import iter_video_frames, load_audio, probe_face
from ..neural_generator import face_box, wav2lip_inputs
from ..tracker import FaceTracker

MEL_STEPS = 16


def real_inputs(video: Path, size: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs (mel windows and face crops at `size`) from the frames of a real talking-head video."""
    info = probe_face(video)
    fps = float(info.fps)
    mel = log_mel(load_audio(video))
    tracker = FaceTracker(fps)
    mels, faces = [], []
    for index, frame in enumerate(iter_video_frames(video)):
        points = tracker(frame)
        box = face_box(points, frame.shape) if points is not None else None
        if box is not None:
            m, f = wav2lip_inputs(frame, box, mel, index, fps, size, MEL_STEPS)
            mels.append(m)
            faces.append(f)
        if len(mels) == limit:
            break
    if len(mels) < 4:
        raise EdgeRetalkError(f"{video}: too few frames with a face for calibration ({len(mels)})")
    return np.stack(mels), np.stack(faces)
