"""Fusion adapter ``fusion`` (``.setting``): Tracker tools with per-axis XYPath splines.

Conventions (docs/adapters.md, docs/conventions.md "Fusion" row), pinned by tests/test_adapters_fusion.py:

* **origin / y**: bottom-left, y up, 0..1 of the plate's width / height measured on pixel corners:
  ``u = (x + 0.5) / W``, ``v = (H - (y + 0.5)) / H`` (:func:`dino_tracker_vfx.coords.to_unit_bottom_left`).
  The centre of plate pixel (0, 0) of a 1920x1080 plate is ``u = 0.5/1920 = 0.000260417``,
  ``v = 1079.5/1080 = 0.99953704``.
* **units**: normalised 0..1 (9 decimals, ~2e-6 px at 2K).
* **first frame**: the plate's own frame numbers (keys at ``[1001]``...), never shifted.
* **occlusion**: keys at occluded frames are omitted (the Linear spline bridges the gap).

One Tracker tool per group (``Tracker_<group>``; tracks without a group: ``Tracker_ungrouped``), one
tracker per track (``Name<k>``, ``PatternCenter<k>`` = position at the query frame, ``TrackedCenter<k>``
from an XYPath ``<tool>Path<k>`` whose ``X`` and ``Y`` inputs are BezierSplines ``<tool>Path<k>X/Y``
with linear keys (handles one third along each segment). ``Trackers`` holds ``PatternTime`` (query
frame) and ``PatternX/Y`` per tracker. The tool's ``CustomData.dtvfx`` records plate size, frames
and group for the reader. Tool names keep ``[A-Za-z0-9_]`` (others -> ``_``, leading digit -> ``_``,
clashes ``_2``...); track names are Lua-quoted as they are. Tracks with no visible frame are left out.

Reader: Tracker tools whose ``TrackedCenter<k>`` come from an XYPath with X/Y BezierSplines (our file
or a hand-made / Fusion-saved one); keys present in both splines are visible frames; the query is at
``PatternTime`` when keyed there, else the first key. The plate size comes from ``CustomData`` or the
caller's ``plate_size``. No Tracker tool, a tracker without a path -> InputError naming file and line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dino_tracker_vfx import atomic, coords
from dino_tracker_vfx.adapters import Adapter, HostQuery, ReadResult, hookimpl
from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.tracks import Query, TrackSet, unique_names

from ._common import (give_shot, key_index, keyed, num, read_frames, read_host_text, runs, safe_name,
                      writable_tracks)
from ._lua import LuaCall, LuaSyntaxError, LuaTable, lua_string, parse_lua_value

ND = 9  # decimals of normalised values
UNGROUPED = "ungrouped"


def _spline(frames, values) -> list[str]:
    f = [int(v) for v in frames]
    v = [float(x) for x in values]
    out = []
    for k in range(len(f)):
        parts = [num(v[k], ND)]
        if k > 0:
            d = f[k] - f[k - 1]
            parts.append(f"LH = {{ {num(f[k] - d / 3, ND)}, {num(v[k] - (v[k] - v[k - 1]) / 3, ND)} }}")
        if k + 1 < len(f):
            d = f[k + 1] - f[k]
            parts.append(f"RH = {{ {num(f[k] + d / 3, ND)}, {num(v[k] + (v[k + 1] - v[k]) / 3, ND)} }}")
        parts.append("Flags = { Linear = true }")
        out.append(f"\t\t\t\t[{f[k]}] = {{ " + ", ".join(parts) + " },")
    return out


def setting_text(tracks: TrackSet, options: dict, where: str = "fusion") -> str:
    W, H = tracks.plate_size
    keep = writable_tracks(tracks, where)
    groups: list[str | None] = []
    for i in keep:
        if tracks.group_of(i) not in groups:
            groups.append(tracks.group_of(i))
    groups.sort(key=lambda g: g is None)
    tools = safe_name([f"Tracker_{g if g is not None else UNGROUPED}" for g in groups])
    frames_txt = " ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs(tracks.frame_numbers))
    uv_all = coords.to_unit_bottom_left(np.nan_to_num(tracks.xy), (W, H))
    body: list[str] = []
    for slot, (g, tool) in enumerate(zip(groups, tools)):
        members = [i for i in keep if tracks.group_of(i) == g]
        trk, inputs, paths = [], [], []
        for k, i in enumerate(members, 1):
            ok = keyed(tracks, i)
            q = tracks.queries[i]
            t0 = q.t if ok[q.t] else int(np.argmax(ok))
            u0, v0 = uv_all[i, t0]
            path = f"{tool}Path{k}"
            trk.append(f"\t\t\t\t{{ PatternTime = {tracks.frame_of(t0)}, PatternX = {num(u0, ND)}, "
                       f"PatternY = {num(v0, ND)} }},")
            inputs += [f"\t\t\t\tName{k} = Input {{ Value = {lua_string(tracks.names[i])}, }},",
                       f"\t\t\t\tPatternCenter{k} = Input {{ Value = {{ {num(u0, ND)}, {num(v0, ND)} }}, }},",
                       f"\t\t\t\tTrackedCenter{k} = Input {{ SourceOp = {lua_string(path)}, Source = \"Value\", }},"]
            fr = tracks.frame_numbers[ok]
            paths += [f"\t\t{path} = XYPath {{", "\t\t\tShowKeyPoints = false,", "\t\t\tDrawMode = \"ModifyOnly\",",
                      "\t\t\tInputs = {",
                      f"\t\t\t\tX = Input {{ SourceOp = {lua_string(path + 'X')}, Source = \"Value\", }},",
                      f"\t\t\t\tY = Input {{ SourceOp = {lua_string(path + 'Y')}, Source = \"Value\", }},",
                      "\t\t\t},", "\t\t},"]
            for axis, col, colour in (("X", 0, "Red = 255, Green = 0, Blue = 0"),
                                      ("Y", 1, "Red = 0, Green = 255, Blue = 0")):
                paths += [f"\t\t{path}{axis} = BezierSpline {{", f"\t\t\tSplineColor = {{ {colour} }},",
                          "\t\t\tNameSet = true,", "\t\t\tKeyFrames = {",
                          *_spline(fr, uv_all[i, ok, col]), "\t\t\t},", "\t\t},"]
        custom = (f"\t\t\tCustomData = {{ dtvfx = {{ plate = {{ {W}, {H} }}, frames = {lua_string(frames_txt)}"
                  + (f", group = {lua_string(g)}" if g is not None else "") + " }, },")
        body += [f"\t\t{tool} = Tracker {{", "\t\t\tTrackers = {", *trk, "\t\t\t},", custom, "\t\t\tInputs = {",
                 *inputs, "\t\t\t},", f"\t\t\tViewInfo = OperatorInfo {{ Pos = {{ {110 * slot}, 0 }} }},",
                 "\t\t},", *paths]
    return ("{\n\tTools = ordered() {\n" + "\n".join(body) + "\n\t},\n"
            f"\tActiveTool = {lua_string(tools[0])}\n}}\n")


def _write(tracks: TrackSet, path: Path, options: dict) -> None:
    atomic.write_text(path, setting_text(tracks, options, str(path)))


# ---------------------------------------------------------------------------------------------- reading
def _keys(spline, where: str, what: str) -> dict[int, float]:
    if not isinstance(spline, LuaCall) or spline.name != "BezierSpline" or spline.table is None:
        raise InputError(f"{what} is not a BezierSpline", where=where)
    kf = spline.table.get("KeyFrames")
    if not isinstance(kf, LuaTable):
        return {}
    out = {}
    for f, v in kf.fields.items():
        val = v.items[0] if isinstance(v, LuaTable) and v.items else v
        if not isinstance(f, (int, float)) or not isinstance(val, (int, float)) or not float(f).is_integer():
            raise InputError(f"{what}: bad key [{f}]", where=f"{where}:{getattr(v, 'line', 0) or kf.line}")
        out[int(f)] = float(val)
    return out


def _read(path: Path, options: dict):
    where = str(path)
    text = read_host_text(path)
    try:
        root = parse_lua_value(text)
    except LuaSyntaxError as e:
        raise InputError(f"not a Fusion setting ({e.message})", where=f"{where}:{e.line}") from None
    tools_call = root.get("Tools") if isinstance(root, LuaTable) else None
    tools = tools_call.table if isinstance(tools_call, LuaCall) else tools_call
    if not isinstance(tools, LuaTable):
        raise InputError("no 'Tools = ordered() { ... }' table", where=where)
    trackers = [(n, t) for n, t in tools.fields.items() if isinstance(t, LuaCall) and t.name == "Tracker"]
    if not trackers:
        kinds = ", ".join(sorted({t.name for t in tools.fields.values() if isinstance(t, LuaCall)})) or "none"
        raise InputError(f"no Tracker tool (tools: {kinds})", where=where)
    plate, frames, out = None, None, []
    for tname, tool in trackers:
        tbl = tool.table or LuaTable()
        custom = tbl.get("CustomData")
        dt = custom.get("dtvfx") if isinstance(custom, LuaTable) else None
        group = None
        if isinstance(dt, LuaTable):
            p = dt.get("plate")
            if isinstance(p, LuaTable) and len(p.items) == 2:
                plate = (int(p.items[0]), int(p.items[1]))
            if isinstance(dt.get("frames"), str):
                frames = []
                for part in dt.get("frames").split():
                    a, _, b = part.partition("-")
                    frames.extend(range(int(a), int(b or a) + 1))
            group = dt.get("group")
        inputs = tbl.get("Inputs") or LuaTable()
        pats = tbl.get("Trackers")
        pat_items = pats.items if isinstance(pats, LuaTable) else []
        k = 1
        while f"TrackedCenter{k}" in inputs.fields or f"Name{k}" in inputs.fields:
            tc = inputs.get(f"TrackedCenter{k}")
            nm_in = inputs.get(f"Name{k}")
            name = nm_in.table.get("Value") if isinstance(nm_in, LuaCall) and nm_in.table else None
            name = str(name) if name is not None else f"{tname}_{k}"
            line = tc.line if isinstance(tc, LuaCall) else tbl.line
            src = tc.table.get("SourceOp") if isinstance(tc, LuaCall) and tc.table else None
            xy_tool = tools.get(src) if src else None
            if not (isinstance(xy_tool, LuaCall) and xy_tool.name == "XYPath" and xy_tool.table):
                raise InputError(f"{tname} tracker {name!r}: TrackedCenter{k} is not connected to an XYPath",
                                 where=f"{where}:{line}")
            xin = xy_tool.table.get("Inputs") or LuaTable()
            ax = {}
            for axis in ("X", "Y"):
                inp = xin.get(axis)
                sop = inp.table.get("SourceOp") if isinstance(inp, LuaCall) and inp.table else None
                ax[axis] = _keys(tools.get(sop), f"{where}:{xy_tool.line}", f"{src}.{axis}")
            keys = {f: (ax["X"][f], ax["Y"][f]) for f in sorted(set(ax["X"]) & set(ax["Y"]))}
            pt = None
            if k - 1 < len(pat_items) and isinstance(pat_items[k - 1], LuaTable):
                pt = pat_items[k - 1].get("PatternTime")
            out.append((name, group, keys, int(pt) if isinstance(pt, (int, float)) else None, line))
            k += 1
    if not out:
        raise InputError("the Tracker tools hold no trackers", where=where)
    if plate is None and options.get("plate_size"):
        plate = tuple(options["plate_size"])
    if plate is None:
        raise InputError("Fusion positions are 0..1 of the plate: " + give_shot("plate_size=WxH"),
                         where=where)
    return out, plate, frames


def _read_queries(path: Path, options: dict) -> ReadResult:
    where = str(path)
    items, plate, frames = _read(path, options)
    qs = []
    for name, group, keys, pt, line in items:
        if not keys:
            raise InputError(f"tracker {name!r} has no keys", where=f"{where}:{line}")
        f = pt if pt in keys else min(keys)
        x, y = coords.from_unit_bottom_left(np.array(keys[f]), plate)
        qs.append(HostQuery(f, float(x), float(y), name, group, line))
    return ReadResult(tuple(qs), tuple(frames) if frames else None, plate, (), where)


def _read_tracks(path: Path, options: dict) -> TrackSet:
    where = str(path)
    items, plate, frames = _read(path, options)
    frames, fidx = read_frames(frames, options, (f for it in items for f in it[2]), where)
    N, T = len(items), len(frames)
    xy = np.full((N, T, 2), np.nan)
    vis = np.zeros((N, T), bool)
    names = unique_names([it[0] for it in items])
    qs = []
    for n, (name, group, keys, pt, line) in enumerate(items):
        if not keys:
            raise InputError(f"tracker {name!r} has no keys", where=f"{where}:{line}")
        for f, uv in keys.items():
            t = key_index(fidx, frames, f, f"tracker {name!r}", f"{where}:{line}")
            xy[n, t] = coords.from_unit_bottom_left(np.array(uv), plate)
            vis[n, t] = True
        t = fidx[pt] if pt in keys else fidx[min(keys)]
        qs.append(Query(t, float(xy[n, t, 0]), float(xy[n, t, 1]), names[n], group))
    return TrackSet(xy, vis, vis.astype(np.float32), names, qs, frames, plate)


@hookimpl
def dtvfx_adapters():
    return [Adapter("fusion", (".setting",), "Fusion Tracker tool per group with XYPath splines (paste into the "
                    "Flow)", write=_write, read_queries=_read_queries, read_tracks=_read_tracks,
                    capabilities=frozenset({"tracks", "groups", "visibility", "queries"}))]
