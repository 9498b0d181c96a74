"""Anchors: the one place where a track is made to pass through its query and the artist's corrections.

A track has one or more anchors (:func:`dino_tracker_vfx.tracks.group_anchors`: query rows that share a
name; the first is the query, the others corrections). The tracker follows EVERY anchor through the shot
as a query of its own (a "row": forward and backward from the anchor's image, by the model or the flow),
then :func:`anchor_tracks` joins a track's rows into one track:

* at every anchor's own image ``t_k`` the track is exactly the anchor, visible, confidence 1 (each row
  is pinned to its anchor first; this module is the only place that pins);
* between two consecutive anchors ``a < b`` (images ``t_a < t_b``), with ``s = (t - t_a) / (t_b - t_a)``::

      w_a = (1 - s) * (c_a(t) + EPS)        w_b = s * (c_b(t) + EPS)
      xy(t) = (w_a * xy_a(t) + w_b * xy_b(t)) / (w_a + w_b)
      visible(t) = (w_a * vis_a(t) + w_b * vis_b(t)) / (w_a + w_b) >= 0.5
      confidence(t) = (1 - s) * c_a(t) + s * c_b(t)

  where ``xy_k, vis_k, c_k`` are row ``k``'s position, visibility and confidence (``EPS`` = 0.05 keeps a
  row with confidence 0 in the blend near its own anchor). ``w_b = 0`` at ``t_a`` and ``w_a = 0`` at
  ``t_b``, so the blend meets both anchors exactly, and the weights change gradually in between: no
  jump at an anchor; the more confident row leads where both are far from their anchors;
* before the first anchor / after the last the track follows the nearest anchor's row;
* visibility thus comes from every anchor's row, each where it is nearest (a point the artist placed at
  ``t_k`` is visible there, whatever the query's row said).

A row with no position (NaN) at ``t`` leaves the other row alone in the blend. A track with one anchor is
its row, pinned: the single-query behaviour of earlier versions. ``docs/tracker.md`` shows the rule on a
corrected track (``benchmarks/plot_anchor_blend.py``).

Shapes: rows ``xy [K, T, 2]`` plate px (or any one raster), ``visible [K, T]`` bool, ``confidence [K, T]``
in 0..1, ``K`` = the number of anchors over all tracks in :class:`AnchorLayout` order; out ``[N, T, ...]``
for the ``N`` tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import check_shape
from ..tracks import Query, group_anchors

EPS = 0.05  # confidence floor of a row in the blend (documented above)


@dataclass(frozen=True)
class AnchorLayout:
    """Tracks and their anchors as rows: ``queries[n]`` is track ``n``'s query (its first row in the input),
    ``anchors[n]`` its anchors sorted by ``t``; ``rows`` every anchor of every track in that order (the
    queries the tracker follows), ``start[n]`` the first row of track ``n``."""

    queries: tuple[Query, ...]
    anchors: tuple[tuple[Query, ...], ...]
    rows: tuple[Query, ...]
    start: tuple[int, ...]

    @property
    def n_corrections(self) -> int:
        return len(self.rows) - len(self.queries)


def layout(queries: list[Query], frame_of=None) -> AnchorLayout:
    """Group query rows into tracks (:func:`~dino_tracker_vfx.tracks.group_anchors`; InputError on two
    different anchors of one track at one image) and list the rows the tracker follows."""
    tracks = group_anchors(queries, frame_of=frame_of)
    rows, start = [], []
    for _, anchors in tracks:
        start.append(len(rows))
        rows.extend(anchors)
    return AnchorLayout(tuple(q for q, _ in tracks), tuple(a for _, a in tracks), tuple(rows), tuple(start))


def _pin(xy: np.ndarray, visible: np.ndarray, conf: np.ndarray, idx, anchors) -> None:
    """In place: entry ``idx[k]`` at image ``anchors[k].t`` is the anchor, visible, confidence 1."""
    for i, a in zip(idx, anchors):
        xy[i, a.t] = (a.x, a.y)
        visible[i, a.t] = True
        conf[i, a.t] = 1.0


def blend_pair(xy_a, vis_a, c_a, xy_b, vis_b, c_b, t_a: int, t_b: int):
    """The rule between two anchors at images ``t_a < t_b`` over the images ``t_a..t_b`` (inputs ``[L, 2]``,
    ``[L]``, ``[L]`` for those ``L = t_b - t_a + 1`` images) -> (xy ``[L, 2]``, visible ``[L]``, conf ``[L]``)."""
    s = (np.arange(t_a, t_b + 1, dtype=np.float64) - t_a) / float(t_b - t_a)
    w_a = (1.0 - s) * (np.asarray(c_a, np.float64) + EPS)
    w_b = s * (np.asarray(c_b, np.float64) + EPS)
    w_a = np.where(np.isfinite(xy_a).all(-1), w_a, 0.0)  # a row without a position leaves the other alone
    w_b = np.where(np.isfinite(xy_b).all(-1), w_b, 0.0)
    tot = w_a + w_b
    with np.errstate(invalid="ignore", divide="ignore"):
        xy = (w_a[:, None] * np.nan_to_num(xy_a) + w_b[:, None] * np.nan_to_num(xy_b)) / tot[:, None]
        vote = (w_a * vis_a + w_b * vis_b) / tot
    xy[tot == 0] = np.nan
    return xy, np.nan_to_num(vote) >= 0.5, ((1.0 - s) * c_a + s * c_b).astype(np.float32)


def anchor_tracks(xy: np.ndarray, visible: np.ndarray, conf: np.ndarray, lay: AnchorLayout
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (``[K, T, 2]``, ``[K, T]``, ``[K, T]``, one per anchor in ``lay.rows`` order) -> tracks
    (``[N, T, 2]`` float64, ``[N, T]`` bool, ``[N, T]`` float32) by the rule of the module docstring.
    Every anchor's image is exactly the anchor, visible, confidence 1."""
    d = check_shape(xy, "K T 2", "anchor rows xy", {"K": len(lay.rows)})
    check_shape(visible, "K T", "anchor rows visible", d)
    check_shape(conf, "K T", "anchor rows confidence", d)
    T = d["T"]
    xy = np.array(xy, np.float64)
    visible = np.array(visible, bool)
    conf = np.array(conf, np.float32)
    _pin(xy, visible, conf, range(len(lay.rows)), lay.rows)
    N = len(lay.anchors)
    o_xy = np.empty((N, T, 2))
    o_vis = np.empty((N, T), bool)
    o_conf = np.empty((N, T), np.float32)
    for n, (r0, anchors) in enumerate(zip(lay.start, lay.anchors)):
        first, last = anchors[0].t, anchors[-1].t
        o_xy[n, :first + 1], o_vis[n, :first + 1], o_conf[n, :first + 1] = \
            xy[r0, :first + 1], visible[r0, :first + 1], conf[r0, :first + 1]
        rl = r0 + len(anchors) - 1
        o_xy[n, last:], o_vis[n, last:], o_conf[n, last:] = xy[rl, last:], visible[rl, last:], conf[rl, last:]
        for k in range(len(anchors) - 1):
            a, b = r0 + k, r0 + k + 1
            ta, tb = anchors[k].t, anchors[k + 1].t
            sl = slice(ta, tb + 1)
            o_xy[n, sl], o_vis[n, sl], o_conf[n, sl] = blend_pair(xy[a, sl], visible[a, sl], conf[a, sl],
                                                                  xy[b, sl], visible[b, sl], conf[b, sl], ta, tb)
    _pin(o_xy, o_vis, o_conf, [n for n, a in enumerate(lay.anchors) for _ in a],
         [q for a in lay.anchors for q in a])
    return o_xy, o_vis, o_conf


__all__ = ["EPS", "AnchorLayout", "layout", "blend_pair", "anchor_tracks"]
