"""The face-normalised frame shared by the lip-shape model and the learned renderer.

A face is brought into a canonical frame by the similarity transform (rotation, uniform scale,
shift) that best maps its stable points (eye corners, nose ridge: they do not move when a person
speaks) onto a template in which the outer eye corners are one unit apart. Lip shapes are
compared, learned and predicted there; the renderer's square crop is a box in that frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .landmarks import EYE_OUTER_CORNERS, STABLE_POINTS


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares rotation, uniform scale and translation taking `source` points onto `target` (2x3)."""
    src_mean, dst_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - src_mean, target - dst_mean
    u, sigma, vt = np.linalg.svd(dst.T @ src)
    flip = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ flip @ vt
    scale = (sigma * np.diag(flip)).sum() / max((src ** 2).sum(), 1e-12)
    matrix = scale * rotation
    return np.hstack([matrix, (dst_mean - matrix @ src_mean)[:, None]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """`points` (..., 2) moved by the 2x3 affine `matrix`."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def normalise_template(stable: np.ndarray) -> np.ndarray:
    """`stable` points moved so the outer eye corners are level, one unit apart, centred on the origin."""
    eyes = [STABLE_POINTS.index(i) for i in EYE_OUTER_CORNERS]
    left, right = stable[eyes[0]], stable[eyes[1]]
    across = right - left
    scale = 1.0 / max(float(np.linalg.norm(across)), 1e-9)
    cos, sin = across / np.linalg.norm(across)
    rotation = np.array([[cos, sin], [-sin, cos]]) * scale
    return (stable - (left + right) / 2) @ rotation.T


def mean_template(stable_sets: list[np.ndarray], rounds: int = 5) -> np.ndarray:
    """Generalised Procrustes mean of several faces' stable points (each (len(STABLE_POINTS), 2))."""
    template = normalise_template(stable_sets[0])
    for _ in range(rounds):
        aligned = [apply(similarity_transform(s, template), s) for s in stable_sets]
        template = normalise_template(np.mean(aligned, axis=0))
    return template.astype(np.float32)


def to_canonical(points: np.ndarray, template: np.ndarray) -> np.ndarray:
    """2x3 similarity from image pixels to the canonical frame, fitted on the stable points."""
    return similarity_transform(points[list(STABLE_POINTS), :2].astype(np.float64), template.astype(np.float64))


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, -(linear @ matrix[:, 2])[:, None]])


@dataclass(frozen=True)
class CropBox:
    """A square box in the canonical frame (centre, side) sampled at `size` pixels."""

    centre_x: float
    centre_y: float
    side: float
    size: int

    def from_canonical(self) -> np.ndarray:
        """2x3 matrix from canonical units to crop pixels."""
        scale = self.size / self.side
        return np.array([[scale, 0.0, self.size / 2 - scale * self.centre_x],
                         [0.0, scale, self.size / 2 - scale * self.centre_y]])

    def from_image(self, points: np.ndarray, template: np.ndarray) -> np.ndarray:
        """2x3 matrix from image pixels to crop pixels for a face with landmarks `points`."""
        canonical = to_canonical(points, template)
        outer = self.from_canonical()
        return np.hstack([outer[:, :2] @ canonical[:, :2], (outer[:, :2] @ canonical[:, 2] + outer[:, 2])[:, None]])
