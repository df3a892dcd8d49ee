"""The painted lip generator: no network at all, landmark-driven (`--renderer painted`, the
fallback for the smallest boards; the learned generator is the default).

The audio gives a target mouth opening per frame (`audio.mouth_opening`). The face's own lips are moved
to that opening by a thin-plate-spline warp (lower lip and chin drop, upper lip lifts a little,
corners stay), the inside of the mouth is painted as a shaded cavity with upper teeth, and the
result is blended back through the feathered lip-region mask, so nothing outside it changes.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .compositor import Region, face_axes, mouth_region, mouth_region_outline, paste
from .options import RenderOptions
from ..face.landmarks import (
    CENTRAL_LOWER_INNER, CENTRAL_UPPER_INNER, INNER_LIP_OUTLINE, LOWER_INNER_LIP, LOWER_OUTER_LIP, MOUTH_CORNERS,
    UPPER_INNER_LIP, UPPER_OUTER_LIP, face_height,
)
from ..audio.mouth_opening import (CONTEXT_BEFORE, MouthModel, mel_features, predict_opening_z, samples_needed,
                                   silence_mask, smooth_latest, smooth_track)
from ..audio.streaming import Reader, RunningSpectrum, frame_mel
from ..audio.visemes import Phone

LOWER_SHARE = 0.7
CHIN_POINTS = {18: 0.68, 200: 0.62, 199: 0.5, 83: 0.55, 313: 0.55, 201: 0.4, 421: 0.4}
MAX_OPENING = 0.16
TEETH_FROM = 0.012
GRID_CELLS = 24


def _tps_backward_map(targets: np.ndarray, offsets: np.ndarray, query: np.ndarray, unit: float) -> np.ndarray:
    """Smooth displacement at `query` points interpolating `offsets` given at `targets` (thin-plate spline)."""
    ctrl = targets / unit
    pts = query / unit

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 1e-12)
        return 0.5 * d2 * np.log(d2)

    n = len(ctrl)
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = kernel(ctrl, ctrl) + 1e-4 * np.eye(n)
    system[:n, n] = system[n, :n] = 1.0
    system[:n, n + 1:] = ctrl
    system[n + 1:, :n] = ctrl.T
    rhs = np.zeros((n + 3, 2))
    rhs[:n] = offsets
    coef = np.linalg.solve(system, rhs)
    return kernel(pts, ctrl) @ coef[:n] + coef[n] + pts @ coef[n + 1:]


def polygon_mask(shape: tuple[int, int], polygon: np.ndarray, blur: float) -> np.ndarray:
    """A (soft-edged) filled polygon, (rows, columns) float32 in [0, 1]."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    out = mask.astype(np.float32) / 255.0
    return cv2.GaussianBlur(out, (0, 0), blur) if blur > 0.3 else out


def warp_lips(frame: np.ndarray, points: np.ndarray, region: Region, moved: dict[int, np.ndarray],
              upper_ids: list[int], lower_ids: list[int]) -> np.ndarray:
    """The lip region of `frame` (a `region.box`-sized patch) with the face's own lips moved so
    that each landmark in `moved` lands at its given position: one smooth warp for the upper lip
    (`upper_ids`), one for the lower lip and jaw (`lower_ids`), none at the region's edge."""
    map_x, map_y = lip_warp_maps(points, region, moved, upper_ids, lower_ids)
    return cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def lip_warp_maps(points: np.ndarray, region: Region, moved: dict[int, np.ndarray], upper_ids: list[int],
                  lower_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """`warp_lips`' backward maps: for each pixel of the region, where in the frame it comes from."""
    xy = points[:, :2].astype(np.float64)
    across, down = face_axes(points)
    unit = float(face_height(points))
    x0, y0 = region.box[:2]
    outline = mouth_region_outline(points).astype(np.float64)
    centre = np.mean([moved[i] for i in MOUTH_CORNERS], axis=0)
    half_width = max(np.linalg.norm(moved[MOUTH_CORNERS[0]] - moved[MOUTH_CORNERS[1]]) / 2, 1.0)

    def field(ids) -> tuple[np.ndarray, np.ndarray]:
        ids = list(dict.fromkeys(ids))
        targets = np.array([moved[i] for i in ids])
        ctrl = np.concatenate([targets, outline]) - [x0, y0]
        values = np.concatenate([xy[ids] - targets, np.zeros_like(outline)]) / unit
        return ctrl, values

    seam = np.array([(moved[a] + moved[b]) / 2 for a, b in zip(UPPER_INNER_LIP, LOWER_INNER_LIP)]) - [x0, y0]
    return _warp_maps(region, field(upper_ids), field(lower_ids), seam, centre - [x0, y0], across, down,
                      half_width, unit)


def _warp_maps(region: Region, upper: tuple[np.ndarray, np.ndarray], lower: tuple[np.ndarray, np.ndarray],
               seam: np.ndarray, centre: np.ndarray, across: np.ndarray, down: np.ndarray, half_width: float,
               unit: float) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps with one smooth field above the mouth line and one below it.

    The lips may part or meet, which one smooth field cannot do: it would smear the
    mouth's old inside across the new lips. The two fields meet sharply between the mouth
    corners and blend softly beyond them, where both fade to zero."""
    x0, y0, x1, y1 = region.box
    width, height = x1 - x0, y1 - y0
    step = max(2.0, max(width, height) / GRID_CELLS)
    gx = np.linspace(0, width - 1, int(np.ceil(width / step)) + 1)
    gy = np.linspace(0, height - 1, int(np.ceil(height / step)) + 1)
    grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)

    def dense(ctrl_values: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        offset = _tps_backward_map(*ctrl_values, grid, unit) * unit
        return cv2.resize(offset.reshape(len(gy), len(gx), 2).astype(np.float32), (width, height),
                          interpolation=cv2.INTER_LINEAR)

    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    u = (xs - centre[0]) * across[0] + (ys - centre[1]) * across[1]
    v = (xs - centre[0]) * down[0] + (ys - centre[1]) * down[1]
    seam_u, seam_v = (seam - centre) @ across, (seam - centre) @ down
    order = np.argsort(seam_u)
    line = np.interp(u, seam_u[order], seam_v[order])
    softness = 0.5 + np.maximum(np.abs(u) - half_width, 0.0)
    below = np.clip(0.5 + (v - line) / (2 * softness), 0.0, 1.0)[..., None]
    offset = dense(upper) * (1 - below) + dense(lower) * below
    offset *= (region.alpha > 0)[..., None]
    map_x = (xs + x0 + offset[..., 0]).astype(np.float32)
    map_y = (ys + y0 + offset[..., 1]).astype(np.float32)
    return map_x, map_y


class PaintedRenderer:
    """Moves one face's lips to a target opening and paints the mouth interior."""

    def __init__(self, options: RenderOptions | None = None):
        self.options = options or RenderOptions()

    def render(self, frame: np.ndarray, points: np.ndarray, opening: float) -> np.ndarray:
        """A copy of `frame` whose mouth opens by `opening` face heights (inner-lip gap)."""
        region = mouth_region(points, frame.shape)
        if region is None:
            return frame
        across, down = face_axes(points)
        unit = float(face_height(points))
        xy = points[:, :2].astype(np.float64)
        upper, lower = list(CENTRAL_UPPER_INNER), list(CENTRAL_LOWER_INNER)
        current_gap = max(0.0, float(((xy[lower] - xy[upper]) @ down).mean()))
        change = opening * unit - current_gap

        centre = xy[list(MOUTH_CORNERS)].mean(axis=0)
        half_width = max(np.linalg.norm(xy[MOUTH_CORNERS[0]] - xy[MOUTH_CORNERS[1]]) / 2, 1.0)

        def weight(indices) -> np.ndarray:
            u = ((xy[list(indices)] - centre) @ across) / half_width
            return np.clip(1.0 - u * u, 0.0, 1.0)[:, None]

        fixed = MOUTH_CORNERS + (UPPER_INNER_LIP[0], UPPER_INNER_LIP[-1])
        upper_ids = [i for i in dict.fromkeys(UPPER_OUTER_LIP + UPPER_INNER_LIP) if i not in fixed]
        lower_ids = [i for i in dict.fromkeys(LOWER_OUTER_LIP + LOWER_INNER_LIP) if i not in fixed]
        moved = {i: xy[i] for i in fixed}
        for i, w in zip(upper_ids, weight(upper_ids)):
            moved[i] = xy[i] - (1 - LOWER_SHARE) * change * w * down
        for i, w in zip(lower_ids, weight(lower_ids)):
            moved[i] = xy[i] + LOWER_SHARE * change * w * down
        for i, share in CHIN_POINTS.items():
            moved[i] = xy[i] + share * change * weight([i])[0] * down

        x0, y0 = region.box[:2]
        patch = warp_lips(frame, points, region, moved, upper_ids + list(fixed), lower_ids + list(CHIN_POINTS) + list(fixed))
        target_gap = opening * unit
        if target_gap > 0.004 * unit:
            inner = np.array([moved[i] for i in INNER_LIP_OUTLINE]) - [x0, y0]
            patch = self._paint_interior(frame, points, patch, inner, across, down, target_gap, unit)
        return paste(frame, patch, region)

    def _paint_interior(self, frame, points, patch, inner, across, down, gap, unit) -> np.ndarray:
        """Dark cavity inside the target inner-lip outline, upper teeth along the upper lip."""
        shape = patch.shape[:2]
        blur = max(0.5, unit / 400)
        cavity = polygon_mask(shape, inner, blur)
        lip_pixels = [frame[int(y), int(x)] for x, y in points[list(UPPER_OUTER_LIP + LOWER_OUTER_LIP), :2]
                      if 0 <= int(y) < frame.shape[0] and 0 <= int(x) < frame.shape[1]]
        lip_colour = np.median(np.asarray(lip_pixels, np.float32), axis=0) if lip_pixels else np.float32([60, 60, 120])
        depth = cv2.distanceTransform((cavity > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
        depth = np.clip(depth / max(gap * 0.5, 1.0), 0, 1)[..., None]
        interior = lip_colour * (0.32 - 0.2 * depth)

        upper_edge = inner[: len(UPPER_INNER_LIP)]
        if gap > TEETH_FROM * unit:
            central = upper_edge[1:-1]
            u = np.linspace(-1.0, 1.0, len(central))[:, None]
            teeth_height = min(0.42 * gap, 0.035 * unit)
            band = np.concatenate([central - 0.2 * teeth_height * down,
                                   (central + teeth_height * (1.0 - 0.55 * u * u) * down)[::-1]])
            teeth = polygon_mask(shape, band, blur) * cavity
            ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
            mid = central.mean(axis=0)
            span = max(np.linalg.norm(central[-1] - central[0]) / 2, 1.0)
            side = np.clip(np.abs((xs - mid[0]) * across[0] + (ys - mid[1]) * across[1]) / span, 0, 1)
            lip_line = np.interp((xs - mid[0]) * across[0] + (ys - mid[1]) * across[1],
                                 (central - mid) @ across, (central - mid) @ down)
            below = np.clip(((xs - mid[0]) * down[0] + (ys - mid[1]) * down[1] - lip_line) / max(teeth_height, 1.0), 0, 1)
            shade = (1.0 - 0.5 * side ** 2) * (0.72 + 0.28 * np.sqrt(below))
            face_level = float(np.clip(np.mean(lip_colour) / 115.0, 0.6, 1.05))
            tooth_colour = np.float32([188, 214, 232]) * face_level * shade[..., None]
            interior = interior * (1 - teeth[..., None]) + tooth_colour * teeth[..., None]
        out = patch.astype(np.float32)
        return out * (1 - cavity[..., None]) + interior * cavity[..., None]


class PaintedGenerator:
    """Audio-driven opening track plus `PaintedRenderer`: the lip generator without networks."""

    name = "painted"
    tracking_interval = 1

    def __init__(self, model_file: Path | None = None, options: RenderOptions | None = None):
        self.model = MouthModel.load(model_file)
        self.renderer = PaintedRenderer(options)
        self._openings = np.zeros(0)

    def target_opening(self, z: np.ndarray, silent: np.ndarray) -> np.ndarray:
        """Unsmoothed opening in face heights for the model's z-scores: a typical speaker's range
        times the amplitude option, closed where the audio is silent."""
        amplitude = self.renderer.options.amplitude
        opening = self.model.opening_mean + amplitude * self.model.opening_std * z / max(self.model.prediction_std, 1e-6)
        return np.clip(np.where(silent, 0.0, opening), 0.0, None)

    def live(self, fps: float) -> PaintedLive:
        """This generator fed from a live stream, frame by frame, as the speech arrives."""
        return PaintedLive(self, fps)

    def prepare(self, samples: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
        """Compute the target opening (face heights) for every output frame; returns it."""
        opening = self.target_opening(predict_opening_z(self.model, samples, fps, n_frames),
                                      silence_mask(samples, fps, n_frames))
        self._openings = np.clip(smooth_track(opening), 0.0, MAX_OPENING)
        return self._openings

    def generate_batch(self, items: list[tuple[np.ndarray, np.ndarray | None, int]]) -> list[np.ndarray]:
        """`generate` for each (frame, landmarks, index): this generator gains nothing from batches."""
        return [self.generate(*item) for item in items]

    def generate(self, frame: np.ndarray, points: np.ndarray | None, index: int) -> np.ndarray:
        """Frame `index` with its mouth rewritten (unchanged when there is no face)."""
        if points is None:
            return frame
        return self.renderer.render(frame, points, float(self._openings[min(index, len(self._openings) - 1)]))


class PaintedLive:
    """The default generator, fed frame by frame from a live stream."""

    def __init__(self, generator: PaintedGenerator, fps: float):
        self.generator, self.fps = generator, fps
        self._raw: deque[float] = deque(maxlen=3)
        self._spectrum = RunningSpectrum(generator.model.typical_spectrum)

    def samples_needed(self, index: int) -> int:
        return samples_needed(index, self.fps)

    def follow(self, index: int, read: Reader, silent: bool) -> None:
        """Frame `index`'s opening, into the smoothing, for a frame drawn or not."""
        mel, offset, spectrum = frame_mel(read, self._spectrum, index, self.fps, CONTEXT_BEFORE,
                                          self.samples_needed(index))
        z = self.generator.model.predict(mel_features(mel, self.fps, 1, index, offset, spectrum))
        self._raw.append(float(self.generator.target_opening(z, np.array([silent]))[0]))

    def render(self, frame: np.ndarray, points: np.ndarray | None, index: int, read: Reader,
               silent: bool, phones: Sequence[Phone] = ()) -> np.ndarray:
        """Frame `index` drawn from the audio alone (`phones` do not steer this generator)."""
        self.follow(index, read, silent)
        smoothed = float(smooth_latest(np.array(self._raw)))
        if points is None:
            return frame
        return self.generator.renderer.render(frame, points, float(np.clip(smoothed, 0.0, MAX_OPENING)))
