"""Every coordinate conversion of the core lives here (after tapnet's ``transforms.py``).

Core convention (../shared/docs/CONVENTIONS.md): points are ``(x, y)`` in **plate pixels of the
display window**, origin top-left, y down, the *centre* of the first pixel at ``(0, 0)``; an image of
width W spans ``-0.5 .. W - 0.5``. Arrays of points always have a trailing axis of size 2 ordered
``(x, y)``; time is never mixed into a point array (queries are named ``(t, x, y)`` records).

Conversions
-----------
* plate <-> working resolution: ``x_w = (x_p + 0.5) * W_w / W_p - 0.5`` (and the same for y with H).
  Exact inverses of each other; this is the mapping of ``cv2.resize`` / ``F.interpolate(align_corners=False)``.
* pixels <-> normalised ``[-1, 1]`` (``grid_sample(..., align_corners=False)``): ``u = (2 x + 1) / W - 1``.
* plate -> TAP-Vid evaluation raster (256x256): ``x_e = x * 256 / W`` as TAP-Vid / DINO-Tracker do
  (a pure scale; metric differences are the same as with the centre-aware map).
* plate -> bottom-left pixel-corner space used by Nuke, 3DE, mmSolver...: ``(x + 0.5, H - (y + 0.5))``.
* plate -> bottom-left pixel-centre space (PFTrack ``.2dt``: corner space shifted by -0.5 px): ``(x, H - 1 - y)``.
* plate -> top-left pixel-corner space (After Effects layer space): ``(x + 0.5, y + 0.5)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _xy(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.shape[-1:] != (2,):
        from .errors import ShapeError

        raise ShapeError(f"points: expected shape (..., 2) ordered (x, y), got {a.shape}")
    return a


@dataclass(frozen=True)
class Resize:
    """Map between a plate raster ``(W_p, H_p)`` and a working raster ``(W_w, H_w)``."""

    plate_wh: tuple[int, int]
    work_wh: tuple[int, int]

    @property
    def scale(self) -> np.ndarray:
        return np.array([self.work_wh[0] / self.plate_wh[0], self.work_wh[1] / self.plate_wh[1]])

    def to_working(self, xy_plate) -> np.ndarray:
        """(..., 2) plate px -> (..., 2) working px."""
        return (_xy(xy_plate) + 0.5) * self.scale - 0.5

    def to_plate(self, xy_work) -> np.ndarray:
        """(..., 2) working px -> (..., 2) plate px."""
        return (_xy(xy_work) + 0.5) / self.scale - 0.5


def px_to_norm(xy, wh) -> np.ndarray:
    """(..., 2) px in a raster of size ``wh=(W, H)`` -> [-1, 1] (align_corners=False)."""
    wh = np.asarray(wh, dtype=np.float64)
    return (2.0 * _xy(xy) + 1.0) / wh - 1.0


def norm_to_px(uv, wh) -> np.ndarray:
    """Inverse of :func:`px_to_norm`."""
    wh = np.asarray(wh, dtype=np.float64)
    return ((_xy(uv) + 1.0) * wh - 1.0) / 2.0


def px_to_norm_t(xy, wh):
    """Torch version of :func:`px_to_norm`; ``xy`` is a float tensor (..., 2), ``wh=(W, H)``."""
    import torch

    wh_t = torch.as_tensor(wh, dtype=xy.dtype, device=xy.device)
    return (2.0 * xy + 1.0) / wh_t - 1.0


def to_eval_raster(xy, wh, size: int = 256) -> np.ndarray:
    """Plate px -> TAP-Vid evaluation raster (``size`` x ``size``), a pure scale as in TAP-Vid."""
    return _xy(xy) * (np.array([size, size], dtype=np.float64) / np.asarray(wh, dtype=np.float64))


def to_bottom_left_corner(xy, height: int) -> np.ndarray:
    """Plate px (centre-at-integer, y down) -> pixel-corner, bottom-left origin, y up."""
    xy = _xy(xy)
    out = np.empty_like(xy)
    out[..., 0] = xy[..., 0] + 0.5
    out[..., 1] = height - (xy[..., 1] + 0.5)
    return out


def from_bottom_left_corner(xy, height: int) -> np.ndarray:
    """Inverse of :func:`to_bottom_left_corner`."""
    xy = _xy(xy)
    out = np.empty_like(xy)
    out[..., 0] = xy[..., 0] - 0.5
    out[..., 1] = height - xy[..., 1] - 0.5
    return out


def to_bottom_left_centre(xy, height: int) -> np.ndarray:
    """Plate px -> pixel-centre, bottom-left origin, y up (PFTrack): ``(x, H - 1 - y)``."""
    return to_bottom_left_corner(xy, height) - 0.5


def from_bottom_left_centre(xy, height: int) -> np.ndarray:
    """Inverse of :func:`to_bottom_left_centre`."""
    return from_bottom_left_corner(_xy(xy) + 0.5, height)


def to_top_left_corner(xy) -> np.ndarray:
    """Plate px -> pixel-corner, top-left origin, y down (After Effects): ``(x + 0.5, y + 0.5)``."""
    return _xy(xy) + 0.5


def from_top_left_corner(xy) -> np.ndarray:
    """Inverse of :func:`to_top_left_corner`."""
    return _xy(xy) - 0.5


def to_unit_bottom_left(xy, wh) -> np.ndarray:
    """Plate px -> 0..1 of width/height, bottom-left origin (Blender clip, Fusion, mmSolver)."""
    wh = np.asarray(wh, dtype=np.float64)
    c = to_bottom_left_corner(xy, int(wh[1]))
    return c / wh


def from_unit_bottom_left(uv, wh) -> np.ndarray:
    wh = np.asarray(wh, dtype=np.float64)
    return from_bottom_left_corner(_xy(uv) * wh, int(wh[1]))


def in_plate(xy, wh) -> np.ndarray:
    """Bool (...,) whether points lie on the plate (``-0.5 <= x <= W - 0.5``, same for y)."""
    xy = _xy(xy)
    W, H = wh
    return (xy[..., 0] >= -0.5) & (xy[..., 0] <= W - 0.5) & (xy[..., 1] >= -0.5) & (xy[..., 1] <= H - 0.5)
