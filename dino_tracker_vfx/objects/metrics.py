"""Mask and object-track metrics, as the DAVIS benchmark defines them.

* **J** (region similarity): ``|pred & gt| / |pred | gt|``; 1 when both are empty.
* **F** (contour accuracy): boundary F-measure. Boundaries are the pixels whose label differs from the
  right, lower or lower-right neighbour (DAVIS ``seg2bmap`` on an image of the same size); a boundary
  pixel matches when the other boundary lies within ``ceil(bound_th * image diagonal)`` px
  (``bound_th = 0.008`` as in davis2017-evaluation; a value >= 1 is taken as pixels), tested by dilating
  with a disk of that radius. Precision/recall edge cases follow DAVIS (no predicted boundary and a GT
  one: P = 1, R = 0; the reverse: P = 0, R = 1; none: F = 1).
* **centroid error**: distance between a predicted object centroid and the centroid of the GT mask
  (mean pixel position, plate px, pixel centres at integers), also divided by ``sqrt(GT area)``.

All masks are bool ``[H, W]``.
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import check_shape

BOUND_TH = 0.008


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    d = check_shape(gt, "H W", "gt mask")
    check_shape(pred, "H W", "predicted mask", d)
    p, g = pred.astype(bool), gt.astype(bool)
    union = np.logical_or(p, g).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(p, g).sum() / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """bool ``[H, W]``: mask pixels (either side) whose right, lower or lower-right neighbour differs."""
    m = mask.astype(bool)
    b = np.zeros_like(m)
    b[:, :-1] |= m[:, :-1] != m[:, 1:]
    b[:-1, :] |= m[:-1, :] != m[1:, :]
    b[:-1, :-1] |= m[:-1, :-1] != m[1:, 1:]
    return b


def _disk(r: int) -> np.ndarray:
    d = np.arange(-r, r + 1)
    return ((d[:, None] ** 2 + d[None, :] ** 2) <= r * r).astype(np.uint8)


def bound_pixels(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    return int(bound_th) if bound_th >= 1 else int(math.ceil(bound_th * math.hypot(*shape)))


def f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUND_TH) -> float:
    import cv2

    d = check_shape(gt, "H W", "gt mask")
    check_shape(pred, "H W", "predicted mask", d)
    r = bound_pixels(gt.shape, bound_th)
    bp, bg = boundary_map(pred), boundary_map(gt)
    k = _disk(r)
    bp_dil = cv2.dilate(bp.astype(np.uint8), k) > 0
    bg_dil = cv2.dilate(bg.astype(np.uint8), k) > 0
    n_p, n_g = int(bp.sum()), int(bg.sum())
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0:
        prec, rec = 1.0, 0.0
    elif n_g == 0:
        prec, rec = 0.0, 1.0
    else:
        prec = float((bp & bg_dil).sum()) / n_p
        rec = float((bg & bp_dil).sum()) / n_g
    return 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)


def mask_centroid(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(centroid ``[2]`` (x, y) plate px, area px); NaN centroid for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.array([np.nan, np.nan]), 0
    return np.array([xs.mean(), ys.mean()]), int(len(xs))


def centroid_error(pred_xy, gt_mask: np.ndarray) -> tuple[float, float]:
    """(error px, error / sqrt(GT area)); NaN when the GT mask is empty or the prediction is NaN."""
    c, a = mask_centroid(gt_mask)
    if a == 0:
        return float("nan"), float("nan")
    e = float(np.linalg.norm(np.asarray(pred_xy, np.float64) - c))
    return e, e / math.sqrt(a)


__all__ = ["jaccard", "f_measure", "boundary_map", "mask_centroid", "centroid_error", "BOUND_TH", "bound_pixels"]
