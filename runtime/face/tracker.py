"""Face tracking: MediaPipe face detector + 468-point face mesh, with temporal smoothing.

Detection runs on the first frame and whenever the mesh loses the face; otherwise the next
region of interest comes from the previous frame's landmarks. Landmarks are smoothed with a
One Euro filter (in face-height units) so a still face gives a still mouth.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ..models import model_path
from ..engines.litert import LiteRTEngine
from .landmarks import EYE_OUTER_CORNERS, SHAPE_POINTS, face_height

log = logging.getLogger(__name__)

MESH_SIZE = 192
ROI_SCALE = 1.5
PRESENCE_THRESHOLD = 0.5
DETECTION_THRESHOLD = 0.6


@dataclass(frozen=True)
class DetectorSpec:
    """A BlazeFace variant: model file, square input size and SSD anchor strides."""

    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_layer: int


SHORT_RANGE = DetectorSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2)
FULL_RANGE = DetectorSpec("face_detection_full_range.tflite", 192, (4,), 1)


@lru_cache(maxsize=None)
def _anchors(spec: DetectorSpec) -> np.ndarray:
    """SSD anchor centres (x, y) in [0, 1]; layers of equal stride share one grid."""
    centres = []
    layer = 0
    while layer < len(spec.strides):
        stride = spec.strides[layer]
        count = 0
        while layer < len(spec.strides) and spec.strides[layer] == stride:
            count += spec.anchors_per_layer
            layer += 1
        grid = spec.size // stride
        ys, xs = np.mgrid[0:grid, 0:grid]
        cell = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(cell, count, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class Detection:
    """A face box and its two eye keypoints, in image pixels."""

    box: np.ndarray
    right_eye: np.ndarray
    left_eye: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])


class FaceDetector:
    """BlazeFace short-range, then full-range for small or distant faces."""

    def __init__(self, threads: int = 1):
        self._models = [(spec, LiteRTEngine(model_path(spec.file), threads)) for spec in (SHORT_RANGE, FULL_RANGE)]

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        """All faces found by the first model that finds any, largest first."""
        for spec, engine in self._models:
            faces = self._run(spec, engine, frame_bgr)
            if faces:
                return sorted(faces, key=lambda d: d.area, reverse=True)
        return []

    @staticmethod
    def _run(spec: DetectorSpec, engine: LiteRTEngine, frame_bgr: np.ndarray) -> list[Detection]:
        height, width = frame_bgr.shape[:2]
        side = max(height, width)
        pad_x, pad_y = (side - width) / 2, (side - height) / 2
        matrix = np.float32([[spec.size / side, 0, pad_x * spec.size / side],
                             [0, spec.size / side, pad_y * spec.size / side]])
        square = cv2.warpAffine(frame_bgr, matrix, (spec.size, spec.size), flags=cv2.INTER_AREA)
        tensor = cv2.cvtColor(square, cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0
        outputs = list(engine.run({"input": tensor[None]}).values())
        raw = next(o for o in outputs if o.shape[-1] == 16)[0]
        logits = next(o for o in outputs if o.shape[-1] == 1)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
        keep = np.nonzero(scores > DETECTION_THRESHOLD)[0]
        if keep.size == 0:
            return []
        anchors = _anchors(spec)[keep]
        raw = raw[keep] / spec.size
        centres = raw[:, 0:2] + anchors
        sizes = raw[:, 2:4]
        eyes = raw[:, 4:8].reshape(-1, 2, 2) + anchors[:, None, :]
        to_pixels = lambda p: p * side - np.array([pad_x, pad_y])  # noqa: E731
        boxes = np.concatenate([to_pixels(centres - sizes / 2), sizes * side], axis=1)
        order = cv2.dnn.NMSBoxes(boxes.tolist(), scores[keep].tolist(), DETECTION_THRESHOLD, 0.3)
        return [Detection(boxes[i], to_pixels(eyes[i, 0]), to_pixels(eyes[i, 1]), float(scores[keep][i]))
                for i in np.asarray(order).reshape(-1)]


@dataclass(frozen=True)
class Roi:
    """A rotated square region: centre (x, y), side in pixels, rotation in radians."""

    centre: np.ndarray
    side: float
    angle: float

    def to_image(self, size: int) -> np.ndarray:
        """2x3 affine matrix from crop pixels (size x size) to image pixels."""
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        scale = self.side / size
        rotation = np.array([[cos, -sin], [sin, cos]]) * scale
        offset = self.centre - rotation @ np.array([size / 2, size / 2])
        return np.hstack([rotation, offset[:, None]]).astype(np.float32)


def roi_from_detection(face: Detection) -> Roi:
    """Square region around a detected face, rotated so the eyes are level."""
    delta = face.left_eye - face.right_eye
    centre = face.box[:2] + face.box[2:] / 2
    return Roi(centre, float(max(face.box[2:]) * ROI_SCALE), float(np.arctan2(delta[1], delta[0])))


def roi_from_landmarks(points: np.ndarray) -> Roi:
    """Square region around the previous frame's landmarks, rotated so the eyes are level."""
    delta = points[EYE_OUTER_CORNERS[1], :2] - points[EYE_OUTER_CORNERS[0], :2]
    angle = float(np.arctan2(delta[1], delta[0]))
    cos, sin = np.cos(angle), np.sin(angle)
    unrotate = np.array([[cos, sin], [-sin, cos]])
    aligned = points[:, :2] @ unrotate.T
    low, high = aligned.min(axis=0), aligned.max(axis=0)
    centre = unrotate.T @ ((low + high) / 2)
    return Roi(centre, float(max(high - low) * ROI_SCALE), angle)


class FaceMesh:
    """MediaPipe's 468-point face mesh on a rotated square crop."""

    def __init__(self, threads: int = 1):
        self._engine = LiteRTEngine(model_path("face_landmark.tflite"), threads)

    def landmarks(self, frame_bgr: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
        """(468, 3) landmarks in image pixels (z in the same scale) and the face-presence score."""
        to_image = roi.to_image(MESH_SIZE)
        crop = cv2.warpAffine(frame_bgr, to_image, (MESH_SIZE, MESH_SIZE),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        tensor = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        outputs = self._engine.run({"input_1": tensor[None]})
        raw = next(o for o in outputs.values() if o.size == 468 * 3).reshape(468, 3)
        presence_logit = float(next(o for o in outputs.values() if o.size == 1).reshape(()))
        points = np.empty_like(raw)
        points[:, :2] = raw[:, :2] @ to_image[:, :2].T + to_image[:, 2]
        points[:, 2] = raw[:, 2] * roi.side / MESH_SIZE
        return points, 1.0 / (1.0 + np.exp(-presence_logit))


class OneEuroFilter:
    """One Euro low-pass filter over an array of points: steady when still, quick when moving."""

    def __init__(self, fps: float, min_cutoff: float = 1.5, beta: float = 8.0, d_cutoff: float = 1.0):
        self.period = 1.0 / fps
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / self.period)

    def reset(self) -> None:
        self._value = self._speed = None

    def __call__(self, value: np.ndarray, unit: float) -> np.ndarray:
        """Filter `value`; `unit` (e.g. the face height) makes speeds scale-free."""
        if self._value is None:
            self._value, self._speed = value.copy(), np.zeros_like(value)
            return value
        speed = (value - self._value) / (self.period * unit)
        self._speed = self._speed + self._alpha(self.d_cutoff) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        self._value = self._value + self._alpha(cutoff) * (value - self._value)
        return self._value


MOUTH_POINTS = list(SHAPE_POINTS)
MOUTH_FILTER = (8.0, 40.0)
"""The lips and jaw move fast in speech: the face's filter would leave them up to 10 px behind an
opening mouth (and the warp that moves them would then leave a gap), so they get a lighter one."""


class FaceTracker:
    """Landmarks of the largest face, frame after frame; None for frames without a face."""

    def __init__(self, fps: float, threads: int = 1, smooth: bool = True):
        self._detector = FaceDetector(threads)
        self._mesh = FaceMesh(threads)
        self._filter = OneEuroFilter(fps) if smooth else None
        self._mouth_filter = OneEuroFilter(fps, *MOUTH_FILTER) if smooth else None
        self._previous: np.ndarray | None = None

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray | None:
        """(468, 3) landmarks in image pixels, or None if the frame shows no face."""
        points = None
        if self._previous is not None:
            points, presence = self._mesh.landmarks(frame_bgr, roi_from_landmarks(self._previous))
            if presence < PRESENCE_THRESHOLD:
                points = None
        if points is None:
            points = self._detect(frame_bgr)
        if points is None:
            self._previous = None
            if self._filter is not None:
                self._filter.reset()
                self._mouth_filter.reset()
            return None
        self._previous = points
        if self._filter is None:
            return points
        unit = float(face_height(points))
        smoothed = self._filter(points, unit).copy()
        smoothed[MOUTH_POINTS] = self._mouth_filter(points[MOUTH_POINTS], unit)
        return smoothed

    def _detect(self, frame_bgr: np.ndarray) -> np.ndarray | None:
        faces = self._detector.detect(frame_bgr)
        if not faces:
            return None
        points, presence = self._mesh.landmarks(frame_bgr, roi_from_detection(faces[0]))
        if presence < PRESENCE_THRESHOLD:
            return None
        refined, presence = self._mesh.landmarks(frame_bgr, roi_from_landmarks(points))
        return refined if presence >= PRESENCE_THRESHOLD else None
