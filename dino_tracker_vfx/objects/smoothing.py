"""Optional smoothing of object tracks in plate space (off by default).

* ``one-euro`` (Casiez et al., CHI 2012): a causal low-pass whose cutoff rises with speed,
  ``cutoff = min_cutoff + beta * |speed|`` (Hz, speed in plate px / s at the shot's ``fps``); removes
  jitter at rest with little lag on fast moves. Defaults ``min_cutoff=1.0, beta=0.02, d_cutoff=1.0``.
* ``savgol`` (Savitzky-Golay): zero-phase local polynomial fit, ``window`` frames (odd, default 9),
  ``order`` (default 2); near run ends the nearest full window's polynomial is evaluated.

Both run separately on every run of consecutive frames with a known position (NaN gaps split runs and
stay NaN); a run too short for the filter is left as it is. Spec strings (CLI ``--smooth``):
``none``, ``one-euro``, ``one-euro:min_cutoff=0.5,beta=0.01``, ``savgol``, ``savgol:window=11,order=3``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..checks import check_shape
from ..errors import ConfigError
from ..tracks import ObjectTrack

METHODS = ("none", "one-euro", "savgol")
_PARAMS = {"one-euro": {"min_cutoff": 1.0, "beta": 0.02, "d_cutoff": 1.0}, "savgol": {"window": 9, "order": 2},
           "none": {}}


@dataclass(frozen=True)
class SmoothSpec:
    method: str = "none"
    params: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {"method": self.method, **self.params}


def parse_smooth(text: str | None) -> SmoothSpec:
    """``"savgol:window=11,order=3"`` -> :class:`SmoothSpec` (unknown names / values -> ConfigError)."""
    if not text or text == "none":
        return SmoothSpec()
    name, _, rest = text.partition(":")
    name = name.strip().lower().replace("_", "-")
    if name in ("oneeuro", "1euro"):
        name = "one-euro"
    if name not in METHODS:
        raise ConfigError(f"smoothing {name!r} is not one of {', '.join(METHODS)}", where="--smooth")
    params = dict(_PARAMS[name])
    for part in filter(None, (p.strip() for p in rest.split(","))):
        k, eq, v = part.partition("=")
        if not eq or k not in params:
            raise ConfigError(f"{name}: unknown setting {part!r} (settings: {', '.join(params) or 'none'})",
                              where="--smooth")
        try:
            params[k] = int(v) if isinstance(params[k], int) else float(v)
        except ValueError:
            raise ConfigError(f"{name}: {k}={v!r} is not a number", where="--smooth") from None
    if name == "savgol":
        if params["window"] < 3 or params["window"] % 2 == 0:
            raise ConfigError(f"savgol window must be odd and >= 3, got {params['window']}", where="--smooth")
        if not 0 <= params["order"] < params["window"]:
            raise ConfigError(f"savgol order must be in 0..window-1, got {params['order']}", where="--smooth")
    if name == "one-euro" and (params["min_cutoff"] <= 0 or params["d_cutoff"] <= 0 or params["beta"] < 0):
        raise ConfigError("one-euro needs min_cutoff > 0, d_cutoff > 0, beta >= 0", where="--smooth")
    return SmoothSpec(name, params)


def _runs(ok: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of runs of True."""
    out, t, T = [], 0, len(ok)
    while t < T:
        if ok[t]:
            s = t
            while t < T and ok[t]:
                t += 1
            out.append((s, t))
        else:
            t += 1
    return out


def _alpha(cutoff: float, fps: float) -> float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau * fps)


def one_euro(x: np.ndarray, fps: float = 24.0, min_cutoff: float = 1.0, beta: float = 0.02,
             d_cutoff: float = 1.0) -> np.ndarray:
    """One-euro filter of ``[T, D]`` samples (one run, no NaN) -> ``[T, D]``; speed = vector norm."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    out[0] = x[0]
    dx_hat = np.zeros(x.shape[1])
    a_d = _alpha(d_cutoff, fps)
    for t in range(1, len(x)):
        dx = (x[t] - out[t - 1]) * fps
        dx_hat = a_d * dx + (1 - a_d) * dx_hat
        a = _alpha(min_cutoff + beta * float(np.linalg.norm(dx_hat)), fps)
        out[t] = a * x[t] + (1 - a) * out[t - 1]
    return out


def savgol(x: np.ndarray, window: int = 9, order: int = 2) -> np.ndarray:
    """Savitzky-Golay of ``[T, D]`` samples (one run, no NaN); returns ``x`` unchanged if ``T <= order``."""
    x = np.asarray(x, np.float64)
    T = len(x)
    win = min(window, T if T % 2 else T - 1)
    if win <= order:
        return x.copy()
    half = win // 2
    out = np.empty_like(x)
    coef: dict[int, np.ndarray] = {}
    for i in range(T):
        s = min(max(i - half, 0), T - win)
        off = i - s  # position of i inside its window
        if off not in coef:
            V = np.vander(np.arange(win) - off, order + 1, increasing=True)
            coef[off] = np.linalg.pinv(V)[0]  # value of the fitted polynomial at i
        out[i] = coef[off] @ x[s:s + win]
    return out


def smooth_series(x: np.ndarray, spec: SmoothSpec, fps: float = 24.0) -> np.ndarray:
    """Smooth ``[T, D]`` run by run (NaN rows split runs and stay NaN)."""
    x = np.asarray(x, np.float64)
    check_shape(x, "T D", "series")
    if spec.method == "none":
        return x.copy()
    out = x.copy()
    for s, e in _runs(np.isfinite(x).all(1)):
        if spec.method == "one-euro":
            out[s:e] = one_euro(x[s:e], fps, **spec.params)
        else:
            out[s:e] = savgol(x[s:e], **spec.params)
    return out


def smooth_object_track(obj: ObjectTrack, spec: SmoothSpec, fps: float | None = None) -> ObjectTrack:
    """A new :class:`ObjectTrack` with smoothed centroid and bbox (visibility and confidence kept)."""
    if spec.method == "none":
        return obj
    f = float(fps or 24.0)
    cen = smooth_series(obj.centroid, spec, f)
    box = None if obj.bbox is None else smooth_series(obj.bbox, spec, f)
    return ObjectTrack(cen, obj.visible.copy(), box, obj.confidence.copy())


__all__ = ["SmoothSpec", "parse_smooth", "one_euro", "savgol", "smooth_series", "smooth_object_track", "METHODS"]
