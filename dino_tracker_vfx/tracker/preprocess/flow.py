"""Optical flow between consecutive frames (point chaining through it: :mod:`..infer.chain`).

Conventions: frames are uint8 ``[T, H, W, 3]`` RGB at working resolution; a flow field is float32
``[H, W, 2]`` holding ``(dx, dy)`` in pixels, indexed at integer pixel centres (pixel ``(x, y)`` has its
centre at ``(x, y)``, origin top-left, y down), so ``p + flow[round(p)]`` is where ``p`` lands.

* :func:`compute_flow` -> :class:`FlowField` with ``fwd[t]`` (t -> t+1) and ``bwd[t]`` (t+1 -> t).
* :func:`make_engine` -> a reusable engine; ``eng(eng.gray(a), eng.gray(b))`` is one direct flow ``a -> b``.
* :func:`sample_flow` -> bilinear sample of a flow field at sub-pixel points (border clamped).

Methods: ``"dis"`` (OpenCV DIS, weight free, default), ``"raft_small"`` / ``"raft_large"``
(torchvision RAFT with locally supplied weights, see :mod:`dino_tracker_vfx.tracker.preprocess.weights`). RAFT runs
on the ``device`` it is given (the tracker's), ``batch`` flows (frame pairs both ways) per forward pass,
with ``RAFT_DEFAULT_ITERS`` refinement updates unless ``params`` says ``iters``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...checks import check_shape
from ...errors import ConfigError
from ...progress import EtaClock, Progress, ProgressFn, CancelFn, check_cancel

METHODS = ("dis", "raft_small", "raft_large")
DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}

# DIS settings: the "fast" preset run down to full resolution (finest_scale 0). On the TAP-Vid-DAVIS dev
# split (first 32 frames) chained tracks reach delta_avg 0.79 vs 0.77 with OpenCV's medium preset
# (finest_scale 1), at ~0.3 s per 854x476 pair on one core. Given settings override these; keys in
# neither keep the preset's own value.
DIS_KEYS = ("preset", "finest_scale", "patch_size", "patch_stride", "grad_iters", "var_iters", "var_alpha",
            "var_delta", "var_gamma", "mean_normalization", "spatial_propagation")
DIS_DEFAULTS: dict[str, Any] = {"preset": "fast", "finest_scale": 0}
# the reference's RAFT updates: DINO-Tracker preprocessing/extract_trajectories.py calls
# raft_large(...)(from, to, num_flow_updates=24) for its consecutive and direct flows (torchvision's default: 12)
RAFT_DEFAULT_ITERS = 24


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

    def both_ways(self, ga: np.ndarray, gb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flow ga->gb, flow gb->ga)."""
        return self(ga, gb), self(gb, ga)


class _RAFT:
    def __init__(self, method: str, weights, iters: int, device=None, batch: int | None = None):
        import torch

        from .weights import load_raft

        self.torch = torch
        self.device = torch.device(device or "cpu")
        self.model = load_raft(method, weights).to(self.device)
        self.iters = int(iters)
        self.batch = max(1, int(batch if batch is not None else raft_batch(self.device)))
        self.params = {"iters": self.iters}

    def gray(self, frame: np.ndarray) -> np.ndarray:  # RAFT keeps RGB; "prepared" frame
        return frame

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a, b uint8 [B, H, W, 3] -> flow a->b float32 [B, H, W, 2], ``self.batch`` flows per forward pass
        on ``self.device``."""
        out = np.empty(a.shape[:3] + (2,), np.float32)
        for s in range(0, len(a), self.batch):
            out[s:s + self.batch] = self._forward(a[s:s + self.batch], b[s:s + self.batch])
        return out

    def _forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        torch = self.torch
        import torch.nn.functional as F

        def prep(x):
            t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
            return t.permute(0, 3, 1, 2).float() / 127.5 - 1.0

        ta, tb = prep(a), prep(b)
        H, W = ta.shape[-2:]
        # RAFT needs multiples of 8 and >= 128 px (its correlation pyramid); replicate-pad right/bottom so
        # pixel centres keep their place
        ph, pw = max(128, H + (-H) % 8) - H, max(128, W + (-W) % 8) - W
        if ph or pw:
            ta = F.pad(ta, (0, pw, 0, ph), mode="replicate")
            tb = F.pad(tb, (0, pw, 0, ph), mode="replicate")
        with torch.inference_mode():
            out = self.model(ta, tb, num_flow_updates=self.iters)[-1]
        return out[:, :, :H, :W].permute(0, 2, 3, 1).float().cpu().numpy()

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.pairs(a[None], b[None])[0]

    def both_ways(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flow a->b, flow b->a) in one forward pass."""
        f = self.pairs(np.stack([a, b]), np.stack([b, a]))
        return f[0], f[1]


def raft_batch(device) -> int:
    """Flows per RAFT forward pass: 16 (8 frame pairs both ways, as the reference's direct flows) on a GPU,
    2 on the CPU (batching gains nothing there and costs memory)."""
    return 16 if str(device).startswith("cuda") else 2


def effective_params(method: str, params: dict | None) -> dict:
    """The engine settings a flow is computed with (RAFT: ``iters`` filled in), for cache keys."""
    p = dict(params or {})
    if method != "dis":
        p.setdefault("iters", RAFT_DEFAULT_ITERS)
    return p


def _engine(method: str, weights=None, params: dict | None = None, device=None, batch: int | None = None):
    _check_method(method)
    if method == "dis":
        return _DIS(params)
    params = dict(params or {})
    check_params(method, params)
    return _RAFT(method, weights, params.get("iters", RAFT_DEFAULT_ITERS), device, batch)


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
                 cancel: CancelFn | None = None, params: dict | None = None, device=None,
                 batch: int | None = None) -> FlowField:
    """Forward and backward flow between consecutive frames.

    frames: uint8 ``[T, H, W, 3]`` RGB (working resolution). ``weights``: RAFT weights file (None ->
    the standard search, see ``weights.py``). ``params``: DIS settings (``DIS_KEYS``, merged over ``DIS_DEFAULTS``) or
    ``{"iters": n}`` for RAFT. ``device``: where RAFT runs (default cpu); ``batch``: RAFT flows per
    forward pass (default :func:`raft_batch`). Returns a :class:`FlowField` with ``fwd``/``bwd`` float32
    ``[T-1, H, W, 2]``.
    """
    _check_frames(frames)
    T, H, W, _ = frames.shape
    eng = _engine(method, weights, params, device, batch)
    fwd = np.empty((max(T - 1, 0), H, W, 2), np.float32)
    bwd = np.empty_like(fwd)
    clock = EtaClock()
    if method == "dis":
        prev = eng.gray(frames[0]) if T else None
        for t in range(T - 1):
            check_cancel(cancel, "optical flow")
            cur = eng.gray(frames[t + 1])
            fwd[t], bwd[t] = eng.both_ways(prev, cur)
            prev = cur
            if progress is not None:
                progress(Progress("flow", t + 1, T - 1, eta_s=clock.eta(t + 1, T - 1), message=method))
    else:  # RAFT: eng.batch / 2 consecutive pairs, both directions, per forward pass
        step = max(1, eng.batch // 2)
        for s in range(0, T - 1, step):
            check_cancel(cancel, "optical flow")
            e = min(T - 1, s + step)
            a, b = frames[s:e], frames[s + 1:e + 1]
            f = eng.pairs(np.concatenate([a, b]), np.concatenate([b, a]))
            fwd[s:e], bwd[s:e] = f[:e - s], f[e - s:]
            if progress is not None:
                progress(Progress("flow", e, T - 1, eta_s=clock.eta(e, T - 1), message=method))
    return FlowField(fwd, bwd, method, dict(eng.params))


def make_engine(method: str = "dis", weights=None, params: dict | None = None, device=None):
    """A reusable flow engine (builds DIS / loads RAFT once, on ``device``): ``eng(eng.gray(a), eng.gray(b))``
    -> ``[H, W, 2]``; ``engine.both_ways(a, b)`` gives both directions (one forward pass for RAFT)."""
    return _engine(method, weights, params, device)


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


__all__ = ["FlowField", "compute_flow", "make_engine", "raft_batch", "effective_params", "sample_flow", "in_raster",
           "METHODS", "DIS_DEFAULTS"]
