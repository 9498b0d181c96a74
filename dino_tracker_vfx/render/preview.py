"""Preview pictures of a TrackSet over its shot: an H.264 movie and a PNG contact sheet.

    render_preview(shot, tracks, out_mp4, out_png=None, trail=12, progress=None) -> dict

* movie: H.264 (libx264), yuv420p, even width/height (the plate is scaled to fit ``max_size`` and
  rounded down to even pixels), ``fps`` = the shot's rate or 24; written atomically.
* the plate: exactly what the tracker sees, ``shot.read`` (the shot's one display transform,
  :mod:`dino_tracker_vfx.shots.colour`: a linear EXR goes through the OCIO display/view), not dimmed
  (``darken`` < 1 dims it under the marks; default 1).
* marks: one colour per track; filled dot = visible, hollow ring = occluded (position still known);
  fading trail over the last ``trail`` images (thin where occluded); groups with an ObjectTrack get
  their bbox (dashed when the object is not visible), centroid cross and name.
* contact sheet: ``sheet_frames`` images spread over the shot in a grid, frame numbers on each, and a
  colour legend of the track names - or, for objects (a track set with object tracks, e.g. from
  ``dtvfx objects``, or ``masks``), of the object names with their member-point counts.
* objects: ``masks(t)`` gives the int id map (plate size; ``None`` where there is none) of track image
  ``t`` and ``mask_names`` ``{id: object name}``: those pixels are tinted with the object's colour
  (one palette for boxes, centroids, member points and tints; ``overlay.object_colours``).
  :func:`mask_objects` turns id maps into object tracks (mask centroid and box per image) for
  ``dtvfx segment --preview``.

``tracks`` may cover all images of the shot or a subset of its frame numbers; images are matched by
host frame number. Track positions are in the TrackSet's own plate size and mapped to the drawing
raster exactly (:class:`~dino_tracker_vfx.coords.Resize`).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from .. import atomic
from ..errors import InputError
from ..progress import CancelFn, Progress, ProgressFn, check_cancel
from ..tracks import TrackSet
from .overlay import OverlayStyle, draw_frame

MaskFn = Callable[[int], "np.ndarray | None"]

H264_ENCODERS = ("libx264", "h264", "libopenh264")


def even_size(wh: tuple[int, int], max_size: int | None) -> tuple[int, int]:
    """Scale ``wh`` to fit ``max_size`` (longest side) and round down to even numbers (>= 2)."""
    W, H = wh
    s = 1.0 if not max_size else min(1.0, max_size / max(W, H))
    w, h = int(round(W * s)), int(round(H * s))
    return max(2, w - w % 2), max(2, h - h % 2)


def _shot_indices(shot, tracks: TrackSet) -> np.ndarray:
    """Shot image index of each track image (by host frame number)."""
    fn = [int(f) for f in shot.frame_numbers]
    if len(fn) == tracks.n_images and np.array_equal(fn, tracks.frame_numbers):
        return np.arange(len(fn))
    pos = {f: i for i, f in enumerate(fn)}
    missing = [int(f) for f in tracks.frame_numbers if int(f) not in pos]
    if missing:
        raise InputError(f"the tracks have frame {missing[0]} which the shot ({fn[0]}-{fn[-1]}) lacks "
                         f"({len(missing)} frames missing)", where=str(getattr(shot, "source", "shot")))
    return np.array([pos[int(f)] for f in tracks.frame_numbers], np.int64)


def _frame_rgb(shot, idx: int, wh: tuple[int, int]) -> np.ndarray:
    rgb = shot.read_working(idx, wh) if tuple(wh) != tuple(shot.size) else shot.read(idx)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def _open_encoder(path: str, wh: tuple[int, int], fps: float):
    import av

    container = av.open(path, mode="w", format="mp4")
    last = None
    for name in H264_ENCODERS:
        try:
            stream = container.add_stream(name, rate=Fraction(fps).limit_denominator(1001))
            break
        except Exception as e:  # noqa: BLE001 - encoder missing in this FFmpeg build
            last = e
    else:
        container.close()
        raise InputError(f"no H.264 encoder in this PyAV/FFmpeg build ({last})", where=path)
    stream.width, stream.height = wh
    stream.pix_fmt = "yuv420p"
    if stream.codec_context.name == "libx264":
        stream.options = {"crf": "18", "preset": "veryfast", "movflags": "+faststart"}
    return container, stream


def render_preview(shot, tracks: TrackSet, out_mp4, out_png=None, trail: int = 12,
                   progress: ProgressFn | None = None, *, fps: float | None = None, max_size: int | None = 1920,
                   sheet_frames: int = 8, sheet_cols: int = 4, darken: float = 1.0,
                   cancel: CancelFn | None = None, masks: MaskFn | None = None,
                   mask_names: dict[int, str] | None = None) -> dict:
    """Render the overlay movie ``out_mp4`` (and the contact sheet ``out_png``); returns
    ``{"mp4": path, "png": path or None, "size": (w, h), "frames": n}``."""
    import av
    import cv2

    idx = _shot_indices(shot, tracks)
    T = len(idx)
    if T == 0:
        raise InputError("the tracks cover no images", where=str(out_mp4))
    wh = even_size(shot.size, max_size)
    style = OverlayStyle(tracks, wh, trail=max(0, int(trail)), mask_names=mask_names if masks else None)
    rate = tracks.rate(fps or getattr(shot, "fps", None))  # else the track file's, else 24
    picks = set(np.unique(np.round(np.linspace(0, T - 1, min(sheet_frames, T))).astype(int)).tolist()) \
        if out_png else set()
    sheet: dict[int, np.ndarray] = {}
    out_mp4 = Path(out_mp4)
    with atomic.atomic_path(out_mp4, suffix=".mp4") as tmp:
        container, stream = _open_encoder(str(tmp), wh, rate)
        try:
            for t in range(T):
                check_cancel(cancel, "preview")
                base = _frame_rgb(shot, int(idx[t]), wh)
                if darken != 1.0:
                    base = (base.astype(np.float32) * darken).astype(np.uint8)
                ids = masks(t) if (masks is not None and style.mask_names) else None
                if ids is not None and ids.shape[::-1] != tuple(wh):
                    ids = cv2.resize(ids.astype(np.int32), wh, interpolation=cv2.INTER_NEAREST)
                img = draw_frame(base, style, t, label=f"frame {tracks.frame_of(t)}", labels=ids)
                if t in picks:
                    sheet[t] = img
                for pkt in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(pkt)
                if progress:
                    progress(Progress("preview", t + 1, T, message=out_mp4.name))
            for pkt in stream.encode():
                container.mux(pkt)
        finally:
            container.close()
    png = None
    if out_png:
        png = write_contact_sheet([sheet[t] for t in sorted(sheet)], tracks, style, out_png, cols=sheet_cols)
    return {"mp4": str(out_mp4), "png": None if png is None else str(png), "size": wh, "frames": T}


def write_contact_sheet(images: list[np.ndarray], tracks: TrackSet, style: OverlayStyle, out_png,
                        cols: int = 4, tile_width: int = 480) -> Path:
    """Grid of annotated frames plus a legend strip (track colours and names) -> PNG (atomic)."""
    import cv2

    h0, w0 = images[0].shape[:2]
    tw = min(tile_width, w0)
    th = int(round(h0 * tw / w0))
    cols = max(1, min(cols, len(images)))
    rows = (len(images) + cols - 1) // cols
    pad = 4
    grid = np.full((rows * (th + pad) + pad, cols * (tw + pad) + pad, 3), 24, np.uint8)
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        tile = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
        y, x = pad + r * (th + pad), pad + c * (tw + pad)
        grid[y:y + th, x:x + tw] = tile
    legend = _legend(tracks, style, grid.shape[1])
    sheet = np.concatenate([grid, legend], axis=0)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(sheet[..., ::-1]))
    if not ok:  # pragma: no cover
        raise InputError("cannot encode the contact sheet", where=str(out_png))
    atomic.write_bytes(out_png, buf.tobytes())
    return Path(out_png)


def legend_entries(tracks: TrackSet, style: OverlayStyle) -> list[tuple[str, tuple[int, int, int]]]:
    """(label, RGB) of every legend item: in objects mode one per object (``name (K pts)``) and one per
    track outside every object; else one per track."""
    if style.objects_mode:
        out = []
        for g in sorted(style.group_colours):
            k = len(tracks.members(g))
            out.append((f"{g} ({k} pts)" if k else g, style.group_colours[g]))
        return out + [(tracks.names[i], tuple(int(v) for v in style.colours[i])) for i in range(tracks.n_tracks)
                      if tracks.queries[i].group not in style.group_colours]
    return [(tracks.names[i], tuple(int(v) for v in style.colours[i])) for i in range(tracks.n_tracks)]


def _legend(tracks: TrackSet, style: OverlayStyle, width: int, max_items: int = 48) -> np.ndarray:
    import cv2

    entries = legend_entries(tracks, style)
    item_w, item_h = 150, 20
    per_row = max(1, (width - 8) // item_w)
    n = min(len(entries), max_items)
    extra = len(entries) - n
    rows = max(1, (n + (1 if extra else 0) + per_row - 1) // per_row)
    strip = np.full((rows * item_h + 28, width, 3), 24, np.uint8)
    key = ("objects - tint: mask   box: bbox   cross: centroid"
           + ("   dots: member points (ring: occluded)" if tracks.n_tracks else "")
           if style.objects_mode else "filled dot: visible   ring: occluded   line: trail   box/cross: object")
    cv2.putText(strip, key, (8, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (220, 220, 220), 1, cv2.LINE_AA)
    for i, (text, col) in enumerate(entries[:n]):
        r, c = divmod(i, per_row)
        x, y = 8 + c * item_w, 28 + r * item_h + 10
        cv2.circle(strip, (x + 6, y), 6, tuple(int(v) for v in col), -1, cv2.LINE_AA)
        cv2.putText(strip, text[:18], (x + 16, y + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (235, 235, 235), 1, cv2.LINE_AA)
    if extra:
        r, c = divmod(n, per_row)
        cv2.putText(strip, f"+{extra} more", (8 + c * item_w, 28 + r * item_h + 15), cv2.FONT_HERSHEY_SIMPLEX,
                    0.42, (235, 235, 235), 1, cv2.LINE_AA)
    return strip


def mask_objects(masks: MaskFn, n_images: int, names: dict[int, str]) -> dict:
    """Object tracks from id maps: per object name, an :class:`~dino_tracker_vfx.tracks.ObjectTrack` with
    the mask centroid and box (plate px) of every image ``0..n_images-1``; visible where the mask has
    pixels of that id (images where ``masks(t)`` is None: unknown, not visible)."""
    from ..objects.centroids import mask_box
    from ..objects.metrics import mask_centroid
    from ..tracks import ObjectTrack

    cen = {n: np.full((n_images, 2), np.nan) for n in names.values()}
    box = {n: np.full((n_images, 4), np.nan) for n in names.values()}
    for t in range(n_images):
        ids = masks(t)
        if ids is None:
            continue
        for i, n in names.items():
            m = ids == i
            cen[n][t] = mask_centroid(m)[0]
            box[n][t] = mask_box(m)
    return {n: ObjectTrack(cen[n], np.isfinite(cen[n]).all(-1), box[n]) for n in names.values()}
