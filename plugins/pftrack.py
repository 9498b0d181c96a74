"""PFTrack / PFMatchit 2-D tracks (``.2dt`` / ``--to pftrack``): read and write.

Format (PFTrack's "Export 2D tracks" text; PFTrack 2011 and later)::

    #  "Name"
    #  clipNumber
    #  frameCount
    #  frame, xpos, ypos, similarity

    "car_a"
    1
    5
    1 0.000000 1079.000000 0.000000
    ...

A block per tracker: quoted name, clip number (PFTrack 5: a quoted camera name, ``"Primary"``), frame
count, then ``frame x y residual`` lines (readers also accept a fifth column, z-depth).

Conventions (docs/conventions.md row "PFTrack .2dt", pinned by tests/test_adapters_matchmove.py):

* **origin / y**: bottom-left, y up, pixel *centres* on integers: the bottom-left corner of the image is
  ``(-0.5, -0.5)``. That is the pixel-corner space of :func:`dino_tracker_vfx.coords.to_bottom_left_corner`
  shifted by -0.5 px: ``x_pf = x``, ``y_pf = H - 1 - y`` (the centre of the top-left pixel is ``(0, H - 1)``).
* **units**: plate pixels.
* **first frame**: 1 = the shot's first image (option ``flavour=2011``, default); PFTrack 5 counts from
  0 (``flavour=5``, which also writes the camera line ``"Primary"``). Option ``first_frame`` overrides
  both. Reading with ``flavour=auto`` (default) takes 0 for blocks with a quoted camera name (PFTrack 5)
  and 1 for blocks with a clip number. Gaps in the plate numbering stay gaps.
* **occlusion**: occluded images are missing frames. The 4th column is written 0 (no residual
  computed); confidence and groups are not carried; a track never visible is left out (logged).
* **names**: written in double quotes, ``%XX``-encoded where they hold ``"``, ``%``, a control
  character, a Unicode line break or leading/trailing blanks (:func:`._common.encode_name`: PFTrack
  shows ``a%22b``); the reader decodes them, so names round-trip exactly. An empty name becomes ``track``.
* **reading**: ``#`` comments and blank lines are skipped. Queries = each tracker's first listed
  frame. Errors name the file and line: no trackers, a tracker with 0 frames, a frame outside the shot,
  a frame twice, a malformed line. Needs the plate height (the shot or ``plate_size=WxH``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dino_tracker_vfx import atomic
from dino_tracker_vfx.adapters import Adapter, OptionSpec, hookimpl
from dino_tracker_vfx.coords import from_bottom_left_centre, to_bottom_left_centre
from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.tracks import TrackSet

from . import _matchmove as mm
from ._common import decode_name, encode_name

FIRST = {"2011": 1, "5": 0}
CAMERA_LINE = {"2011": "1", "5": '"Primary"'}
HEADER = ['#  "Name"', "#  clipNumber", "#  frameCount", "#  frame, xpos, ypos, similarity"]


def _name(n: str) -> str:
    return encode_name(n, '"')


def _flavour(options: dict, writing: bool) -> str:
    fl = options.get("flavour") or "auto"
    return "2011" if (fl == "auto" and writing) else fl


def format_text(tracks: TrackSet, options: dict, path: Path = Path("tracks.2dt")) -> str:
    keep = mm.writable(tracks, path)
    fl = _flavour(options, True)
    frames = mm.file_frames(tracks, options, FIRST[fl])
    names = mm.sanitise([tracks.names[i] for i in keep], _name)
    out = list(HEADER)
    for name, i in zip(names, keep):
        on = np.nonzero(mm.keyed(tracks, i))[0]
        pts = to_bottom_left_centre(tracks.xy[i, on], tracks.plate_size[1])
        out += ["", f'"{name}"', CAMERA_LINE[fl], f"{len(on)}"]
        out += [f"{int(frames[t])} {p[0]:.6f} {p[1]:.6f} 0.000000" for t, p in zip(on, pts)]
    return "\n".join(out) + "\n"


def write(tracks: TrackSet, path: Path, options: dict) -> None:
    atomic.write_text(path, format_text(tracks, options, Path(path)))


def _quoted(s: str) -> bool:
    return len(s) >= 2 and s.startswith('"') and s.endswith('"')


def parse(path: Path, options: dict) -> tuple[list[tuple[mm.Parsed, int]], tuple[int, int]]:
    """-> [(track, file frame of the shot's first image)], plate size."""
    path = Path(path)
    size = mm.plate_size(options, path)
    H = size[1]
    fl = _flavour(options, False)
    rows = [(i, ln.strip()) for i, ln in enumerate(mm.read_lines(path), start=1)
            if ln.strip() and not ln.lstrip().startswith("#")]
    out: list[tuple[mm.Parsed, int]] = []
    pos = 0
    while pos < len(rows):
        ln_name, txt = rows[pos]
        if not _quoted(txt):
            raise InputError(f"line {ln_name}: expected a quoted tracker name, got {txt!r}", where=str(path))
        name = decode_name(txt[1:-1])
        if pos + 2 >= len(rows):
            raise InputError(f"line {ln_name}: tracker {name!r} is cut short (needs a clip/camera line and a "
                             f"frame count)", where=str(path))
        ln_cam, cam = rows[pos + 1]
        if _quoted(cam):
            block_first = FIRST["5"]
        else:
            mm.number(cam, "clip number", path, ln_cam, int)
            block_first = FIRST["2011"]
        if fl != "auto":
            block_first = FIRST[fl]
        ln, cnt = rows[pos + 2]
        k = mm.number(cnt, "frame count", path, ln, int)
        if k < 0:
            raise InputError(f"line {ln}: negative frame count {k}", where=str(path))
        pos += 3
        p = mm.Parsed(name, ln_name)
        for _ in range(k):
            if pos >= len(rows):
                raise InputError(f"file ends early: tracker {name!r} announces {k} frames", where=str(path))
            ln, txt = rows[pos]
            tok = txt.split()
            if len(tok) not in (4, 5) or _quoted(txt):
                raise InputError(f"line {ln}: expected 'frame x y residual', got {txt!r}", where=str(path))
            f = mm.number(tok[0], "frame", path, ln, int)
            xp, yp = mm.number(tok[1], "x", path, ln), mm.number(tok[2], "y", path, ln)
            x, y = from_bottom_left_centre(np.array([xp, yp]), H)
            p.samples.append(mm.Sample(f, float(x), float(y), True, None, ln))
            pos += 1
        out.append((p, block_first))
    if not out:
        raise InputError("the file holds no trackers", where=str(path))
    firsts = {b for _, b in out}
    if len(firsts) > 1:
        raise InputError("the file mixes PFTrack 5 (camera name) and later (clip number) trackers; pass "
                         "flavour=5 or flavour=2011", where=str(path))
    return out, size


def read_queries(path: Path, options: dict):
    parsed, size = parse(path, options)
    return mm.to_read_result([p for p, _ in parsed], Path(path), options, parsed[0][1], size)


def read_tracks(path: Path, options: dict) -> TrackSet:
    parsed, size = parse(path, options)
    return mm.to_trackset([p for p, _ in parsed], Path(path), options, parsed[0][1], size,
                          {"source": f"PFTrack .2dt {Path(path).name}"})


ADAPTER = Adapter(
    "pftrack", (".2dt",), "PFTrack/PFMatchit .2dt: bottom-left pixels with centres on integers, frame 1 "
    "(PFTrack 5: 0) = first image",
    write=write, read_queries=read_queries, read_tracks=read_tracks,
    capabilities=frozenset({"tracks", "visibility", "queries"}),
    options=(OptionSpec("flavour", "str", "auto", "2011 (frame 1 = first image, clip number 1; what 'auto' "
                        "writes) or 5 (PFTrack 5: frame 0, camera \"Primary\"); reading 'auto' detects",
                        choices=("auto", "2011", "5")),
             mm.first_frame_option("1; flavour=5: 0")))


@hookimpl
def dtvfx_adapters():
    return [ADAPTER]
