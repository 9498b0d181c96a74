"""3DEqualizer v4 2D point export (``.3de.txt`` / ``--to tde``): read and write.

Format (the text of 3DE4's "Export 2D Tracks" / "Import 2D Tracks" scripts)::

    3                       number of points
    car_a                   point name (the whole line)
    0                       colour index (0 = red; written as 0, ignored on reading)
    5                       number of frames that follow
    1 0.500000000000000 1079.500000000000000      frame x y
    ...

Conventions (docs/conventions.md row "3DEqualizer v4", pinned by tests/test_adapters_matchmove.py):

* **origin / y**: bottom-left, y up; pixel corners: ``x_3de = x + 0.5``, ``y_3de = H - (y + 0.5)``
  (:func:`dino_tracker_vfx.coords.to_bottom_left_corner`); so the centre of the top-left pixel is
  ``(0.5, H - 0.5)``.
* **units**: plate pixels (3DE's camera must use the same resolution as the plate).
* **first frame**: 1 = the shot's first image; option ``first_frame`` (e.g. 1001 when the 3DE camera
  counts plate frames). Gaps in the plate numbering stay gaps.
* **occlusion**: occluded images are missing frames (3DE: the point is not tracked there). Confidence
  and groups are not carried; a track with no visible image is left out (logged).
* **names**: one line each, ``%XX``-encoded where they hold ``%``, a control character (tab, line
  break), a Unicode line break or leading/trailing blanks (:func:`._common.encode_name`; 3DE shows
  ``a%0Ab``); the reader decodes them, so names round-trip exactly. An empty name becomes ``track``.
* **reading**: queries = each point's first listed frame. Blank lines are skipped. Errors name the
  file and line: no points, a point with 0 frames, a frame outside the shot, a frame twice, bad numbers.
  Duplicate point names are renamed ``a``, ``a_2`` (noted).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dino_tracker_vfx import atomic
from dino_tracker_vfx.adapters import Adapter, hookimpl
from dino_tracker_vfx.coords import from_bottom_left_corner, to_bottom_left_corner
from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.tracks import TrackSet

from . import _matchmove as mm
from ._common import decode_name, encode_name

FIRST_FRAME = 1


def _name(n: str) -> str:
    return encode_name(n)


def format_text(tracks: TrackSet, options: dict, path: Path = Path("points.3de.txt")) -> str:
    keep = mm.writable(tracks, path)
    H = tracks.plate_size[1]
    frames = mm.file_frames(tracks, options, FIRST_FRAME)
    names = mm.sanitise([tracks.names[i] for i in keep], _name)
    out = [f"{len(keep)}"]
    for name, i in zip(names, keep):
        on = np.nonzero(mm.keyed(tracks, i))[0]
        pts = to_bottom_left_corner(tracks.xy[i, on], H)
        out += [name, "0", f"{len(on)}"]
        out += [f"{int(frames[t])} {p[0]:.15f} {p[1]:.15f}" for t, p in zip(on, pts)]
    return "\n".join(out) + "\n"


def write(tracks: TrackSet, path: Path, options: dict) -> None:
    atomic.write_text(path, format_text(tracks, options, Path(path)))


def parse(path: Path, options: dict) -> tuple[list[mm.Parsed], tuple[int, int]]:
    path = Path(path)
    size = mm.plate_size(options, path)
    H = size[1]
    rows = [(i, ln.strip()) for i, ln in enumerate(mm.read_lines(path), start=1) if ln.strip()]
    if not rows:
        raise InputError("empty file: no points", where=str(path))
    pos = 0

    def take(what: str) -> tuple[int, str]:
        nonlocal pos
        if pos >= len(rows):
            raise InputError(f"file ends early: expected {what} after line {rows[-1][0]}", where=str(path))
        pos += 1
        return rows[pos - 1]

    ln, txt = take("the number of points")
    n = mm.number(txt, "number of points", path, ln, int)
    if n <= 0:
        raise InputError(f"line {ln}: the file holds no points ({n})", where=str(path))
    out: list[mm.Parsed] = []
    for _ in range(n):
        ln_name, name = take("a point name")
        ln, txt = take(f"the colour of point {name!r}")
        mm.number(txt, "colour", path, ln, int)
        ln, txt = take(f"the frame count of point {name!r}")
        k = mm.number(txt, "frame count", path, ln, int)
        if k < 0:
            raise InputError(f"line {ln}: negative frame count {k}", where=str(path))
        p = mm.Parsed(decode_name(name), ln_name)
        for _ in range(k):
            ln, txt = take(f"a frame line of point {name!r}")
            tok = txt.split()
            if len(tok) < 3:
                raise InputError(f"line {ln}: expected 'frame x y', got {txt!r}", where=str(path))
            f = mm.number(tok[0], "frame", path, ln, int)
            x3, y3 = mm.number(tok[1], "x", path, ln), mm.number(tok[2], "y", path, ln)
            x, y = from_bottom_left_corner(np.array([x3, y3]), H)
            p.samples.append(mm.Sample(f, float(x), float(y), True, None, ln))
        out.append(p)
    if pos < len(rows):
        raise InputError(f"line {rows[pos][0]}: unexpected text after the {n} point(s) the file announces",
                         where=str(path))
    return out, size


def read_queries(path: Path, options: dict):
    parsed, size = parse(path, options)
    return mm.to_read_result(parsed, Path(path), options, FIRST_FRAME, size)


def read_tracks(path: Path, options: dict) -> TrackSet:
    parsed, size = parse(path, options)
    return mm.to_trackset(parsed, Path(path), options, FIRST_FRAME, size, {"source": f"3DE v4 {Path(path).name}"})


ADAPTER = Adapter(
    "tde", (".3de.txt", ".3de"), "3DEqualizer v4 2D points (.txt): bottom-left pixel corners, frame 1 = first image",
    write=write, read_queries=read_queries, read_tracks=read_tracks,
    capabilities=frozenset({"tracks", "visibility", "queries"}),
    options=(mm.first_frame_option("1"),))


@hookimpl
def dtvfx_adapters():
    return [ADAPTER]
