"""Lip-sync quality metrics from the 468-point face mesh and the audio; no learned scorer needed.

Landmark series are arrays (frames, 468, 2+) with NaN rows where a frame had no face.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..face.frame import apply, similarity_transform
from ..face.landmarks import EYE_OUTER_CORNERS, LIPS, MOUTH_CORNERS, STABLE_POINTS

MAX_PSNR = 100.0
CROP_SIZE = 96


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation over frames where both are defined; 0 when either does not vary (a frozen mouth)."""
    valid = np.isfinite(a) & np.isfinite(b)
    if valid.sum() < 3 or np.std(a[valid]) < 1e-9 or np.std(b[valid]) < 1e-9:
        return 0.0
    return float(np.corrcoef(a[valid], b[valid])[0, 1])


def inter_ocular(points: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners, per frame."""
    return np.linalg.norm(points[..., EYE_OUTER_CORNERS[0], :2] - points[..., EYE_OUTER_CORNERS[1], :2], axis=-1)


def lip_landmark_distance(candidate: np.ndarray, real: np.ndarray) -> np.ndarray:
    """M-LMD per frame: mean distance of the 40 lip landmarks after aligning the candidate's stable
    points (eye corners, nose ridge) onto the real ones, divided by the real inter-ocular distance."""
    out = np.full(len(real), np.nan)
    stable, lips = list(STABLE_POINTS), list(LIPS)
    for i, (cand, ref) in enumerate(zip(candidate, real)):
        if np.isnan(cand[0, 0]) or np.isnan(ref[0, 0]):
            continue
        matrix = similarity_transform(cand[stable, :2], ref[stable, :2])
        distance = np.linalg.norm(apply(matrix, cand[lips, :2]) - ref[lips, :2], axis=1).mean()
        out[i] = distance / max(float(inter_ocular(ref)), 1e-6)
    return out


def best_lag(opening: np.ndarray, energy_db: np.ndarray, max_lag: int = 12) -> tuple[int, float]:
    """Lag (frames) at which mouth opening best follows speech energy, and that correlation.

    A positive lag means the mouth moves after the sound (video late). The correlation-by-lag
    curve is smoothed over neighbouring lags before its peak is taken, which makes the peak
    robust on short clips."""
    floor = np.nanpercentile(energy_db, 95) - 50.0
    energy = np.maximum(energy_db, floor)
    lags = np.arange(-max_lag, max_lag + 1)
    curve = np.array([pearson(opening[lag:], energy[: len(energy) - lag]) if lag >= 0
                      else pearson(opening[:lag], energy[-lag:]) for lag in lags])
    smoothed = np.convolve(np.pad(curve, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    best = int(np.argmax(smoothed))
    return int(lags[best]), float(curve[best])


def silence_leakage(opening: np.ndarray, silent: np.ndarray) -> float:
    """Mean opening in silent frames over mean opening in speech (NaN if either is absent)."""
    valid = np.isfinite(opening)
    quiet, loud = opening[valid & silent], opening[valid & ~silent]
    if quiet.size == 0 or loud.size == 0 or loud.mean() <= 0:
        return float("nan")
    return float(quiet.mean() / loud.mean())


def jitter(points: np.ndarray) -> float:
    """High-frequency energy of lip motion: mean squared second difference of the lip landmarks,
    after aligning every frame's stable points onto the first face's, in inter-ocular units."""
    valid = ~np.isnan(points[:, 0, 0])
    if valid.sum() < 3:
        return float("nan")
    stable, lips = list(STABLE_POINTS), list(LIPS)
    reference = points[np.argmax(valid)]
    unit = max(float(inter_ocular(reference)), 1e-6)
    aligned = np.full((len(points), len(lips), 2), np.nan)
    for i in np.nonzero(valid)[0]:
        matrix = similarity_transform(points[i, stable, :2], reference[stable, :2])
        aligned[i] = apply(matrix, points[i, lips, :2]) / unit
    accel = aligned[2:] - 2 * aligned[1:-1] + aligned[:-2]
    energy = (accel ** 2).sum(axis=-1).mean(axis=-1)
    return float(np.nanmean(energy)) if np.isfinite(energy).any() else float("nan")


def mouth_crop_transform(points: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """2x3 matrix from image pixels to a square, upright crop around the mouth."""
    corners = points[list(MOUTH_CORNERS), :2]
    across = points[EYE_OUTER_CORNERS[1], :2] - points[EYE_OUTER_CORNERS[0], :2]
    angle = np.arctan2(across[1], across[0])
    width = np.linalg.norm(corners[1] - corners[0]) * 1.8
    scale = size / max(width, 1e-6)
    cos, sin = np.cos(-angle) * scale, np.sin(-angle) * scale
    matrix = np.array([[cos, -sin], [sin, cos]])
    centre = points[list(LIPS), :2].mean(axis=0)
    return np.hstack([matrix, (np.array([size / 2, size / 2]) - matrix @ centre)[:, None]])


def aligned_mouth_crops(real_frame, real_points, candidate_frame, candidate_points, size: int = CROP_SIZE):
    """Mouth crops of both frames in the real face's crop, the candidate aligned on stable points."""
    to_crop = mouth_crop_transform(real_points, size)
    to_real = similarity_transform(candidate_points[list(STABLE_POINTS), :2], real_points[list(STABLE_POINTS), :2])
    combined = to_crop[:, :2] @ to_real
    combined = np.hstack([combined[:, :2], (to_crop[:, :2] @ to_real[:, 2] + to_crop[:, 2])[:, None]])
    real_crop = cv2.warpAffine(real_frame, to_crop.astype(np.float32), (size, size), flags=cv2.INTER_AREA)
    candidate_crop = cv2.warpAffine(candidate_frame, combined.astype(np.float32), (size, size), flags=cv2.INTER_AREA)
    return real_crop, candidate_crop


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return MAX_PSNR if mse <= 1e-10 else float(min(MAX_PSNR, 10 * np.log10(255.0 ** 2 / mse)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two images' luminance (Gaussian window, sigma 1.5)."""
    x = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float64)
    y = cv2.cvtColor(b, cv2.COLOR_BGR2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda z: cv2.GaussianBlur(z, (11, 11), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(index.mean())
