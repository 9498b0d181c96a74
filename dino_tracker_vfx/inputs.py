"""Inputs from hosts, in core form: query points and masks.

Query files (validated against the shot; errors name the file, line/row and field)
----------------------------------------------------------------------------------
* CSV with a header. Columns: ``x``, ``y`` (plate pixels, core convention: origin top-left, y down,
  first pixel centre at (0, 0)) and exactly one of ``t`` (0-based image index) or ``frame`` (host
  frame number); optional ``name`` and ``group``. Lines starting with ``#`` are comments.
* JSON: ``{"queries": [{"frame": 1001, "x": .., "y": .., "name": .., "group": ..}, ...]}`` or a bare list
  of such objects (``t`` instead of ``frame`` allowed).
* Anything a host adapter reads queries from (``.nk``, ``.blender.json``, ``.3de.txt``, ``.uv``, a core
  track file to re-track, ...): handed to :func:`dino_tracker_vfx.adapters.read_queries`, which maps
  host frames to image indices through the shot; the frames an artist keyed on a host tracker come
  back as its corrections.

Rows that share a ``name`` are ONE track with several anchors: the first row is its query, the others
corrections (:func:`dino_tracker_vfx.tracks.group_anchors`); two different positions of one track at
one frame are an error naming both rows. A corrections file (``read_queries(..., corrections=FILE)``,
any of the formats above) adds anchors to the tracks of the query file by name: each of its rows must
name a track of the query file.

Masks
-----
``read_mask(path)`` -> int32 ``[H, W]`` instance ids, 0 = background:
binary mattes (8/16-bit grey or RGB: any non-zero -> id 1; float mattes: > 0.5 -> 1), palette PNGs
(mode ``P``: the palette *indices* are the ids, as in DAVIS), integer-valued EXR/TIFF id images
(first channel, values must be whole numbers >= 0).
``read_masks(specs, shot)`` -> ``{image index: ids}``; a spec is ``PATH`` (frame from the number in the
file name if it is a shot frame, else the shot's first image) or ``PATH@FRAME`` (host frame number).
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .errors import InputError
from .textfiles import read_user_text
from .tracks import Query, group_anchors, unique_names


# ----------------------------------------------------------------------------- queries
def read_queries(path: str | Path, shot, corrections: str | Path | None = None, previous=None) -> list[Query]:
    """Read and validate query points for ``shot`` (see module docstring), then the rows of
    ``corrections`` (anchors added to the tracks they name, :func:`add_corrections`; ``previous``: the
    tracks being corrected). Rows without a name get one (``track_001``...); rows that share a name stay
    one track (one Query per anchor, same name)."""
    rows = _read_rows(path, shot)
    keys = [q.name if q.name is not None else ("#", i) for i, (q, _) in enumerate(rows)]
    order = list(dict.fromkeys(keys))
    names = dict(zip(order, unique_names([k if isinstance(k, str) else None for k in order], prefix="track")))
    out = [Query(q.t, q.x, q.y, names[k], q.group) for (q, _), k in zip(rows, keys)]
    return add_corrections(out, corrections, shot, [lab for _, lab in rows], Path(path).name, previous)


SAME_PX = 0.01  # a host-file key this close to the tracks being corrected is a key the artist did not move


def add_corrections(queries: list[Query], corrections: str | Path | None, shot, labels: list[str] | None = None,
                    source: str = "the queries", previous=None) -> list[Query]:
    """``queries`` + the rows of the file ``corrections`` (None: none), each of which must name a track of
    ``queries`` (``source`` names them in the message); then two different anchors of one track on one
    frame are an InputError naming both (``labels``: the queries' locations).

    A host file (``.nk``, ``.blender.json``, ``.uv``, ...) gives every keyed frame of its tracks. With
    ``previous`` (the :class:`~dino_tracker_vfx.tracks.TrackSet` being corrected, e.g. the last result),
    keys where that track is visible within :data:`SAME_PX` of the key are not corrections: an exported,
    edited file thus gives exactly the frames the artist moved. Keys equal to an anchor of the queries
    (within the same tolerance: host files round positions) are dropped as well."""
    out = list(zip(queries, labels or [f"{source}: track {q.name!r}" for q in queries]))
    if corrections is not None:
        known = {q.name for q in queries}
        fixes = _read_rows(corrections, shot, keyed=True)
        fixes = [(q, lab) for q, lab in fixes if not _unchanged(q, previous, queries)]
        for q, lab in fixes:
            if q.name is None:
                raise InputError(f"{lab}: a correction needs the name of the track it corrects")
            if q.name not in known:
                raise InputError(f"{lab}: correction for unknown track {q.name!r} (not in {source})")
        out += fixes
    group_anchors([q for q, _ in out], [lab for _, lab in out], shot.frame_of)  # conflicts named here
    return [q for q, _ in out]


def _unchanged(q: Query, previous, queries: list[Query]) -> bool:
    """True when correction ``q`` repeats an anchor of ``queries`` or a visible position of ``previous``."""
    if any(a.name == q.name and a.t == q.t and abs(a.x - q.x) <= SAME_PX and abs(a.y - q.y) <= SAME_PX
           for a in queries):
        return True
    if previous is None or q.name not in previous.names:
        return False
    i = previous.names.index(q.name)
    if len(previous.frame_numbers) <= q.t or not previous.visible[i, q.t]:
        return False
    return bool(np.all(np.abs(previous.xy[i, q.t] - (q.x, q.y)) <= SAME_PX))


def _read_rows(path: str | Path, shot, keyed: bool = False) -> list[tuple[Query, str]]:
    """The query rows of one file, each with its location for messages (``file: line 3``); ``keyed``: a
    host file gives every keyed frame of its tracks (reading corrections), not each track's query alone."""
    p = Path(path)
    if not p.is_file():
        raise InputError("query file not found", where=str(p))
    if _is_host_file(p):
        from .adapters import read_queries as read_host_queries

        return [(q, str(p)) for q in read_host_queries(p, shot, options={"keyed": True} if keyed else None)]
    rows = _query_rows_json(p) if p.suffix.lower() == ".json" else _query_rows_csv(p)
    if not rows:
        raise InputError("no query points in file", where=str(p))
    return [(_validate_query(r, where, shot, str(p)), f"{p}: {where}") for r, where in rows]


def _is_host_file(p: Path) -> bool:
    """True when a host adapter, not the simple query format, should read ``p``."""
    name = p.name.lower()
    if name.endswith(".csv") or name.endswith(".json"):
        from .tracks import FORMAT_NAME

        head = p.read_text(errors="replace")[:4096]
        if name.endswith(".csv"):
            return head.startswith(f"# {FORMAT_NAME}")
        if FORMAT_NAME in head:
            return True
        from .adapters import registry

        try:  # a longer suffix such as .blender.json belongs to its adapter
            return registry().for_path(p, "read_queries").name != "json"
        except Exception:
            return False
    return True


def _query_rows_csv(p: Path) -> list[tuple[dict, str]]:
    lines = [(i, ln) for i, ln in enumerate(read_user_text(p, what="CSV text").splitlines(), start=1)
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return []
    reader = csv.DictReader([ln for _, ln in lines])
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    reader.fieldnames = fields
    for need in ("x", "y"):
        if need not in fields:
            raise InputError(f"missing column {need!r} (have: {', '.join(fields)})", where=str(p))
    if ("t" in fields) == ("frame" in fields):
        raise InputError("needs exactly one of the columns 't' (image index) or 'frame' (host frame number)",
                         where=str(p))
    return [(row, f"line {lines[k + 1][0]}") for k, row in enumerate(reader)]


def _query_rows_json(p: Path) -> list[tuple[dict, str]]:
    try:
        d = json.loads(read_user_text(p, what="JSON text"))
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON at line {e.lineno}: {e.msg}", where=str(p)) from None
    items = d.get("queries") if isinstance(d, dict) else d
    if not isinstance(items, list):
        raise InputError("expected a list of queries or {'queries': [...]}", where=str(p))
    return [(it if isinstance(it, dict) else {"_bad": it}, f"queries[{i}]") for i, it in enumerate(items)]


def _validate_query(row: dict, where: str, shot, path: str) -> Query:
    loc = f"{path}: {where}"
    if "_bad" in row:
        raise InputError(f"{loc}: expected an object with x, y and t or frame")

    def num(key: str) -> float:
        v = row.get(key)
        if isinstance(v, bool):  # JSON true/false would pass as 1/0
            raise InputError(f"{loc}: field {key!r}={v!r} is not a number")
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise InputError(f"{loc}: field {key!r}={v!r} is not a number") from None
        if not math.isfinite(f):
            raise InputError(f"{loc}: field {key!r} is not finite")
        return f

    x, y = num("x"), num("y")
    has_t = row.get("t") not in (None, "")
    has_f = row.get("frame") not in (None, "")
    if has_t == has_f:
        raise InputError(f"{loc}: give exactly one of 't' (image index) or 'frame' (host frame number)")
    if has_t:
        tf = num("t")
        if tf != int(tf) or not 0 <= tf < shot.n_images:
            raise InputError(f"{loc}: t={row['t']} is not an image index of the shot (0..{shot.n_images - 1})")
        t = int(tf)
    else:
        ff = num("frame")
        if ff != int(ff) or int(ff) not in set(int(f) for f in shot.frame_numbers):
            raise InputError(f"{loc}: frame {row['frame']} is not in the shot ({shot.range_text()}"
                             f"{', with gaps' if shot.gaps() else ''})")
        t = shot.index_of_frame(int(ff))
    W, H = shot.size
    if not (-0.5 <= x <= W - 0.5 and -0.5 <= y <= H - 0.5):
        raise InputError(f"{loc}: point ({x:g}, {y:g}) is outside the {W}x{H} plate "
                         f"(x in -0.5..{W - 0.5}, y in -0.5..{H - 0.5}, origin top-left)")
    return Query(t, x, y, _text(row, "name", loc), _text(row, "group", loc))


def _text(row: dict, key: str, loc: str) -> str | None:
    v = row.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise InputError(f"{loc}: field {key!r} must be text, got {type(v).__name__} {v!r}")
    return v.strip() or None


# ----------------------------------------------------------------------------- masks
def read_mask(path: str | Path) -> np.ndarray:
    """One mask image -> int32 [H, W] instance ids (0 = background)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("mask file not found", where=str(p))
    if p.suffix.lower() in (".png", ".gif", ".bmp", ".jpg", ".jpeg"):
        ids = _read_mask_pil(p)
    else:
        ids = _read_mask_oiio(p)
    return ids


def _read_mask_pil(p: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            a = np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:  # ValueError: e.g. a palette
        raise InputError(f"cannot read mask ({e})", where=str(p)) from None            # of more than 256 entries
    if mode == "P":
        return a.astype(np.int32)
    if mode in ("I", "I;16", "I;16B", "I;16L"):
        vals = np.unique(a)
        if len(vals) <= 2:  # a 16-bit binary matte
            return (a > 0).astype(np.int32)
        return a.astype(np.int32)  # 16-bit id image
    if a.ndim == 3:
        if a.shape[2] == 4 and not a[..., :3].any():
            a = a[..., 3]  # alpha-only matte
        else:
            a = a[..., :3].max(axis=2)
    return (a > 0).astype(np.int32)


def _read_mask_oiio(p: Path) -> np.ndarray:
    """EXR/TIFF/DPX masks in their native pixel type: whole numbers are ids, soft float mattes > 0.5."""
    import OpenImageIO as oiio

    from .shots.images import check_window

    inp = oiio.ImageInput.open(str(p))
    if inp is None:
        raise InputError(f"cannot read mask ({oiio.geterror().strip()})", where=str(p))
    try:
        s = inp.spec()
        check_window(str(p), "display", s.full_width, s.full_height)  # before allocating either
        check_window(str(p), "data", s.width, s.height)
        px = inp.read_image(s.format)  # native type: uint8/uint16/uint32 stay integers
    finally:
        inp.close()
    if px is None:
        raise InputError("cannot read mask pixels", where=str(p))
    px = np.asarray(px).reshape(s.height, s.width, s.nchannels)[..., 0].astype(np.float64)
    if not np.isfinite(px).all():
        raise InputError("mask has NaN/Inf values", where=str(p))
    full = np.zeros((s.full_height, s.full_width), np.float64)  # place the data window in the display window
    x0, y0 = s.x - s.full_x, s.y - s.full_y
    ys = slice(max(0, y0), min(s.full_height, y0 + s.height))
    xs = slice(max(0, x0), min(s.full_width, x0 + s.width))
    full[ys, xs] = px[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    if np.any(full < 0):
        raise InputError("mask values must be >= 0", where=str(p))
    if not np.array_equal(full, np.round(full)):
        return (full > 0.5).astype(np.int32)  # soft float matte
    vals = np.unique(full)
    if len(vals) <= 2 and vals.max() in (255.0, 65535.0):
        return (full > 0).astype(np.int32)  # integer binary matte
    return full.astype(np.int32)


_MASK_SPEC = re.compile(r"^(.*)@(-?\d+)$")


def split_mask_spec(spec: str | Path, exists: Callable[[str], bool] | None = None) -> tuple[str, int | None]:
    """``"PATH@FRAME"`` -> ``(PATH, FRAME)``; ``"PATH"`` -> ``(PATH, None)``. The one parser of mask specs
    (``read_masks``, job specs, ``dtvfx segment``'s palette). Only a final ``@`` followed by a whole number
    splits, so folders and names holding ``@`` stay in the path; a spec that names an existing file
    (``exists``, default: an existing file) is a path even when it ends in ``@<digits>``."""
    spec = str(spec)
    m = _MASK_SPEC.match(spec)
    if m and not (exists or (lambda s: Path(s).is_file()))(spec):
        return m.group(1), int(m.group(2))
    return spec, None


def read_masks(specs: Iterable[str] | str, shot, frame: int | None = None) -> dict[int, np.ndarray]:
    """Masks for ``shot``: ``{image index: int32 [H, W] ids}`` at plate size (see module docstring).

    A mask of another size is resized with nearest neighbour (ids preserved) and a warning; an empty
    mask (no object) is an error.
    """
    if isinstance(specs, (str, Path)):
        specs = [str(specs)]
    out: dict[int, np.ndarray] = {}
    W, H = shot.size
    for spec in specs:
        path, f = split_mask_spec(spec)
        f = frame if f is None else f
        ids = read_mask(path)
        if f is None:
            f = _frame_from_name(path, shot)
        t = shot.index_of_frame(f, where=path) if f is not None else 0
        if ids.shape != (H, W):
            h, w = ids.shape
            if abs(w / h - W / H) > 0.01:
                raise InputError(f"mask is {w}x{h}, the plate is {W}x{H} (different aspect ratio)", where=path)
            import cv2

            warnings.warn(f"{path}: mask is {w}x{h}, resized to the {W}x{H} plate (nearest neighbour, ids kept)")
            ids = cv2.resize(ids, (W, H), interpolation=cv2.INTER_NEAREST_EXACT)  # centre-aligned like coords.Resize
        if not ids.any():
            raise InputError(f"mask is empty (no object) at frame {shot.frame_of(t)}", where=path)
        if t in out:
            raise InputError(f"two masks given for frame {shot.frame_of(t)}", where=path)
        out[t] = ids
    if not out:
        raise InputError("no masks given")
    return out


def _frame_from_name(path: str, shot) -> int | None:
    m = re.search(r"(-?\d+)\.[A-Za-z0-9]+$", Path(path).name)
    if m and int(m.group(1)) in set(int(v) for v in shot.frame_numbers):
        return int(m.group(1))
    return None


def object_ids(masks: dict[int, np.ndarray]) -> list[int]:
    """Sorted object ids present in any mask (0 excluded)."""
    ids: set[int] = set()
    for m in masks.values():
        ids.update(int(v) for v in np.unique(m) if v != 0)
    return sorted(ids)
