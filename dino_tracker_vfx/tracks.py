"""The one track model every module and adapter reads and writes.

Conventions (stated once, written into every file this module saves):

* ``xy``: float64 ``[N, T, 2]`` ordered ``(x, y)`` in plate pixels of the display window, origin
  top-left, y down, centre of the first pixel at ``(0, 0)``. NaN where no position is known.
* time: 0-based image index ``t`` in ``0..T-1``; ``frame_numbers[t]`` is the host frame number.
* ``visible``: bool ``[N, T]``; ``confidence``: float32 ``[N, T]`` in ``[0, 1]``.
* every track has a unique ``name``, an optional ``group`` (an object), and the ``Query`` it came from.
* a track may have several anchors (``anchors[i]``: its query and the artist's corrections, ``Query``
  tuples sorted by ``t``; :func:`group_anchors` builds them from query rows that share a name). At every
  anchor's own image the track is exactly the anchor, visible, confidence 1. Optional in the files
  (``"anchors": [{"t", "frame", "x", "y"}, ...]`` per track in JSON, ``is_query`` 2 on a correction's
  row in CSV); a file without them reads as one anchor per track, its query.
* a group may carry an object-level track: centroid ``[T, 2]``, visibility ``[T]``, bbox ``[T, 4]``
  ``(x0, y0, x1, y1)`` in the same plate-pixel convention.
* ``fps``: the shot's frame rate (frames per second) when known, else ``None``; ``timecode``: the SMPTE
  timecode ``HH:MM:SS:FF`` of the first image when the plate carries one, else ``None``. Both are
  optional in the files (``"time": {"fps": 10, "timecode": "01:00:00:00"}`` in JSON, ``# fps`` /
  ``# timecode`` header lines in CSV); files without them read as unknown, and exporters that need a
  rate then use :data:`DEFAULT_FPS`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from . import atomic
from .checks import check_shape
from .errors import InputError

FORMAT_NAME = "dino_tracker_vfx.tracks"
FORMAT_VERSION = 1
CONVENTIONS = {
    "coordinates": "plate pixels of the display window; origin top-left; y down; "
                   "centre of the first pixel at (0, 0), so the image spans -0.5..W-0.5",
    "point_order": "x, y",
    "time": "t is the 0-based image index of the shot; frame is the host frame number frames[t]",
    "visibility": "boolean per track and image",
    "confidence": "0..1 per track and image",
    "bbox": "x0, y0, x1, y1 in plate pixels",
    "anchors": "optional per track (JSON anchors, CSV is_query 2): the query and the corrections, met exactly",
}
DEFAULT_FPS = 24.0  # what exporters that need a rate use when the track file has none (documented)


@dataclass(frozen=True)
class Query:
    """A point to track: image index ``t`` and plate-pixel position ``(x, y)``."""

    t: int
    x: float
    y: float
    name: str | None = None
    group: str | None = None

    @property
    def xy(self) -> tuple[float, float]:
        return (self.x, self.y)


@dataclass
class ObjectTrack:
    """Object-level track of a group: robust centroid, bbox and visibility per image."""

    centroid: np.ndarray  # [T, 2] float64 plate px
    visible: np.ndarray  # [T] bool
    bbox: np.ndarray | None = None  # [T, 4] (x0, y0, x1, y1)
    confidence: np.ndarray | None = None  # [T] float32

    def __post_init__(self):
        self.centroid = np.asarray(self.centroid, dtype=np.float64)
        T = check_shape(self.centroid, "T 2", "ObjectTrack.centroid")["T"]
        self.visible = np.asarray(self.visible, dtype=bool)
        check_shape(self.visible, "T", "ObjectTrack.visible", {"T": T})
        if self.bbox is not None:
            self.bbox = np.asarray(self.bbox, dtype=np.float64)
            check_shape(self.bbox, "T 4", "ObjectTrack.bbox", {"T": T})
        if self.confidence is None:
            self.confidence = self.visible.astype(np.float32)
        self.confidence = np.asarray(self.confidence, dtype=np.float32)
        check_shape(self.confidence, "T", "ObjectTrack.confidence", {"T": T})


@dataclass
class TrackSet:
    """N tracks over the T images of one shot (see module docstring for conventions)."""

    xy: np.ndarray
    visible: np.ndarray
    confidence: np.ndarray
    names: list[str]
    queries: list[Query]
    frame_numbers: np.ndarray
    plate_size: tuple[int, int]  # (W, H) of the display window
    groups: dict[str, ObjectTrack | None] = field(default_factory=dict)
    pixel_aspect: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)
    fps: float | None = None  # frames per second of the shot, None = unknown
    timecode: str | None = None  # SMPTE timecode of the first image, None = none on the plate
    anchors: list[tuple[Query, ...]] | None = None  # per track, sorted by t; None = each track's query alone

    def __post_init__(self):
        if self.fps is None and self.meta.get("fps") is not None:  # older writers kept the rate in meta
            self.fps = self.meta["fps"]
        self.fps = _check_fps(self.fps, "TrackSet.fps")
        self.timecode = None if self.timecode in (None, "") else str(self.timecode)
        self.xy = np.asarray(self.xy, dtype=np.float64)
        d = check_shape(self.xy, "N T 2", "TrackSet.xy")
        N, T = d["N"], d["T"]
        self.visible = np.asarray(self.visible, dtype=bool)
        check_shape(self.visible, "N T", "TrackSet.visible", d)
        self.confidence = np.asarray(self.confidence, dtype=np.float32)
        check_shape(self.confidence, "N T", "TrackSet.confidence", d)
        self.frame_numbers = np.asarray(self.frame_numbers, dtype=np.int64)
        check_shape(self.frame_numbers, "T", "TrackSet.frame_numbers", d)
        self.plate_size = (int(self.plate_size[0]), int(self.plate_size[1]))
        self.names = list(self.names)
        self.queries = list(self.queries)
        if len(self.names) != N or len(self.queries) != N:
            raise InputError(f"TrackSet: {N} tracks but {len(self.names)} names and {len(self.queries)} queries")
        dup = sorted({n for n in self.names if self.names.count(n) > 1})
        if dup:
            raise InputError(f"TrackSet: duplicate track names {dup}")
        for g in dict.fromkeys(q.group for q in self.queries if q.group):  # query order: reproducible files
            self.groups.setdefault(g, None)
        if self.anchors is None:
            self.anchors = [(q,) for q in self.queries]
        self.anchors = [tuple(sorted(a, key=lambda q: q.t)) for a in self.anchors]
        if len(self.anchors) != N:
            raise InputError(f"TrackSet: {N} tracks but anchors for {len(self.anchors)}")
        for i, a in enumerate(self.anchors):
            if not a or any(not 0 <= q.t < T for q in a):
                raise InputError(f"TrackSet: track {self.names[i]!r} has an anchor outside 0..{T - 1} (or none)")

    # ------------------------------------------------------------------ basic views
    @property
    def n_tracks(self) -> int:
        return self.xy.shape[0]

    @property
    def n_images(self) -> int:
        return self.xy.shape[1]

    def group_of(self, i: int) -> str | None:
        return self.queries[i].group

    def members(self, group: str) -> list[int]:
        return [i for i, q in enumerate(self.queries) if q.group == group]

    def frame_of(self, t: int) -> int:
        return int(self.frame_numbers[t])

    def rate(self, override: float | None = None) -> float:
        """Frames per second for a writer: ``override`` (an adapter option), else the shot's ``fps``,
        else :data:`DEFAULT_FPS`."""
        return float(_check_fps(override, "fps") or self.fps or DEFAULT_FPS)

    def with_time(self, fps: float | None, timecode: str | None = None) -> "TrackSet":
        """Set the shot's rate and timecode (e.g. from a :class:`~dino_tracker_vfx.shots.Shot`); returns self."""
        self.fps = _check_fps(fps, "fps")
        self.timecode = timecode or None
        return self

    def index_of_frame(self, frame: int) -> int:
        hits = np.nonzero(self.frame_numbers == int(frame))[0]
        if len(hits) == 0:
            raise InputError(f"frame {frame} is not in the shot ({_range_text(self.frame_numbers)})")
        return int(hits[0])

    def subset(self, idx: Sequence[int]) -> "TrackSet":
        idx = list(idx)
        groups = {g: o for g, o in self.groups.items() if any(self.queries[i].group == g for i in idx)}
        return TrackSet(self.xy[idx], self.visible[idx], self.confidence[idx], [self.names[i] for i in idx],
                        [self.queries[i] for i in idx], self.frame_numbers, self.plate_size, groups,
                        self.pixel_aspect, dict(self.meta), self.fps, self.timecode, [self.anchors[i] for i in idx])

    @classmethod
    def empty(cls, frame_numbers, plate_size) -> "TrackSet":
        T = len(frame_numbers)
        return cls(np.zeros((0, T, 2)), np.zeros((0, T), bool), np.zeros((0, T), np.float32), [], [],
                   frame_numbers, plate_size)

    # ------------------------------------------------------------------ JSON
    def to_json_dict(self) -> dict[str, Any]:
        tracks = []
        for i in range(self.n_tracks):
            q = self.queries[i]
            tracks.append({
                "name": self.names[i],
                "group": q.group,
                "query": {"t": int(q.t), "frame": self.frame_of(q.t), "x": float(q.x), "y": float(q.y)},
                "xy": [None if not np.isfinite(p).all() else [_num(p[0]), _num(p[1])] for p in self.xy[i]],
                "visible": [bool(v) for v in self.visible[i]],
                "confidence": [_num(c, 4) for c in self.confidence[i]],
            })
            if len(self.anchors[i]) > 1:  # optional: a track without corrections is written as before
                tracks[-1]["anchors"] = [{"t": int(a.t), "frame": self.frame_of(a.t), "x": float(a.x),
                                          "y": float(a.y)} for a in self.anchors[i]]
        groups = []
        for g, obj in self.groups.items():
            entry: dict[str, Any] = {"name": g, "tracks": [self.names[i] for i in self.members(g)]}
            if obj is not None:
                entry["centroid"] = [None if not np.isfinite(p).all() else [_num(p[0]), _num(p[1])]
                                     for p in obj.centroid]
                entry["visible"] = [bool(v) for v in obj.visible]
                entry["confidence"] = [_num(c, 4) for c in obj.confidence]
                if obj.bbox is not None:
                    entry["bbox"] = [None if not np.isfinite(b).all() else [_num(v) for v in b] for b in obj.bbox]
            groups.append(entry)
        out = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "conventions": CONVENTIONS,
            "plate": {"width": self.plate_size[0], "height": self.plate_size[1], "pixel_aspect": self.pixel_aspect},
            "frames": [int(f) for f in self.frame_numbers],
        }
        time = {k: v for k, v in (("fps", None if self.fps is None else _num(self.fps)),
                                  ("timecode", self.timecode)) if v is not None}
        if time:  # optional: files of unknown rate stay as they were
            out["time"] = time
        out.update({"meta": _jsonable(self.meta), "tracks": tracks, "groups": groups})
        return out

    @classmethod
    def from_json_dict(cls, d: dict[str, Any], where: str = "tracks.json") -> "TrackSet":
        if d.get("format") != FORMAT_NAME:
            raise InputError(f"not a {FORMAT_NAME} file (format={d.get('format')!r})", where=where)
        if int(d.get("version", 0)) > FORMAT_VERSION:
            raise InputError(f"version {d.get('version')} is newer than this reader ({FORMAT_VERSION})", where=where)
        try:
            frames = np.asarray(d["frames"], dtype=np.int64)
            W, H = int(d["plate"]["width"]), int(d["plate"]["height"])
            T = len(frames)
            rows = d["tracks"]
            N = len(rows)
            xy = np.full((N, T, 2), np.nan)
            vis = np.zeros((N, T), bool)
            conf = np.zeros((N, T), np.float32)
            names, queries, anchors = [], [], []
            for i, r in enumerate(rows):
                if len(r["xy"]) != T or len(r["visible"]) != T:
                    raise InputError(f"track {r.get('name')!r} has {len(r['xy'])} positions for {T} frames",
                                     where=where)
                for t, p in enumerate(r["xy"]):
                    if p is not None:
                        xy[i, t] = p
                vis[i] = r["visible"]
                conf[i] = [0.0 if c is None else c for c in r.get("confidence", [1.0] * T)]
                q = r["query"]
                names.append(str(r["name"]))
                queries.append(Query(int(q["t"]), float(q["x"]), float(q["y"]), str(r["name"]), r.get("group")))
                anchors.append(tuple(Query(int(a["t"]), float(a["x"]), float(a["y"]), str(r["name"]), r.get("group"))
                                     for a in r.get("anchors") or ()) or (queries[-1],))
            groups: dict[str, ObjectTrack | None] = {}
            for g in d.get("groups", []):
                obj = None
                if g.get("centroid") is not None:
                    c = np.array([[np.nan, np.nan] if p is None else p for p in g["centroid"]], dtype=np.float64)
                    bb = g.get("bbox")
                    bbox = None if bb is None else np.array([[np.nan] * 4 if b is None else b for b in bb], float)
                    obj = ObjectTrack(c, np.asarray(g["visible"], bool), bbox,
                                      np.asarray(g.get("confidence", g["visible"]), np.float32))
                groups[str(g["name"])] = obj
            time = d.get("time") or {}
            fps = _check_fps(time.get("fps", (d.get("meta") or {}).get("fps")), "time.fps", where)
            timecode = time.get("timecode")
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, InputError):
                raise
            raise InputError(f"malformed track file ({type(e).__name__}: {e})", where=where) from None
        return cls(xy, vis, conf, names, queries, frames, (W, H), groups,
                   float(d["plate"].get("pixel_aspect", 1.0)), dict(d.get("meta") or {}), fps, timecode, anchors)

    def save_json(self, path: str | Path) -> None:
        atomic.write_json(path, self.to_json_dict(), indent=1)

    @classmethod
    def load_json(cls, path: str | Path) -> "TrackSet":
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            raise InputError("file not found", where=str(p)) from None
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON at line {e.lineno}: {e.msg}", where=str(p)) from None
        return cls.from_json_dict(d, where=str(p))

    # ------------------------------------------------------------------ CSV (long format)
    CSV_COLUMNS = ("track", "group", "t", "frame", "x", "y", "visible", "confidence", "is_query")

    def to_csv_text(self) -> str:
        buf = io.StringIO()
        W, H = self.plate_size
        buf.write(f"# {FORMAT_NAME} v{FORMAT_VERSION} csv\n")
        buf.write(f"# plate {W} {H} pixel_aspect {self.pixel_aspect:g}\n")
        for k, v in CONVENTIONS.items():
            buf.write(f"# {k}: {v}\n")
        buf.write("# frames " + " ".join(str(int(f)) for f in self.frame_numbers) + "\n")
        if self.fps is not None:
            buf.write(f"# fps {_num(self.fps)}\n")
        if self.timecode is not None:
            buf.write(f"# timecode {self.timecode}\n")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.CSV_COLUMNS)
        for i in range(self.n_tracks):
            q = self.queries[i]
            corrected = {a.t for a in self.anchors[i]} - {q.t}
            lead = _csv_text_cells([self.names[i], q.group or ""])
            for t in range(self.n_images):
                x, y = self.xy[i, t]
                buf.write(lead)
                w.writerow([t, self.frame_of(t),
                            "" if not math.isfinite(x) else _num(x), "" if not math.isfinite(y) else _num(y),
                            int(self.visible[i, t]), _num(self.confidence[i, t], 4),
                            1 if t == q.t else 2 if t in corrected else 0])
        return buf.getvalue()

    def save_csv(self, path: str | Path) -> None:
        atomic.write_text(path, self.to_csv_text())

    @classmethod
    def load_csv(cls, path: str | Path) -> "TrackSet":
        p = Path(path)
        try:  # newline="": a quoted field keeps its own line breaks (a name may hold any character)
            with open(p, encoding="utf-8", newline="") as fh:
                text = fh.read()
        except FileNotFoundError:
            raise InputError("file not found", where=str(p)) from None
        body = io.StringIO(text, newline="")
        header = []  # the '#' lines before the column row (a later row may begin with '#': a track name)
        pos = 0
        for ln in iter(body.readline, ""):
            if not ln.startswith("#"):
                break
            header.append(ln.rstrip("\r\n"))
            pos = body.tell()
        body.seek(pos)
        plate = next((h.split()[2:4] for h in header if h.startswith("# plate ")), None)
        frames_h = next((h.split()[2:] for h in header if h.startswith("# frames")), None)
        if plate is None or frames_h is None or not header or FORMAT_NAME not in header[0]:
            raise InputError(f"missing '# {FORMAT_NAME}' header with plate size and frames", where=str(p))
        frames = np.array([int(f) for f in frames_h], np.int64)
        fps_h = next((h.split()[2] for h in header if h.startswith("# fps ") and len(h.split()) > 2), None)
        tc_h = next((h.split()[2] for h in header if h.startswith("# timecode ") and len(h.split()) > 2), None)
        fps = _check_fps(fps_h, "# fps", str(p))
        T = len(frames)
        order: list[str] = []
        data: dict[str, dict[str, Any]] = {}
        for ln, row in enumerate(csv.DictReader(body), start=len(header) + 2):
            try:
                name = row["track"]
                t = int(row["t"])
                if not 0 <= t < T:
                    raise InputError(f"line {ln}: t={t} outside 0..{T - 1}", where=str(p))
                if name not in data:
                    order.append(name)
                    data[name] = {"xy": np.full((T, 2), np.nan), "vis": np.zeros(T, bool),
                                  "conf": np.zeros(T, np.float32), "group": row["group"] or None, "qt": None,
                                  "at": []}
                e = data[name]
                if row["x"] != "":
                    e["xy"][t] = (float(row["x"]), float(row["y"]))
                e["vis"][t] = row["visible"] == "1"
                e["conf"][t] = float(row["confidence"])
                if row.get("is_query") == "1":
                    e["qt"] = t
                elif row.get("is_query") == "2":  # a correction (an anchor that is not the query)
                    e["at"].append(t)
            except (KeyError, ValueError, TypeError) as ex:
                raise InputError(f"line {ln}: bad row ({ex})", where=str(p)) from None
        queries, anchors = [], []
        for n in order:
            e = data[n]
            qt = e["qt"] if e["qt"] is not None else int(np.argmax(e["vis"]))
            queries.append(Query(qt, float(e["xy"][qt, 0]), float(e["xy"][qt, 1]), n, e["group"]))
            anchors.append((queries[-1], *(Query(t, float(e["xy"][t, 0]), float(e["xy"][t, 1]), n, e["group"])
                                           for t in e["at"])))
        return cls(np.stack([data[n]["xy"] for n in order]) if order else np.zeros((0, T, 2)),
                   np.stack([data[n]["vis"] for n in order]) if order else np.zeros((0, T), bool),
                   np.stack([data[n]["conf"] for n in order]) if order else np.zeros((0, T), np.float32),
                   order, queries, frames, (int(plate[0]), int(plate[1])), fps=fps, timecode=tc_h, anchors=anchors)

    @classmethod
    def load(cls, path: str | Path) -> "TrackSet":
        """Load a core JSON or CSV track file (by suffix)."""
        return cls.load_csv(path) if str(path).lower().endswith(".csv") else cls.load_json(path)

    def save(self, path: str | Path) -> None:
        self.save_csv(path) if str(path).lower().endswith(".csv") else self.save_json(path)


def _csv_text_cells(fields: Sequence[str]) -> str:
    """``fields`` as the first CSV cells of a row, up to and including the comma after them. A cell
    holding ``\r`` is quoted as well as one holding ``\n`` (csv.writer quotes only its line terminator's
    characters), so any name is read back exactly."""
    b = io.StringIO()
    csv.writer(b, lineterminator="\r\n").writerow(fields)
    return b.getvalue()[:-2] + ","


def _num(v: float, nd: int = 6):
    v = float(v)
    r = round(v, nd)
    return int(r) if r == int(r) and abs(r) < 1e15 else r


def _check_fps(v: Any, what: str, where: str | None = None) -> float | None:
    """A frame rate: ``None`` (unknown) or a finite number > 0 (else InputError naming ``what``)."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = float("nan")
    if not math.isfinite(f) or f <= 0:
        raise InputError(f"{what}={v!r} is not a frame rate (a number > 0)", where=where)
    return f


def _jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return o


def _range_text(frames: Iterable[int]) -> str:
    f = list(frames)
    return f"{f[0]}-{f[-1]}" if f else "empty"


def group_anchors(queries: Sequence[Query], labels: Sequence[str] | None = None,
                  frame_of=None) -> list[tuple[Query, tuple[Query, ...]]]:
    """Query rows -> tracks: ``[(query, anchors sorted by t)]`` in order of first appearance.

    Rows that share a ``name`` are ONE track: the first row is its query, the others its corrections
    (anchors); rows without a name are tracks of their own. The same position given twice at one image is
    kept once; two different positions of one track at one image are an :class:`InputError` naming both
    (by ``labels[i]``, e.g. ``"q.csv: line 3"``, when given, and by host frame through ``frame_of(t)``)."""
    labels = list(labels) if labels is not None else [f"row {i}" for i in range(len(queries))]
    tracks: dict[Any, list[tuple[Query, str]]] = {}
    for i, q in enumerate(queries):
        tracks.setdefault(q.name if q.name is not None else ("#", i), []).append((q, labels[i]))
    out = []
    for rows in tracks.values():
        at: dict[int, tuple[Query, str]] = {}
        for q, lab in rows:
            prev = at.get(int(q.t))
            if prev is None:
                at[int(q.t)] = (q, lab)
            elif (prev[0].x, prev[0].y) != (q.x, q.y):
                fr = frame_of(int(q.t)) if frame_of is not None else f"t={q.t}"
                raise InputError(f"track {q.name!r} has two anchors at frame {fr} with different positions: "
                                 f"({prev[0].x:g}, {prev[0].y:g}) at {prev[1]} and ({q.x:g}, {q.y:g}) at {lab}")
        first = rows[0][0]
        out.append((first, tuple(Query(a.t, a.x, a.y, first.name, first.group)
                                 for a, _ in sorted(at.values(), key=lambda v: v[0].t))))
    return out


def unique_names(names: Sequence[str | None], prefix: str = "track") -> list[str]:
    """Fill missing names (``track_001``...) and rename duplicates ``a``, ``a_2``, ``a_3`` (documented rename)."""
    out: list[str] = []
    seen: set[str] = set()
    for i, n in enumerate(names):
        base = n if n else f"{prefix}_{i + 1:03d}"
        cand, k = base, 2
        while cand in seen:
            cand = f"{base}_{k}"
            k += 1
        seen.add(cand)
        out.append(cand)
    return out
