"""Readers for point-tracking ground truth; everything becomes :class:`GTVideo` at this boundary.

Inside the project a GT video is a list of **named queries** ``(t, x, y)`` in plate pixels (see
``docs/conventions.md``) with, per query, the GT track ``xy [N, T, 2]`` (plate px, NaN where occluded)
and ``visible [N, T]``. Formats read:

* **official TAP-Vid pickles** (DAVIS: ``{name: {video, points, occluded}}``; Kinetics / RGB-Stacking:
  a list (or dict) of such entries; ``video`` uint8 ``[T, H, W, 3]`` or a list of JPEG bytes). ``points``
  ``[N, T, 2]`` are normalised ``(x, y)`` in ``0..1``, plate px = ``u * W`` (TAP-Vid's pure scale).
  Queries are sampled as TAP-Vid does: ``strided`` = every visible point at frames ``0, 5, 10, ...``,
  ``first`` = each track's first visible frame. An entry may instead carry ``query_points`` ``[n, 3]``
  in TAP-Vid order ``[t, y, x]`` (y, x normalised like ``points``) with ``points``/``occluded`` given
  per query; those are used as they are.
* **DINO-Tracker strided pickles** (``{'videos': [{video_idx, h, w, query_points{f: [n, 2] (x, y) px},
  target_points{f: [n, T, 2] px}, occluded{f: [n, T]}, is_fg{f}, ...}]}``; occluded GT stored as
  (0, 0)). ``strided`` uses its queries as given; ``first`` re-derives the unique tracks.
* **npz** files (``points`` normalised ``[N, T, 2]``, ``occluded``, ``query_frame_first``, ``is_fg``,
  ``orig_hw``, ``name``, ``video_idx``, optional ``video``): one file or a folder of them.

Pickles can run code when loaded: they are read only from paths the user names and must be trusted files.
"""

from __future__ import annotations

import io
import pickle
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..checks import check_shape
from ..errors import InputError
from ..tracks import Query
from .metrics import MODES

QUERY_STRIDE = 5


@dataclass
class GTVideo:
    """Ground truth of one video in plate pixels (origin top-left, centre of first pixel at (0, 0)).

    ``queries[n]`` is the named query ``(t, x, y)`` of GT row ``n``; ``xy`` float64 ``[N, T, 2]`` (NaN
    where occluded), ``visible`` bool ``[N, T]``, ``is_fg`` bool ``[N]`` or None. ``plate_size`` is the
    ``(W, H)`` the pixels refer to; ``normalized`` says the source stored 0..1 coordinates, so the GT may
    be rescaled to the frames it is evaluated on (:meth:`scaled_to`). ``video``: embedded frames uint8
    ``[T, H, W, 3]`` when the file holds them. ``mode`` is the query protocol the queries follow.
    """

    name: str
    index: int | None
    plate_size: tuple[int, int]
    queries: list[Query]
    xy: np.ndarray
    visible: np.ndarray
    mode: str
    is_fg: np.ndarray | None = None
    normalized: bool = False
    video: np.ndarray | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.xy = np.array(self.xy, np.float64)  # a copy: occluded entries are set to NaN below
        d = check_shape(self.xy, "N T 2", f"{self.name}: GT xy")
        self.visible = np.asarray(self.visible, bool)
        check_shape(self.visible, "N T", f"{self.name}: GT visible", d)
        if len(self.queries) != d["N"]:
            raise InputError(f"{d['N']} GT tracks but {len(self.queries)} queries", where=self.source or self.name)
        self.xy[~self.visible] = np.nan
        if self.is_fg is not None:
            self.is_fg = np.asarray(self.is_fg, bool).reshape(-1)
        self.plate_size = (int(self.plate_size[0]), int(self.plate_size[1]))

    @property
    def n_queries(self) -> int:
        return self.xy.shape[0]

    @property
    def n_frames(self) -> int:
        return self.xy.shape[1]

    @property
    def query_t(self) -> np.ndarray:
        return np.array([q.t for q in self.queries], np.int64)

    @property
    def key(self) -> str:
        """``<idx>_<name>`` (the frames-folder name) or the bare name without an index."""
        if self.index is None:
            return self.name
        return f"{self.index:02d}_{self.name}" if self.name else f"{self.index:02d}"

    def occlusion_rate(self) -> np.ndarray:
        """float ``[N]``: fraction of the T frames where each query's GT point is occluded."""
        return 1.0 - self.visible.mean(axis=1)

    def scaled_to(self, wh: tuple[int, int]) -> "GTVideo":
        """The same GT on a ``wh=(W, H)`` plate (pure scale, TAP-Vid's convention for 0..1 sources)."""
        wh = (int(wh[0]), int(wh[1]))
        if wh == self.plate_size:
            return self
        if not self.normalized:
            raise InputError(f"GT is in {self.plate_size[0]}x{self.plate_size[1]} pixels but the frames are "
                             f"{wh[0]}x{wh[1]}", where=self.source or self.name)
        s = np.array(wh, np.float64) / np.array(self.plate_size, np.float64)
        qs = [replace(q, x=q.x * s[0], y=q.y * s[1]) for q in self.queries]
        return replace(self, plate_size=wh, queries=qs, xy=self.xy * s, video=None)


# ------------------------------------------------------------------------------------------ sampling


def _qname(t: int, row: int) -> str:
    return f"q{t:03d}_{row:04d}"


def from_tracks(name: str, index: int | None, xy, visible, wh, mode: str, *, is_fg=None, normalized=False,
                video=None, source="", stride: int = QUERY_STRIDE) -> GTVideo:
    """Sample TAP-Vid queries from unique tracks ``xy [K, T, 2]`` (plate px) / ``visible [K, T]``.

    ``strided``: for t = 0, stride, 2*stride, ... every track visible at t gives a query ``(t, xy[k, t])``
    (in that order, as ``tapnet``'s ``sample_queries_strided``); ``first``: each track that is visible
    somewhere gives one query at its first visible frame. Query names: ``q<t>_<track>``.
    """
    if mode not in MODES:
        raise InputError(f"query mode {mode!r} is not one of {', '.join(MODES)}", where="--mode")
    xy = np.asarray(xy, np.float64)
    vis = np.asarray(visible, bool)
    K, T = vis.shape
    rows: list[int] = []
    ts: list[int] = []
    if mode == "strided":
        for t in range(0, T, stride):
            for k in np.nonzero(vis[:, t])[0]:
                rows.append(int(k))
                ts.append(t)
    else:
        for k in range(K):
            hit = np.nonzero(vis[k])[0]
            if len(hit):
                rows.append(k)
                ts.append(int(hit[0]))
    queries = [Query(t, float(xy[k, t, 0]), float(xy[k, t, 1]), _qname(t, k)) for k, t in zip(rows, ts)]
    r = np.array(rows, np.int64)
    fg = None if is_fg is None else np.asarray(is_fg, bool)[r]
    return GTVideo(name, index, wh, queries, xy[r].reshape(len(r), T, 2), vis[r].reshape(len(r), T), mode,
                   fg, normalized, video, source, {"track_of_query": r.tolist()})


def unique_tracks(xy, visible) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse repeated GT rows (a track queried at several frames) -> (xy, visible, first_row_index)."""
    xy = np.asarray(xy, np.float64)
    vis = np.asarray(visible, bool)
    keys: dict[bytes, int] = {}
    keep = []
    for i in range(len(vis)):
        k = np.where(vis[i, :, None], np.round(xy[i], 4), 0.0).tobytes() + vis[i].tobytes()
        if k not in keys:
            keys[k] = i
            keep.append(i)
    keep_a = np.array(keep, np.int64)
    return xy[keep_a], vis[keep_a], keep_a


# ------------------------------------------------------------------------------------------ readers


def _load_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        raise InputError("file not found", where=str(path)) from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, ValueError) as e:
        raise InputError(f"not a readable pickle ({type(e).__name__}: {e})", where=str(path)) from None


def _decode_video(frames, where: str) -> np.ndarray | None:
    if frames is None:
        return None
    if len(frames) and isinstance(frames[0], (bytes, bytearray)):
        from PIL import Image

        try:
            frames = [np.array(Image.open(io.BytesIO(b)).convert("RGB")) for b in frames]
        except Exception as e:  # noqa: BLE001 - any decoder failure is bad input
            raise InputError(f"field 'video': cannot decode JPEG bytes ({e})", where=where) from None
    v = np.asarray(frames)
    if v.ndim != 4 or v.shape[-1] != 3:
        raise InputError(f"field 'video': expected [T, H, W, 3] frames, got shape {v.shape}", where=where)
    return v.astype(np.uint8, copy=False)


def read_tapvid_official(path, mode: str = "strided", *, data=None) -> list[GTVideo]:
    """Official TAP-Vid pickle (DAVIS dict / Kinetics or RGB-Stacking list) -> GT videos.

    The plate size is the embedded video's; without a video the GT stays normalised to a 1x1 plate
    until :meth:`GTVideo.scaled_to` puts it on the frames it is evaluated with.
    """
    path = Path(path)
    data = _load_pickle(path) if data is None else data
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, (list, tuple)):
        items = [(f"{i:04d}", e) for i, e in enumerate(data)]
    else:
        raise InputError(f"expected a dict or list of videos, got {type(data).__name__}", where=str(path))
    out = []
    for i, (key, e) in enumerate(items):
        where = f"{path}: video {key!r}"
        if not isinstance(e, dict):
            raise InputError(f"entry is a {type(e).__name__}, expected a dict", where=where)
        for f in ("points", "occluded"):
            if f not in e:
                raise InputError(f"missing field {f!r}", where=where)
        pts = np.asarray(e["points"], np.float64)
        occ = np.asarray(e["occluded"], bool)
        if pts.ndim == 4 and pts.shape[0] == 1:  # batched [1, N, T, 2]
            pts, occ = pts[0], occ[0]
        if pts.ndim != 3 or pts.shape[-1] != 2 or occ.shape != pts.shape[:2]:
            raise InputError(f"field 'points' {pts.shape} / 'occluded' {occ.shape}: expected [N, T, 2] and [N, T]",
                             where=where)
        video = _decode_video(e.get("video"), where)
        if video is not None and video.shape[0] != pts.shape[1]:
            raise InputError(f"field 'video' has {video.shape[0]} frames, 'points' {pts.shape[1]}", where=where)
        wh = (video.shape[2], video.shape[1]) if video is not None else (1, 1)
        xy = pts * np.array(wh, np.float64)
        name = str(e.get("video_name", key if isinstance(data, dict) else key))
        idx = int(e["video_idx"]) if "video_idx" in e else (i if isinstance(data, dict) else None)
        if "query_points" in e:
            qp = np.asarray(e["query_points"], np.float64)
            if qp.ndim == 3 and qp.shape[0] == 1:
                qp = qp[0]
            if qp.ndim != 2 or qp.shape != (pts.shape[0], 3):
                raise InputError(f"field 'query_points' {qp.shape}: expected [N, 3] as [t, y, x]", where=where)
            t = np.round(qp[:, 0]).astype(np.int64)
            if t.min(initial=0) < 0 or t.max(initial=0) >= pts.shape[1]:
                raise InputError(f"field 'query_points': query frame outside 0..{pts.shape[1] - 1}", where=where)
            # TAP-Vid order is [t, y, x]; the named query is (t, x, y)
            qs = [Query(int(t[n]), float(qp[n, 2] * wh[0]), float(qp[n, 1] * wh[1]), _qname(int(t[n]), n))
                  for n in range(len(t))]
            out.append(GTVideo(name, idx, wh, qs, xy, ~occ, mode, None, True, video, str(path)))
        else:
            out.append(from_tracks(name, idx, xy, ~occ, wh, mode, normalized=True, video=video, source=str(path)))
    return out


def read_dino_tracker_pickle(path, mode: str = "strided", *, data=None) -> list[GTVideo]:
    """DINO-Tracker's strided benchmark pickle -> GT videos (pixel coordinates of each video's (w, h))."""
    path = Path(path)
    data = _load_pickle(path) if data is None else data
    out = []
    for vi, v in enumerate(data["videos"]):
        where = f"{path}: videos[{vi}]"
        try:
            idx = int(v["video_idx"])
            wh = (int(v["w"]), int(v["h"]))
            qxy, gxy, gocc, fg, qs = [], [], [], [], []
            for f in sorted(v["query_points"], key=int):
                q = np.asarray(v["query_points"][f], np.float64).reshape(-1, 2)
                tp = np.asarray(v["target_points"][f], np.float64)
                oc = np.asarray(v["occluded"][f], bool)
                if len(q) == 0:
                    continue
                if tp.shape[:1] != (len(q),) or tp.shape[-1] != 2 or oc.shape != tp.shape[:2]:
                    raise InputError(f"query frame {f}: target_points {tp.shape} / occluded {oc.shape} do not fit "
                                     f"{len(q)} queries", where=where)
                qxy.append(q)
                gxy.append(tp)
                gocc.append(oc)
                fg.append(np.asarray(v["is_fg"][f], bool) if "is_fg" in v else np.ones(len(q), bool))
                qs += [Query(int(f), float(q[n, 0]), float(q[n, 1]), _qname(int(f), n)) for n in range(len(q))]
        except KeyError as e:
            raise InputError(f"missing field {e}", where=where) from None
        except (TypeError, ValueError) as e:
            raise InputError(f"malformed entry ({e})", where=where) from None
        if not qs:
            continue
        xy = np.concatenate(gxy)
        vis = ~np.concatenate(gocc)
        is_fg = np.concatenate(fg)
        name = str(v.get("name", v.get("video_name", "")))  # unknown here; the harness names it by its frames
        gt = GTVideo(name, idx, wh, qs, xy, vis, "strided", is_fg, False, None, str(path))
        if mode == "first":
            uxy, uvis, rows = unique_tracks(gt.xy, gt.visible)
            gt = from_tracks(name, idx, uxy, uvis, wh, "first", is_fg=is_fg[rows], source=str(path))
        elif mode not in MODES:
            raise InputError(f"query mode {mode!r} is not one of {', '.join(MODES)}", where="--mode")
        out.append(gt)
    return out


def read_npz(path, mode: str = "strided") -> list[GTVideo]:
    """One ``.npz`` (or a folder of them, sorted by name) in the TAP-Vid-like layout -> GT videos.

    ``first`` queries use the file's ``query_frame_first``; ``strided`` queries are sampled every 5 frames.
    """
    path = Path(path)
    files = sorted(path.glob("*.npz")) if path.is_dir() else [path]
    if not files:
        raise InputError("folder holds no .npz files", where=str(path))
    out = []
    for f in files:
        d = load_npz(f, ("points", "occluded", "orig_hw"))
        pts = np.asarray(d["points"], np.float64)
        occ = np.asarray(d["occluded"], bool)
        if pts.ndim != 3 or pts.shape[-1] != 2 or occ.shape != pts.shape[:2]:
            raise InputError(f"field 'points' {pts.shape} / 'occluded' {occ.shape}: expected [N, T, 2], [N, T]",
                             where=str(f))
        H, W = (int(v) for v in d["orig_hw"])
        stem = f.stem
        m = re.match(r"^(\d+)_(.+)$", stem)
        name = str(d["name"]) if "name" in d else (m.group(2) if m else stem)
        idx = int(d["video_idx"]) if "video_idx" in d else (int(m.group(1)) if m else None)
        is_fg = np.asarray(d["is_fg"], bool) if "is_fg" in d else None
        video = np.asarray(d["video"]) if "video" in d else None
        xy = pts * np.array([W, H], np.float64)
        gt = from_tracks(name, idx, xy, ~occ, (W, H), mode, is_fg=is_fg, normalized=True, source=str(f))
        if mode == "first" and "query_frame_first" in d:
            qf = np.asarray(d["query_frame_first"], np.int64)
            rows = np.asarray(gt.meta["track_of_query"], np.int64)
            if not np.array_equal(gt.query_t, qf[rows]):
                raise InputError("field 'query_frame_first' disagrees with the first visible frames of "
                                 "'occluded'", where=str(f))
        gt.meta["embedded_video_256"] = video is not None
        out.append(gt)
    return out


def load_npz(path, required: Iterable[str]) -> dict[str, np.ndarray]:
    """All arrays of a trusted-format npz (``allow_pickle=False``) after checking ``required`` fields;
    an unreadable file or a missing field is an InputError naming the file."""
    try:
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
    except FileNotFoundError:
        raise InputError("file not found", where=str(path)) from None
    except (OSError, ValueError) as e:
        raise InputError(f"not a readable npz ({e})", where=str(path)) from None
    for k in required:
        if k not in arrays:
            raise InputError(f"missing field {k!r}", where=str(path))
    return arrays


def read_gt(path, mode: str = "strided") -> list[GTVideo]:
    """Read any supported GT file (by content): DINO-Tracker pickle, official TAP-Vid pickle, npz(s)."""
    p = Path(path)
    if p.is_dir() or p.suffix.lower() == ".npz":
        return read_npz(p, mode)
    if not p.exists():
        raise InputError("file not found", where=str(p))
    data = _load_pickle(p)
    if isinstance(data, dict) and isinstance(data.get("videos"), list):
        return read_dino_tracker_pickle(p, mode, data=data)
    return read_tapvid_official(p, mode, data=data)


def select(videos: Iterable[GTVideo], wanted: Iterable[str] | None) -> list[GTVideo]:
    """Keep videos named in ``wanted`` (index ``29``, name ``horsejump-high`` or key ``29_horsejump-high``)."""
    videos = list(videos)
    if not wanted:
        return videos
    out, missing = [], []
    for w in wanted:
        w = str(w).strip()
        hit = [v for v in videos if w in (v.name, v.key) or (w.isdigit() and v.index is not None and int(w) == v.index)]
        if not hit:
            missing.append(w)
        out += [v for v in hit if v not in out]
    if missing:
        have = ", ".join(v.key for v in videos[:40])
        raise InputError(f"video(s) {', '.join(missing)} not in the ground truth (have: {have})", where="--videos")
    return out


def find_frames_dir(root, gt: GTVideo) -> Path:
    """The image folder of ``gt`` under ``root`` laid out as ``<idx>_<name>/video/*.jpg`` (a folder
    named by index prefix, by key or by name; ``video/`` optional)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("frames folder not found", where=str(root))
    cands = [root / gt.key] + ([root / gt.name] if gt.name else [])
    if gt.index is not None:
        cands += sorted(root.glob(f"{gt.index:02d}_*")) + sorted(root.glob(f"{gt.index}_*"))
    if gt.name:
        cands += sorted(root.glob(f"*_{gt.name}"))
    for c in cands:
        for d in (c / "video", c):
            if d.is_dir() and any(p.suffix.lower() in {".jpg", ".jpeg", ".png", ".exr", ".tif", ".tiff"}
                                  for p in d.iterdir()):
                return d
    raise InputError(f"no frames for video {gt.key} (expected {gt.key}/video/*.jpg)", where=str(root))


def name_from_frames_dir(d: Path) -> str | None:
    """``.../29_horsejump-high/video`` -> ``horsejump-high``."""
    folder = d.parent if d.name == "video" else d
    m = re.match(r"^\d+_(.+)$", folder.name)
    return m.group(1) if m else None
