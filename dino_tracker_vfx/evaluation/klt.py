"""Chained pyramidal Lucas-Kanade (KLT), the tracker classic matchmove 2D trackers are built on.

Each point is tracked frame to frame with ``cv2.calcOpticalFlowPyrLK`` at plate resolution (grey, from the
display-referred uint8 frames), going forward from its query frame to the last frame and backward to the first
(the stepping order of :func:`dino_tracker_vfx.tracker.infer.chain.chain_steps`). Every step is checked backward:
the point found in the next frame is tracked back, and the step fails when it lands more than ``fb_thresh``
px from where it started, when LK reports no solution, or when the point leaves the raster. From the first
failed step on (going away from the query frame) the point is lost for good, as with the flow chains
(:func:`~dino_tracker_vfx.tracker.infer.chain.alive_until_failure`); its position keeps the last LK answer.

Defaults: ``win=21`` px square window, ``levels=3`` (4 pyramid levels: 1, 1/2, 1/4, 1/8), 30 iterations or
0.001 px (``cv2.TERM_CRITERIA_COUNT | EPS``), ``fb_thresh=1.0`` px, minimum eigenvalue threshold 1e-4.
"""

from __future__ import annotations

import numpy as np

from ..tracker.infer.chain import alive_until_failure, steps_away
from ..tracker.preprocess.flow import in_raster

KLT_DEFAULTS = {"win": 21, "levels": 3, "iters": 30, "eps": 0.001, "fb_thresh": 1.0, "min_eig": 1e-4}


def klt_chain(frames: np.ndarray, t0: np.ndarray, xy0: np.ndarray, win: int = 21, levels: int = 3,
              iters: int = 30, eps: float = 0.001, fb_thresh: float = 1.0, min_eig: float = 1e-4
              ) -> tuple[np.ndarray, np.ndarray]:
    """frames: uint8 ``[T, H, W, 3]`` RGB; t0 int ``[N]``; xy0 float ``[N, 2]`` plate px at ``t0``.
    Returns ``xy`` float64 ``[N, T, 2]`` and ``valid`` bool ``[N, T]`` (module docstring)."""
    import cv2

    T, H, W = frames.shape[:3]
    t0 = np.asarray(t0, np.int64).reshape(-1)
    N = len(t0)
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, int(iters), float(eps))
    lk = dict(winSize=(int(win), int(win)), maxLevel=int(levels), criteria=crit, minEigThreshold=float(min_eig))
    xy = np.zeros((N, T, 2), np.float64)
    fb = np.zeros((N, T), np.float32)
    inside = np.zeros((N, T), bool)
    xy[np.arange(N), t0] = np.asarray(xy0, np.float64)
    inside[np.arange(N), t0] = in_raster(xy[np.arange(N), t0], (W, H))
    for t, nt, _, idx in steps_away(t0, T):
        if len(idx) == 0:
            continue
        p = xy[idx, t].astype(np.float32).reshape(-1, 1, 2)
        q, st, _ = cv2.calcOpticalFlowPyrLK(gray[t], gray[nt], p, None, **lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(gray[nt], gray[t], q, None, **lk)
        q, back = q.reshape(-1, 2).astype(np.float64), back.reshape(-1, 2)
        ok = (st.reshape(-1) == 1) & (st2.reshape(-1) == 1)
        xy[idx, nt] = np.where(ok[:, None], q, xy[idx, t])
        fb[idx, nt] = np.where(ok, np.linalg.norm(back - p.reshape(-1, 2), axis=1), np.inf)
        inside[idx, nt] = in_raster(xy[idx, nt], (W, H))
    on_plate = inside[np.arange(N), t0]
    return xy, alive_until_failure(fb, inside, t0, fb_thresh, 1) & on_plate[:, None]
