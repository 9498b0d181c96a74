"""Point chaining through consecutive optical flows (inference, the ``flow`` baseline, object tracking).

Positions are (x, y) px of the flow raster (pixel centres at integers, origin top-left, y down); flows come
as a :class:`~..preprocess.flow.FlowField` (``fwd[t]``: t -> t+1, ``bwd[t]``: t+1 -> t).

* :func:`chain_steps` -> positions ``[N, T, 2]`` chained forward and backward from each query frame, with
  the forward-backward error of every step and whether it stayed on the raster;
* :func:`alive_until_failure` -> where a chain is still trusted, given a threshold and a run length;
* :func:`chain_points` -> both together with a 1-step rule;
* :func:`chain_on_shot` -> the flow point tracker on a shot (flow computed, plate px in and out): the one
  serving the evaluation's ``flow`` baseline and the objects' ``--tracker flow``.
"""

from __future__ import annotations

import numpy as np

from ...checks import check_shape
from ..preprocess.flow import FlowField, compute_flow, in_raster, sample_flow


def steps_away(t0: np.ndarray, T: int):
    """Every step away from the query frames, in chaining order: yields ``(t, nt, direction, idx)`` for
    ``t -> nt = t + direction``, forward (``t = 0 .. T-2``) then backward (``t = T-1 .. 1``), with ``idx``
    the (possibly empty) indices of the points whose query frame ``t0`` lies at or behind ``t``."""
    for direction in (1, -1):
        for t in (range(T - 1) if direction == 1 else range(T - 1, 0, -1)):
            yield t, t + direction, direction, np.nonzero(t0 <= t if direction == 1 else t0 >= t)[0]


def chain_steps(flow: FlowField, t0: np.ndarray, xy0: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chain points through consecutive flows, forward and backward from each query frame, with the check
    of every step.

    flow: :class:`FlowField` of T frames. t0: int ``[N]`` query image index. xy0: float ``[N, 2]`` (x, y) px
    of the flow raster at ``t0``. Returns ``xy`` float32 ``[N, T, 2]`` (defined everywhere: the chain keeps
    following the flow whatever the checks say), ``fb`` float32 ``[N, T]``: the forward-backward error of the
    step that ARRIVED at each image, ``||x_t - (x_{t+1} + bwd_t(x_{t+1}))||`` going forward (mirrored going
    backward), 0 at ``t0``; ``inside`` bool ``[N, T]``: the point is on the raster.
    """
    t0 = np.asarray(t0).astype(np.int64).reshape(-1)
    xy0 = np.asarray(xy0, dtype=np.float32)
    check_shape(xy0, "N 2", "chain xy0", dims={"N": len(t0)})
    T = flow.num_frames
    if len(t0) and (t0.min() < 0 or t0.max() >= T):
        raise ValueError(f"chain_steps: query frames must lie in 0..{T - 1}, got {t0.min()}..{t0.max()}")
    wh = flow.size
    N = len(t0)
    rows = np.arange(N)
    xy = np.zeros((N, T, 2), np.float32)
    fb = np.zeros((N, T), np.float32)
    inside = np.zeros((N, T), bool)
    xy[rows, t0] = xy0
    inside[rows, t0] = in_raster(xy0, wh)
    for t, nt, direction, idx in steps_away(t0, T):
        if len(idx) == 0:
            continue
        fw, bw = (flow.fwd[t], flow.bwd[t]) if direction == 1 else (flow.bwd[t - 1], flow.fwd[t - 1])
        p = xy[idx, t]
        q = p + sample_flow(fw, p)
        back = q + sample_flow(bw, q)
        xy[idx, nt] = q
        fb[idx, nt] = np.linalg.norm(back - p, axis=1)
        inside[idx, nt] = in_raster(q, wh)
    return xy, fb, inside


def alive_until_failure(fb: np.ndarray, inside: np.ndarray, t0: np.ndarray, thresh: float, fail_run: int = 1
                        ) -> np.ndarray:
    """bool ``[N, T]``: a chain stays alive, going away from its query frame ``t0`` in both directions, until
    ``fail_run`` consecutive steps have failed (``fb >= thresh`` or off the raster); from there on it is dead
    for good. True at ``t0``. ``fb``, ``inside``: ``[N, T]`` from :func:`chain_steps`."""
    N, T = fb.shape
    t0 = np.asarray(t0).astype(np.int64).reshape(-1)
    rows = np.arange(N)
    ok = (fb < thresh) & inside
    alive = np.zeros((N, T), bool)
    alive[rows, t0] = True
    run = np.zeros((N, T), np.int64)  # consecutive failed steps ending at each image
    for t, nt, _, idx in steps_away(t0, T):
        run[idx, nt] = np.where(ok[idx, nt], 0, run[idx, t] + 1)
        alive[idx, nt] = alive[idx, t] & (run[idx, nt] < fail_run)
    return alive


def chain_points(flow: FlowField, t0: np.ndarray, xy0: np.ndarray, fb_thresh: float = 1.5
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Track points through chained consecutive flows, forward and backward from each query frame.

    flow: :class:`FlowField` of T frames. t0: int ``[N]`` query image index. xy0: float ``[N, 2]``
    (x, y) working px at ``t0``. A step ``t -> t+1`` is consistent when
    ``||x_t - (x_{t+1} + bwd_t(x_{t+1}))|| < fb_thresh`` (mirrored going backward) and ``x_{t+1}`` is on
    the raster. From the first inconsistent step on (going away from ``t0``) the point is invalid
    (occluded / lost) for good; its position keeps following the flow so it is defined everywhere.

    Returns ``xy`` float32 ``[N, T, 2]`` and ``valid`` bool ``[N, T]`` (valid at ``t0`` iff on the raster).
    """
    t0 = np.asarray(t0).astype(np.int64).reshape(-1)
    xy, fb, inside = chain_steps(flow, t0, xy0)
    on_plate = inside[np.arange(len(t0)), t0]
    return xy, alive_until_failure(fb, inside, t0, fb_thresh, 1) & on_plate[:, None]


def chain_on_shot(shot, t0: np.ndarray, xy0: np.ndarray, fb_thresh: float = 1.5, *, wh: tuple[int, int] | None = None,
                  flow: FlowField | None = None, method: str = "dis", weights=None, progress=None, cancel=None
                  ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Chained optical flow as a point tracker on ``shot``: :func:`chain_points` from image ``t0`` int ``[N]``
    at plate px ``xy0`` ``[N, 2]`` -> (``xy`` ``[N, T, 2]`` plate px, ``valid`` bool ``[N, T]``, the flow
    raster (W, H)).

    The flow (``method``, ``weights``: :func:`~..preprocess.flow.compute_flow`) runs on the frames loaded at
    ``wh``; or ``flow`` is given, a ``FlowField`` of the shot on any raster. Positions go plate <-> flow
    raster through ``shot.resize`` (:class:`coords.Resize`); with neither ``wh`` nor ``flow`` the flow runs
    on the plate itself and the positions are not converted (float32, as chained).
    """
    if flow is None:
        flow = compute_flow(shot.load() if wh is None else shot.load(wh), method=method, weights=weights,
                            progress=progress, cancel=cancel)
    elif wh is None:
        wh = tuple(flow.size)
    rz = None if wh is None else shot.resize(wh)
    xy0 = np.asarray(xy0, np.float64).reshape(-1, 2)
    xy, valid = chain_points(flow, t0, xy0 if rz is None else rz.to_working(xy0), fb_thresh)
    if rz is not None:
        xy = rz.to_plate(xy.astype(np.float64))
    return xy, valid, tuple(flow.size)


__all__ = ["chain_steps", "alive_until_failure", "chain_points", "chain_on_shot"]
