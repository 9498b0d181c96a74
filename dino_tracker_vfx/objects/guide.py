"""Mask-guided object tracks: the propagated masks check which member points still lie on their object.

Tracked points drift: one passes behind an occluder and comes back on it, one slides onto the object it
touches (DAVIS judo: once a fighter is thrown, two thirds of its points stay on the standing one), a
chained-flow point is lost for good at its first failed check (DAVIS india: passers-by). The label
propagation of :mod:`.propagate` gives, at every image ``t``, an id image ``L_t`` of all objects at once;
:func:`guided_object_track` uses it per object ``i`` (id) like this:

1. **Support.** A member point visible at ``t`` *supports* ``i`` when ``L_t`` at its position is ``i``,
   or is background and the point lies within ``tol_t = max(min_tol_px, tolerance * sqrt(area_t))`` px of
   ``L_t == i`` (propagated edges are a patch coarse). A point on *another* object's label never supports
   ``i``: an occluder or a neighbour cannot drag the box.
2. **Point model** = :func:`~.centroids.object_track_from_points` on the supporting points only
   (MAD outliers, similarity / translation) -> ``c_pts(t)``, ``box_pts(t)``.
3. **Presence**: ``present(t)`` iff the propagated area ``area_t >= min_area_fraction * area_t0`` and
   ``> 0``. Its centroid ``c_mask(t)`` and box are the mean pixel position / extreme pixel centres of
   ``L_t == i``.
4. **Leak check**: where ``area_t > max_area_growth * area_t0 * s_t^2`` (``s_t^2`` = area of the point
   model's box relative to ``t0``, the nearest known one where there is no model) the propagated mask has
   bled into the background: there every visible point supports ``i`` (the points-only rule) and, when
   any is left, the points alone place the object.
5. **Centroid**: where the point support is strong (at least ``ceil(min_visible_fraction * N)`` points)
   and the object present: ``c = (1 - mask_weight) c_pts + mask_weight c_mask``; where the support is
   weak but the object present: ``c_mask`` (so an object whose points are all lost behind passers-by
   keeps its track); where it is absent: ``c_pts`` while any point supports it, else NaN. The box is
   ``box_pts`` moved by ``c - c_pts`` (the mask box where there is no point model).
6. **Visibility** keys ``present(t) or strong support(t)``; **confidence** = the supporting points'
   summed confidence / N (as without guidance), at least ``mask_confidence`` while present.

Defaults (``mask_weight`` 0.75, ``max_area_growth`` 3) chosen by leave-one-video-out on the DAVIS dev
multi-instance videos (docs/results-objects.md).
Frames with a given mask use it as ``L_t``. ``labels``: a sequence (or ``t -> array``) of int id images
``[H, W]`` at plate size, one per image; points are plate px (pixel centres at integers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..checks import check_shape
from ..errors import ConfigError
from ..tracks import ObjectTrack
from .centroids import CentroidParams, mask_box, object_track_from_points

GUIDES = ("propagate", "none")


@dataclass(frozen=True)
class GuideParams:
    tolerance: float = 0.1  # a point may lie this fraction of sqrt(area) outside its propagated mask
    min_tol_px: float = 3.0
    min_area_fraction: float = 0.05  # present while the propagated area is >= this share of the t0 area
    mask_weight: float = 0.75  # share of the propagated-mask centroid where the point support is strong
    mask_confidence: float = 0.5  # confidence floor while the propagated mask holds the object
    max_area_growth: float = 3.0  # a propagated mask above this multiple of the expected area has leaked

    def validate(self) -> "GuideParams":
        if self.tolerance < 0 or self.min_tol_px < 0 or not 0 <= self.min_area_fraction <= 1 \
                or not 0 <= self.mask_weight <= 1 or not 0 <= self.mask_confidence <= 1 or self.max_area_growth < 1:
            raise ConfigError(f"bad guide settings {self} (need tolerance, min_tol_px >= 0; min_area_fraction, "
                              f"mask_weight, mask_confidence in 0..1; max_area_growth >= 1)")
        return self


def point_support(xy_t: np.ndarray, visible_t: np.ndarray, labels_t: np.ndarray, obj_id: int,
                  tol_px: float) -> np.ndarray:
    """bool ``[N]``: visible points of ``xy_t`` ``[N, 2]`` (plate px) that support object ``obj_id`` on the
    id image ``labels_t`` ``[H, W]`` (see module docstring, step 1)."""
    import cv2

    H, W = labels_t.shape
    v = np.asarray(visible_t, bool) & np.isfinite(xy_t).all(1)
    out = np.zeros(len(xy_t), bool)
    if not v.any():
        return out
    xi = np.clip(np.round(np.nan_to_num(xy_t[:, 0])).astype(np.int64), 0, W - 1)
    yi = np.clip(np.round(np.nan_to_num(xy_t[:, 1])).astype(np.int64), 0, H - 1)
    inside = (xy_t[:, 0] > -0.5) & (xy_t[:, 0] < W - 0.5) & (xy_t[:, 1] > -0.5) & (xy_t[:, 1] < H - 0.5)
    lab = labels_t[yi, xi]
    out = v & inside & (lab == obj_id)
    near = v & inside & (lab == 0)
    if near.any() and tol_px > 0:
        own = (labels_t == obj_id)
        if own.any():
            dist = cv2.distanceTransform((~own).astype(np.uint8), cv2.DIST_L2, 5)
            out |= near & (dist[yi, xi] <= tol_px)
    return out


def _area_scale(box: np.ndarray | None, t0: int) -> np.ndarray:
    """``[T]`` area of the point model's box relative to ``t0`` (1 where unknown: no box at ``t0``; frames
    without a model take the nearest earlier one on their side of ``t0``)."""
    if box is None:
        return np.ones(1)
    wh = np.maximum(box[:, 2:] - box[:, :2] + 1.0, 1.0)
    a = wh[:, 0] * wh[:, 1]
    if not np.isfinite(a[t0]):
        return np.ones(len(a))
    r = a / a[t0]
    for ts in (range(t0 + 1, len(r)), range(t0 - 1, -1, -1)):
        last = 1.0
        for t in ts:
            last = r[t] if np.isfinite(r[t]) else last
            r[t] = last
    return r


@dataclass
class MaskEvidence:
    """What the propagated id images say about one object: ``support`` bool ``[N, T]`` (step 1),
    ``area`` int ``[T]``, ``centroid`` ``[T, 2]`` and ``box`` ``[T, 4]`` of its propagated mask (NaN where
    empty). Filled one image at a time by :meth:`add` (no stack of id images is kept)."""

    support: np.ndarray
    area: np.ndarray
    centroid: np.ndarray
    box: np.ndarray

    @classmethod
    def empty(cls, N: int, T: int) -> "MaskEvidence":
        return cls(np.zeros((N, T), bool), np.zeros(T, np.int64), np.full((T, 2), np.nan), np.full((T, 4), np.nan))

    def add(self, t: int, labels_t: np.ndarray, obj_id: int, xy_t: np.ndarray, visible_t: np.ndarray,
            guide: "GuideParams") -> None:
        own = labels_t == obj_id
        ys, xs = np.nonzero(own)
        self.area[t] = len(xs)
        if len(xs):
            self.centroid[t] = (xs.mean(), ys.mean())
            self.box[t] = mask_box(own)
        tol = max(guide.min_tol_px, guide.tolerance * math.sqrt(self.area[t]))
        self.support[:, t] = point_support(xy_t, visible_t, labels_t, obj_id, tol)


def guided_object_track(xy: np.ndarray, visible: np.ndarray, confidence: np.ndarray, t0: int, centroid0,
                        bbox0, labels: Sequence[np.ndarray] | Callable[[int], np.ndarray] | MaskEvidence,
                        obj_id: int, params: CentroidParams = CentroidParams(), guide: GuideParams = GuideParams()
                        ) -> tuple[ObjectTrack, np.ndarray, dict]:
    """Object track of object ``obj_id`` from its N member points and the propagated id images (module
    docstring), or their :class:`MaskEvidence` already collected. xy ``[N, T, 2]``, visible / confidence
    ``[N, T]`` as for :func:`~.centroids.object_track_from_points`. Returns (track, support bool ``[N, T]``,
    stats dict of per-frame lists: ``supported`` points, ``present``, ``area``, ``leaked``)."""
    params.validate()
    guide.validate()
    d = check_shape(xy, "N T 2", "member xy")
    check_shape(visible, "N T", "member visible", d)
    N, T = d["N"], d["T"]
    need = max(1, math.ceil(params.min_visible_fraction * N - 1e-9))
    if isinstance(labels, MaskEvidence):
        ev = labels
        check_shape(ev.support, "N T", "evidence support", d)
    else:
        get = labels if callable(labels) else (lambda t: labels[t])
        ev = MaskEvidence.empty(N, T)
        for t in range(T):
            ev.add(t, np.asarray(get(t)), obj_id, xy[:, t], visible[:, t], guide)
    support, area, c_mask, b_mask = ev.support.copy(), ev.area, ev.centroid, ev.box
    a0 = max(int(area[t0]), 1)
    support[:, t0] = np.isfinite(xy[:, t0]).all(1)
    obj, _ = object_track_from_points(xy, support, confidence, t0, centroid0, bbox0, params)
    leaked = area > guide.max_area_growth * a0 * _area_scale(obj.bbox, t0)
    if leaked.any():  # no evidence from a leaked mask: there every visible point counts (points-only rule)
        support[:, leaked] = np.asarray(visible, bool)[:, leaked] & np.isfinite(xy[:, leaked]).all(2)
        obj, _ = object_track_from_points(xy, support, confidence, t0, centroid0, bbox0, params)
    present = (area > 0) & (area >= guide.min_area_fraction * a0)
    n_sup = support.sum(0)
    strong = n_sup >= need
    cen = obj.centroid.copy()
    box = obj.bbox.copy() if obj.bbox is not None else np.full((T, 4), np.nan)
    for t in range(T):
        if t == t0 or not present[t]:
            continue
        if leaked[t] and n_sup[t] > 0 and np.isfinite(cen[t]).all():
            continue  # the points alone
        if strong[t] and not leaked[t] and np.isfinite(cen[t]).all():
            c = (1.0 - guide.mask_weight) * cen[t] + guide.mask_weight * c_mask[t]
            box[t] = box[t] + np.tile(c - cen[t], 2) if np.isfinite(box[t]).all() else b_mask[t]
            cen[t] = c
        else:
            cen[t], box[t] = c_mask[t], b_mask[t]
    vis = present | strong
    vis[t0] = obj.visible[t0]
    conf = np.where(present, np.maximum(obj.confidence, guide.mask_confidence), obj.confidence).astype(np.float32)
    conf[t0] = obj.confidence[t0]
    stats = {"supported": n_sup.tolist(), "present": present.tolist(), "area": area.tolist(),
             "leaked": leaked.tolist()}
    return ObjectTrack(cen, vis, box, conf), support, stats


__all__ = ["GuideParams", "GUIDES", "MaskEvidence", "guided_object_track", "point_support"]
