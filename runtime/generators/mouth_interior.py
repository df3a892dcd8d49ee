"""The inside of an open mouth, taken from the face's own open mouth: real teeth instead of a blur.

The mouth renderer paints the cavity soft (a pink blur where teeth should be). Where the face has
shown its mouth open (the photo, or a frame of the video), that frame's inner mouth is kept as
an exemplar, in the renderer's crop. A target mouth is then filled from it point by point: each
pixel keeps its distance below the upper inner lip (upper teeth hang from the upper lip and jaw)
or above the lower inner lip (lower teeth stand on the lower lip), whichever is nearer, at the
same fraction of the way from one mouth corner to the other. A mouth that opens less hides part
of the teeth behind the lips; where one opens wider than the exemplar, the middle, further from
both lips than the exemplar shows, stays the renderer's painted cavity.

A face that never showed its mouth open (most portraits) gets a drawn exemplar instead
(`MouthInterior.drawn`): upper teeth hanging from the upper lip, lower teeth on the lower lip, a
tongue and a dark cavity, in colours measured from the open mouths of the shared clips relative
to each speaker's skin, so they take the new face's colouring and lighting. Any open mouth the
face shows later replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..audio.lip_shape import shape_opening
from ..face.frame import CropBox, apply
from ..face.landmarks import LOWER_INNER_LIP, SHAPE_POINTS, UPPER_INNER_LIP
from .painted import polygon_mask
from .render_inputs import INNER_OUTLINE, OUTER_OUTLINE

OPEN_ENOUGH = 0.08
"""Inner-lip gap (inter-ocular units, canonical frame) from which a face's mouth shows its teeth:
half a typical speaker's widest opening in the shared clips (0.16), a few crop pixels."""
FADE_PIXELS = 2.0
"""Where the target opens wider than the exemplar, the exemplar fades into the painting over this
many crop pixels."""
SWITCH_MARGIN = 1.25
"""A later exemplar replaces the current one only if its mouth opens this much wider (no flicker
between near-equal frames)."""
TEETH_OVER_SKIN = np.array([1.59, 1.41, 1.22], np.float32)
CAVITY_OVER_SKIN = np.array([0.08, 0.15, 0.36], np.float32)
TONGUE_OVER_SKIN = np.array([0.73, 0.68, 0.80], np.float32)
"""Colours inside an open mouth over the skin colour around the lips (BGR), medians over the
widest-open frames of the shared clips' recordings (`training/mouth_interior.py`): teeth (the
brightest tenth of the inside, 144 frames where teeth show), cavity (the darkest sixth, 191
frames), tongue (the lower middle where neither, 177 frames)."""
UPPER_TEETH = 0.13
LOWER_TEETH = 0.07
"""Visible height of the upper and lower front teeth, in mouth widths (incisors about 10 mm tall
in a 50 mm wide mouth, partly under the lips)."""
TOOTH_EDGES = (0.0, 0.085, 0.155, 0.225, 0.29, 0.35)
"""Boundaries between the teeth, in mouth widths from the middle: central and lateral incisors,
canines, premolars."""
UPPER = [SHAPE_POINTS.index(p) for p in UPPER_INNER_LIP]
LOWER = [SHAPE_POINTS.index(p) for p in LOWER_INNER_LIP]


def _curves(xy: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heights of the upper and lower inner lip at columns `x` (crop pixels)."""
    upper, lower = xy[UPPER], xy[LOWER]
    upper, lower = upper[np.argsort(upper[:, 0])], lower[np.argsort(lower[:, 0])]
    return np.interp(x, upper[:, 0], upper[:, 1]), np.interp(x, lower[:, 0], lower[:, 1])


@dataclass
class MouthInterior:
    """An exemplar open mouth: the crop it was seen in and its lip shape there (crop pixels)."""

    crop: np.ndarray
    xy: np.ndarray
    opening: float

    @classmethod
    def of(cls, crop: np.ndarray, shape: np.ndarray, box: CropBox) -> MouthInterior | None:
        """The exemplar in `crop` (the face's renderer crop, kept as it is: never written to)
        with canonical lip `shape`, or None when its mouth is too closed to show anything inside."""
        opening = float(shape_opening(shape))
        if opening < OPEN_ENOUGH:
            return None
        return cls(crop, apply(box.from_canonical(), shape.astype(np.float64)), opening)

    @classmethod
    def drawn(cls, crop: np.ndarray, shape: np.ndarray, box: CropBox) -> MouthInterior:
        """A drawn exemplar for the face in `crop` (canonical lip `shape`), at its mouth's width
        and in its skin's colouring: teeth rows with gaps, shaded towards the corners, a tongue
        and a dark cavity (teeth neutral; the rest as colourful as the skin, so grey in a grey
        photo). Its lips lie far apart, so it fills a mouth opened any amount; its
        opening is 0, so any open mouth the face shows replaces it."""
        xy = apply(box.from_canonical(), shape.astype(np.float64))
        width = max(float(abs(xy[UPPER[-1], 0] - xy[UPPER[0], 0])), 8.0)
        margin, depth = 4, int(np.ceil(2 * width))
        height, columns = depth + 1, int(np.ceil(width)) + 2 * margin
        across = (np.arange(columns, dtype=np.float32) - margin) / width - 0.5
        side = np.abs(across)[None, :]
        rows = np.arange(height, dtype=np.float32)[:, None]
        edges = np.concatenate([-np.array(TOOTH_EDGES[::-1]), TOOTH_EDGES[1:]]).astype(np.float32)
        gap = np.clip(np.abs(across[:, None] - edges[None]).min(axis=1) * width / 0.8, 0.45, 1.0)[None, :]
        shade = np.clip(1 - 0.9 * (side / 0.4) ** 2, 0, 1)
        upper = (rows < UPPER_TEETH * width * (1 - 0.6 * side)) & (side < 0.4)
        lower = (depth - rows < LOWER_TEETH * width * (1 - side)) & (side < 0.3)
        tongue = ((across[None, :] / 0.3) ** 2 + ((depth - rows - LOWER_TEETH * width) / (0.09 * width)) ** 2) < 1
        light = np.where(upper, shade * gap * np.where(rows < 1, 0.7, 1.0), 0.0)
        light = np.maximum(light, np.where(lower, 0.75 * shade * gap, 0.0))
        skin = skin_colour(crop, xy)
        tint = np.clip((skin.max() - skin.min()) / max(float(skin.max()), 1.0) / 0.25, 0.0, 1.0)
        teeth = (TEETH_OVER_SKIN * skin).mean() * (0.75 + 0.25 * skin / max(float(skin.mean()), 1.0))
        inside = np.where(tongue[..., None], TONGUE_OVER_SKIN, CAVITY_OVER_SKIN) * skin
        inside = tint * inside + (1 - tint) * inside.mean(axis=-1, keepdims=True)
        colour = cv2.GaussianBlur(inside * (1 - light[..., None]) + teeth * light[..., None], (0, 0), 0.6)
        image = np.clip(colour, 0, 255).round().astype(np.uint8)
        lips = np.zeros_like(xy)
        lips[UPPER, 0] = lips[LOWER, 0] = np.linspace(margin, margin + width, len(UPPER))
        lips[LOWER, 1] = depth
        return cls(image, lips, 0.0)

    def better(self, other: MouthInterior | None) -> MouthInterior:
        """The exemplar to keep: `other` only if its mouth opens clearly wider."""
        return other if other is not None and other.opening > SWITCH_MARGIN * self.opening else self

    def fill(self, canvas: np.ndarray, target: np.ndarray, box: CropBox) -> np.ndarray:
        """`canvas` (the renderer's crop, BGR uint8) with the inside of the canonical lip shape
        `target` filled from the exemplar, soft-edged."""
        xy = apply(box.from_canonical(), target.astype(np.float64))
        inner = xy[INNER_OUTLINE]
        x0, y0 = np.floor(inner.min(axis=0)).astype(int) - 1
        x1, y1 = np.ceil(inner.max(axis=0)).astype(int) + 2
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, canvas.shape[1]), min(y1, canvas.shape[0])
        if x1 - x0 < 2 or y1 - y0 < 2:
            return canvas
        gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
        left, right = xy[UPPER[0], 0], xy[UPPER[-1], 0]
        own_left, own_right = self.xy[UPPER[0], 0], self.xy[UPPER[-1], 0]
        across = (gx - left) / max(right - left, 1e-6)
        source_x = own_left + across * (own_right - own_left)
        top, bottom = _curves(xy, gx[0])
        own_top, own_bottom = _curves(self.xy, source_x.ravel())
        own_top, own_bottom = own_top.reshape(gx.shape), own_bottom.reshape(gx.shape)
        below_top, above_bottom = gy - top[None], bottom[None] - gy
        source_y = np.where(below_top <= above_bottom, own_top + below_top, own_bottom - above_bottom)
        beyond = np.minimum(below_top, above_bottom) - (own_bottom - own_top) / 2
        shown = np.clip(0.5 - beyond / FADE_PIXELS, 0.0, 1.0)
        filled = cv2.remap(self.crop, source_x.astype(np.float32), source_y.astype(np.float32), cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        alpha = (polygon_mask(canvas.shape[:2], inner, 0.7)[y0:y1, x0:x1] * shown)[..., None]
        out = canvas.copy()
        out[y0:y1, x0:x1] = (out[y0:y1, x0:x1] * (1 - alpha) + filled * alpha).round().astype(np.uint8)
        return out


def skin_colour(crop: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """The median colour (BGR) of the skin in a band around the outer lips of `xy` (crop pixels)."""
    lips = polygon_mask(crop.shape[:2], xy[OUTER_OUTLINE], 0.0) > 0.5
    band = cv2.dilate(lips.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    pixels = crop[band & ~lips]
    return np.median(pixels, axis=0).astype(np.float32) if len(pixels) else np.full(3, 160, np.float32)
