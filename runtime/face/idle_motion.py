"""Life for a still photo: the idle loop of a photo avatar blinks at natural intervals and moves
its head slightly (a slow sway and breathing), all inside a feathered face region, so a kiosk
avatar made from one picture does not stare frozen. Every motion completes whole cycles over the
loop, so it repeats without a jump; the face-mesh points move with the picture.
"""

from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np

from .landmarks import CHIN, FACE_OVAL, FOREHEAD, face_height

RIGHT_EYE = (33, (246, 161, 160, 159, 158, 157, 173), (7, 163, 144, 145, 153, 154, 155), 133)
LEFT_EYE = (263, (466, 388, 387, 386, 385, 384, 398), (249, 390, 373, 374, 380, 381, 382), 362)
BLINK_CLOSURE = (0.35, 0.8, 1.0, 1.0, 0.9, 0.6, 0.3, 0.1)  # per frame at 25 fps: quick to close, shut for
# two frames (80 ms, so one frame dropped in live mode cannot hide a blink), slower to open
BLINK_GAP_SECONDS = (2.5, 5.5)
LID_MEETS_AT = 0.88  # the closed lids meet this far down the open eye
SWAY_DEGREES = 0.8
SHIFT_OF_FACE = 0.006
BREATH_SCALE = 0.004


def blink_track(frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Eye closure (0 open .. 1 shut) per frame: blinks a few seconds apart, none across the wrap."""
    closure = np.zeros(frames, np.float32)
    profile = np.interp(np.arange(0, len(BLINK_CLOSURE), 25.0 / fps), np.arange(len(BLINK_CLOSURE)), BLINK_CLOSURE)
    start = rng.uniform(0.5, 2.0) * fps
    while start + profile.size < frames:
        closure[int(start):int(start) + profile.size] = profile
        start += rng.uniform(*BLINK_GAP_SECONDS) * fps
    return closure


def _lid(points: np.ndarray, corner_a: int, lid: tuple[int, ...], corner_b: int, columns: np.ndarray) -> np.ndarray:
    """The lid's y at each of `columns`, along the polyline corner, lid points, corner."""
    chain = points[[corner_a, *lid, corner_b], :2]
    order = np.argsort(chain[:, 0])
    return np.interp(columns, chain[order, 0], chain[order, 1])


def close_eyes(image: np.ndarray, points: np.ndarray, closure: float) -> tuple[np.ndarray, np.ndarray]:
    """`image` with both upper lids lowered by `closure` (1 = shut), and its points moved to match.

    Per column, the skin between the brow and the upper lid is stretched down over the eye and
    the eye itself is squeezed towards the lower lid: a vertical remap that is the identity at the
    eye corners, above the brow and below the lower lid, so nothing else moves."""
    if closure <= 0:
        return image, points
    out, moved = image.copy(), points.copy()
    height, width = image.shape[:2]
    for outer, upper, lower, inner in (RIGHT_EYE, LEFT_EYE):
        x0, x1 = sorted((points[outer, 0], points[inner, 0]))
        eye_width = x1 - x0
        left, right = int(max(0, np.floor(x0))), int(min(width - 1, np.ceil(x1)))
        if right - left < 4:
            continue
        columns = np.arange(left, right + 1, dtype=np.float32)
        top = _lid(points, outer, upper, inner, columns)
        bottom = _lid(points, outer, lower, inner, columns)
        bottom = np.maximum(bottom, top)
        lowered = top + closure * LID_MEETS_AT * (bottom - top)
        brow = top - 0.45 * eye_width
        row0, row1 = int(max(0, np.floor(brow.min()))), int(min(height - 1, np.ceil(bottom.max()) + 1))
        rows = np.arange(row0, row1 + 1, dtype=np.float32)[:, None]
        source = np.where(rows <= lowered,
                          brow + (rows - brow) * (top - brow) / np.maximum(lowered - brow, 1e-3),
                          top + (rows - lowered) * (bottom - top) / np.maximum(bottom - lowered, 1e-3))
        source = np.where((rows < brow) | (rows > bottom), rows, source).astype(np.float32)
        map_x = np.broadcast_to(columns[None, :], source.shape).astype(np.float32)
        patch = cv2.remap(image, map_x, source, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[row0:row1 + 1, left:right + 1] = patch
        lid_x = points[list(upper), 0]
        lid_top = _lid(points, outer, upper, inner, lid_x)
        lid_bottom = _lid(points, outer, lower, inner, lid_x)
        moved[list(upper), 1] = lid_top + closure * LID_MEETS_AT * np.maximum(lid_bottom - lid_top, 0)
    return out, moved


def _face_mask(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """1 over the face and hair line, fading to 0 well before the image's other parts."""
    mask = np.zeros(image.shape[:2], np.float32)
    oval = points[list(FACE_OVAL), :2]
    centre = oval.mean(axis=0)
    cv2.fillConvexPoly(mask, np.round(centre + 1.25 * (oval - centre)).astype(np.int32), 1.0)
    size = float(face_height(points))
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.12 * size))[..., None]


def animate_photo(image: np.ndarray, points: np.ndarray, frames: int, fps: float,
                  seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`frames` frames (and their mesh points) of a photo coming to life, looping seamlessly."""
    rng = np.random.default_rng(seed)
    closure = blink_track(frames, fps, rng)
    phases = rng.uniform(0, 2 * np.pi, 4)
    mask = _face_mask(image, points)
    rows, columns = np.nonzero(mask[..., 0] > 1e-3)
    top, bottom, left, right = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
    weight = mask[top:bottom, left:right]
    size = float(face_height(points))
    pivot = points[CHIN, :2] + 0.2 * (points[CHIN, :2] - points[FOREHEAD, :2])  # about the neck
    for k in range(frames):
        t = 2 * np.pi * k / frames
        angle = SWAY_DEGREES * (0.7 * np.sin(t + phases[0]) + 0.3 * np.sin(3 * t + phases[1]))
        scale = 1 + BREATH_SCALE * np.sin(3 * t + phases[2])
        matrix = cv2.getRotationMatrix2D((float(pivot[0]), float(pivot[1])), angle, scale)
        matrix[0, 2] += SHIFT_OF_FACE * size * np.sin(2 * t + phases[3])
        blinked, moved = close_eyes(image, points, float(closure[k]))
        into_region = matrix - [[0, 0, left], [0, 0, top]]  # the face region only: a 4k photo stays quick
        warped = cv2.warpAffine(blinked, into_region, (right - left, bottom - top), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
        frame = image.copy()
        region = frame[top:bottom, left:right]
        region[:] = (weight * warped + (1 - weight) * region).round().clip(0, 255).astype(np.uint8)
        placed = moved.copy()
        placed[:, :2] = moved[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        yield frame, placed
