"""Point-tracking metrics in plate pixels (matchmove grade), for synthetic plates with exact ground truth.

Inputs are plate px of the plate itself (no 256x256 raster): ``gt_xy`` / ``pred_xy`` float ``[N, T, 2]``,
``gt_visible`` / ``pred_visible`` / ``evaluable`` bool ``[N, T]``, ``query_t`` int ``[N]``.
The evaluated pairs are every frame but the query frame (TAP-Vid "strided") where ``evaluable`` is True.

* ``delta_<d>`` for ``d`` in ``PLATE_THRESHOLDS`` = 0.25, 0.5, 1, 2, 4 px: among evaluated GT-visible pairs,
  the share with error ``< d`` (predicted visibility ignored); ``delta_avg`` = their mean.
* ``jaccard_<d>`` = TP / (GT-visible + FP) as in TAP-Vid, with these thresholds; ``AJ`` = their mean.
* ``OA``: share of evaluated pairs whose predicted visibility equals the GT's.
* ``median_err`` / ``p90_err``: median and 90th percentile of the error (px) over evaluated GT-visible pairs
  (a NaN prediction counts as ``LOST_PX`` = 1e9 px off).
* ``reacq``: re-acquisition. A *reappearance* is a frame ``r`` where the GT turns visible again after at least
  one occluded frame, going away from the query frame (``r > q`` with ``r - 1`` occluded, or ``r < q`` with
  ``r + 1`` occluded). It is re-acquired when, within ``REACQ_FRAMES`` = 3 frames from ``r`` on (``r, r+1, r+2``
  going forward, mirrored going backward; GT-visible frames only), the prediction is visible and within
  ``REACQ_PX`` = 2 px. ``reacq`` = re-acquired / reappearances (each reappearance of each point counts once;
  ``evaluable`` is not applied here: a reappearance is by nature next to the occluder's edge);
  ``n_reappear`` = the count.

All of TAP-Vid's own arithmetic comes from :func:`.metrics.tapvid_metrics`.
"""

from __future__ import annotations

import numpy as np

from ..checks import check_shape
from .metrics import tapvid_metrics

PLATE_THRESHOLDS = (0.25, 0.5, 1, 2, 4)
REACQ_PX = 2.0
REACQ_FRAMES = 3
LOST_PX = 1e9
PLATE_KEYS = (("AJ", "delta_avg", "OA", "median_err", "p90_err", "reacq")
              + tuple(f"delta_{d}" for d in PLATE_THRESHOLDS) + tuple(f"jaccard_{d}" for d in PLATE_THRESHOLDS))


def errors(gt_xy, pred_xy) -> np.ndarray:
    """float64 ``[N, T]`` Euclidean error in px; ``LOST_PX`` where the prediction is NaN."""
    with np.errstate(invalid="ignore"):
        e = np.linalg.norm(np.asarray(pred_xy, np.float64) - np.asarray(gt_xy, np.float64), axis=-1)
    return np.where(np.isnan(e), LOST_PX, e)


def reappearances(query_t, gt_visible) -> list[tuple[int, int, int]]:
    """``(n, r, direction)`` for each reappearance (module docstring) of each point."""
    vis = np.asarray(gt_visible, bool)
    out = []
    for n, q in enumerate(np.asarray(query_t, np.int64).reshape(-1)):
        for r in range(q + 1, vis.shape[1]):
            if vis[n, r] and not vis[n, r - 1]:
                out.append((n, r, 1))
        for r in range(q - 1, -1, -1):
            if vis[n, r] and not vis[n, r + 1]:
                out.append((n, r, -1))
    return out


def reacquisition(query_t, gt_xy, gt_visible, pred_xy, pred_visible, px: float = REACQ_PX,
                  frames: int = REACQ_FRAMES) -> tuple[float, int]:
    """(re-acquired share, number of reappearances); NaN share when there is none."""
    vis = np.asarray(gt_visible, bool)
    pvis = np.asarray(pred_visible, bool)
    err = errors(gt_xy, pred_xy)
    T = vis.shape[1]
    events = reappearances(query_t, vis)
    hit = 0
    for n, r, step in events:
        ts = [r + k * step for k in range(frames) if 0 <= r + k * step < T]
        hit += any(vis[n, t] and pvis[n, t] and err[n, t] < px for t in ts)
    return (hit / len(events) if events else float("nan")), len(events)


def plate_metrics(query_t, gt_xy, gt_visible, pred_xy, pred_visible, evaluable=None) -> dict:
    """Every number of the module docstring for one scene (pooled over its points)."""
    d = check_shape(np.asarray(gt_xy), "N T 2", "gt_xy")
    check_shape(np.asarray(pred_xy), "N T 2", "pred_xy", d)
    query_t = np.asarray(query_t, np.int64).reshape(-1)
    ev = np.ones((d["N"], d["T"]), bool) if evaluable is None else np.asarray(evaluable, bool)
    m = tapvid_metrics(query_t, gt_xy, gt_visible, pred_xy, pred_visible, mode="strided",
                       thresholds=PLATE_THRESHOLDS, evaluable=ev)
    sel = ev & np.asarray(gt_visible, bool) & (np.arange(d["T"])[None, :] != query_t[:, None])
    e = errors(gt_xy, pred_xy)[sel]
    m["median_err"] = float(np.median(e)) if e.size else float("nan")
    m["p90_err"] = float(np.percentile(e, 90)) if e.size else float("nan")
    m["reacq"], m["n_reappear"] = reacquisition(query_t, gt_xy, gt_visible, pred_xy, pred_visible)
    return m
