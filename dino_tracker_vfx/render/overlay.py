"""Drawing tracks over frames (OpenCV, RGB uint8, anti-aliased).

A :class:`OverlayStyle` is built once per TrackSet and raster; :func:`draw_frame` then draws image index
``t``: fading trails over the last ``trail`` images, a filled dot where the point is visible, a hollow
ring where it is occluded (position known, not visible), and for groups with an
:class:`~dino_tracker_vfx.tracks.ObjectTrack` the bbox, a centroid cross and the group name.
``labels`` (an int id map on the raster, e.g. a propagated or given instance mask) tints the pixels of
every object id named in ``style.mask_names`` with its object colour (:func:`tint_masks`: ``(1 - a)
plate + a colour`` with ``a`` = :data:`MASK_ALPHA`) and outlines it. Objects (groups and mask objects)
share one fixed palette, :func:`object_colours`; in *objects mode* (a track set with object tracks, or
masks) member points take their object's colour and the legend lists objects, not member points.
Positions are mapped from the TrackSet's plate pixels to the drawing raster with
:class:`~dino_tracker_vfx.coords.Resize` (pixel-centre exact).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from ..coords import Resize
from ..tracks import TrackSet

GOLDEN = 0.618033988749895
MASK_ALPHA = 0.45


def track_colours(n: int, offset: float = 0.11) -> np.ndarray:
    """uint8 ``[n, 3]`` RGB: saturated, well-separated hues (golden-ratio steps)."""
    out = np.zeros((n, 3), np.uint8)
    for i in range(n):
        h = (offset + i * GOLDEN) % 1.0
        v = 1.0 if (i // 7) % 2 == 0 else 0.85
        out[i] = np.round(np.array(colorsys.hsv_to_rgb(h, 0.9, v)) * 255)
    return out


def object_colours(groups) -> dict:
    """Group/object name -> uint8 RGB tuple: one fixed palette for objects (sorted names), shared by
    the overlays, the mask tints and the Blender track colours."""
    names = sorted(groups)
    cols = track_colours(len(names), offset=0.6)
    return {g: tuple(int(c) for c in cols[i]) for i, g in enumerate(names)}


@dataclass
class OverlayStyle:
    tracks: TrackSet
    raster_wh: tuple[int, int]
    trail: int = 12
    colours: np.ndarray | None = None
    group_colours: dict | None = None
    radius: int = 4
    thickness: int = 2
    xy: np.ndarray | None = None  # [N, T, 2] on the raster (filled in __post_init__)
    mask_names: dict | None = None  # mask id -> object name (objects drawn from masks)

    def __post_init__(self):
        rs = Resize(self.tracks.plate_size, self.raster_wh)
        self.xy = rs.to_working(self.tracks.xy) if self.tracks.n_tracks else np.zeros((0, self.tracks.n_images, 2))
        self.resize = rs
        self.mask_names = dict(self.mask_names or {})
        self.objects_mode = bool(self.mask_names) or any(o is not None for o in self.tracks.groups.values())
        if self.group_colours is None:
            self.group_colours = object_colours(set(self.tracks.groups) | set(self.mask_names.values()))
        if self.colours is None:
            self.colours = track_colours(self.tracks.n_tracks)
            if self.objects_mode:  # member points in their object's colour
                for i, q in enumerate(self.tracks.queries):
                    if q.group in self.group_colours:
                        self.colours[i] = self.group_colours[q.group]
        scale = self.raster_wh[0] / 1000.0
        self.radius = max(3, int(round(self.radius * max(1.0, scale))))
        self.thickness = max(1, int(round(self.thickness * max(1.0, scale))))


def _pt(p) -> tuple[int, int]:
    # cv2 fixed point with 4 fractional bits keeps sub-pixel placement
    return int(round(p[0] * 16)), int(round(p[1] * 16))


def tint_masks(img: np.ndarray, labels: np.ndarray, colours: dict, alpha: float = MASK_ALPHA) -> np.ndarray:
    """uint8 RGB ``img`` with the pixels of each id of ``colours`` ({id: RGB}) in ``labels`` (int ``[H, W]``
    on the same raster) tinted ``(1 - alpha) img + alpha colour`` and outlined in that colour."""
    import cv2

    out = np.ascontiguousarray(img).copy()
    for i, c in colours.items():
        m = labels == i
        if not m.any():
            continue
        out[m] = np.round(out[m].astype(np.float32) * (1.0 - alpha) + np.asarray(c, np.float32) * alpha
                          ).astype(np.uint8)
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, tuple(int(v) for v in c), 1, cv2.LINE_AA)
    return out


def draw_frame(img: np.ndarray, style: OverlayStyle, t: int, label: str | None = None,
               labels: np.ndarray | None = None) -> np.ndarray:
    """Draw image index ``t`` of ``style.tracks`` on ``img`` (uint8 RGB ``[H, W, 3]`` on the style's raster);
    ``labels``: the object id map of that image on the same raster (tinted per ``style.mask_names``)."""
    import cv2

    out = np.ascontiguousarray(img)
    if labels is not None and style.mask_names:
        out = tint_masks(out, labels, {i: style.group_colours[n] for i, n in style.mask_names.items()})
    xy, vis = style.xy, style.tracks.visible
    N = xy.shape[0]
    finite = np.isfinite(xy).all(-1)
    aa, sh = cv2.LINE_AA, 4
    # trails: oldest segments first, each age blended with its own opacity
    for age in range(min(style.trail, t), 0, -1):
        a, b = t - age, t - age + 1
        ok = finite[:, a] & finite[:, b]
        if not ok.any():
            continue
        layer = out.copy()
        for i in np.nonzero(ok)[0]:
            c = tuple(int(v) for v in style.colours[i])
            th = style.thickness if (vis[i, a] and vis[i, b]) else 1
            cv2.line(layer, _pt(xy[i, a]), _pt(xy[i, b]), c, th, aa, sh)
        alpha = 0.85 * (1.0 - (age - 1) / max(1, style.trail))
        cv2.addWeighted(layer, alpha, out, 1.0 - alpha, 0.0, dst=out)
    # objects
    for g, obj in style.tracks.groups.items():
        if obj is None:
            continue
        c = style.group_colours.get(g, (255, 255, 255))
        on = bool(obj.visible[t])
        if obj.bbox is not None and np.isfinite(obj.bbox[t]).all():
            p0 = style.resize.to_working(obj.bbox[t, :2])
            p1 = style.resize.to_working(obj.bbox[t, 2:])
            _rect(out, p0, p1, c, style.thickness if on else 1, dashed=not on)
            cv2.putText(out, g, (int(p0[0]) + 2, max(12, int(p0[1]) - 5)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5, (0, 0, 0), 3, aa)
            cv2.putText(out, g, (int(p0[0]) + 2, max(12, int(p0[1]) - 5)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5, c, 1, aa)
        if np.isfinite(obj.centroid[t]).all():
            p = style.resize.to_working(obj.centroid[t])
            r = style.radius * 3
            for d in ((r, 0), (0, r)):
                q0, q1 = (p[0] - d[0], p[1] - d[1]), (p[0] + d[0], p[1] + d[1])
                cv2.line(out, _pt(q0), _pt(q1), (0, 0, 0), style.thickness + 2, aa, sh)
                cv2.line(out, _pt(q0), _pt(q1), c, style.thickness, aa, sh)
    # points
    for i in range(N):
        if not finite[i, t]:
            continue
        c = tuple(int(v) for v in style.colours[i])
        p = _pt(xy[i, t])
        r16 = style.radius * 16
        if vis[i, t]:
            cv2.circle(out, p, r16 + 16, (0, 0, 0), -1, aa, sh)
            cv2.circle(out, p, r16, c, -1, aa, sh)
        else:  # hollow ring (a little larger than the dot, so its inside shows the plate): occluded
            r16 += 32
            cv2.circle(out, p, r16, (0, 0, 0), style.thickness + 2, aa, sh)
            cv2.circle(out, p, r16, c, style.thickness, aa, sh)
    if label:
        cv2.putText(out, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, aa)
        cv2.putText(out, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, aa)
    return out


def _rect(img, p0, p1, c, th, dashed=False):
    import cv2

    x0, y0 = int(round(p0[0])), int(round(p0[1]))
    x1, y1 = int(round(p1[0])), int(round(p1[1]))
    if not dashed:
        cv2.rectangle(img, (x0, y0), (x1, y1), c, th, cv2.LINE_AA)
        return
    for a, b in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
        n = max(1, int(np.hypot(b[0] - a[0], b[1] - a[1]) // 8))
        for k in range(0, n, 2):
            s0 = (int(a[0] + (b[0] - a[0]) * k / n), int(a[1] + (b[1] - a[1]) * k / n))
            s1 = (int(a[0] + (b[0] - a[0]) * (k + 1) / n), int(a[1] + (b[1] - a[1]) * (k + 1) / n))
            cv2.line(img, s0, s1, c, th, cv2.LINE_AA)
