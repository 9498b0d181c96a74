"""Drift correction of chained flow by direct flow from the query frame (weight-free inference aid).

Chaining consecutive flows adds a little error at every step, and a chain that slips onto a neighbouring
surface never comes back. For a query at image ``k`` and every image ``t`` two or more steps away,
:func:`direct_candidates` computes one DIS flow straight from ``k`` to ``t``, initialised with the chained
dense flow ``k -> t`` (so DIS searches around the chain's answer instead of from zero), and reads a
candidate ``x_k + D_{k->t}(x_k)``.

Neither the chain nor the candidates are right everywhere: direct matching fixes drift and slips but breaks
where the appearance has changed since ``k``, and a look-alike elsewhere can win for an image or two.
So :func:`anchored_chain` walks away from the query image, one consecutive flow step at a time, and at
each image decides between the chained prediction and the candidate (:func:`accept`): the candidate
must match the query's grey patch better by ``margin`` in normalised cross-correlation (NCC of
``(2 r + 1)^2`` patches, bilinear) AND lie within ``radius + radius_per_px * path`` px of the prediction
(``path``: how far the chain has moved since its last anchor) or be confirmed by the candidates of the
next ``confirm`` images following it along the flow. A taken candidate becomes the new anchor: the
chain continues from it, so a correction is never undone one image later (before issue 16 every image
chose on its own, and tracks jumped 100+ px for an image and back).

Cost: one DIS flow per (distinct query image, other image): ``K (T - 1)`` flows for queries on ``K``
images. Positions are px of the FLOW raster (the one ``frames`` and ``flow`` live on).

The direct flows are seeded, so they run on an engine of their own: a DIS engine that has been given an
initial flow cannot compute plain flows any more (``flow._DIS.__call__``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...checks import check_shape
from ...progress import CancelFn, EtaClock, Progress, ProgressFn, check_cancel
from ..preprocess.flow import FlowField, sample_flow

DEFAULT_MARGIN = 0.5
DEFAULT_RADIUS = 4.0  # px, see accept()
DEFAULT_RADIUS_PER_PX = 0.1
DEFAULT_CONFIRM = 2  # images, see confirmed_candidates()
DEFAULT_CONFIRM_PX = 5.0
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


def direct_candidates(frames: np.ndarray, flow: FlowField, t_q: np.ndarray, xy_q: np.ndarray,
                      dis_params: dict | None = None, progress: ProgressFn | None = None,
                      cancel: CancelFn | None = None) -> np.ndarray:
    """The direct candidates: float32 ``[N, T, 2]`` flow-raster px, ``x_k + D_{k->t}(x_k)`` for every query
    (image ``k = t_q``, position ``xy_q [N, 2]``) and image ``t`` two or more steps away (NaN elsewhere: one
    step's direct flow is the chained one). ``D_{k->t}``: one DIS flow per (query image, other image),
    seeded with the dense chained flow ``k -> t``. frames: uint8 ``[T, H, W, 3]`` RGB on the flow raster."""
    from ..preprocess.flow import make_engine

    xy_q = np.asarray(xy_q, np.float32).reshape(-1, 2)
    t_q = np.asarray(t_q, np.int64).reshape(-1)
    N, T = len(t_q), flow.num_frames
    H, W = frames.shape[1:3]
    if frames.shape[0] != T or flow.size != (W, H):
        raise ValueError(f"direct_candidates: frames {frames.shape}, flow {T} x {flow.size}")
    out = np.full((N, T, 2), np.nan, np.float32)
    if N == 0 or T < 3:
        return out
    engine = make_engine("dis", params=dis_params)  # own engine: seeded below (see module docstring)
    gray = [engine.gray(f) for f in frames]
    gy, gx = np.mgrid[0:H, 0:W].astype(np.float32)
    ks = np.unique(t_q)
    total, done, clock = len(ks) * (T - 1), 0, EtaClock()
    for k in ks.tolist():
        idx = np.nonzero(t_q == k)[0]
        p_k = xy_q[idx]
        for direction in (1, -1):
            cum = np.zeros((H, W, 2), np.float32)
            t = k
            while 0 <= t + direction < T:
                check_cancel(cancel, "drift correction")
                nt = t + direction
                cum = _dense_step(cum, flow.fwd[t] if direction == 1 else flow.bwd[t - 1], (gx, gy))
                done += 1
                t = nt
                if abs(nt - k) >= 2:
                    out[idx, nt] = p_k + sample_flow(engine(gray[k], gray[nt], init=cum), p_k)
                if progress is not None:
                    progress(Progress("drift", done, total, eta_s=clock.eta(done, total), message="direct flow"))
    return out


@dataclass
class AnchoredChain:
    """A chain re-anchored on direct candidates, per query ``n`` and image ``t`` (flow-raster px).

    xy float32 ``[N, T, 2]``; fb float32 ``[N, T]``: forward-backward error of the step that arrived at ``t``
    (from the anchored position at the image before; 0 at the query); inside bool ``[N, T]``: ``xy`` on the
    raster; ncc float32 ``[N, T]``: NCC of the patch at ``xy`` with the query's patch (1 at the query);
    used bool ``[N, T]``: the direct candidate was taken; age int ``[N, T]``: chained steps since the query
    or the last taken candidate (0 there); path float32 ``[N, T]``: px travelled along those steps.
    """

    xy: np.ndarray
    fb: np.ndarray
    inside: np.ndarray
    ncc: np.ndarray
    used: np.ndarray
    age: np.ndarray
    path: np.ndarray


def accept(s_direct: np.ndarray, s_pred: np.ndarray, jump: np.ndarray, path: np.ndarray, confirmed: np.ndarray,
           margin: float, radius: float, radius_per_px: float) -> np.ndarray:
    """The candidate rule: take a direct candidate only where its patch matches the query's better than the
    chained prediction's by ``margin`` (NCC) AND either it lies within ``radius + radius_per_px * path`` px
    of the prediction (``jump``; ``path``: px the chain has moved since its last anchor - a chain can only
    have drifted so far in proportion to how far it went) or it is ``confirmed``: the direct candidates of
    the next images (going away from the query) follow it along the flow, so a far correction is a new
    course, not a one-image look-alike. All ``[M]``; NaN scores never pass."""
    return (s_direct > s_pred + margin) & ((jump <= radius + radius_per_px * path) | confirmed)


def confirmed_candidates(flow: FlowField, direct: np.ndarray, t_q: np.ndarray, confirm: int = DEFAULT_CONFIRM,
                         tol: float = DEFAULT_CONFIRM_PX) -> np.ndarray:
    """bool ``[N, T]``: the direct candidate at ``t`` is followed, for ``confirm`` images going away from the
    query image, by candidates that each lie within ``tol`` px of the previous one moved by the consecutive
    flow. ``direct`` float ``[N, T, 2]`` (NaN: none; never confirmed). ``confirm`` 0: every candidate."""
    N, T = direct.shape[:2]
    t_q = np.asarray(t_q, np.int64).reshape(-1)
    if confirm <= 0:
        return np.isfinite(direct).all(axis=-1)
    agree_f = np.zeros((N, T), bool)  # candidate t agrees with candidate t+1
    agree_b = np.zeros((N, T), bool)  # candidate t agrees with candidate t-1
    for t in range(T - 1):
        a, b = direct[:, t], direct[:, t + 1]
        ok = np.isfinite(a).all(1) & np.isfinite(b).all(1)
        if ok.any():
            agree_f[ok, t] = np.linalg.norm(a[ok] + sample_flow(flow.fwd[t], a[ok]) - b[ok], axis=1) <= tol
            agree_b[ok, t + 1] = np.linalg.norm(b[ok] + sample_flow(flow.bwd[t], b[ok]) - a[ok], axis=1) <= tol
    out = np.zeros((N, T), bool)
    for t in range(T):
        fwd, bwd = t > t_q, t < t_q
        run_f, run_b = np.ones(N, bool), np.ones(N, bool)
        for j in range(confirm):
            run_f &= agree_f[:, t + j] if t + j < T else False
            run_b &= agree_b[:, t - j] if t - j >= 0 else False
        out[:, t] = (fwd & run_f) | (bwd & run_b)
    return out


def anchored_chain(flow: FlowField, gray: np.ndarray, t_q: np.ndarray, xy_q: np.ndarray, direct: np.ndarray,
                   margin: float = DEFAULT_MARGIN, radius: float = DEFAULT_RADIUS,
                   radius_per_px: float = DEFAULT_RADIUS_PER_PX, confirm: int = DEFAULT_CONFIRM,
                   confirm_px: float = DEFAULT_CONFIRM_PX) -> AnchoredChain:
    """Chain the queries through the consecutive flows, away from their images in both directions, and at
    every image where a direct candidate passes :func:`accept` continue from it instead (re-anchor), so
    the chain never returns to a drifted course after a correction (no one-frame excursions).

    gray: ``[T, H, W]`` grey images on the flow raster; t_q int ``[N]``; xy_q ``[N, 2]``; direct float
    ``[N, T, 2]`` from :func:`direct_candidates` (NaN: none). Returns an :class:`AnchoredChain`."""
    from ..preprocess.flow import in_raster
    from .chain import steps_away

    d = check_shape(direct, "N T 2", "direct")
    N, T = d["N"], d["T"]
    t_q = np.asarray(t_q, np.int64).reshape(-1)
    check_shape(t_q, "N", "t_q", d)
    xy_q = np.asarray(xy_q, np.float32).reshape(-1, 2)
    check_shape(xy_q, "N 2", "xy_q", d)
    if flow.num_frames != T or gray.shape[0] != T:
        raise ValueError(f"anchored_chain: gray {gray.shape}, flow {flow.num_frames} frames, tracks T={T}")
    gray = np.asarray(gray, np.float32)
    rows = np.arange(N)
    tmpl = np.zeros((N, (2 * PATCH_RADIUS + 1) ** 2), np.float32)
    for k in np.unique(t_q).tolist():
        sel = t_q == k
        tmpl[sel] = patches(gray[k], xy_q[sel])
    c = AnchoredChain(np.zeros((N, T, 2), np.float32), np.zeros((N, T), np.float32), np.zeros((N, T), bool),
                      np.zeros((N, T), np.float32), np.zeros((N, T), bool), np.zeros((N, T), np.int64),
                      np.zeros((N, T), np.float32))
    c.xy[rows, t_q] = xy_q
    c.ncc[rows, t_q] = 1.0
    conf = confirmed_candidates(flow, direct, t_q, confirm, confirm_px)
    for t, nt, direction, idx in steps_away(t_q, T):
        if len(idx) == 0:
            continue
        fw, bw = (flow.fwd[t], flow.bwd[t]) if direction == 1 else (flow.bwd[t - 1], flow.fwd[t - 1])
        p = c.xy[idx, t]
        q = p + sample_flow(fw, p)
        c.fb[idx, nt] = np.linalg.norm(q + sample_flow(bw, q) - p, axis=1)
        s_pred = ncc(tmpl[idx], patches(gray[nt], q))
        path = c.path[idx, t] + np.linalg.norm(q - p, axis=1)
        cand = direct[idx, nt]
        has = np.isfinite(cand).all(axis=1)
        s_dir = np.full(len(idx), np.nan, np.float32)
        if has.any():
            s_dir[has] = ncc(tmpl[idx[has]], patches(gray[nt], cand[has]))
        jump = np.linalg.norm(np.where(has[:, None], cand, q) - q, axis=1)
        take = has & accept(s_dir, s_pred, jump, path, conf[idx, nt], margin, radius, radius_per_px)
        c.xy[idx, nt] = np.where(take[:, None], cand, q)
        c.ncc[idx, nt] = np.where(take, s_dir, s_pred)
        c.used[idx, nt] = take
        c.age[idx, nt] = np.where(take, 0, c.age[idx, t] + 1)
        c.path[idx, nt] = np.where(take, 0.0, path)
    c.inside = np.stack([in_raster(c.xy[:, t], flow.size) for t in range(T)], axis=1) if N else c.inside
    return c


def correct_drift(frames: np.ndarray, flow: FlowField, t_q: np.ndarray, xy_q: np.ndarray, *,
                  margin: float = DEFAULT_MARGIN, radius: float = DEFAULT_RADIUS,
                  radius_per_px: float = DEFAULT_RADIUS_PER_PX, dis_params: dict | None = None,
                  progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                  candidates: dict | None = None) -> AnchoredChain:
    """The queries chained with drift correction: :func:`direct_candidates` then :func:`anchored_chain`.

    frames: uint8 ``[T, H, W, 3]`` RGB on the flow raster; flow: its consecutive :class:`FlowField`;
    t_q int ``[N]``; xy_q float ``[N, 2]`` flow-raster px. ``candidates``: a dict to receive ``direct``
    (the candidates, so other rules can be tried without new flows) and ``gray`` (the grey images).
    """
    d = check_shape(np.asarray(xy_q), "N 2", "xy_q")
    t_q = np.asarray(t_q, np.int64).reshape(-1)
    check_shape(t_q, "N", "t_q", d)
    H, W = frames.shape[1:3]
    if frames.shape[0] != flow.num_frames or flow.size != (W, H):
        raise ValueError(f"correct_drift: frames {frames.shape}, flow {flow.num_frames} x {flow.size}")
    direct = direct_candidates(frames, flow, t_q, xy_q, dis_params, progress, cancel)
    gray = gray_frames(frames)
    if candidates is not None:
        candidates.update(direct=direct, gray=gray)
    return anchored_chain(flow, gray, t_q, xy_q, direct, margin, radius, radius_per_px)


def gray_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` RGB -> uint8 ``[T, H, W]`` grey (the images the patches are compared on)."""
    import cv2

    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]) if len(frames) else \
        np.zeros(frames.shape[:3], np.uint8)


__all__ = ["correct_drift", "direct_candidates", "anchored_chain", "accept", "AnchoredChain", "gray_frames", "patches",
           "ncc", "DEFAULT_MARGIN", "DEFAULT_RADIUS", "DEFAULT_RADIUS_PER_PX"]
