"""Point sampling inside an object's mask: spread over the object, denser where it is textured.

:func:`sample_points` (deterministic, no randomness):

1. Candidates = the mask eroded by ``erode_px`` (default ``clip(0.05 * sqrt(area), 1, 8)`` px) so points
   keep off the silhouette, where tracks drift onto the background. If erosion leaves fewer candidate
   pixels than points asked, the un-eroded mask is used.
2. Texture weight per pixel ``w = floor + (1 - floor) * s`` in ``floor..1``, with ``s`` = the Shi-Tomasi
   score (smaller eigenvalue of the 5x5 structure tensor of the grey image, ``cv2.cornerMinEigenVal``)
   divided by its 90th percentile inside the object and clipped to 1; ``floor`` (default 0.5) keeps flat
   areas sampled (at about half the density).
3. Weighted farthest-point sampling: the first point maximises ``w * distance to the mask border``;
   each next one maximises ``w * distance to the nearest point already chosen``.

Points are plate px ``(x, y)`` at pixel centres (core convention).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ..checks import check_shape
from ..errors import ShapeError

log = logging.getLogger("dino_tracker_vfx.objects")


def texture_score(image: np.ndarray) -> np.ndarray:
    """Shi-Tomasi score float32 ``[H, W]`` of an RGB (0..1 float or uint8) or grey image."""
    import cv2

    img = np.asarray(image)
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    img = img.astype(np.float32)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    return np.maximum(cv2.cornerMinEigenVal(gray, blockSize=5, ksize=3), 0.0)


def default_erosion(area: int) -> int:
    return int(np.clip(round(0.05 * math.sqrt(max(area, 0))), 1, 8))


def sample_points(mask: np.ndarray, image: np.ndarray | None, k: int, *, erode_px: int | None = None,
                  texture_floor: float = 0.5, score: np.ndarray | None = None) -> np.ndarray:
    """Up to ``k`` points ``[n, 2]`` (x, y) plate px inside ``mask`` (bool ``[H, W]``); ``n < k`` only when
    the mask has fewer than ``k`` pixels. ``image``: the frame (for the texture weight; None = uniform)."""
    import cv2

    check_shape(mask, "H W", "object mask")
    m = np.asarray(mask, bool)
    area = int(m.sum())
    if area == 0 or k <= 0:
        return np.zeros((0, 2))
    e = default_erosion(area) if erode_px is None else int(erode_px)
    cand = m
    if e > 0:
        ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * e + 1, 2 * e + 1))
        er = cv2.erode(m.astype(np.uint8), ker, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
        if er.sum() >= k:
            cand = er
    ys, xs = np.nonzero(cand)
    if score is None and image is not None:
        if np.shape(image)[:2] != m.shape:
            raise ShapeError(f"image: expected {m.shape[1]}x{m.shape[0]} like the mask, got shape {np.shape(image)}")
        score = texture_score(image)
    if score is not None:
        s = score[ys, xs].astype(np.float64)
        ref = np.percentile(s, 90) if len(s) else 0.0
        s = np.clip(s / ref, 0.0, 1.0) if ref > 0 else np.zeros_like(s)
    else:
        s = np.zeros(len(xs))
    w = texture_floor + (1.0 - texture_floor) * s
    inner = cv2.distanceTransform(np.pad(m, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1][ys, xs]
    pts = np.stack([xs, ys], -1).astype(np.float64)
    n = min(k, len(pts))
    chosen = [int(np.argmax(w * inner))]
    dmin = np.linalg.norm(pts - pts[chosen[0]], axis=1)
    for _ in range(n - 1):
        i = int(np.argmax(w * dmin))
        if dmin[i] <= 0:
            break
        chosen.append(i)
        dmin = np.minimum(dmin, np.linalg.norm(pts - pts[i], axis=1))
    return pts[chosen]


__all__ = ["sample_points", "texture_score", "default_erosion"]
