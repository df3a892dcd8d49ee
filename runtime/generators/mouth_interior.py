"""The inside of an open mouth, taken from the face's own open mouth: real teeth instead of a blur.

The mouth renderer paints the cavity soft (a pink blur where teeth should be). Where the face has
shown its mouth open (the photo, or a frame of the video), that frame's inner mouth is kept as
an exemplar, in the renderer's crop. A target mouth is then filled from it point by point: each
pixel keeps its distance below the upper inner lip (upper teeth hang from the upper lip and jaw)
or above the lower inner lip (lower teeth stand on the lower lip), whichever is nearer, at the
same fraction of the way from one mouth corner to the other. A mouth that opens less hides part
of the teeth behind the lips; where one opens wider than the exemplar, the middle, further from
both lips than the exemplar shows, stays the renderer's painted cavity.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..audio.lip_shape import shape_opening
from ..face.frame import CropBox
from ..face.landmarks import LOWER_INNER_LIP, SHAPE_POINTS, UPPER_INNER_LIP
from ..quality.metrics import apply
from .painted import polygon_mask
from .render_inputs import INNER_OUTLINE

OPEN_ENOUGH = 0.08
"""Inner-lip gap (inter-ocular units, canonical frame) from which a face's mouth shows its teeth:
half a typical speaker's widest opening in the shared clips (0.16), a few crop pixels."""
FADE_PIXELS = 2.0
"""Where the target opens wider than the exemplar, the exemplar fades into the painting over this
many crop pixels."""
SWITCH_MARGIN = 1.25
"""A later exemplar replaces the current one only if its mouth opens this much wider (no flicker
between near-equal frames)."""
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
