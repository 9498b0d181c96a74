"""Drift correction of chained flow by direct flow from the query frame (weight-free inference aid).

Chaining consecutive flows adds a little error at every step, and a chain that slips onto a neighbouring
surface never comes back. For a query at image ``k`` and every other image ``t`` this module computes one
DIS flow straight from ``k`` to ``t``, initialised with the chained dense flow ``k -> t`` (so DIS searches
around the chain's answer instead of from zero), and reads a second candidate ``x_k + D_{k->t}(x_k)``.
Neither candidate is right everywhere: direct matching fixes drift and slips but breaks where the
appearance has changed since ``k``. So the appearance decides: the direct candidate replaces the chained
one only where its grey patch matches the query's patch in image ``k`` better, by at least ``margin``
in normalised cross-correlation (NCC of ``(2 r + 1)^2`` patches, bilinear).

Cost: one DIS flow per (distinct query image, other image): ``K (T - 1)`` flows for queries on ``K``
images. Positions are px of the FLOW raster (the one ``frames`` and ``flow`` live on).

The direct flows are seeded, so they run on an engine of their own: a DIS engine that has been given an
initial flow cannot compute plain flows any more (``flow._DIS.__call__``).
"""

from __future__ import annotations

import numpy as np

from ...checks import check_shape
from ...progress import CancelFn, EtaClock, Progress, ProgressFn, check_cancel
from ..preprocess.flow import FlowField, sample_flow

DEFAULT_MARGIN = 0.5
PATCH_RADIUS = 5


def patches(gray: np.ndarray, xy: np.ndarray, r: int = PATCH_RADIUS) -> np.ndarray:
    """Bilinear grey patches ``[N, (2r+1)^2]`` float32 of ``gray [H, W]`` centred on ``xy [N, 2]`` px
    (border pixels replicated)."""
    import cv2

    xy = np.asarray(xy, np.float32).reshape(-1, 2)
    o = np.arange(-r, r + 1, dtype=np.float32)
    oy, ox = np.meshgrid(o, o, indexing="ij")
    mx = (xy[:, 0:1] + ox.reshape(1, -1)).astype(np.float32)
    my = (xy[:, 1:2] + oy.reshape(1, -1)).astype(np.float32)
    if len(xy) == 0:
        return np.zeros((0, o.size ** 2), np.float32)
    return cv2.remap(gray.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def ncc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise normalised cross-correlation of patches ``[N, P]`` -> ``[N]`` in [-1, 1] (0 for flat patches)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(den > 1e-6, (a * b).sum(axis=1) / np.maximum(den, 1e-6), 0.0).astype(np.float32)


def _dense_step(cum: np.ndarray, step: np.ndarray, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Compose dense flows: ``cum`` (k -> t) then ``step`` (t -> t +- 1) -> k -> t +- 1, all ``[H, W, 2]``."""
    import cv2

    gx, gy = grid
    moved = cv2.remap(step, gx + cum[..., 0], gy + cum[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cum + moved


def correct_drift(frames: np.ndarray, flow: FlowField, t_q: np.ndarray, xy_q: np.ndarray, chain_xy: np.ndarray, *,
                  margin: float = DEFAULT_MARGIN, dis_params: dict | None = None,
                  progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                  candidates: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Replace drifted chained positions by direct-flow ones where those match the query better.

    frames: uint8 ``[T, H, W, 3]`` RGB on the flow raster; flow: its consecutive :class:`FlowField`;
    t_q int ``[N]``; xy_q float ``[N, 2]`` flow-raster px; chain_xy float ``[N, T, 2]`` flow-raster px
    (the chained positions, e.g. from ``chain.chain_points``). Returns (xy float32 ``[N, T, 2]``, used
    bool ``[N, T]``: where the direct candidate was taken). The query image keeps the query exactly.
    ``candidates``: a dict to receive ``direct`` float32 ``[N, T, 2]`` (NaN where not computed),
    ``ncc_direct`` and ``ncc_chain`` float32 ``[N, T]``, so other margins can be tried without new flows.
    """
    from ..preprocess.flow import make_engine

    d = check_shape(chain_xy, "N T 2", "chain_xy")
    N, T = d["N"], d["T"]
    check_shape(np.asarray(xy_q), "N 2", "xy_q", d)
    t_q = np.asarray(t_q, np.int64).reshape(-1)
    check_shape(t_q, "N", "t_q", d)
    H, W = frames.shape[1:3]
    if flow.num_frames != T or frames.shape[0] != T or flow.size != (W, H):
        raise ValueError(f"correct_drift: frames {frames.shape}, flow {flow.num_frames} x {flow.size}, tracks T={T}")
    out = np.array(chain_xy, np.float32)
    used = np.zeros((N, T), bool)
    if candidates is not None:
        candidates.update(direct=np.full((N, T, 2), np.nan, np.float32), ncc_direct=np.zeros((N, T), np.float32),
                          ncc_chain=np.zeros((N, T), np.float32))
    if N == 0 or T < 3:
        return out, used
    engine = make_engine("dis", params=dis_params)  # own engine: seeded below (see module docstring)
    gray = [engine.gray(f) for f in frames]
    gy, gx = np.mgrid[0:H, 0:W].astype(np.float32)
    ks = np.unique(t_q)
    total, done, clock = len(ks) * (T - 1), 0, EtaClock()
    for k in ks.tolist():
        idx = np.nonzero(t_q == k)[0]
        p_k = np.asarray(xy_q, np.float32)[idx]
        tmpl = patches(gray[k], p_k)
        for direction in (1, -1):
            cum = np.zeros((H, W, 2), np.float32)
            t = k
            while 0 <= t + direction < T:
                check_cancel(cancel, "drift correction")
                nt = t + direction
                cum = _dense_step(cum, flow.fwd[t] if direction == 1 else flow.bwd[t - 1], (gx, gy))
                done += 1
                t = nt
                if abs(nt - k) < 2:  # one step: the direct flow is the chained one
                    continue
                direct = engine(gray[k], gray[nt], init=cum)
                cand = p_k + sample_flow(direct, p_k)
                s_dir = ncc(tmpl, patches(gray[nt], cand))
                s_chain = ncc(tmpl, patches(gray[nt], out[idx, nt]))
                if candidates is not None:
                    candidates["direct"][idx, nt] = cand
                    candidates["ncc_direct"][idx, nt], candidates["ncc_chain"][idx, nt] = s_dir, s_chain
                take = np.isfinite(cand).all(axis=1) & (s_dir > s_chain + margin)
                out[idx[take], nt] = cand[take]
                used[idx[take], nt] = True
                if progress is not None:
                    progress(Progress("drift", done, total, eta_s=clock.eta(done, total), message="direct flow"))
    return out, used


__all__ = ["correct_drift", "patches", "ncc", "DEFAULT_MARGIN"]
