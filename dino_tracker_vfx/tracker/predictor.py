"""The array API: frames and query points in, arrays out (a thin layer over :func:`.api.track`).

    from dino_tracker_vfx.tracker.predictor import track_arrays
    out = track_arrays(frames, queries, preset="cpu-preview")
    out.xy          # float32 [N, T, 2]  (x, y) plate px
    out.visible     # bool    [N, T]
    out.confidence  # float32 [N, T]     in 0..1

Contract, checked here:

* ``frames``: uint8 ``[T, H, W, 3]`` display-referred RGB (numpy, or a CPU torch tensor), T >= 2; or a
  :class:`~dino_tracker_vfx.shots.Shot` (then T, H, W are the shot's).
* ``queries``: float ``[N, 3]`` rows ``(t, x, y)``: ``t`` the 0-based image index (an integer value),
  ``(x, y)`` plate px of the display window, origin top-left, y down, the centre of the first pixel at
  ``(0, 0)`` (docs/conventions.md). Note the order: TAP-Vid stores ``(t, y, x)``; this API, like
  CoTracker's, takes ``(t, x, y)``.
* ``masks``: optional ``{t: int [H, W] instance ids}`` (0 = background), as :func:`.api.track` takes them.
* Returns :class:`TrackArrays`; at each query's own image the position is the query exactly, visible,
  confidence 1. Every other argument is :func:`.api.track`'s.

Bad input raises :class:`~dino_tracker_vfx.errors.InputError` / ``ShotError`` naming the row or field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import check_shape
from ..errors import InputError
from ..progress import CancelFn, ProgressFn
from ..tracks import Query


@dataclass(frozen=True)
class TrackArrays:
    """``xy`` float32 ``[N, T, 2]`` plate px; ``visible`` bool ``[N, T]``; ``confidence`` float32 ``[N, T]``."""

    xy: np.ndarray
    visible: np.ndarray
    confidence: np.ndarray

    def __post_init__(self):
        d = check_shape(self.xy, "N T 2", "TrackArrays.xy")
        check_shape(self.visible, "N T", "TrackArrays.visible", d)
        check_shape(self.confidence, "N T", "TrackArrays.confidence", d)


def queries_from_array(queries, n_images: int) -> list[Query]:
    """float ``[N, 3]`` rows ``(t, x, y)`` -> :class:`~dino_tracker_vfx.tracks.Query` named ``q0, q1, ...``.

    Checks the shape, that ``t`` is an integer value in ``0 .. n_images-1`` and that x, y are finite; the
    plate bounds are checked by :func:`.api.track`."""
    q = queries.detach().cpu().numpy() if hasattr(queries, "detach") else np.asarray(queries)
    if q.dtype == bool or not np.issubdtype(q.dtype, np.number):
        raise InputError(f"queries must be numbers (t, x, y), got dtype {q.dtype}", where="queries")
    q = q.astype(np.float64).reshape(-1, 3) if q.size == 0 else q.astype(np.float64)
    check_shape(q, "N 3", "queries (t, x, y)")
    out = []
    for i, (t, x, y) in enumerate(q):
        if not (np.isfinite(t) and np.isfinite(x) and np.isfinite(y)):
            raise InputError(f"row {i}: (t, x, y) = ({t:g}, {x:g}, {y:g}) is not finite", where="queries")
        if t != np.round(t) or not 0 <= t < n_images:
            raise InputError(f"row {i}: t = {t:g} is not an image index 0..{n_images - 1}", where="queries")
        out.append(Query(int(t), float(x), float(y), f"q{i}"))
    return out


def track_arrays(frames, queries, *, preset: str | Path | dict = "cpu-preview",
                 masks: dict[int, np.ndarray] | None = None, cache_dir: str | Path | None = None,
                 device: str | None = None, seed: int = 0, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None) -> TrackArrays:
    """Track ``queries`` ``[N, 3]`` ``(t, x, y)`` through ``frames`` uint8 ``[T, H, W, 3]`` (or a Shot); see
    the module docstring for the contract."""
    from ..shots import Shot, from_array
    from .api import track

    shot = frames if isinstance(frames, Shot) else from_array(frames)
    qs = queries_from_array(queries, shot.n_images)
    ts = track(shot, qs, preset=preset, masks=masks, cache_dir=cache_dir, device=device, seed=seed,
               progress=progress, cancel=cancel)
    return TrackArrays(ts.xy.astype(np.float32), ts.visible.astype(bool), ts.confidence.astype(np.float32))


__all__ = ["TrackArrays", "queries_from_array", "track_arrays"]
