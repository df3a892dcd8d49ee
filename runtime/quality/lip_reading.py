"""The mouth as drawn in a video, read back frame by frame: does it close on m/b/p?

Each frame is found on its own (detector, then the mesh twice), not tracked: the tracker's
smoothing lags behind a one-frame closure and its crop follows the previous frame's mouth, which
moves the mesh's reading of the lips by about 0.01 inter-ocular distances.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..audio.lip_shape import canonical_shape, shape_opening
from ..audio.visemes import Phone, mouth_width, viseme_of
from ..engines.manifest import load_manifest
from ..face.tracker import FaceDetector, FaceMesh, roi_from_detection, roi_from_landmarks
from ..generators.learned import SHAPE_MODEL
from ..io.media import iter_video_frames
from ..models import model_path

CLOSED_WITHIN = 0.015
"""Lips count as closed when their inner gap is within this many inter-ocular distances of the
face's closed mouth as drawn through a second of silence: the mesh reads a closed mouth as 0.015
to 0.04, not 0, and the very same closed target drawn at different moments of one run read
0.013 to 0.03 on the demo portrait."""


def lip_measures(video: Path) -> tuple[np.ndarray, np.ndarray]:
    """Inner-lip gap and mouth width of every frame (inter-ocular units; NaN without a face)."""
    detector, mesh = FaceDetector(), FaceMesh()
    template = np.asarray(load_manifest(model_path(SHAPE_MODEL))[0].metadata["template"])
    gaps, widths = [], []
    for frame in iter_video_frames(video):
        faces = detector.detect(frame)
        shape = None
        if faces:
            rough = mesh.landmarks(frame, roi_from_detection(faces[0]))[0]
            shape = canonical_shape(mesh.landmarks(frame, roi_from_landmarks(rough))[0], template)
        gaps.append(np.nan if shape is None else shape_opening(shape))
        widths.append(np.nan if shape is None else mouth_width(shape))
    return np.array(gaps), np.array(widths)


def at_phones(values: np.ndarray, phones: Iterable[Phone], fps: float) -> dict[str, list[float]]:
    """Per viseme, `values` on the frame holding each of its phones' middle."""
    found: dict[str, list[float]] = {}
    for phone in phones:
        viseme, frame = viseme_of(phone.symbol), int((phone.start + phone.end) / 2 * fps)
        if viseme is not None and frame < len(values):
            found.setdefault(viseme, []).append(float(values[frame]))
    return found
