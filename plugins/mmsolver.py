"""mmSolver UV tracks, format version 4 (``.uv`` / ``--to mmsolver``): read and write.

Format (mmSolver ``tools/loadmarker`` "UV Track" JSON, version 4)::

    {"version": 4, "num_points": 3, "is_undistorted": null,
     "points": [{"name": "car_a", "id": null, "set_name": "car",
                 "per_frame": [{"frame": 1001, "pos": [u, v], "pos_dist": [u, v], "weight": 1.0}, ...],
                 "3d": {"x": null, "y": null, "z": null, "x_lock": null, "y_lock": null, "z_lock": null}}],
     "camera": {"resolution": [1920, 1080], "film_back_cm": [3.6, 2.025], "lens_center_offset_cm": [0, 0],
                "per_frame": [{"frame": 1001, "focal_length_cm": 3.5}, ...]}}

Conventions (docs/conventions.md row "mmSolver .uv", pinned by tests/test_adapters_matchmove.py):

* **origin / y**: bottom-left, y up; ``(0, 0)`` the lower-left image corner, ``(1, 1)`` the upper-right
  (:func:`dino_tracker_vfx.coords.to_unit_bottom_left`: ``u = (x + 0.5) / W``, ``v = (H - y - 0.5) / H``).
* **units**: 0..1 of width / height (resolution independent).
* **first frame**: the plate's own frame numbers (1001...), as mmSolver loads markers on Maya's frames;
  option ``first_frame`` renumbers (file frame of the shot's first image).
* **occlusion**: missing frames (mmSolver disables the marker on frames missing between its first and
  last frame). Reading: a frame with weight 0 is occluded.
* **confidence**: the per-frame ``weight`` of a visible frame is the track's confidence there (mmSolver
  weights each marker's residual by it in a solve), clipped to ``WEIGHT_MIN`` .. 1 (0.01: a visible frame is
  never weight 0, which would read as occluded) and rounded to 4 decimals. Reading: a visible frame's
  confidence is ``min(weight, 1)``.
* **positions**: no lens model here, so ``pos`` (undistorted) and ``pos_dist`` (distorted) are both the
  plate position. Reading takes ``pos_dist`` when present (files from Blender carry junk in ``pos``),
  ``undistorted=true`` reads ``pos``.
* **groups**: ``set_name`` (read and written).
* **camera**: v4 readers need a camera block; it is written with the plate resolution, a film back of
  ``film_back_mm`` (default 36 mm) wide with the plate's display aspect, and ``focal_length_mm``
  (default 35) on every frame - placeholders unless you pass the real lens.
* **names**: any text, kept exactly (JSON); an empty name becomes ``track``; duplicates cannot occur on writing.
  Reading renames duplicate names ``a``, ``a_2`` (noted).
* **reading**: versions 2, 3, 4 and 5 of the JSON format (same ``points`` layout). Errors name the file
  and the point (JSON has no useful line per point; a JSON syntax error names its line): no points, a
  point with no visible frame, a frame outside the shot, a frame twice, a malformed field.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dino_tracker_vfx import atomic
from dino_tracker_vfx.adapters import Adapter, OptionSpec, hookimpl
from dino_tracker_vfx.coords import from_unit_bottom_left, to_unit_bottom_left
from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.tracks import TrackSet

from . import _matchmove as mm

VERSION = 4
READABLE_VERSIONS = (2, 3, 4, 5)
WEIGHT_MIN = 0.01  # the least weight written on a visible frame (0 reads as occluded)


def _r(v: float) -> float:
    return round(float(v), 10)


def to_dict(tracks: TrackSet, options: dict, path: Path = Path("tracks.uv")) -> dict:
    keep = mm.writable(tracks, path)
    frames = mm.file_frames(tracks, options, None)
    W, H = tracks.plate_size
    names = mm.sanitise([tracks.names[i] for i in keep], lambda n: n)
    points = []
    for name, i in zip(names, keep):
        on = np.nonzero(mm.keyed(tracks, i))[0]
        uv = to_unit_bottom_left(tracks.xy[i, on], (W, H))
        conf = np.nan_to_num(np.asarray(tracks.confidence[i, on], np.float64), nan=1.0)
        weight = np.round(np.clip(conf, WEIGHT_MIN, 1.0), 4)
        per_frame = [{"frame": int(frames[t]), "pos": [_r(p[0]), _r(p[1])], "pos_dist": [_r(p[0]), _r(p[1])],
                      "weight": float(wt)} for t, p, wt in zip(on, uv, weight)]
        points.append({"name": name, "id": None, "set_name": tracks.queries[i].group, "per_frame": per_frame,
                       "3d": {"x": None, "y": None, "z": None, "x_lock": None, "y_lock": None, "z_lock": None}})
    fb_w = float(options.get("film_back_mm") or 36.0) / 10.0
    aspect = W * float(tracks.pixel_aspect) / H
    focal = float(options.get("focal_length_mm") or 35.0) / 10.0
    camera = {"resolution": [int(W), int(H)], "film_back_cm": [_r(fb_w), _r(fb_w / aspect)],
              "lens_center_offset_cm": [0.0, 0.0],
              "per_frame": [{"frame": int(f), "focal_length_cm": _r(focal)} for f in frames]}
    return {"version": VERSION, "num_points": len(points), "is_undistorted": None, "points": points,
            "camera": camera}


def format_text(tracks: TrackSet, options: dict, path: Path = Path("tracks.uv")) -> str:
    return json.dumps(to_dict(tracks, options, path), indent=1) + "\n"


def write(tracks: TrackSet, path: Path, options: dict) -> None:
    atomic.write_text(path, format_text(tracks, options, Path(path)))


def _pair(v, what: str, path: Path) -> tuple[float, float]:
    if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(isinstance(c, (int, float)) for c in v):
        raise InputError(f"{what}: expected [u, v], got {v!r}", where=str(path))
    if not all(np.isfinite(c) for c in v):
        raise InputError(f"{what}: not finite: {v!r}", where=str(path))
    return float(v[0]), float(v[1])


def parse(path: Path, options: dict) -> tuple[list[mm.Parsed], tuple[int, int]]:
    path = Path(path)
    text = "\n".join(mm.read_lines(path))
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        first = text.strip().split("\n", 1)[0].strip()
        if first.isdigit():
            raise InputError("this is the ASCII .uv version 1 (3DE-style text); only the JSON versions "
                             f"{READABLE_VERSIONS} are read - not an mmSolver JSON .uv file", where=str(path)) from None
        raise InputError(f"line {e.lineno}: invalid JSON ({e.msg}); only the JSON .uv versions "
                         f"{READABLE_VERSIONS} are read", where=str(path)) from None
    if not isinstance(d, dict) or d.get("version") not in READABLE_VERSIONS:
        v = d.get("version") if isinstance(d, dict) else None
        raise InputError(f"not an mmSolver JSON .uv file of version {READABLE_VERSIONS} (version={v!r})",
                         where=str(path))
    res = (d.get("camera") or {}).get("resolution")
    from_file = None
    if isinstance(res, (list, tuple)) and len(res) == 2 and all(isinstance(c, int) and c > 0 for c in res):
        from_file = (int(res[0]), int(res[1]))
    size = mm.plate_size(options, path, from_file)
    key = "pos" if options.get("undistorted") else "pos_dist"
    pts = d.get("points")
    if not isinstance(pts, list) or not pts:
        raise InputError("the file holds no points", where=str(path))
    out: list[mm.Parsed] = []
    for k, pt in enumerate(pts):
        where = f"points[{k}]"
        if not isinstance(pt, dict) or not isinstance(pt.get("name"), str):
            raise InputError(f"{where}: expected an object with a string 'name'", where=str(path))
        name = pt["name"]
        where = f"points[{k}] {name!r}"
        group = pt.get("set_name")
        if group is not None and not isinstance(group, str):
            raise InputError(f"{where}: set_name must be a string or null, got {group!r}", where=str(path))
        pf = pt.get("per_frame")
        if not isinstance(pf, list):
            raise InputError(f"{where}: per_frame must be a list", where=str(path))
        p = mm.Parsed(name, None, group or None)
        for j, fr in enumerate(pf):
            w = f"{where} per_frame[{j}]"
            if not isinstance(fr, dict) or not isinstance(fr.get("frame"), int) or isinstance(fr.get("frame"), bool):
                raise InputError(f"{w}: expected an object with an integer 'frame'", where=str(path))
            pos = fr.get(key) if fr.get(key) is not None else fr.get("pos")
            u, v = _pair(pos, f"{w} {key}", path)
            weight = fr.get("weight", 1.0)
            if weight is None:
                weight = 1.0
            if not isinstance(weight, (int, float)) or not np.isfinite(weight) or weight < 0:
                raise InputError(f"{w}: weight must be a number >= 0, got {weight!r}", where=str(path))
            x, y = from_unit_bottom_left(np.array([u, v]), size)
            p.samples.append(mm.Sample(int(fr["frame"]), float(x), float(y), weight > 0,
                                       min(float(weight), 1.0) if weight > 0 else None, None))
        if not any(s.visible for s in p.samples):
            raise InputError(f"{where}: no visible frame (per_frame is empty or every weight is 0)",
                             where=str(path))
        frames_seen = [s.frame for s in p.samples]
        dup = sorted({f for f in frames_seen if frames_seen.count(f) > 1})
        if dup:
            raise InputError(f"{where}: frame {dup[0]} is listed twice", where=str(path))
        out.append(p)
    return out, size


def _check_frames(parsed: list[mm.Parsed], path: Path, options: dict) -> None:
    """Name the point (JSON has no useful line numbers) when a frame is outside the shot."""
    frames = options.get("frame_numbers")
    if frames is None:
        return
    fr = [int(f) for f in frames]
    ff = options.get("first_frame")
    shift = 0 if ff is None else fr[0] - int(ff)
    have = set(fr)
    for k, p in enumerate(parsed):
        for s in p.samples:
            if s.frame + shift not in have:
                what = "outside" if not fr[0] <= s.frame + shift <= fr[-1] else "in a gap of"
                raise InputError(f"points[{k}] {p.name!r}: frame {s.frame} is {what} the shot ({fr[0]}-{fr[-1]})",
                                 where=str(path))


def read_queries(path: Path, options: dict):
    parsed, size = parse(path, options)
    _check_frames(parsed, Path(path), options)
    return mm.to_read_result(parsed, Path(path), options, None, size)


def read_tracks(path: Path, options: dict) -> TrackSet:
    parsed, size = parse(path, options)
    _check_frames(parsed, Path(path), options)
    ts = mm.to_trackset(parsed, Path(path), options, None, size, {"source": f"mmSolver .uv {Path(path).name}"})
    return ts


ADAPTER = Adapter(
    "mmsolver", (".uv",), "mmSolver UV tracks (JSON v4): 0..1 from the bottom-left, plate frame numbers, "
    "set_name = group",
    write=write, read_queries=read_queries, read_tracks=read_tracks,
    capabilities=frozenset({"tracks", "groups", "visibility", "confidence", "queries"}),
    options=(mm.first_frame_option("the plate's own frame numbers"),
             OptionSpec("film_back_mm", "float", 36.0, "camera block: film back width in mm (height from the "
                        "plate's display aspect)"),
             OptionSpec("focal_length_mm", "float", 35.0, "camera block: focal length in mm on every frame"),
             OptionSpec("undistorted", "bool", False, "reading: take 'pos' (undistorted) instead of 'pos_dist'")))


@hookimpl
def dtvfx_adapters():
    return [ADAPTER]
