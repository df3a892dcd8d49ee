"""Named index sets of MediaPipe's 468-point face mesh, in one place."""

import numpy as np

UPPER_OUTER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER_LIP = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LIPS = tuple(dict.fromkeys(UPPER_OUTER_LIP + LOWER_OUTER_LIP + UPPER_INNER_LIP + LOWER_INNER_LIP))
INNER_LIP_OUTLINE = UPPER_INNER_LIP + LOWER_INNER_LIP[-2:0:-1]
OUTER_LIP_OUTLINE = UPPER_OUTER_LIP + LOWER_OUTER_LIP[-2:0:-1]
"""The lips' inner and outer lines as closed polygons (corner to corner along the upper lip, back
along the lower)."""

MOUTH_CORNERS = (61, 291)
CENTRAL_UPPER_INNER = UPPER_INNER_LIP[4:7]
CENTRAL_LOWER_INNER = LOWER_INNER_LIP[4:7]
EYE_OUTER_CORNERS = (33, 263)
EYE_CORNERS = (33, 133, 362, 263)
NOSE_RIDGE = (168, 6, 197, 195, 5, 4)
STABLE_POINTS = EYE_CORNERS + NOSE_RIDGE
FOREHEAD, CHIN = 10, 152
LOWER_FACE = (18, 200, 199, 175, CHIN, 148, 176, 377, 400)
SHAPE_POINTS = LIPS + LOWER_FACE

FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54,
             103, 67, 109)
NOSE_BASE = (98, 97, 2, 326, 327)


def face_height(points: np.ndarray) -> np.ndarray:
    """Forehead-to-chin distance, the unit in which mouth opening is measured. Works on (..., 468, 2)."""
    return np.linalg.norm(points[..., FOREHEAD, :2] - points[..., CHIN, :2], axis=-1)


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """Inner-lip gap (mean over the three central inner-lip pairs) divided by face height."""
    upper, lower = list(CENTRAL_UPPER_INNER), list(CENTRAL_LOWER_INNER)
    gap = np.linalg.norm(points[..., upper, :2] - points[..., lower, :2], axis=-1).mean(axis=-1)
    return gap / np.maximum(face_height(points), 1e-6)
