"""What the learned mouth renderer sees, built the same way in training and at run time.

All in the renderer's crop (a `CropBox` of the canonical face frame): the frame with the area
around its lips blanked out (around both its own lips and the target's, so no trace of the old
mouth is left), that area as a soft mask, a reference crop of the same face, and the target lip
shape drawn as three channels (the open mouth filled, the lip outlines, the lower face line).
The rest of the face stays real: the network only repaints the mask, and its output is blended
into the frame through it.
The network sees the rows `ROWS` of the crop: from the nose down, past the chin.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..face.frame import CropBox, apply
from ..face.landmarks import INNER_LIP_OUTLINE, OUTER_LIP_OUTLINE, SHAPE_POINTS

ROWS = slice(24, 120)
MASK_GROWTH = 0.1
JAW_ROOM = 0.08
MASK_SOFTNESS = 0.025
LINE_WIDTH = 0.012
_index = {p: i for i, p in enumerate(SHAPE_POINTS)}
INNER_OUTLINE = [_index[p] for p in INNER_LIP_OUTLINE]
OUTER_OUTLINE = [_index[p] for p in OUTER_LIP_OUTLINE]
LOWER_FACE_LINE = [_index[p] for p in (148, 176, 152, 400, 377)]


def _pixels(points: np.ndarray) -> np.ndarray:
    return np.round(points * 16).astype(np.int32)


def shape_raster(shape: np.ndarray, crop: CropBox) -> np.ndarray:
    """A canonical lip shape (P, 2) drawn in the crop: (3, rows, width) float32 in [0, 1]."""
    xy = apply(crop.from_canonical(), shape.astype(np.float64))
    width = max(1, int(round(LINE_WIDTH * crop.size / crop.side * 2)))
    planes = np.zeros((3, crop.size, crop.size), np.uint8)
    cv2.fillPoly(planes[0], [_pixels(xy[INNER_OUTLINE])], 255, cv2.LINE_AA, shift=4)
    cv2.polylines(planes[1], [_pixels(xy[OUTER_OUTLINE]), _pixels(xy[INNER_OUTLINE])], True, 255, width,
                  cv2.LINE_AA, shift=4)
    cv2.polylines(planes[2], [_pixels(xy[LOWER_FACE_LINE])], False, 255, width, cv2.LINE_AA, shift=4)
    return planes[:, ROWS].astype(np.float32) / 255.0


def repaint_mask(shapes: list[np.ndarray], crop: CropBox) -> np.ndarray:
    """Where the renderer paints, in the crop: around the lips of every given canonical shape (the
    frame's own and the target), reaching a little further down for the jaw; soft-edged,
    (rows, width) in [0, 1]."""
    unit = crop.size / crop.side
    outlines = [apply(crop.from_canonical(), shape[OUTER_OUTLINE].astype(np.float64)) for shape in shapes]
    points = np.concatenate(outlines + [o + (0.0, JAW_ROOM * unit) for o in outlines])
    mask = np.zeros((crop.size, crop.size), np.uint8)
    cv2.fillConvexPoly(mask, _pixels(cv2.convexHull(points.astype(np.float32)).reshape(-1, 2)), 255, cv2.LINE_AA,
                       shift=4)
    grow = max(1, int(round(MASK_GROWTH * unit)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), MASK_SOFTNESS * unit)
    return soft[ROWS]


def network_input(crop_bgr: np.ndarray, mask: np.ndarray, reference_bgr: np.ndarray, raster: np.ndarray) -> np.ndarray:
    """The renderer's input (10, rows, width): masked crop, mask, reference, shape raster; BGR in [0, 1]."""
    face = crop_bgr[ROWS].astype(np.float32).transpose(2, 0, 1) / 255.0
    reference = reference_bgr[ROWS].astype(np.float32).transpose(2, 0, 1) / 255.0
    return np.concatenate([face * (1 - mask), mask[None], reference, raster]).astype(np.float32)


def blend_output(network_input_: np.ndarray, output: np.ndarray) -> np.ndarray:
    """The renderer's output inside its mask, the input's own pixels outside: (3, rows, width)."""
    mask = network_input_[3:4]
    masked_face = network_input_[:3]
    return mask * output + masked_face



def crop_of(frame: np.ndarray, points: np.ndarray, template: np.ndarray, crop: CropBox) -> tuple[np.ndarray, np.ndarray]:
    """The face's crop (size x size, BGR uint8) and the matrix from image to crop pixels."""
    to_crop = crop.from_image(points, template)
    image = cv2.warpAffine(frame, to_crop, (crop.size, crop.size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    return image, to_crop
