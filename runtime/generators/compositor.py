"""The lip region and its feathered paste-back: pixels outside the region are never touched."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..io.timing import stage
from ..face.landmarks import CHIN, FACE_OVAL, MOUTH_CORNERS, NOSE_BASE, face_height

MOUTH_REGION_WIDTH = 0.85
REGION_ABOVE = 0.85
REGION_BELOW = 0.97
FEATHER = 0.06


@dataclass(frozen=True)
class Region:
    """Where a frame may change: a box (x0, y0, x1, y1) and an alpha mask over that box."""

    box: tuple[int, int, int, int]
    alpha: np.ndarray


def face_axes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along the face's horizontal (eye line) and vertical (down) directions."""
    across = points[263, :2] - points[33, :2]
    across = across / max(np.linalg.norm(across), 1e-6)
    return across, np.array([-across[1], across[0]])


def mouth_region_outline(points: np.ndarray) -> np.ndarray:
    """Polygon covering lips, mouth and the chin below them: from under the nose to the chin,
    a little wider than the mouth, clipped to the face outline."""
    across, down = face_axes(points)
    centre = points[list(MOUTH_CORNERS), :2].mean(axis=0)
    half_width = np.linalg.norm(points[MOUTH_CORNERS[0], :2] - points[MOUTH_CORNERS[1], :2]) * MOUTH_REGION_WIDTH
    above = -float(np.min((points[list(NOSE_BASE), :2] - centre) @ down)) * REGION_ABOVE
    below = float((points[CHIN, :2] - centre) @ down) * REGION_BELOW
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    vertical = np.where(np.sin(angles) < 0, above, below) * np.sin(angles)
    ellipse = centre + np.outer(half_width * np.cos(angles), across) + np.outer(vertical, down)
    oval = points[list(FACE_OVAL), :2]
    clipped = cv2.intersectConvexConvex(ellipse.astype(np.float32), cv2.convexHull(oval.astype(np.float32)))[1]
    return (clipped.reshape(-1, 2) if clipped is not None and len(clipped) >= 3 else ellipse).astype(np.float32)


def mouth_region(points: np.ndarray, frame_shape: tuple[int, ...]) -> Region | None:
    """Feathered alpha of the lip region in a tight box, or None if it falls outside the frame."""
    outline = mouth_region_outline(points)
    feather = max(1.0, FEATHER * float(face_height(points)))
    height, width = frame_shape[:2]
    margin = 2
    x0, y0 = np.floor(outline.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(outline.max(axis=0)).astype(int) + margin
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round((outline - [x0, y0]) * 16).astype(np.int32)], 255, cv2.LINE_8, shift=4)
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, 3) / feather
    ramp = np.clip(inside, 0.0, 1.0)
    return Region((x0, y0, x1, y1), (ramp * ramp * (3 - 2 * ramp)).astype(np.float32))


def paste(frame: np.ndarray, patch: np.ndarray, region: Region) -> np.ndarray:
    """Blend `patch` (the region's box, BGR float or uint8) into a copy of `frame` through its alpha."""
    with stage("blend"):
        return _paste(frame, patch, region)


def _paste(frame: np.ndarray, patch: np.ndarray, region: Region) -> np.ndarray:
    x0, y0, x1, y1 = region.box
    out = frame.copy()
    if patch.dtype != np.uint8:
        patch = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
    alpha = np.asarray(region.alpha, np.float32)
    # Where alpha is 0 the weighted mean gives back the frame's own value exactly (0.99999 x v rounds to v).
    out[y0:y1, x0:x1] = cv2.blendLinear(np.ascontiguousarray(patch), np.ascontiguousarray(frame[y0:y1, x0:x1]),
                                        alpha, 1.0 - alpha)
    return out
