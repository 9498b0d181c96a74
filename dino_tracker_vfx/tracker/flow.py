"""Optical flow between frames and point chaining through it.

Conventions: frames are uint8 ``[T, H, W, 3]`` RGB at working resolution; a flow field is float32
``[H, W, 2]`` holding ``(dx, dy)`` in pixels, indexed at integer pixel centres (pixel ``(x, y)`` has its
centre at ``(x, y)``, origin top-left, y down), so ``p + flow[round(p)]`` is where ``p`` lands.

* :func:`compute_flow` -> :class:`FlowField` with ``fwd[t]`` (t -> t+1) and ``bwd[t]`` (t+1 -> t).
* :func:`flow_pair` -> one direct flow ``a -> b`` (long-range checks).
* :func:`chain_points` -> tracks by chaining consecutive flows with a forward-backward check; this is
  also the ``flow`` baseline of the evaluation harness.
* :func:`sample_flow` -> bilinear sample of a flow field at sub-pixel points (border clamped).

Methods: ``"dis"`` (OpenCV DIS, weight free, default), ``"raft_small"`` / ``"raft_large"``
(torchvision RAFT with locally supplied weights, see :mod:`dino_tracker_vfx.tracker.weights`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..checks import check_shape
from ..errors import ConfigError
from ..progress import EtaClock, Progress, ProgressFn, CancelFn, check_cancel

METHODS = ("dis", "raft_small", "raft_large")
DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}

# DIS settings: the "fast" preset run down to full resolution (finest_scale 0). On the TAP-Vid-DAVIS dev
# split (first 32 frames) chained tracks reach delta_avg 0.79 vs 0.77 with OpenCV's medium preset
# (finest_scale 1), at ~0.3 s per 854x476 pair on one core. Given settings override these; keys in
# neither keep the preset's own value.
DIS_KEYS = ("preset", "finest_scale", "patch_size", "patch_stride", "grad_iters", "var_iters", "var_alpha",
            "var_delta", "var_gamma", "mean_normalization", "spatial_propagation")
DIS_DEFAULTS: dict[str, Any] = {"preset": "fast", "finest_scale": 0}
RAFT_DEFAULT_ITERS = 12


@dataclass
class FlowField:
    """Consecutive-frame flows of a shot at working resolution.

    ``fwd``: float32 ``[T-1, H, W, 2]``, ``fwd[t]`` maps frame t to t+1 (dx, dy px).
    ``bwd``: float32 ``[T-1, H, W, 2]``, ``bwd[t]`` maps frame t+1 back to t.
    """

    fwd: np.ndarray
    bwd: np.ndarray
    method: str = "dis"
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        d = check_shape(self.fwd, "P H W 2", "FlowField.fwd")
        check_shape(self.bwd, "P H W 2", "FlowField.bwd", dims=d)

    @property
    def num_frames(self) -> int:
        return int(self.fwd.shape[0]) + 1

    @property
    def size(self) -> tuple[int, int]:
        """(W, H) of the working raster."""
        return int(self.fwd.shape[2]), int(self.fwd.shape[1])

    def nbytes(self) -> int:
        return int(self.fwd.nbytes + self.bwd.nbytes)


# ----------------------------------------------------------------------------------------------- methods


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"flow method {method!r} is not one of {', '.join(METHODS)}", where="flow.method")


class _DIS:
    _SETTERS = {"finest_scale": ("setFinestScale", int), "patch_size": ("setPatchSize", int),
                "patch_stride": ("setPatchStride", int), "grad_iters": ("setGradientDescentIterations", int),
                "var_iters": ("setVariationalRefinementIterations", int), "var_alpha": ("setVariationalRefinementAlpha", float),
                "var_delta": ("setVariationalRefinementDelta", float), "var_gamma": ("setVariationalRefinementGamma", float),
                "mean_normalization": ("setUseMeanNormalization", bool),
                "spatial_propagation": ("setUseSpatialPropagation", bool)}

    def __init__(self, params: dict | None):
        import cv2

        check_params("dis", params or {})
        p = {**DIS_DEFAULTS, **(params or {})}
        d = cv2.DISOpticalFlow_create(DIS_PRESETS[p["preset"]])
        for key, (setter, cast) in self._SETTERS.items():
            if key in p:
                getattr(d, setter)(cast(p[key]))
        self.params = p
        self.dis = d
        self._cv2 = cv2
        self.seeded = False  # given an initial flow once (see __call__)

    def gray(self, frame: np.ndarray) -> np.ndarray:
        return self._cv2.cvtColor(frame, self._cv2.COLOR_RGB2GRAY)

    def __call__(self, ga: np.ndarray, gb: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
        """Flow ``ga -> gb`` float32 ``[H, W, 2]``; ``init``: a starting flow ``[H, W, 2]`` (not modified).

        OpenCV's DIS, once given an initial flow, keeps using one: a later plain ``calc(a, b, None)`` then
        starts from zero instead of its coarse-to-fine search (errors of tens of px). So an engine that has
        been seeded refuses plain calls; seeded and plain flows need two engines.
        """
        if init is None:
            if self.seeded:
                raise RuntimeError("this DIS engine was given an initial flow; OpenCV would reuse one for a plain "
                                   "call - use a separate engine for plain flows")
            return self.dis.calc(ga, gb, None).astype(np.float32, copy=False)
        self.seeded = True
        return self.dis.calc(ga, gb, np.array(init, np.float32, copy=True)).astype(np.float32, copy=False)


class _RAFT:
    def __init__(self, method: str, weights, iters: int):
        import torch

        from .weights import load_raft

        self.torch = torch
        self.model = load_raft(method, weights)
        self.iters = int(iters)
        self.params = {"iters": self.iters}

    def gray(self, frame: np.ndarray) -> np.ndarray:  # RAFT keeps RGB; "prepared" frame
        return frame

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a, b uint8 [B, H, W, 3] -> flow a->b float32 [B, H, W, 2]."""
        torch = self.torch
        import torch.nn.functional as F

        ta = torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        tb = torch.from_numpy(np.ascontiguousarray(b)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        H, W = ta.shape[-2:]
        # RAFT needs multiples of 8 and >= 128 px (its correlation pyramid); replicate-pad right/bottom so
        # pixel centres keep their place
        ph, pw = max(128, H + (-H) % 8) - H, max(128, W + (-W) % 8) - W
        if ph or pw:
            ta = F.pad(ta, (0, pw, 0, ph), mode="replicate")
            tb = F.pad(tb, (0, pw, 0, ph), mode="replicate")
        with torch.inference_mode():
            out = self.model(ta, tb, num_flow_updates=self.iters)[-1]
        return out[:, :, :H, :W].permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32, copy=False)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.pairs(a[None], b[None])[0]


def _engine(method: str, weights=None, params: dict | None = None):
    _check_method(method)
    if method == "dis":
        return _DIS(params)
    check_params(method, params or {})
    return _RAFT(method, weights, (params or {}).get("iters", RAFT_DEFAULT_ITERS))


# value ranges of the engine settings (``flow.params``); the types are those of _DIS._SETTERS / RAFT iters
_PARAM_RANGES = {"finest_scale": (0, 10), "patch_size": (1, 128), "patch_stride": (1, 128),
                 "grad_iters": (0, 10_000), "var_iters": (0, 10_000), "var_alpha": (0.0, 1e6),
                 "var_delta": (0.0, 1e6), "var_gamma": (0.0, 1e6), "iters": (1, 1000)}


def check_params(method: str, params: dict, where: str = "flow.params") -> None:
    """Refuse an engine setting ``method`` does not know or a bad value, naming ``flow.params.<key>``.

    Presets call this when they are loaded (config.py), so a bad value fails before any frame is read."""
    _check_method(method)
    kinds = {k: cast for k, (_, cast) in _DIS._SETTERS.items()} if method == "dis" else {"iters": int}
    known = list(DIS_KEYS) if method == "dis" else ["iters"]
    for k, v in params.items():
        field_ = f"flow.params.{k}"
        if k not in known:
            raise ConfigError(f"{field_}: unknown {method} setting; known: {', '.join(known)}", where=where)
        if k == "preset":
            if v not in DIS_PRESETS:
                raise ConfigError(f"{field_}: must be one of {', '.join(DIS_PRESETS)}, got {v!r}", where=where)
            continue
        cast, (lo, hi) = kinds[k], _PARAM_RANGES.get(k, (None, None))
        if cast is bool:
            if not isinstance(v, bool):
                raise ConfigError(f"{field_}: must be true or false, got {v!r}", where=where)
        elif (isinstance(v, bool) or not isinstance(v, (int, float)) or (cast is int and not isinstance(v, int))
              or not lo <= v <= hi):
            kind = "an integer" if cast is int else "a number"
            raise ConfigError(f"{field_}: must be {kind} in {lo:g}..{hi:g}, got {v!r}", where=where)


def _check_frames(frames: np.ndarray, name: str = "frames") -> None:
    check_shape(frames, "T H W 3", name)
    if frames.dtype != np.uint8:
        raise TypeError(f"{name}: expected uint8 RGB frames, got {frames.dtype}")


# ----------------------------------------------------------------------------------------------- public


def compute_flow(frames: np.ndarray, method: str = "dis", weights=None, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None, params: dict | None = None) -> FlowField:
    """Forward and backward flow between consecutive frames.

    frames: uint8 ``[T, H, W, 3]`` RGB (working resolution). ``weights``: RAFT weights file (None ->
    the standard search, see ``weights.py``). ``params``: DIS settings (``DIS_KEYS``, merged over ``DIS_DEFAULTS``) or
    ``{"iters": n}`` for RAFT. Returns a :class:`FlowField` with ``fwd``/``bwd`` float32 ``[T-1, H, W, 2]``.
    """
    _check_frames(frames)
    T, H, W, _ = frames.shape
    eng = _engine(method, weights, params)
    fwd = np.empty((max(T - 1, 0), H, W, 2), np.float32)
    bwd = np.empty_like(fwd)
    clock = EtaClock()
    prev = eng.gray(frames[0]) if T else None
    for t in range(T - 1):
        check_cancel(cancel, "optical flow")
        cur = eng.gray(frames[t + 1])
        if method == "dis":
            fwd[t] = eng(prev, cur)
            bwd[t] = eng(cur, prev)
        else:  # one batch of two for RAFT
            f = eng.pairs(np.stack([prev, cur]), np.stack([cur, prev]))
            fwd[t], bwd[t] = f[0], f[1]
        prev = cur
        if progress is not None:
            progress(Progress("flow", t + 1, T - 1, eta_s=clock.eta(t + 1, T - 1), message=method))
    return FlowField(fwd, bwd, method, dict(eng.params))


def flow_pair(a: np.ndarray, b: np.ndarray, method: str = "dis", weights=None, params: dict | None = None,
              engine=None) -> np.ndarray:
    """Direct flow from image ``a`` to image ``b`` (uint8 ``[H, W, 3]`` each) -> float32 ``[H, W, 2]``.

    ``engine``: reuse a prepared engine from :func:`make_engine` when calling many times.
    """
    d = check_shape(a, "H W 3", "flow_pair a")
    check_shape(b, "H W 3", "flow_pair b", dims=d)
    eng = engine or _engine(method, weights, params)
    return eng(eng.gray(a), eng.gray(b))


def make_engine(method: str = "dis", weights=None, params: dict | None = None):
    """A reusable flow engine for :func:`flow_pair` (builds DIS / loads RAFT once)."""
    return _engine(method, weights, params)


def sample_flow(flow: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear sample of ``flow`` float ``[H, W, 2]`` at points ``xy`` ``[N, 2]`` (x, y px) -> ``[N, 2]``.

    Points off the raster read the nearest border value (clamped).
    """
    H, W = flow.shape[:2]
    x = np.clip(xy[:, 0], 0.0, W - 1.0).astype(np.float32)
    y = np.clip(xy[:, 1], 0.0, H - 1.0).astype(np.float32)
    if H < 2 or W < 2:  # one row / column: pad so the 2x2 neighbourhood exists (weights stay 0 there)
        flow = np.pad(flow, ((0, max(0, 2 - H)), (0, max(0, 2 - W)), (0, 0)), mode="edge")
    Hp, Wp = flow.shape[:2]
    x0 = np.minimum(x.astype(np.int64), Wp - 2)  # x >= 0: truncation is floor
    y0 = np.minimum(y.astype(np.int64), Hp - 2)
    wx = (x - x0)[:, None]
    wy = (y - y0)[:, None]
    f = np.ascontiguousarray(flow, dtype=np.float32).reshape(-1, 2)
    i = y0 * Wp + x0
    a, b = np.take(f, i, axis=0), np.take(f, i + 1, axis=0)
    c, d = np.take(f, i + Wp, axis=0), np.take(f, i + Wp + 1, axis=0)
    top = a + (b - a) * wx
    bot = c + (d - c) * wx
    return top + (bot - top) * wy


def in_raster(xy: np.ndarray, wh: tuple[int, int]) -> np.ndarray:
    """Bool ``[N]``: point inside the raster ``-0.5 .. W-0.5`` x ``-0.5 .. H-0.5``."""
    W, H = wh
    return (xy[:, 0] >= -0.5) & (xy[:, 0] <= W - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] <= H - 0.5)


def _steps_away(t0: np.ndarray, T: int):
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
    for t, nt, direction, idx in _steps_away(t0, T):
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
    for t, nt, _, idx in _steps_away(t0, T):
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


__all__ = ["FlowField", "compute_flow", "flow_pair", "make_engine", "chain_points", "chain_steps", "alive_until_failure",
           "sample_flow", "in_raster", "METHODS", "DIS_DEFAULTS"]
