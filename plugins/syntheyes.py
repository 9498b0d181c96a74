"""SynthEyes 2-D tracker paths (``.syntheyes.txt`` / ``--to syntheyes``): read and write.

Format (File > Export > Plain Trackers > Tracker 2-D Paths, with "Include Outcome Codes" and
"Even when missing"; the matching importer reads it back)::

    car_a 0 -0.999479 -0.999074 15          name frame u v outcome
    car_a 1 -0.989063 -0.989815 7

One line per tracker and frame, lines of one tracker together and in ascending frame order.

Conventions (docs/conventions.md row "SynthEyes", pinned by tests/test_adapters_matchmove.py):

* **origin / y**: top-left, y down. ``u`` runs -1 (left image edge) .. +1 (right edge), ``v`` -1 (top
  edge) .. +1 (bottom edge) - SynthEyes' "-1 to +1, left to right and top to bottom". Image *edges*,
  not pixel centres: ``u = (2 x + 1) / W - 1`` (:func:`dino_tracker_vfx.coords.px_to_norm`); the centre
  of the top-left pixel is ``(-1 + 1/W, -1 + 1/H)``. (Tracksperanto maps pixel centres to +-1 instead;
  the two differ by at most half a pixel at the image edges.)
* **units**: normalised, independent of resolution and pixel aspect.
* **first frame**: 0 = the shot's first image; option ``first_frame``. Gaps in the plate numbering stay.
* **occlusion**: outcome flags (bits: 1 RUN, 2 ENABLE, 4 OK = usable u/v, 8 KEY, 16 JUMPED, 32
  OUTASIGHT). A visible image is written ``7`` (RUN|ENABLE|OK), the first image of each visible run
  ``15`` (adds KEY, so SynthEyes restarts the path after a gap). Every occluded image after the first
  visible one is written with outcome ``0`` (tracker disabled there, "even when missing"), with the
  tracker's estimated position where known, else ``0 0``; so the enable track is off through occlusions
  and after a track ends. Confidence and groups are not carried; a track never visible is left out.
* **names**: whitespace-separated format with ``#`` comments, so every blank, ``#``, ``%``, control
  character and Unicode line break of a name is ``%XX``-encoded (:func:`._common.encode_name`:
  ``corner 1`` -> ``corner%201``); the reader decodes them, so names round-trip exactly. An empty
  name becomes ``track``.
* **reading**: a line is visible when its outcome has the OK bit (4), or when it has no outcome column.
  Queries = each tracker's first visible frame. A tracker whose lines appear in two separate blocks
  is two trackers with the same name: the second is renamed ``name_2`` (noted). Errors name the file and line: no trackers, a tracker
  with no visible frame, a frame outside the shot, a frame twice, a malformed line. Needs the plate
  size (the shot or ``plate_size=WxH``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dino_tracker_vfx import atomic
from dino_tracker_vfx.adapters import Adapter, hookimpl
from dino_tracker_vfx.coords import norm_to_px, px_to_norm
from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.tracks import TrackSet

from . import _matchmove as mm
from ._common import decode_name, encode_name

FIRST_FRAME = 0
RUN, ENABLE, OK, KEY = 1, 2, 4, 8
OUTCOME_VISIBLE = RUN | ENABLE | OK  # 7
OUTCOME_RESTART = OUTCOME_VISIBLE | KEY  # 15
OUTCOME_OFF = 0


def _name(n: str) -> str:
    return encode_name(n, "#", spaces=True)


def format_text(tracks: TrackSet, options: dict, path: Path = Path("paths.syntheyes.txt")) -> str:
    keep = mm.writable(tracks, path)
    frames = mm.file_frames(tracks, options, FIRST_FRAME)
    names = mm.sanitise([tracks.names[i] for i in keep], _name)
    out = []
    for name, i in zip(names, keep):
        on = mm.keyed(tracks, i)
        first = int(np.argmax(on))
        uv = px_to_norm(tracks.xy[i], tracks.plate_size)
        for t in range(first, tracks.n_images):
            if on[t]:
                code = OUTCOME_RESTART if (t == first or not on[t - 1]) else OUTCOME_VISIBLE
                u, v = uv[t]
            else:
                code = OUTCOME_OFF
                u, v = uv[t] if np.isfinite(uv[t]).all() else (0.0, 0.0)
            out.append(f"{name} {int(frames[t])} {u:.6f} {v:.6f} {code}")
    return "\n".join(out) + "\n"


def write(tracks: TrackSet, path: Path, options: dict) -> None:
    atomic.write_text(path, format_text(tracks, options, Path(path)))


def parse(path: Path, options: dict) -> tuple[list[mm.Parsed], tuple[int, int]]:
    path = Path(path)
    size = mm.plate_size(options, path)
    out: list[mm.Parsed] = []
    for ln, raw in enumerate(mm.read_lines(path), start=1):
        txt = raw.strip()
        if not txt or txt.startswith("#"):
            continue
        tok = txt.split()
        if len(tok) not in (4, 5):
            raise InputError(f"line {ln}: expected 'name frame u v [outcome]', got {txt!r}", where=str(path))
        name = decode_name(tok[0])
        f = mm.number(tok[1], "frame", path, ln, int)
        u, v = mm.number(tok[2], "u", path, ln), mm.number(tok[3], "v", path, ln)
        visible = True
        if len(tok) == 5:
            code = mm.number(tok[4], "outcome", path, ln, int)
            visible = bool(code & OK)
        if out and out[-1].name == name:
            p = out[-1]
        else:  # a new block; a name seen before is a second tracker of that name (renamed a_2)
            p = mm.Parsed(name, ln)
            out.append(p)
        x, y = norm_to_px(np.array([u, v]), size)
        p.samples.append(mm.Sample(f, float(x), float(y), visible, None, ln))
    if not out:
        raise InputError("the file holds no tracker lines", where=str(path))
    return out, size


def read_queries(path: Path, options: dict):
    parsed, size = parse(path, options)
    return mm.to_read_result(parsed, Path(path), options, FIRST_FRAME, size)


def read_tracks(path: Path, options: dict) -> TrackSet:
    parsed, size = parse(path, options)
    return mm.to_trackset(parsed, Path(path), options, FIRST_FRAME, size,
                          {"source": f"SynthEyes 2-D paths {Path(path).name}"})


ADAPTER = Adapter(
    "syntheyes", (".syntheyes.txt",),
    "SynthEyes 2-D tracker paths: u, v in -1..1 from the top-left, frame 0 = first image, outcome codes",
    write=write, read_queries=read_queries, read_tracks=read_tracks,
    capabilities=frozenset({"tracks", "visibility", "queries"}),
    options=(mm.first_frame_option("0"),))


@hookimpl
def dtvfx_adapters():
    return [ADAPTER]
