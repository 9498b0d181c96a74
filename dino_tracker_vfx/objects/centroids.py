"""Object-level track (centroid, bbox, visibility, confidence) from an object's tracked points.

The centroid of the tracked points is *not* the mask centroid (points keep off the silhouette and are
denser where the object is textured), so the object track follows the **mask centroid** ``c0`` and
**mask bbox** ``b0`` of the query frame ``t0`` through a motion model fitted to the points:

1. At each image ``t`` take the member points visible at ``t`` (all are at ``t0``: they are its queries).
2. Outlier rejection on displacement: ``d_i = x_i(t) - x_i(t0)``; a point is an inlier when
   ``|d_i - median(d)| <= max(mad_k * 1.4826 * MAD, min_tol_px)`` (MAD = median of those distances).
3. Motion model, fitted to the inliers by confidence-weighted least squares:
   ``similarity`` (scale + rotation + translation; default, needs ``min_points_similarity`` inliers,
   scale limited to ``1/max_scale_change .. max_scale_change``; one more rejection round on the fit
   residuals) or ``translation`` (the weighted mean displacement: the offset between the points'
   centroid and the mask centroid at ``t0`` is carried along unchanged).
4. ``centroid(t) = model(c0)``; ``bbox(t)`` = the axis-aligned box of ``model`` applied to the four
   corners of ``b0`` (plate px, ``x0, y0, x1, y1`` = extreme pixel centres of the mask at ``t0``).
5. ``visible(t)`` iff at least ``max(1, ceil(min_visible_fraction * N))`` of the N member points are
   visible (default 0.3): the object's visibility keyframe. While fewer are visible the position is still
   estimated from those that are (NaN only when none is); ``confidence(t)`` = summed confidence of the
   inliers / N, in 0..1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..checks import check_shape
from ..errors import ConfigError
from ..tracks import ObjectTrack

MOTION_MODELS = ("similarity", "translation")


@dataclass(frozen=True)
class CentroidParams:
    min_visible_fraction: float = 0.3
    mad_k: float = 3.0
    min_tol_px: float = 2.0
    motion_model: str = "similarity"
    min_points_similarity: int = 4
    max_scale_change: float = 4.0

    def validate(self) -> "CentroidParams":
        if self.motion_model not in MOTION_MODELS:
            raise ConfigError(f"motion model {self.motion_model!r} is not one of {', '.join(MOTION_MODELS)}")
        if not 0.0 < self.min_visible_fraction <= 1.0:
            raise ConfigError(f"min_visible_fraction must be in (0, 1], got {self.min_visible_fraction}")
        return self


def mask_box(mask: np.ndarray) -> np.ndarray:
    """``[4]`` (x0, y0, x1, y1) extreme pixel centres of a bool mask (NaN when empty)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.full(4, np.nan)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float64)


def fit_similarity(p0: np.ndarray, p1: np.ndarray, w: np.ndarray) -> tuple[complex, np.ndarray, np.ndarray] | None:
    """Weighted least-squares similarity ``p1 ~ mu1 + z * (p0 - mu0)`` in complex form.

    Returns ``(z, mu0, mu1)`` (``|z|`` = scale, ``arg z`` = rotation) or None when ``p0`` is degenerate.
    """
    sw = w.sum()
    mu0 = (w[:, None] * p0).sum(0) / sw
    mu1 = (w[:, None] * p1).sum(0) / sw
    a = (p0[:, 0] - mu0[0]) + 1j * (p0[:, 1] - mu0[1])
    b = (p1[:, 0] - mu1[0]) + 1j * (p1[:, 1] - mu1[1])
    den = float((w * np.abs(a) ** 2).sum())
    if den < 1e-9 * sw:
        return None
    return complex((w * np.conj(a) * b).sum() / den), mu0, mu1


def _apply(model, pts: np.ndarray) -> np.ndarray:
    z, mu0, mu1 = model
    c = (pts[..., 0] - mu0[0]) + 1j * (pts[..., 1] - mu0[1])
    r = z * c
    return np.stack([mu1[0] + r.real, mu1[1] + r.imag], -1)


def object_track_from_points(xy: np.ndarray, visible: np.ndarray, confidence: np.ndarray, t0: int,
                             centroid0, bbox0=None, params: CentroidParams = CentroidParams()
                             ) -> tuple[ObjectTrack, np.ndarray]:
    """Object track of N member points (see module docstring).

    xy: float ``[N, T, 2]`` plate px; visible: bool ``[N, T]``; confidence: ``[N, T]`` in 0..1; t0: the
    query frame of every member; centroid0: ``[2]`` mask centroid at t0; bbox0: ``[4]`` mask box at t0.
    Returns (:class:`~dino_tracker_vfx.tracks.ObjectTrack`, inlier mask bool ``[N, T]``).
    """
    params.validate()
    d = check_shape(xy, "N T 2", "member xy")
    check_shape(visible, "N T", "member visible", d)
    check_shape(confidence, "N T", "member confidence", d)
    N, T = d["N"], d["T"]
    c0 = np.asarray(centroid0, np.float64).reshape(2)
    b0 = np.full(4, np.nan) if bbox0 is None else np.asarray(bbox0, np.float64).reshape(4)
    corners0 = np.array([[b0[0], b0[1]], [b0[2], b0[1]], [b0[0], b0[3]], [b0[2], b0[3]]])
    cen = np.full((T, 2), np.nan)
    box = np.full((T, 4), np.nan)
    vis = np.zeros(T, bool)
    conf = np.zeros(T, np.float32)
    inl_all = np.zeros((N, T), bool)
    need = max(1, math.ceil(params.min_visible_fraction * N - 1e-9))
    ok0 = np.isfinite(xy[:, t0]).all(1)
    for t in range(T):
        v = np.asarray(visible[:, t], bool) & np.isfinite(xy[:, t]).all(1) & ok0
        if t == t0:
            cen[t], box[t] = c0, b0
            vis[t], conf[t] = N > 0, 1.0 if N > 0 else 0.0
            inl_all[:, t] = ok0
            continue
        idx = np.nonzero(v)[0]
        if len(idx) == 0:
            continue
        p0, p1 = xy[idx, t0], xy[idx, t]
        w = np.clip(np.asarray(confidence[idx, t], np.float64), 1e-3, 1.0)
        disp = p1 - p0
        dev = np.linalg.norm(disp - np.median(disp, axis=0), axis=1)
        tol = max(params.mad_k * 1.4826 * float(np.median(dev)), params.min_tol_px)
        inl = dev <= tol
        model = None
        if params.motion_model == "similarity" and inl.sum() >= params.min_points_similarity:
            model = fit_similarity(p0[inl], p1[inl], w[inl])
            if model is not None:
                res = np.linalg.norm(_apply(model, p0) - p1, axis=1)
                tol2 = max(params.mad_k * 1.4826 * float(np.median(res[inl])), params.min_tol_px)
                inl2 = inl & (res <= tol2)
                if inl2.sum() >= params.min_points_similarity and inl2.sum() < inl.sum():
                    inl = inl2
                    model = fit_similarity(p0[inl], p1[inl], w[inl])
            if model is not None and not (1.0 / params.max_scale_change <= abs(model[0]) <= params.max_scale_change):
                model = None
        if model is None:  # translation: the mean inlier displacement carries the t0 offset along
            shift = (w[inl, None] * disp[inl]).sum(0) / w[inl].sum()
            model = (1.0 + 0j, np.zeros(2), shift)
        cen[t] = _apply(model, c0[None])[0]
        if np.isfinite(b0).all():
            cc = _apply(model, corners0)
            box[t] = [cc[:, 0].min(), cc[:, 1].min(), cc[:, 0].max(), cc[:, 1].max()]
        vis[t] = len(idx) >= need
        conf[t] = float(np.clip(np.asarray(confidence[idx[inl], t], np.float64).sum() / max(N, 1), 0.0, 1.0))
        inl_all[idx[inl], t] = True
    return ObjectTrack(cen, vis, box, conf), inl_all


__all__ = ["CentroidParams", "object_track_from_points", "fit_similarity", "mask_box", "MOTION_MODELS"]
