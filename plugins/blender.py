"""Blender Movie Clip Editor: tracks into / queries out of a ``.blend`` (``--to blender``), and the
plain markers document (``.blender.json``, ``--to blender_markers``) the Blender add-on exchanges.

Conventions (docs/conventions.md row "Blender clip", pinned by tests/test_adapters_blender.py):

* **origin / y**: bottom-left, y up: ``marker.co = ((x + 0.5) / W, (H - y - 0.5) / H)``
  (:func:`dino_tracker_vfx.coords.to_unit_bottom_left`); ``(0, 0)`` is the lower-left image corner.
* **units**: 0..1 of the clip's width / height (the clip must be the plate's size; checked).
* **first frame**: clip frame 1 = the shot's first image. Markers live on *clip* frames:
  ``clip_frame = plate_frame - F0 - frame_offset + 1`` with ``F0`` the number in the clip's first file
  name (``plate.1001.exr`` -> 1001; a movie: the shot's first frame number, kept in the clip's custom
  property ``dtvfx_first_frame``) and ``frame_offset`` the clip's own (0 for clips this adapter loads).
  A new clip gets ``frame_start`` = the plate's first frame (option ``frame_start``), so the *scene*
  frame numbers equal the plate's (scene 1001 shows clip frame 1 = ``plate.1001.exr``); the scene's
  range and resolution are set to the clip's. Gaps in the plate numbering stay gaps.
* **occlusion**: a marker on every visible image; a *muted* marker on the first image of every
  occlusion (at the tracker's estimated position, else the last visible one) and plain markers again
  when the point is visible again (what Blender's own tracker leaves). Reading: visible = an unmuted
  marker on that frame; a muted marker's position is kept as the estimate.
* **groups**: option ``groups=prefix`` (default): every track goes to the **camera** tracking object
  (the one a camera solve uses), a grouped track named ``group/name`` and given its group's custom
  colour (the preview's object palette), so a solve needs no option. ``groups=objects``: each group
  becomes a tracking object of that name (``is_camera`` False; for object solves) holding its tracks;
  ungrouped tracks go to the camera object. Reading maps tracking objects back to groups, and a
  camera-object track named ``group/name`` back to track ``name`` of group ``group`` (so a name with
  a ``/`` in the camera object reads as a group prefix). Object tracks (centroid, bbox) and confidence
  are not written.
* **fps**: the track file's rate (``TrackSet.fps``) is kept in the document (``"fps"``) and becomes the
  scene's frame rate when the writer sets the scene up (a new clip); unknown -> Blender's default.
* **names**: kept exactly (Blender data names are plain strings, never evaluated), except that Blender
  names hold at most 63 bytes: longer names are cut (at a character boundary) and names made equal get
  ``_2``, ``_3``; an empty name becomes ``track``. A track never visible is left out (logged). Writing into an
  existing ``.blend``: a track with the same name in the same tracking object is refilled (its markers
  become exactly the new ones; ``replace=false`` makes that an error); written tracks are selected.

Headless use: ``dtvfx export tracks.json --to blender --blend OUT.blend --clip plate.####.exr``.
``write`` runs in this process when ``import bpy`` works (the ``bpy`` wheel), else it runs a Blender
executable (option ``blender``, env ``DTVFX_BLENDER``, or ``blender`` on PATH) as
``blender --background --factory-startup --python host_blender/clipio.py -- REQUEST.json``. The
``.blend`` is saved to a temp file beside the target and renamed into place (never half-written).

Keyed markers: a marker's optional 5th value in the document is Blender's ``is_keyed`` (placed by hand,
not tracked). The writer keys the markers on a track's anchors (its query and corrections) and leaves
the tracked ones unkeyed. Reading corrections (the ``keyed`` context key), each selected track gives the
markers the artist keyed, on any frame; they become anchors of the track of that name (docs/tracker.md).

Reading (``read_queries``): the markers of the **selected** tracks (``selected_only``, default true for
queries, false for ``read_tracks``) at ``frame`` (a plate frame; default: the scene's current frame) of
the clip named by ``clip`` (default: the scene's active clip, or the only one). A track with no marker
on that frame, or a muted one, is an InputError naming the track.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from dino_tracker_vfx import atomic
from dino_tracker_vfx.adapters import Adapter, HostQuery, OptionSpec, ReadResult, hookimpl
from dino_tracker_vfx.coords import from_unit_bottom_left, to_unit_bottom_left
from dino_tracker_vfx.errors import ConfigError, InputError, UserError
from dino_tracker_vfx.tracks import TrackSet, unique_names

from . import _matchmove as mm

log = logging.getLogger("dino_tracker_vfx.adapters")

CLIPIO = Path(__file__).resolve().parent / "host_blender" / "clipio.py"
FORMAT = "dino_tracker_vfx.blender_markers"
VERSION = 1
MAX_NAME_BYTES = 63
CONVENTIONS = {
    "co": "marker.co: 0..1 of the clip's width/height, origin bottom-left, y up ((x + 0.5) / W, (H - y - 0.5) / H)",
    "frames": "plate frame numbers; clip_frame = plate_frame - first_file_frame - frame_offset + 1",
    "mute": "muted marker = occluded from this frame on",
}


# ----------------------------------------------------------------------------- clipio loading
@functools.lru_cache(maxsize=1)
def clipio():
    """The Blender-side module, loaded from its file (importing the add-on package would register
    nothing but needs bpy for its classes)."""
    spec = importlib.util.spec_from_file_location("dtvfx_blender_clipio", CLIPIO)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@functools.lru_cache(maxsize=1)
def bpy_available() -> bool:
    try:
        import bpy  # noqa: F401
    except Exception:  # ImportError, or a bpy wheel for another Python
        return False
    return True


def find_blender(options: dict) -> str | None:
    exe = options.get("blender") or os.environ.get("DTVFX_BLENDER")
    if exe:
        exe = str(exe)
        found = shutil.which(exe) or (exe if os.path.isfile(exe) else None)
        if not found:
            raise ConfigError(f"Blender executable not found: {exe} (option blender / env DTVFX_BLENDER)")
        return found
    return shutil.which("blender")


def run_request(req: dict, options: dict, where: str) -> dict:
    """Run a clipio request in-process (``import bpy`` works) or in a Blender executable."""
    mode = options.get("mode") or "auto"
    if mode != "subprocess" and bpy_available():
        res = clipio().run(req)
    elif mode == "inprocess":
        raise ConfigError("mode=inprocess but the bpy module cannot be imported (pip install bpy matching "
                          "this Python)", where=where)
    else:
        res = _run_blender(req, options, where)
    if not res.get("ok"):
        raise (UserError if res.get("bug") else InputError)(res.get("error", "Blender request failed"), where=where)
    return res


def _run_blender(req: dict, options: dict, where: str) -> dict:
    exe = find_blender(options)
    if exe is None:
        raise ConfigError("the bpy module is not importable and no Blender executable was found: set "
                          "DTVFX_BLENDER, put 'blender' on PATH, or pass blender=/path/to/blender", where=where)
    with tempfile.TemporaryDirectory(prefix="dtvfx_blender_") as tmp:
        req = dict(req, result=os.path.join(tmp, "result.json"))
        rq = os.path.join(tmp, "request.json")
        with open(rq, "w", encoding="utf-8") as fh:
            json.dump(req, fh)
        cmd = [exe, "--background", "--factory-startup", "--python-exit-code", "3", "--python", str(CLIPIO),
               "--", rq, "--dtvfx-clipio"]
        timeout = float(options.get("timeout") or 600)
        try:
            cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UserError(f"Blender did not finish in {timeout:g} s ({exe})", where=where) from None
        except OSError as e:
            raise ConfigError(f"cannot run Blender {exe}: {e}", where=where) from None
        if not os.path.exists(req["result"]):
            tail = (cp.stderr or cp.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise UserError(f"Blender exited with {cp.returncode} without a result ({exe}): {tail[0]}", where=where)
        with open(req["result"], encoding="utf-8") as fh:
            return json.load(fh)


# ----------------------------------------------------------------------------- TrackSet -> markers document
def blender_name(name: str) -> str:
    """Cut to Blender's 63-byte limit at a character boundary (an empty name becomes ``track``)."""
    n = str(name) or "track"
    b = n.encode("utf-8")
    if len(b) <= MAX_NAME_BYTES:
        return n
    return b[:MAX_NAME_BYTES].decode("utf-8", errors="ignore").rstrip()


def _unique_short(names: list[str]) -> list[str]:
    out = unique_names([blender_name(n) for n in names])
    # a suffix may push a cut name over the limit again: cut the base, keep the suffix
    fixed, seen = [], set()
    for n, base in zip(out, (blender_name(n) for n in names)):
        k = 2
        cand = n
        while len(cand.encode("utf-8")) > MAX_NAME_BYTES or cand in seen:
            suf = f"_{k}"
            cand = blender_name(base.encode("utf-8")[:MAX_NAME_BYTES - len(suf)].decode("utf-8", "ignore")) + suf
            k += 1
        seen.add(cand)
        fixed.append(cand)
    return fixed


def group_colours(groups) -> dict[str, list[float]]:
    """Group -> RGB 0..1: the preview's object palette (render.overlay), so a group looks the same in
    Blender as in ``dtvfx ... --preview``."""
    from dino_tracker_vfx.render.overlay import object_colours

    return {g: [round(float(c) / 255.0, 6) for c in rgb] for g, rgb in object_colours(groups).items()}


def split_prefix(name: str) -> tuple[str | None, str]:
    """``"car/car_a"`` -> ``("car", "car_a")``; a name without ``/`` -> ``(None, name)``."""
    g, sep, rest = name.partition("/")
    return (g, rest) if sep and g and rest else (None, name)


def tracks_to_doc(tracks: TrackSet, options: dict, path: Path) -> dict:
    keep = mm.writable(tracks, path)
    mode = options.get("groups") or "prefix"
    colours = group_colours(tracks.groups)
    raw = []
    for i in keep:
        g = tracks.queries[i].group
        raw.append(f"{g}/{tracks.names[i]}" if (g and mode == "prefix") else tracks.names[i])
    names = _unique_short(raw)
    out = []
    for name, i in zip(names, keep):
        on = mm.keyed(tracks, i)
        anchored = {a.t for a in tracks.anchors[i]}  # keyed markers; the tracked ones are not
        uv = to_unit_bottom_left(tracks.xy[i], tracks.plate_size)
        marks = []
        last = None
        for t in range(tracks.n_images):
            f = int(tracks.frame_numbers[t])
            if on[t]:
                marks.append([f, float(uv[t, 0]), float(uv[t, 1]), False, t in anchored])
                last = uv[t]
            elif last is not None and on[t - 1]:  # first image of an occlusion: muted marker
                p = uv[t] if np.isfinite(uv[t]).all() else last
                marks.append([f, float(p[0]), float(p[1]), True, False])
        g = tracks.queries[i].group
        obj = blender_name(g) if (g and mode == "objects") else None
        entry = {"name": name, "object": obj, "select": True, "markers": marks}
        if g and g in colours:
            entry["color"] = colours[g]
        out.append(entry)
    doc = {"format": FORMAT, "version": VERSION, "conventions": CONVENTIONS,
           "plate": {"width": tracks.plate_size[0], "height": tracks.plate_size[1]},
           "frames": [int(f) for f in tracks.frame_numbers]}
    if tracks.fps is not None:
        doc["fps"] = tracks.fps
    doc["tracks"] = out
    return doc


# ----------------------------------------------------------------------------- markers document -> core
def _check_doc(doc: Any, where: str) -> dict:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(f"not a {FORMAT} document (format={doc.get('format') if isinstance(doc, dict) else None!r})",
                         where=where)
    if int(doc.get("version", 0)) > VERSION:
        raise InputError(f"version {doc.get('version')} is newer than this reader ({VERSION})", where=where)
    if not isinstance(doc.get("tracks"), list):
        raise InputError("'tracks' must be a list", where=where)
    return doc


def _doc_size(doc: dict, options: dict, where: str) -> tuple[int, int]:
    clip = doc.get("clip") or {}
    plate = doc.get("plate") or {}
    size = clip.get("size") or ([plate.get("width"), plate.get("height")] if plate else None)
    from_file = (int(size[0]), int(size[1])) if size and all(size) else None
    return mm.plate_size(options, Path(where), from_file)  # type: ignore[return-value]


def _doc_tracks(doc: dict, where: str, selected_only: bool) -> list[mm.Parsed]:
    clip_name = (doc.get("clip") or {}).get("name")
    out = []
    for k, t in enumerate(doc["tracks"]):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not isinstance(t.get("markers"), list):
            raise InputError(f"tracks[{k}]: expected {{name, object, markers}}", where=where)
        if selected_only and not t.get("select", False):
            continue
        group, name = (t["object"], t["name"]) if t.get("object") else split_prefix(t["name"])
        p = mm.Parsed(name, None, group)
        for j, m in enumerate(t["markers"]):
            try:
                f, u, v, mute = int(m[0]), float(m[1]), float(m[2]), bool(m[3])
                keyed = bool(m[4]) if len(m) > 4 else True
            except (TypeError, ValueError, IndexError):
                raise InputError(f"track {t['name']!r} marker {j}: expected [plate_frame, u, v, mute(, keyed)], "
                                 f"got {m!r}", where=where) from None
            p.samples.append(mm.Sample(f, u, v, not mute, keyed=keyed))
        out.append(p)
    if not out:
        what = "selected tracks" if selected_only else "tracks"
        raise InputError(f"no {what} in clip {clip_name!r}" + (" (select tracks in the Movie Clip Editor, or pass "
                                                              "selected_only=false)" if selected_only else ""),
                         where=where)
    return out


def _to_px(parsed: list[mm.Parsed], size: tuple[int, int]) -> None:
    for p in parsed:
        if p.samples:
            uv = np.array([[s.x, s.y] for s in p.samples], np.float64)
            xy = from_unit_bottom_left(uv, size)
            for s, (x, y) in zip(p.samples, xy):
                s.x, s.y = float(x), float(y)


def doc_read_queries(doc: dict, options: dict, where: str) -> ReadResult:
    doc = _check_doc(doc, where)
    size = _doc_size(doc, options, where)
    sel = options.get("selected_only")
    parsed = _doc_tracks(doc, where, True if sel is None else bool(sel))
    _to_px(parsed, size)
    frames = options.get("frame_numbers")
    if options.get("keyed"):  # corrections: the markers the artist keyed (not tracked), on any frame
        qs = []
        for p in parsed:
            ks = sorted((s for s in p.samples if s.visible and s.keyed), key=lambda s: s.frame)
            if ks:
                qs.append(HostQuery(ks[0].frame, ks[0].x, ks[0].y, p.name, p.group,
                                    keys=tuple((k.frame, k.x, k.y) for k in ks[1:])))
        return ReadResult(tuple(qs), tuple(int(f) for f in frames) if frames is not None else None, size,
                          source=where)
    frame = options.get("frame")
    clip = doc.get("clip") or {}
    if frame is None:
        frame = clip.get("current_plate_frame")
        if frame is None:
            raise ConfigError("give frame=PLATE_FRAME: the document has no current frame", where=where)
    frame = int(frame)
    cinfo = ""
    if "first_file_frame" in clip:
        cf = clipio().clip_frame_of(frame, clip["first_file_frame"], clip.get("frame_offset", 0))
        cinfo = f" (clip frame {cf})"
    qs = []
    for p in parsed:
        s = next((s for s in p.samples if s.frame == frame), None)
        if s is None:
            raise InputError(f"track {p.name!r} has no marker at plate frame {frame}{cinfo}", where=where)
        if not s.visible:
            raise InputError(f"track {p.name!r} is muted (occluded) at plate frame {frame}{cinfo}", where=where)
        qs.append(HostQuery(frame, s.x, s.y, p.name, p.group))
    return ReadResult(tuple(qs), tuple(int(f) for f in frames) if frames is not None else None, size, source=where)


def doc_read_tracks(doc: dict, options: dict, where: str) -> TrackSet:
    doc = _check_doc(doc, where)
    size = _doc_size(doc, options, where)
    parsed = _doc_tracks(doc, where, bool(options.get("selected_only")))
    _to_px(parsed, size)
    opts = dict(options)
    if opts.get("frame_numbers") is None and doc.get("frames"):
        opts["frame_numbers"] = [int(f) for f in doc["frames"]]
    opts["first_frame"] = None  # the document holds plate frames
    meta = {"source": f"Blender clip {(doc.get('clip') or {}).get('name', '')}".strip()}
    return mm.to_trackset(parsed, Path(where), opts, None, size, meta)


# ----------------------------------------------------------------------------- .blend adapter
def _shot_clip(spec: str, tracks: TrackSet, where: str) -> dict:
    from dino_tracker_vfx.shots import open_shot

    shot = open_shot(spec)
    if tuple(shot.size) != tuple(tracks.plate_size):
        raise InputError(f"the clip {spec} is {shot.size[0]}x{shot.size[1]}, the tracks are for a "
                         f"{tracks.plate_size[0]}x{tracks.plate_size[1]} plate", where=where)
    missing = sorted(set(int(f) for f in tracks.frame_numbers) - set(int(f) for f in shot.frame_numbers))
    if missing:
        raise InputError(f"track frame {missing[0]} is not in the clip {spec} ({shot.range_text()})", where=where)
    first = shot.paths[0] if shot.kind == "sequence" else shot.source
    return {"filepath": os.path.abspath(first), "first_file_frame": int(shot.frame_numbers[0])}


def write_blend(tracks: TrackSet, path: Path, options: dict) -> None:
    out = Path(options.get("blend") or path)
    where = str(out)
    if out.suffix.lower() != ".blend":
        raise ConfigError("the Blender adapter writes a .blend file (--blend OUT.blend)", where=where)
    doc = tracks_to_doc(tracks, options, out)
    clip: dict = {}
    if options.get("clip"):
        clip = _shot_clip(str(options["clip"]), tracks, where)
    elif not out.exists():
        raise ConfigError("name the shot to load as the movie clip: --clip plate.####.exr (or write into an "
                          "existing .blend that has one)", where=where)
    if options.get("frame_start") is not None:
        clip["frame_start"] = int(options["frame_start"])
    req = {"action": "write", "blend_in": str(out.resolve()) if out.exists() else None, "clip": clip,
           "doc": doc, "replace": options.get("replace", True) is not False}
    with atomic.atomic_path(out, suffix=".blend") as tmp:
        tmp.unlink()  # let Blender create it: saving over a file would leave a .blend1 backup
        req["save_to"] = str(tmp.resolve())
        res = run_request(req, options, where)
        if not tmp.exists():
            raise UserError("Blender reported success but wrote no file", where=where)
    log.info("%s: %d track(s) in clip %s", out, len(res.get("tracks", [])), res.get("clip", {}).get("name"))


def _dump(path: Path, options: dict, selected_only: bool) -> dict:
    where = str(path)
    if not Path(path).is_file():
        raise InputError("file not found", where=where)
    req = {"action": "dump", "blend": str(Path(path).resolve()), "clip": options.get("clip"),
           "selected_only": selected_only}
    return run_request(req, options, where)["doc"]


def read_queries_blend(path: Path, options: dict) -> ReadResult:
    sel = options.get("selected_only")
    doc = _dump(path, options, True if sel is None else bool(sel))
    return doc_read_queries(doc, options, str(path))


def read_tracks_blend(path: Path, options: dict) -> TrackSet:
    doc = _dump(path, options, bool(options.get("selected_only")))
    return doc_read_tracks(doc, options, str(path))


# ----------------------------------------------------------------------------- .blender.json adapter
def write_markers(tracks: TrackSet, path: Path, options: dict) -> None:
    atomic.write_json(path, tracks_to_doc(tracks, options, Path(path)), indent=1)


def _load_doc(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("file not found", where=str(path)) from None
    except json.JSONDecodeError as e:
        raise InputError(f"line {e.lineno}: invalid JSON ({e.msg})", where=str(path)) from None


GROUPS = OptionSpec("groups", "str", "prefix", "prefix (default): every track in the camera tracking object (what a "
                    "camera solve uses), named 'group/name' and coloured per group; objects: a tracking object "
                    "per group (object solves)", choices=("prefix", "objects"))
FRAME = OptionSpec("frame", "int", None, "reading queries: plate frame of the markers (default: the scene's "
                   "current frame)")
SELECTED = OptionSpec("selected_only", "bool", None, "reading: only selected tracks (default: yes for queries, "
                      "no for tracks)")
BLENDER_OPTIONS = (
    OptionSpec("blend", "path", None, "the .blend to write (created, or updated when it exists)", flag="--blend"),
    OptionSpec("clip", "str", None, "writing: the shot to load as the movie clip (pattern, movie or folder); "
               "reading: clip name or file (default: the scene's active clip)", flag="--clip"),
    GROUPS, FRAME, SELECTED,
    OptionSpec("frame_start", "int", None, "scene frame of clip frame 1 (default for a new clip: the plate's "
               "first frame, so scene frames are plate frames)"),
    OptionSpec("replace", "bool", True, "refill tracks of the same name (false: a same-named track is an error)"),
    OptionSpec("mode", "str", "auto", "auto: bpy in this process when importable, else a Blender executable",
               choices=("auto", "inprocess", "subprocess")),
    OptionSpec("blender", "path", None, "Blender executable for mode=subprocess (default $DTVFX_BLENDER, then "
               "'blender' on PATH)"),
    OptionSpec("timeout", "float", 600.0, "seconds to wait for a Blender executable"),
)
CAPS = frozenset({"tracks", "groups", "visibility", "queries"})

ADAPTERS = [
    Adapter("blender", (".blend",), "Blender Movie Clip Editor .blend: markers 0..1 from the bottom-left, clip "
            "frame 1 = first image, muted marker at each occlusion start; all tracks in the camera object "
            "(groups as name prefixes and colours; groups=objects: tracking objects)",
            write=write_blend, read_queries=read_queries_blend, read_tracks=read_tracks_blend,
            capabilities=CAPS, options=BLENDER_OPTIONS),
    Adapter("blender_markers", (".blender.json",), "Blender markers document (what the Blender add-on reads and "
            "writes): marker.co 0..1 bottom-left on plate frames, mute = occluded",
            write=write_markers,
            read_queries=lambda p, o: doc_read_queries(_load_doc(p), o, str(p)),
            read_tracks=lambda p, o: doc_read_tracks(_load_doc(p), o, str(p)),
            capabilities=CAPS, options=(GROUPS, FRAME, SELECTED)),
]


@hookimpl
def dtvfx_adapters():
    return list(ADAPTERS)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("this is a dino_tracker_vfx adapter module; use dtvfx export --to blender")
