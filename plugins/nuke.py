"""Nuke adapters: ``nuke`` (``.nk``: Tracker4 nodes + optional CornerPin2D) and ``nuke-ascii``
(``.nuke.txt``: "Import Ascii" Time+value files, one per track).

Conventions (docs/adapters.md, docs/conventions.md "Nuke" row), pinned by tests/test_adapters_nuke.py:

* **origin / y**: bottom-left, y up, pixel corners: ``x_n = x + 0.5``, ``y_n = H - (y + 0.5)``
  (:func:`dino_tracker_vfx.coords.to_bottom_left_corner`). The centre of plate pixel (0, 0) of a
  1920x1080 plate is ``0.5 1079.5``; the centre of pixel (1919, 1079) is ``1919.5 0.5``.
* **units**: pixels of the plate's display window (Nuke's format carries the pixel aspect).
* **first frame**: the plate's own frame numbers (1001 stays 1001; frames missing from the shot stay
  missing). Never shifted.
* **occlusion**: ``track_x``/``track_y``/``error`` are keyed on visible frames only; every run after a
  gap restarts with ``xN`` (``{curve x1001 0.5 10.5 x1004 30.5}``); the track's enable column ``e`` is
  keyed with constant interpolation at every shot frame: 1 visible, 0 occluded.
* **confidence**: the ``error`` column is ``1 - confidence`` (``error_min``/``error_max`` its range).

``.nk`` writer (``nuke``): one Tracker4 node per group (node ``Tracker_<group>``, label = group name;
tracks without a group go into ``Tracker_ungrouped``), T checked, R/S off, ``reference_frame`` =
option ``reference_frame`` or the query frame of the node's first track. Option ``centroid`` (default
true) adds the group's object track (centroid) as an extra track ``<group>_centroid``. Option
``cornerpin=a,b,c,d`` adds a CornerPin2D whose ``to1..to4`` (Nuke's order: lower-left, lower-right,
upper-right, upper-left of the plane as seen in the image) follow those four tracks and whose
``from1..from4`` hold their positions at the reference frame. A file with a CornerPin2D has **one**
reference frame, used by the CornerPin2D ``from`` and every Tracker4 ``reference_frame``: option
``reference_frame``, else the query frame of the first corner-pin track when all four are visible
there, else the first frame where all four are visible. Header comments ``# dino_tracker_vfx ...`` record the plate
size, frames and centroid tracks for the reader; the file is a pasteable node snippet (no Root).

Names: Nuke node names keep ``[A-Za-z0-9_]`` (others -> ``_``, a leading digit gets ``_``). Track
names, labels (group names) and the header's names are kept exactly: written as Tcl-quoted words
(:func:`._tcl.name_word`) whose ``\\ [ ] $`` carry one more backslash, so neither Tcl parsing nor the
substitution Nuke applies to a label can run a command or read a variable (a label shows the group
name as it is). The reader removes that backslash again, so names round-trip exactly. A centroid row
named like a track gets ``_2``. Tracks with no visible frame are left out (logged).

Reader (``read_queries`` / ``read_tracks``): Tracker4 (and Tracker3) nodes of the ``.nk`` we write and
of hand-written scripts: per track the keys of ``track_x``/``track_y`` where ``enable`` is not 0; the
query is at the node's ``reference_frame`` when the track is visible there, else at its first visible
frame (with the ``keyed`` context key, reading corrections: every other keyed, enabled frame too, as
the track's keyed frames). CornerPin2D ``to1..to4`` are read only when the file has no Tracker node (tracks
``<node>_to1``...). The plate height comes from the ``# dino_tracker_vfx plate`` comment, a Root
``format``, or the caller's ``plate_size`` (the shot). A file without such nodes, a node without
tracks, an expression instead of a curve -> InputError naming file, line and knob.

``nuke-ascii`` writer: one file per track ``<base>.<track>.nuke.txt`` beside the main file, each line
``frame x y`` (Nuke coordinates, visible frames only) for a knob's *Import Ascii* with
"Time+value" (x, y columns); the main file lists ``name<TAB>file`` per track after ``#`` header lines
(the name ``%XX``-encoded where it holds ``%``, ``#``, a control character, a Unicode line break or
leading/trailing blanks: :func:`._common.encode_name`; the reader decodes it).
Option ``track=NAME`` writes that one track's lines straight into the main file instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dino_tracker_vfx import atomic, coords
from dino_tracker_vfx.adapters import Adapter, HostQuery, OptionSpec, ReadResult, hookimpl
from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.tracks import ObjectTrack, Query, TrackSet, unique_names

from ._common import (check_names, decode_name, encode_name, give_shot, key_index, keyed, num, pick_tracks,
                      read_frames, read_host_text, runs, safe_name, writable_tracks)
from ._tcl import TclSyntaxError, Word, name_word, parse_list, parse_script, subst_unescape

MAGIC = "# dino_tracker_vfx"
T4_COLUMNS = [  # (type, flags, ..., name) of Tracker4's "tracks" table, in Nuke's order
    "5 1 20 enable e 1", "3 1 75 name name 1", "2 1 58 track_x track_x 1", "2 1 58 track_y track_y 1",
    "2 1 63 offset_x offset_x 1", "2 1 63 offset_y offset_y 1", "4 1 27 T T 1", "4 1 27 R R 1",
    "4 1 27 S S 1", "2 0 45 error error 1", "1 1 0 error_min error_min 1", "1 1 0 error_max error_max 1",
    "1 1 0 pattern_x pattern_x 1", "1 1 0 pattern_y pattern_y 1", "1 1 0 pattern_r pattern_r 1",
    "1 1 0 pattern_t pattern_t 1", "1 1 0 search_x search_x 1", "1 1 0 search_y search_y 1",
    "1 1 0 search_r search_r 1", "1 1 0 search_t search_t 1", "2 1 0 key_track key_track 1",
    "2 1 0 key_search_x key_search_x 1", "2 1 0 key_search_y key_search_y 1",
    "2 1 0 key_search_r key_search_r 1", "2 1 0 key_search_t key_search_t 1",
    "2 1 0 key_track_x key_track_x 1", "2 1 0 key_track_y key_track_y 1", "2 1 0 key_track_r key_track_r 1",
    "2 1 0 key_track_t key_track_t 1", "2 1 0 key_centre_offset_x key_centre_offset_x 1",
    "2 1 0 key_centre_offset_y key_centre_offset_y 1",
]


# ---------------------------------------------------------------------------------------------- writing
def _curve(frames, values, flag: str = "") -> str:
    """``{curve [flag] xF v v xF' v ...}`` - each run of consecutive frames restarts with ``xN``."""
    vals = dict(zip((int(f) for f in frames), values))
    parts = ["curve"] + ([flag] if flag else [])
    for run in runs(sorted(vals)):
        parts.append(f"x{run[0]}")
        parts.extend(num(vals[f]) for f in run)
    return "{" + " ".join(parts) + "}"


def _frames_text(frames) -> str:
    return " ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs(frames))


def _row(name: str, frames: np.ndarray, xy_n: np.ndarray, vis: np.ndarray, ok: np.ndarray,
         conf: np.ndarray) -> str:
    kf = frames[ok]
    err = np.clip(1.0 - conf[ok].astype(np.float64), 0.0, 1.0)
    err = np.round(err, 6)
    cols = [
        _curve(frames, vis.astype(int), "K"), name_word(name),
        _curve(kf, xy_n[ok, 0]), _curve(kf, xy_n[ok, 1]),
        "0", "0", "1", "0", "0",
        _curve(kf, err), num(err.min()), num(err.max()),
        "-16", "-16", "16", "16", "-32", "-32", "32", "32",
    ] + ["{curve}"] * 11
    assert len(cols) == len(T4_COLUMNS)
    return " { " + " ".join(cols) + " }"


def _ref_frame(tracks: TrackSet, options: dict, default_t: int) -> int:
    rf = options.get("reference_frame")
    if rf is None:
        return tracks.frame_of(default_t)
    _check_ref_frame(rf, tracks.frame_numbers)
    return int(rf)


def _check_ref_frame(rf: int, frame_numbers) -> None:
    if int(rf) not in set(int(f) for f in frame_numbers):
        raise InputError(f"option reference_frame={rf} is not a frame of the shot "
                         f"({frame_numbers[0]}-{frame_numbers[-1]})")


def _check_cornerpin_count(names: list, where: str | None) -> None:
    if len(names) != 4:
        raise InputError(f"option cornerpin needs 4 track names (to1..to4: lower-left, lower-right, "
                         f"upper-right, upper-left), got {len(names)}", where=where)


def _check_nk(options: dict, context: dict) -> None:
    """The adapter's check hook: cornerpin and reference_frame against the names and frames a job will have
    (before tracking; nothing is written)."""
    cp = options.get("cornerpin")
    if cp:
        _check_cornerpin_count(list(cp), None)
        if context.get("track_names") is not None:
            check_names(list(cp), list(context["track_names"]), "cornerpin")
    if options.get("reference_frame") is not None and context.get("frame_numbers") is not None:
        _check_ref_frame(options["reference_frame"], list(context["frame_numbers"]))


def nk_text(tracks: TrackSet, options: dict, where: str = "nuke") -> str:
    W, H = tracks.plate_size
    frames = np.asarray(tracks.frame_numbers, np.int64)
    keep = writable_tracks(tracks, where)
    groups: list[str | None] = []
    for i in keep:
        g = tracks.group_of(i)
        if g not in groups:
            groups.append(g)
    groups.sort(key=lambda g: g is None)  # ungrouped node last
    node_names = safe_name([f"Tracker_{g}" if g is not None else "Tracker_ungrouped" for g in groups])
    # every row of the file (tracks, then centroids) gets a unique name
    rows_plan: list[tuple[int, str | None, str]] = []  # (node index, kind/track, raw name)
    for k, g in enumerate(groups):
        for i in keep:
            if tracks.group_of(i) == g:
                rows_plan.append((k, str(i), tracks.names[i]))
        obj = tracks.groups.get(g) if g is not None else None
        if g is not None and options.get("centroid", True) and isinstance(obj, ObjectTrack):
            ok = obj.visible & np.isfinite(obj.centroid).all(-1)
            if ok.any():
                rows_plan.append((k, "centroid", f"{g}_centroid"))
    final = unique_names([r[2] for r in rows_plan])
    cp = options.get("cornerpin")
    cp_ref = _cornerpin_ref(tracks, list(cp), options, where) if cp else None
    lines = [f"{MAGIC} export for Nuke: paste into the Node Graph or File > Import Script",
             f"{MAGIC} plate {W} {H} pixel_aspect {num(tracks.pixel_aspect)}",
             f"{MAGIC} frames {_frames_text(frames)}",
             f"{MAGIC} convention x_nuke = x + 0.5, y_nuke = H - (y + 0.5); plate frame numbers"]
    for (k, kind, _), nm in zip(rows_plan, final):
        if kind == "centroid":
            lines.append(f"{MAGIC} centroid {name_word(groups[k])} {name_word(nm)}")
    for k, g in enumerate(groups):
        rows, first_t = [], None
        for (kk, kind, _), nm in zip(rows_plan, final):
            if kk != k:
                continue
            if kind == "centroid":
                obj = tracks.groups[g]
                ok = obj.visible & np.isfinite(obj.centroid).all(-1)
                xy_n = coords.to_bottom_left_corner(np.where(ok[:, None], obj.centroid, 0.0), H)
                rows.append(_row(nm, frames, xy_n, obj.visible & ok, ok, obj.confidence))
            else:
                i = int(kind)
                ok = keyed(tracks, i)
                if first_t is None:
                    first_t = tracks.queries[i].t
                xy_n = coords.to_bottom_left_corner(np.where(ok[:, None], tracks.xy[i], 0.0), H)
                rows.append(_row(nm, frames, xy_n, ok, ok, tracks.confidence[i]))
        ref = tracks.frame_of(cp_ref[1]) if cp_ref else _ref_frame(tracks, options, first_t or 0)
        lines += ["Tracker4 {", " inputs 0",
                  f" tracks {{ {{ 1 31 {len(rows)} }}",
                  "{ " + "\n ".join("{ " + c + " }" for c in T4_COLUMNS) + "\n}",
                  "{", *rows, "}", "}",
                  f" reference_frame {ref}", f" name {node_names[k]}"]
        if g is not None:
            lines.append(f" label {name_word(g)}")
        lines += [f" xpos {110 * k}", " ypos 0", "}"]
    if cp_ref:
        lines += _cornerpin(tracks, list(cp), cp_ref, where, len(groups))
    return "\n".join(lines) + "\n"


def _cornerpin_ref(tracks: TrackSet, names: list[str], options: dict, where: str) -> tuple[list[int], int]:
    """(track indices, image index of the file's one reference frame) for option cornerpin."""
    _check_cornerpin_count(names, where)
    idx = pick_tracks(tracks, names, "cornerpin", where)
    ok = np.stack([keyed(tracks, i) for i in idx])
    rf = options.get("reference_frame")
    if rf is None:
        all4 = np.nonzero(ok.all(0))[0]
        if not len(all4):
            raise InputError(f"option cornerpin: tracks {', '.join(names)} are never visible at the same frame; "
                             f"give --option reference_frame=N", where=where)
        tq = tracks.queries[idx[0]].t
        return idx, int(tq) if ok[:, tq].all() else int(all4[0])
    t_ref = tracks.index_of_frame(_ref_frame(tracks, options, 0))
    missing = [names[k] for k in range(4) if not ok[k, t_ref]]
    if missing:
        raise InputError(f"option cornerpin: {', '.join(missing)} not visible at reference frame {rf}", where=where)
    return idx, t_ref


def _cornerpin(tracks: TrackSet, names: list[str], ref: tuple[list[int], int], where: str, xslot: int) -> list[str]:
    idx, t_ref = ref
    H = tracks.plate_size[1]
    frames = np.asarray(tracks.frame_numbers, np.int64)
    ok = np.stack([keyed(tracks, i) for i in idx])
    out = ["CornerPin2D {", " inputs 0"]
    for k, i in enumerate(idx):
        xy_n = coords.to_bottom_left_corner(np.where(ok[k][:, None], tracks.xy[i], 0.0), H)
        out.append(f" to{k + 1} {{{_curve(frames[ok[k]], xy_n[ok[k], 0])} {_curve(frames[ok[k]], xy_n[ok[k], 1])}}}")
    for k, i in enumerate(idx):
        p = coords.to_bottom_left_corner(tracks.xy[i, t_ref], H)
        out.append(f" from{k + 1} {{{num(p[0])} {num(p[1])}}}")
    label = f"{' '.join(names)} ref {tracks.frame_of(t_ref)}"
    out += [f" name {safe_name(['CornerPin_dtvfx'])[0]}", f" label {name_word(label)}",
            f" xpos {110 * xslot}", " ypos 0", "}"]
    return out


def _write_nk(tracks: TrackSet, path: Path, options: dict) -> None:
    atomic.write_text(path, nk_text(tracks, options, str(path)))


# ---------------------------------------------------------------------------------------------- reading
class _Curve:
    """Keys of a Nuke animation curve (or one static value)."""

    def __init__(self, keys: dict[int, float] | None = None, static: float | None = None):
        self.keys = keys or {}
        self.static = static

    @property
    def animated(self) -> bool:
        return bool(self.keys)

    def at(self, frame: int) -> float | None:
        """Value at a keyed frame, the static value, or (step) the last key before ``frame``."""
        if frame in self.keys:
            return self.keys[frame]
        if not self.keys:
            return self.static
        before = [f for f in self.keys if f < frame]
        return self.keys[max(before)] if before else self.keys[min(self.keys)]


def _parse_value(word: Word, what: str, where: str) -> _Curve:
    txt = word.text.strip()
    if word.kind == "brace" and txt.startswith("curve"):
        keys: dict[int, float] = {}
        frame: float = 1
        for tok in txt.split()[1:]:
            if tok[0] == "x" and len(tok) > 1:
                try:
                    frame = float(tok[1:])
                except ValueError:
                    raise InputError(f"{what}: bad curve frame {tok!r}", where=f"{where}:{word.line}") from None
                continue
            try:
                v = float(tok)
            except ValueError:
                continue  # interpolation flags (K L C S R Z...), slopes (s0.5 t0.5 u v)
            if not float(frame).is_integer():
                raise InputError(f"{what}: key at fractional frame {frame}", where=f"{where}:{word.line}")
            keys[int(frame)] = v
            frame += 1
        return _Curve(keys)
    try:
        return _Curve(static=float(txt))
    except ValueError:
        raise InputError(f"{what}: expected a number or a curve, got {txt[:40]!r} (expressions are not read)",
                         where=f"{where}:{word.line}") from None


class _NkTrack:
    def __init__(self, name, x: _Curve, y: _Curve, enable: _Curve | None, error: _Curve | None, node: str,
                 group: str | None, ref: int | None, line: int):
        self.name, self.x, self.y, self.enable, self.error = name, x, y, enable, error
        self.node, self.group, self.ref, self.line = node, group, ref, line

    def frames(self, default_frame: int | None, where: str) -> dict[int, tuple[float, float]]:
        """Visible keys: frame -> (x_n, y_n)."""
        if self.x.animated or self.y.animated:
            fs = sorted(set(self.x.keys) & set(self.y.keys)) if (self.x.animated and self.y.animated) else \
                sorted(self.x.keys or self.y.keys)
        else:
            f = self.ref if self.ref is not None else default_frame
            if f is None:
                raise InputError(f"track {self.name!r} of {self.node} has a static position and no frame; "
                                 f"give --option frame=N", where=f"{where}:{self.line}")
            fs = [f]
        out = {}
        for f in fs:
            if self.enable is not None and (self.enable.at(f) or 0.0) == 0.0:
                continue
            out[f] = (self.x.at(f), self.y.at(f))
        return out


def _nodes(text: str, where: str):
    try:
        cmds = parse_script(text)
    except TclSyntaxError as e:
        raise InputError(f"not a readable Nuke script ({e.message})", where=f"{where}:{e.line}") from None
    out = []
    for words, line in cmds:
        if len(words) == 2 and words[1].kind == "brace" and re.fullmatch(r"[A-Za-z_][\w.]*", words[0].text):
            try:
                knobs = {}
                for kw, kline in parse_script(words[1].text, words[1].line):
                    if kw and len(kw) >= 2:
                        knobs[kw[0].text] = kw[1] if len(kw) == 2 else Word(
                            " ".join(w.text for w in kw[1:]), "bare", kw[1].line)
            except TclSyntaxError as e:
                raise InputError(f"node {words[0].text}: {e.message}", where=f"{where}:{e.line}") from None
            out.append((words[0].text, knobs, line))
    return out


def _header(text: str):
    plate, frames, centroids = None, None, {}
    for ln in text.split("\n"):
        if not ln.startswith(MAGIC):
            continue
        rest = ln[len(MAGIC):].split(None, 1)
        if len(rest) < 2:
            continue
        key, val = rest
        try:
            if key == "plate":
                w, h = val.split()[:2]
                plate = (int(w), int(h))
            elif key == "frames":
                frames = []
                for part in val.split():
                    a, _, b = part.partition("-")
                    frames.extend(range(int(a), int(b or a) + 1))
            elif key == "centroid":
                g, n = [subst_unescape(w.text) for w in parse_list(val)]
                centroids[n] = g
        except (ValueError, TclSyntaxError):
            continue
    return plate, frames, centroids


def _read_nk(path: Path, options: dict):
    where = str(path)
    text = read_host_text(path)
    plate, frames, centroids = _header(text)
    nodes = _nodes(text, where)
    if plate is None:
        for cls, knobs, _ in nodes:
            if cls == "Root" and "format" in knobs:
                try:
                    f = knobs["format"].text.split()
                    plate = (int(f[0]), int(f[1])) if len(f) in (2, 3, 8) or len(f) > 3 else plate
                except (ValueError, IndexError):
                    pass
    if plate is None and options.get("plate_size"):
        plate = tuple(options["plate_size"])
    tracks: list[_NkTrack] = []
    empty: list[str] = []
    trackers = [n for n in nodes if n[0] in ("Tracker4", "Tracker3")]
    pins = [n for n in nodes if n[0] == "CornerPin2D"]
    if not trackers and not pins:
        found = ", ".join(sorted({n[0] for n in nodes})) or "no nodes"
        raise InputError(f"no Tracker4, Tracker3 or CornerPin2D node to read (found: {found})", where=where)
    for cls, knobs, line in trackers:
        node = knobs["name"].text if "name" in knobs else cls
        label = subst_unescape(knobs["label"].text) if "label" in knobs else ""
        group = label if label.strip() else None
        ref = None
        if "reference_frame" in knobs:
            try:
                ref = int(float(knobs["reference_frame"].text))
            except ValueError:
                pass
        got = _tracker4(knobs, node, group, ref, where) if cls == "Tracker4" else _tracker3(knobs, node, group, ref,
                                                                                                where)
        if not got:
            empty.append(f"{cls} {node} (line {line})")
        tracks += got
    if not trackers:
        for cls, knobs, line in pins:
            node = knobs["name"].text if "name" in knobs else cls
            for k in range(1, 5):
                w = knobs.get(f"to{k}")
                if w is None:
                    continue
                el = parse_list(w.text, w.line)
                if len(el) != 2:
                    raise InputError(f"{node}.to{k}: expected 2 values", where=f"{where}:{w.line}")
                tracks.append(_NkTrack(f"{node}_to{k}", _parse_value(el[0], f"{node}.to{k}", where),
                                       _parse_value(el[1], f"{node}.to{k}", where), None, None, node, None,
                                       None, w.line))
    if not tracks:
        raise InputError(f"no tracks in {', '.join(empty)}", where=where)
    if plate is None:
        raise InputError("cannot convert Nuke y (measured from the bottom) without the plate height: the file "
                         "has no '# dino_tracker_vfx plate' line or Root format; " + give_shot("plate_size=WxH"),
                         where=where)
    notes = [f"skipped {e}: no tracks" for e in empty]
    return tracks, plate, frames, centroids, notes


def _tracker4(knobs, node, group, ref, where) -> list[_NkTrack]:
    w = knobs.get("tracks")
    if w is None:
        return []
    try:
        parts = parse_list(w.text, w.line)
        if len(parts) < 3:
            return []
        cols = [parse_list(c.text, c.line) for c in parse_list(parts[1].text, parts[1].line)]
        names = [c[3].text if len(c) > 3 else "" for c in cols]
        rows = parse_list(parts[2].text, parts[2].line)
    except TclSyntaxError as e:
        raise InputError(f"{node}.tracks: {e.message}", where=f"{where}:{e.line}") from None
    for need in ("track_x", "track_y"):
        if need not in names:
            raise InputError(f"{node}.tracks has no {need} column", where=f"{where}:{w.line}")
    out = []
    for r in rows:
        vals = parse_list(r.text, r.line)
        if len(vals) != len(names):
            raise InputError(f"{node}.tracks: a row has {len(vals)} values for {len(names)} columns",
                             where=f"{where}:{r.line}")
        col = dict(zip(names, vals))
        nm = subst_unescape(col["name"].text) if "name" in col else f"track {len(out) + 1}"
        what = f"{node} track {nm!r}"
        out.append(_NkTrack(nm, _parse_value(col["track_x"], what + " track_x", where),
                            _parse_value(col["track_y"], what + " track_y", where),
                            _parse_value(col["enable"], what + " enable", where) if "enable" in col else None,
                            _parse_value(col["error"], what + " error", where) if "error" in col else None,
                            node, group, ref, r.line))
    return out


def _tracker3(knobs, node, group, ref, where) -> list[_NkTrack]:
    out = []
    for k in range(1, 5):
        w = knobs.get(f"track{k}")
        if w is None:
            continue
        if k > 1 and knobs.get(f"enable{k}", Word("true", "bare", 0)).text in ("false", "0"):
            continue
        el = parse_list(w.text, w.line)
        if len(el) != 2:
            raise InputError(f"{node}.track{k}: expected 2 values", where=f"{where}:{w.line}")
        out.append(_NkTrack(f"{node}_track{k}", _parse_value(el[0], f"{node}.track{k}", where),
                            _parse_value(el[1], f"{node}.track{k}", where), None, None, node, group, ref, w.line))
    return out


def _read_queries_nk(path: Path, options: dict) -> ReadResult:
    where = str(path)
    tracks, plate, frames, centroids, notes = _read_nk(path, options)
    W, H = plate
    qs = []
    for tr in tracks:
        if tr.name in centroids:
            continue
        keys = tr.frames(options.get("frame"), where)
        if not keys:
            raise InputError(f"track {tr.name!r} of {tr.node} has no visible frame", where=f"{where}:{tr.line}")
        f = tr.ref if tr.ref in keys else min(keys)
        x, y = coords.from_bottom_left_corner(np.array(keys[f], np.float64), H)
        extra = ()
        if options.get("keyed"):  # corrections: every other keyed, enabled frame is an anchor
            others = [k for k in sorted(keys) if k != f]
            pts = coords.from_bottom_left_corner(np.array([keys[k] for k in others], np.float64).reshape(-1, 2), H)
            extra = tuple((k, float(px), float(py)) for k, (px, py) in zip(others, pts))
        qs.append(HostQuery(f, float(x), float(y), tr.name, tr.group, tr.line, extra))
    return ReadResult(tuple(qs), tuple(frames) if frames else None, plate, tuple(notes), where)


def _read_tracks_nk(path: Path, options: dict) -> TrackSet:
    where = str(path)
    tracks, plate, frames, centroids, notes = _read_nk(path, options)
    W, H = plate
    per = []
    for tr in tracks:
        keys = tr.frames(options.get("frame"), where)
        per.append((tr, keys))
    frames, fidx = read_frames(frames, options, (f for _, k in per for f in k), where)
    T = len(frames)
    names, queries, xys, viss, confs = [], [], [], [], []
    objs: dict[str, ObjectTrack] = {}
    for tr, keys in per:
        xy = np.full((T, 2), np.nan)
        vis = np.zeros(T, bool)
        conf = np.zeros(T, np.float32)
        for f, p in keys.items():
            t = key_index(fidx, frames, f, f"track {tr.name!r}", f"{where}:{tr.line}")
            xy[t] = coords.from_bottom_left_corner(np.array(p, np.float64), H)
            vis[t] = True
            e = tr.error.at(f) if tr.error is not None else 0.0
            conf[t] = float(np.clip(1.0 - (e or 0.0), 0.0, 1.0))
        if tr.name in centroids:
            objs[centroids[tr.name]] = ObjectTrack(xy, vis, None, conf)
            continue
        if not vis.any():
            raise InputError(f"track {tr.name!r} of {tr.node} has no visible frame", where=f"{where}:{tr.line}")
        qf = tr.ref if (tr.ref in keys) else min(keys)
        t = fidx[qf]
        names.append(tr.name)
        queries.append((t, xy[t], tr.group))
        xys.append(xy), viss.append(vis), confs.append(conf)
    names = unique_names(names)
    qobjs = [Query(t, float(p[0]), float(p[1]), n, g) for n, (t, p, g) in zip(names, queries)]
    groups = {g: objs.get(g) for g in dict.fromkeys(q.group for q in qobjs if q.group)}
    return TrackSet(np.stack(xys), np.stack(viss), np.stack(confs), names, qobjs, frames, plate, groups,
                    meta={"source": where, "notes": notes})


# ---------------------------------------------------------------------------------------------- nuke-ascii
ASCII_SUFFIX = ".nuke.txt"


def _ascii_lines(tracks: TrackSet, i: int) -> str:
    H = tracks.plate_size[1]
    ok = keyed(tracks, i)
    xy_n = coords.to_bottom_left_corner(np.where(ok[:, None], tracks.xy[i], 0.0), H)
    return "".join(f"{tracks.frame_of(t)} {num(xy_n[t, 0])} {num(xy_n[t, 1])}\n" for t in np.nonzero(ok)[0])


def _base(path: Path) -> str:
    n = path.name
    return n[:-len(ASCII_SUFFIX)] if n.lower().endswith(ASCII_SUFFIX) else path.stem


def _write_ascii(tracks: TrackSet, path: Path, options: dict) -> None:
    where = str(path)
    if options.get("track"):
        (i,) = pick_tracks(tracks, [options["track"]], "track", where)
        atomic.write_text(path, _ascii_lines(tracks, i))
        return
    keep = writable_tracks(tracks, where)
    fnames = safe_name([tracks.names[i] for i in keep], allowed=r"A-Za-z0-9_.\-")
    W, H = tracks.plate_size
    manifest = [f"{MAGIC} nuke-ascii: one Import Ascii (Time+value) file per track, lines: frame x y",
                f"{MAGIC} plate {W} {H} pixel_aspect {num(tracks.pixel_aspect)}",
                f"{MAGIC} frames {_frames_text(tracks.frame_numbers)}",
                f"{MAGIC} convention x_nuke = x + 0.5, y_nuke = H - (y + 0.5); plate frame numbers; "
                f"occluded frames omitted"]
    for i, fn in zip(keep, fnames):
        target = path.with_name(f"{_base(path)}.{fn}{ASCII_SUFFIX}")
        atomic.write_text(target, _ascii_lines(tracks, i))
        manifest.append(f"{encode_name(tracks.names[i], '#')}\t{target.name}")
    atomic.write_text(path, "\n".join(manifest) + "\n")


def _read_ascii_file(p: Path, where: str) -> dict[int, tuple[float, float]]:
    try:
        lines = p.read_text().splitlines()
    except FileNotFoundError:
        raise InputError("file not found", where=str(p)) from None
    keys = {}
    for ln, s in enumerate(lines, 1):
        s = s.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        try:
            if len(parts) != 3:
                raise ValueError
            f = float(parts[0])
            if not f.is_integer():
                raise ValueError
            keys[int(f)] = (float(parts[1]), float(parts[2]))
        except ValueError:
            raise InputError(f"expected 'frame x y', got {s[:60]!r}", where=f"{p}:{ln}") from None
    if not keys:
        raise InputError("no 'frame x y' lines", where=str(p))
    return keys


def _read_ascii(path: Path, options: dict):
    where = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError("file not found", where=where) from None
    plate, frames, _ = _header(text)
    plate = plate or (tuple(options["plate_size"]) if options.get("plate_size") else None)
    entries = []
    if text.startswith(MAGIC):
        for ln, s in enumerate(text.splitlines(), 1):
            if not s.strip() or s.startswith("#"):
                continue
            name, sep, fn = s.partition("\t")
            if not sep:
                raise InputError("expected 'name<TAB>file'", where=f"{where}:{ln}")
            entries.append((decode_name(name), _read_ascii_file(path.with_name(fn.strip()), where), ln))
    else:
        entries.append((_base(path), _read_ascii_file(path, where), None))
    if not entries:
        raise InputError("lists no track files", where=where)
    if plate is None:
        raise InputError("Nuke y is measured from the bottom: " + give_shot("plate_size=WxH"),
                         where=where)
    return entries, plate, frames


def _read_queries_ascii(path: Path, options: dict) -> ReadResult:
    entries, plate, frames = _read_ascii(path, options)
    qs = []
    for name, keys, ln in entries:
        f = min(keys)
        x, y = coords.from_bottom_left_corner(np.array(keys[f]), plate[1])
        qs.append(HostQuery(f, float(x), float(y), name, None, ln))
    return ReadResult(tuple(qs), tuple(frames) if frames else None, plate, (), str(path))


def _read_tracks_ascii(path: Path, options: dict) -> TrackSet:
    entries, plate, frames = _read_ascii(path, options)
    frames, fidx = read_frames(frames, options, (f for _, k, _ in entries for f in k), str(path))
    N, T = len(entries), len(frames)
    xy = np.full((N, T, 2), np.nan)
    vis = np.zeros((N, T), bool)
    names = unique_names([e[0] for e in entries])
    for n, (name, keys, ln) in enumerate(entries):
        for f, p in keys.items():
            t = key_index(fidx, frames, f, f"track {name!r}", str(path))
            xy[n, t] = coords.from_bottom_left_corner(np.array(p), plate[1])
            vis[n, t] = True
    qs = []
    for n in range(N):
        t = int(np.argmax(vis[n]))
        qs.append(Query(t, float(xy[n, t, 0]), float(xy[n, t, 1]), names[n], None))
    return TrackSet(xy, vis, vis.astype(np.float32), names, qs, frames, plate)


# ---------------------------------------------------------------------------------------------- registration
@hookimpl
def dtvfx_adapters():
    return [
        Adapter("nuke", (".nk",), "Nuke script: Tracker4 node per group (+ CornerPin2D), pasteable",
                write=_write_nk, read_queries=_read_queries_nk, read_tracks=_read_tracks_nk, check=_check_nk,
                capabilities=frozenset({"tracks", "groups", "visibility", "confidence", "queries", "cornerpin"}),
                options=(
                    OptionSpec("cornerpin", "list", None, "four track names for a CornerPin2D, in to1..to4 "
                               "order (lower-left, lower-right, upper-right, upper-left)"),
                    OptionSpec("reference_frame", "int", None, "Tracker4 reference_frame and CornerPin2D "
                               "'from' frame (plate frame number)"),
                    OptionSpec("centroid", "bool", True, "add each group's object centroid as a track"),
                    OptionSpec("frame", "int", None, "reading: frame of tracks with static (unanimated) "
                               "positions"),
                )),
        Adapter("nuke-ascii", (ASCII_SUFFIX,), "Nuke Import Ascii (Time+value) text, one 'frame x y' file per "
                "track", write=_write_ascii, read_queries=_read_queries_ascii, read_tracks=_read_tracks_ascii,
                capabilities=frozenset({"tracks", "visibility", "queries"}),
                options=(OptionSpec("track", "str", None, "write only this track, into the main file"),)),
    ]


