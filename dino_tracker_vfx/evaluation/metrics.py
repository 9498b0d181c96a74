"""TAP-Vid and BADJA point-tracking metrics.

TAP-Vid (Doersch et al. 2022, ``tapnet/tapvid/evaluation_datasets.py::compute_tapvid_metrics``)
------------------------------------------------------------------------------------------------
All positions are first brought to the 256x256 evaluation raster with
:func:`dino_tracker_vfx.coords.to_eval_raster` (a pure scale ``x * 256 / W``). For query ``n`` with query
frame ``q_n`` the evaluated frames are

* ``strided``: every frame except ``q_n``;
* ``first``: the frames after ``q_n`` (``t > q_n``).

Over the evaluated (track, frame) pairs of one video (pooled over its tracks):

* ``OA``  = fraction where predicted visibility equals GT visibility;
* ``delta_d`` = among GT-visible pairs, fraction with ``||pred - gt||^2 < d^2`` (predicted visibility
  ignored), ``d`` in ``THRESHOLDS`` = 1, 2, 4, 8, 16 px; ``delta_avg`` = mean over ``d``;
* ``J_d`` = TP / (GT-visible + FP) with TP = GT-visible & predicted visible & within ``d``, FP =
  predicted visible & (GT occluded or not within ``d``); ``AJ`` = mean over ``d``.

A benchmark number is the plain mean of per-video numbers. NaN positions count as "not within".

BADJA (DINO-Tracker ``eval/metrics.py``)
----------------------------------------
Over the evaluated GT-visible (joint, frame) pairs: ``delta_seg`` = fraction with error
``< 0.2 * sqrt(area of the frame's foreground mask)``; ``delta_3px`` = fraction with error ``< 3`` px.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..checks import check_shape
from ..coords import to_eval_raster
from ..errors import InputError

THRESHOLDS = (1, 2, 4, 8, 16)
MODES = ("strided", "first")
EVAL_SIZE = 256


def eval_mask(query_t, T: int, mode: str) -> np.ndarray:
    """Bool ``[N, T]``: which frames are evaluated for each query (``query_t`` int ``[N]``)."""
    if mode not in MODES:
        raise InputError(f"query mode {mode!r} is not one of {', '.join(MODES)}", where="--mode")
    q = np.asarray(query_t, dtype=np.int64).reshape(-1, 1)
    t = np.arange(T)[None, :]
    return (t != q) if mode == "strided" else (t > q)


def tapvid_metrics(query_t, gt_xy, gt_visible, pred_xy, pred_visible, mode: str = "strided",
                   per_track: bool = False, thresholds=THRESHOLDS, evaluable=None) -> dict[str, np.ndarray | float]:
    """TAP-Vid metrics of one video, all positions already on the evaluation raster.

    query_t: int ``[N]`` query image index. gt_xy / pred_xy: float ``[N, T, 2]`` (x, y) on the 256x256
    raster. gt_visible / pred_visible: bool ``[N, T]``. ``per_track``: return ``[N]`` arrays (one value
    per query, NaN where a track has nothing to evaluate) instead of pooled floats. ``evaluable``: optional
    bool ``[N, T]``; pairs where it is False are left out of every number (synthetic plates flag frames next
    to a depth edge so).

    Keys: ``OA``, ``AJ``, ``delta_avg``, ``delta_<d>`` and ``jaccard_<d>`` for each threshold,
    ``n_eval`` (evaluated pairs) and ``n_visible`` (evaluated GT-visible pairs).
    """
    d = check_shape(np.asarray(gt_xy), "N T 2", "gt_xy")
    check_shape(np.asarray(pred_xy), "N T 2", "pred_xy", d)
    check_shape(np.asarray(gt_visible), "N T", "gt_visible", d)
    check_shape(np.asarray(pred_visible), "N T", "pred_visible", d)
    query_t = np.asarray(query_t, dtype=np.int64).reshape(-1)
    check_shape(query_t, "N", "query_t", d)
    gt_xy = np.asarray(gt_xy, np.float64)
    pred_xy = np.asarray(pred_xy, np.float64)
    vis = np.asarray(gt_visible, bool)
    pvis = np.asarray(pred_visible, bool)
    ev = eval_mask(query_t, d["T"], mode)
    if evaluable is not None:
        check_shape(np.asarray(evaluable), "N T", "evaluable", d)
        ev = ev & np.asarray(evaluable, bool)
    axis = 1 if per_track else None

    def ratio(num, den):
        num = np.sum(num, axis=axis).astype(np.float64)
        den = np.sum(den, axis=axis).astype(np.float64) if not np.isscalar(den) else float(den)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = num / den
        return r if per_track else float(r)

    out: dict[str, np.ndarray | float] = {}
    out["OA"] = ratio((pvis == vis) & ev, ev)
    with np.errstate(invalid="ignore"):
        sq = np.sum(np.square(pred_xy - gt_xy), axis=-1)
    deltas, jacs = [], []
    gt_pos = vis & ev
    for thr in thresholds:
        within = sq < float(thr) ** 2  # NaN -> False
        correct = within & vis
        deltas.append(ratio(correct & ev, gt_pos))
        tp = correct & pvis & ev
        fp = pvis & (~vis | ~within) & ev
        jac_den = np.sum(gt_pos, axis=axis) + np.sum(fp, axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            j = np.sum(tp, axis=axis) / np.asarray(jac_den, np.float64)
        jacs.append(j if per_track else float(j))
        out[f"delta_{thr}"] = deltas[-1]
        out[f"jaccard_{thr}"] = jacs[-1]
    out["delta_avg"] = np.mean(np.stack(deltas), axis=0) if per_track else float(np.mean(deltas))
    out["AJ"] = np.mean(np.stack(jacs), axis=0) if per_track else float(np.mean(jacs))
    out["n_eval"] = np.sum(ev, axis=axis) if per_track else int(np.sum(ev))
    out["n_visible"] = np.sum(gt_pos, axis=axis) if per_track else int(np.sum(gt_pos))
    return out


def tapvid_metrics_plate(query_t, gt_xy, gt_visible, gt_wh, pred_xy, pred_visible, pred_wh=None,
                         mode: str = "strided", per_track: bool = False) -> dict[str, np.ndarray | float]:
    """:func:`tapvid_metrics` for positions in plate pixels: GT of a ``gt_wh=(W, H)`` plate and
    predictions of a ``pred_wh`` plate (default the same) are scaled to 256x256 first."""
    g = to_eval_raster(gt_xy, gt_wh, EVAL_SIZE)
    p = to_eval_raster(pred_xy, pred_wh or gt_wh, EVAL_SIZE)
    return tapvid_metrics(query_t, g, gt_visible, p, pred_visible, mode=mode, per_track=per_track)


def badja_metrics(gt_xy, gt_visible, eval_pairs, pred_xy, mask_area) -> dict[str, float]:
    """BADJA accuracies of one video in plate pixels.

    gt_xy / pred_xy: float ``[N, T, 2]``; gt_visible / eval_pairs: bool ``[N, T]`` (``eval_pairs`` marks
    the annotated frames to evaluate, e.g. all annotated frames but the query frame); mask_area: float
    ``[T]`` foreground pixel count of each frame (only read where evaluated). Pairs evaluated:
    ``eval_pairs & gt_visible``. Returns ``delta_seg``, ``delta_3px`` and ``n_eval``.
    """
    d = check_shape(np.asarray(gt_xy), "N T 2", "gt_xy")
    check_shape(np.asarray(pred_xy), "N T 2", "pred_xy", d)
    check_shape(np.asarray(gt_visible), "N T", "gt_visible", d)
    check_shape(np.asarray(eval_pairs), "N T", "eval_pairs", d)
    area = np.asarray(mask_area, np.float64)
    check_shape(area, "T", "mask_area", d)
    sel = np.asarray(eval_pairs, bool) & np.asarray(gt_visible, bool)
    with np.errstate(invalid="ignore"):
        err = np.linalg.norm(np.asarray(pred_xy, np.float64) - np.asarray(gt_xy, np.float64), axis=-1)
    thr = 0.2 * np.sqrt(np.broadcast_to(area[None, :], sel.shape))
    n = int(sel.sum())
    if n == 0:
        return {"delta_seg": float("nan"), "delta_3px": float("nan"), "n_eval": 0}
    return {"delta_seg": float(np.sum((err < thr) & sel) / n), "delta_3px": float(np.sum((err < 3.0) & sel) / n),
            "n_eval": n}


def mean_over_videos(rows: list[Mapping[str, float]], keys) -> dict[str, float]:
    """Plain mean of per-video numbers (NaN videos are left out of that key's mean)."""
    out = {}
    for k in keys:
        v = np.array([float(r[k]) for r in rows if k in r], np.float64)
        v = v[np.isfinite(v)]
        out[k] = float(v.mean()) if len(v) else float("nan")
    return out
