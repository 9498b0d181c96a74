"""After Effects adapters: ``aftereffects`` (``.ae.txt``: "Adobe After Effects 8.0 Keyframe Data" of
Motion Trackers, Feature Center + Confidence) and ``aftereffects-jsx`` (``.jsx``: a script making one
null layer per track with keyed Position).

Conventions (docs/adapters.md, docs/conventions.md "After Effects" row), pinned by tests/test_adapters_ae.py:

* **origin / y**: top-left, y down, pixel corners (AE layer space: the centre of a 1920x1080 comp is
  (960, 540)): ``x_ae = x + 0.5``, ``y_ae = y + 0.5``. The centre of plate pixel (0, 0) is ``0.5 0.5``;
  of pixel (1919, 1079) ``1919.5 1079.5``.
* **units**: pixels of the plate (``Source Width/Height`` = plate size; ``Source Pixel Aspect Ratio`` and
  ``Comp Pixel Aspect Ratio`` = the plate's pixel aspect; ``Units Per Second`` = option ``fps``, else
  the shot's rate kept in the track file (``TrackSet.fps``), else 24).
* **first frame**: AE frame 0 = option ``first_frame`` (default: the shot's first frame, e.g. 1001), so
  host frame 1003 is AE frame 2. Frames missing from the shot stay missing (no renumbering).
* **occlusion**: Feature Center has no key at occluded frames (sparse keys); Confidence is keyed at
  every image in percent: ``100 * confidence`` where visible, 0 where occluded.

Keyframe text: one tracker per group (tracker name = group, ``ungrouped`` for tracks without one), one
track point per track (its name); option ``track=NAME`` writes only that track. Names are
``%XX``-encoded where they hold ``%``, a tab or other control character, a Unicode line break or
leading/trailing blanks (:func:`._common.encode_name`: AE shows ``a%09b``); the reader decodes them.
Reading returns Feature Center keys (visible) and Confidence; the query is the first key. The reader
needs the first frame (option ``first_frame`` or the shot) - it never guesses an offset.

JSX: ``comp = app.project.activeItem``; per track ``comp.layers.addNull()`` named after the track,
Position set with ``setValuesAtTimes`` at ``AE frame / fps`` seconds with the shot's rate (option ``fps``,
else the track file's; the footage plays at its own rate whatever the comp's), or at
``AE frame * comp.frameDuration`` when the rate is unknown (comp time 0 = first shot frame), scaled by
``comp.width / W`` and ``comp.height / H`` when the comp is not plate-sized; occluded frames omitted. One undo group.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dino_tracker_vfx import atomic, coords
from dino_tracker_vfx.adapters import Adapter, HostQuery, OptionSpec, ReadResult, hookimpl
from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.tracks import Query, TrackSet, unique_names

from ._common import (decode_name, encode_name, first_frame, give_shot, key_index, keyed, num, pick_tracks, read_frames,
                      writable_tracks)

HEADER = "Adobe After Effects 8.0 Keyframe Data"
END = "End of Keyframe Data"
UNGROUPED = "ungrouped"


# AE layer space = plate pixels shifted by half a pixel (pixel corners, y down). coords.py has no
# top-left-corner pair yet (requested: coords.to_top_left_corner / from_top_left_corner); these two
# are the only conversion math here and move there when it exists.
_to_ae = coords.to_top_left_corner
_from_ae = coords.from_top_left_corner


def _clean(s: str) -> str:
    return encode_name(s) or "_"


def _fps(tracks: TrackSet, options: dict) -> float:
    return tracks.rate(options.get("fps"))


def _selected(tracks: TrackSet, options: dict, where: str) -> list[int]:
    if options.get("track"):
        return pick_tracks(tracks, [options["track"]], "track", where)
    return writable_tracks(tracks, where)


def keyframe_text(tracks: TrackSet, options: dict, where: str = "aftereffects") -> str:
    W, H = tracks.plate_size
    ff = first_frame(tracks, options)
    idx = _selected(tracks, options, where)
    names = unique_names([_clean(tracks.names[i]) for i in idx])
    pa = num(tracks.pixel_aspect)
    out = [HEADER, "", f"\tUnits Per Second\t{num(_fps(tracks, options))}", f"\tSource Width\t{W}",
           f"\tSource Height\t{H}", f"\tSource Pixel Aspect Ratio\t{pa}", f"\tComp Pixel Aspect Ratio\t{pa}", ""]
    for i, nm in zip(idx, names):
        tracker = _clean(tracks.group_of(i)) if tracks.group_of(i) else UNGROUPED
        ok = keyed(tracks, i)
        ae = _to_ae(np.where(ok[:, None], tracks.xy[i], 0.0))
        out += [f"Motion Trackers\t{tracker}\t{nm}\tFeature Center", "\tFrame\tX pixels\tY pixels\t"]
        out += [f"\t{tracks.frame_of(t) - ff}\t{num(ae[t, 0])}\t{num(ae[t, 1])}\t" for t in np.nonzero(ok)[0]]
        out += ["", f"Motion Trackers\t{tracker}\t{nm}\tConfidence", "\tFrame\tpercent\t"]
        conf = np.where(ok, np.round(tracks.confidence[i].astype(np.float64) * 100.0, 4), 0.0)
        out += [f"\t{tracks.frame_of(t) - ff}\t{num(conf[t], 4)}\t" for t in range(tracks.n_images)]
        out.append("")
    out += ["", END, ""]
    return "\n".join(out)


def _write_text(tracks: TrackSet, path: Path, options: dict) -> None:
    atomic.write_text(path, keyframe_text(tracks, options, str(path)))


def jsx_text(tracks: TrackSet, options: dict, where: str = "aftereffects-jsx") -> str:
    W, H = tracks.plate_size
    ff = first_frame(tracks, options)
    idx = _selected(tracks, options, where)
    rows = []
    for i in idx:
        ok = keyed(tracks, i)
        ae = _to_ae(np.where(ok[:, None], tracks.xy[i], 0.0))
        fr = ", ".join(str(tracks.frame_of(t) - ff) for t in np.nonzero(ok)[0])
        xy = ", ".join(f"[{num(ae[t, 0])}, {num(ae[t, 1])}]" for t in np.nonzero(ok)[0])
        # the one JavaScript string escaper: JSON with ensure_ascii (also escapes U+2028/U+2029, which end a
        # line in ExtendScript's ES3 syntax)
        rows.append(f"        {{name: {json.dumps(tracks.names[i], ensure_ascii=True)}, frames: [{fr}], xy: [{xy}]}}")
    known = options.get("fps") or tracks.fps
    if known:
        rate_note = f"at the shot's {num(_fps(tracks, options))} fps (frame / fps seconds)"
        rate_js = f"var frameTime = 1 / {num(_fps(tracks, options))};  // seconds per shot frame"
    else:
        rate_note = "at the comp's frame rate (the track file has no fps)"
        rate_js = "var frameTime = comp.frameDuration;  // the track file has no fps: the comp's rate"
    return f"""// dino_tracker_vfx: one null layer per track in the active composition, Position keyed at
// visible frames (occluded frames have no key). Frame 0 = host frame {ff} = comp time 0.
// Key times: {rate_note}.
// Positions: AE layer space of a {W}x{H} plate (top-left, y down, pixel corners: x + 0.5, y + 0.5),
// scaled to the comp size if it differs. Run with File > Scripts > Run Script File.
(function () {{
    var comp = app.project.activeItem;
    if (!(comp && comp instanceof CompItem)) {{
        alert("dino_tracker_vfx: open or select a composition first");
        return;
    }}
    var plate = [{W}, {H}];
    var sx = comp.width / plate[0], sy = comp.height / plate[1];
    {rate_js}
    var tracks = [
{(","+chr(10)).join(rows)}
    ];
    app.beginUndoGroup("dino_tracker_vfx tracks");
    for (var i = 0; i < tracks.length; i++) {{
        var tr = tracks[i];
        var layer = comp.layers.addNull();
        layer.name = tr.name;
        var pos = layer.property("ADBE Transform Group").property("ADBE Position");
        var times = [], values = [];
        for (var k = 0; k < tr.frames.length; k++) {{
            times.push(tr.frames[k] * frameTime);
            values.push([tr.xy[k][0] * sx, tr.xy[k][1] * sy]);
        }}
        pos.setValuesAtTimes(times, values);
    }}
    app.endUndoGroup();
}})();
"""


def _write_jsx(tracks: TrackSet, path: Path, options: dict) -> None:
    atomic.write_text(path, jsx_text(tracks, options, str(path)))


# ---------------------------------------------------------------------------------------------- reading
def _parse(path: Path):
    where = str(path)
    try:
        lines = Path(path).read_text(encoding="utf-8-sig", errors="replace").replace("\r\n", "\n") \
            .replace("\r", "\n").split("\n")
    except FileNotFoundError:
        raise InputError("file not found", where=where) from None
    if not lines or HEADER.split(" 8.0")[0] not in lines[0] or "Keyframe Data" not in lines[0]:
        raise InputError(f"not After Effects keyframe data (first line should be {HEADER!r})", where=f"{where}:1")
    header: dict[str, str] = {}
    blocks: list[dict] = []
    cur = None
    for ln, raw in enumerate(lines[1:], 2):
        if not raw.strip():
            continue
        if raw.strip() == END:
            break
        if not raw.startswith("\t"):
            cols = [c for c in raw.split("\t")]
            cur = {"path": cols, "rows": [], "line": ln, "cols": None}
            blocks.append(cur)
            continue
        cols = raw.split("\t")[1:]
        while cols and cols[-1] == "":
            cols.pop()
        if cur is None:
            if len(cols) >= 2:
                header[cols[0]] = cols[1]
            continue
        if cols and cols[0] == "Frame":
            cur["cols"] = cols
            continue
        try:
            cur["rows"].append((int(float(cols[0])), [float(c) for c in cols[1:]], ln))
        except (ValueError, IndexError):
            raise InputError(f"bad keyframe row {raw.strip()[:60]!r}", where=f"{where}:{ln}") from None
    return header, blocks


def _read(path: Path, options: dict):
    where = str(path)
    header, blocks = _parse(path)
    ff = options.get("first_frame")
    if ff is None and options.get("frame_numbers"):
        ff = int(options["frame_numbers"][0])
    if ff is None:
        raise InputError("After Effects frames count from 0 = the first shot frame: " + give_shot("first_frame=N"),
                         where=where)
    plate = None
    try:
        plate = (int(float(header["Source Width"])), int(float(header["Source Height"])))
    except (KeyError, ValueError):
        pass
    pos: dict[tuple[str, str], dict] = {}
    for b in blocks:
        p = b["path"]
        prop = p[-1] if p else ""
        if p and p[0] == "Motion Trackers" and len(p) >= 4:
            key = (decode_name(p[1]), decode_name(p[2]))
        elif prop in ("Position", "Anchor Point", "Point") or (p and p[0] == "Effects"):
            key = ("", " ".join(p[1:-1]) or prop)
        else:
            continue
        e = pos.setdefault(key, {"xy": {}, "conf": {}, "line": b["line"]})
        if prop in ("Feature Center", "Attach Point", "Position", "Anchor Point", "Point"):
            if prop == "Attach Point" and e["xy"]:
                continue  # Feature Center wins
            xy = {}
            for f, vals, ln in b["rows"]:
                if len(vals) < 2:
                    raise InputError(f"{prop}: expected X and Y pixels", where=f"{where}:{ln}")
                xy[f + ff] = (vals[0], vals[1])
            if prop != "Attach Point" or not e["xy"]:
                e["xy"] = xy
        elif prop == "Confidence":
            e["conf"] = {f + ff: vals[0] / 100.0 for f, vals, ln in b["rows"] if vals}
    pos = {k: v for k, v in pos.items() if v["xy"]}
    if not pos:
        raise InputError("no Feature Center / Position keyframes in the file", where=where)
    return pos, plate


def _read_queries(path: Path, options: dict) -> ReadResult:
    pos, plate = _read(path, options)
    qs = []
    for (tracker, name), e in pos.items():
        f = min(e["xy"])
        x, y = _from_ae(e["xy"][f])
        qs.append(HostQuery(f, float(x), float(y), name, None if tracker in ("", UNGROUPED) else tracker, e["line"]))
    return ReadResult(tuple(qs), None, plate, (), str(path))


def _read_tracks(path: Path, options: dict) -> TrackSet:
    where = str(path)
    pos, plate = _read(path, options)
    plate = plate or (tuple(options["plate_size"]) if options.get("plate_size") else None)
    if plate is None:
        raise InputError("no Source Width/Height in the file; " + give_shot("plate_size=WxH"),
                         where=where)
    frames, fidx = read_frames(None, options, (f for e in pos.values() for f in e["xy"]), where)
    N, T = len(pos), len(frames)
    xy = np.full((N, T, 2), np.nan)
    vis = np.zeros((N, T), bool)
    conf = np.zeros((N, T), np.float32)
    names = unique_names([k[1] for k in pos])
    qs = []
    for n, ((tracker, _), e) in enumerate(pos.items()):
        for f, p in e["xy"].items():
            t = key_index(fidx, frames, f, f"track {names[n]!r}", f"{where}:{e['line']}")
            xy[n, t] = _from_ae(p)
            vis[n, t] = True
            conf[n, t] = e["conf"].get(f, 1.0)
        t = fidx[min(e["xy"])]
        qs.append(Query(t, float(xy[n, t, 0]), float(xy[n, t, 1]), names[n],
                        None if tracker in ("", UNGROUPED) else tracker))
    return TrackSet(xy, vis, conf, names, qs, frames, plate)


_OPTS = (OptionSpec("track", "str", None, "write only this track"),
         OptionSpec("first_frame", "int", None, "host frame that is AE frame 0 (default: the shot's first frame)"),
         OptionSpec("fps", "float", None, "frames per second (default: the shot's rate in the track file, else 24)"))


@hookimpl
def dtvfx_adapters():
    return [
        Adapter("aftereffects", (".ae.txt",), "After Effects Keyframe Data (Motion Trackers: Feature Center + "
                "Confidence) to paste", write=_write_text, read_queries=_read_queries, read_tracks=_read_tracks,
                capabilities=frozenset({"tracks", "groups", "visibility", "confidence", "queries"}), options=_OPTS),
        Adapter("aftereffects-jsx", (".jsx",), "After Effects script: one null layer per track with keyed Position",
                write=_write_jsx, capabilities=frozenset({"tracks", "visibility"}), options=_OPTS),
    ]
