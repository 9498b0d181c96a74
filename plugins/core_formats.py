"""Core track files as adapters: ``json`` (``.json``) and ``csv`` (``.csv``), the formats of
:mod:`dino_tracker_vfx.tracks` (see its docstring for every field).

Conventions (docs/conventions.md, core): origin top-left, y down, centre of the first pixel at (0, 0);
units plate pixels of the display window; time both as 0-based image index ``t`` and host frame
number ``frame`` (first frame = the shot's own, e.g. 1001; gaps kept); occlusion: ``visible`` false
per image, positions kept (NaN/empty where unknown), ``confidence`` 0..1.

``read_queries`` returns each track's query (its host frame and plate position) and its corrections
(the file's ``anchors``, as keyed frames: anchors of the same track when re-tracked); ``read_tracks``
loads the file. No renames: the core model already forbids duplicate names (a file with two tracks
of the same name is an InputError).
"""

from __future__ import annotations

from pathlib import Path

from dino_tracker_vfx.adapters import Adapter, HostQuery, ReadResult, hookimpl
from dino_tracker_vfx.tracks import TrackSet


def _read_queries(tracks: TrackSet, path: Path) -> ReadResult:
    qs = [HostQuery(tracks.frame_of(q.t), q.x, q.y, n, q.group,
                    keys=tuple((tracks.frame_of(a.t), a.x, a.y) for a in anchors if a.t != q.t))
          for n, q, anchors in zip(tracks.names, tracks.queries, tracks.anchors)]
    return ReadResult(tuple(qs), tuple(int(f) for f in tracks.frame_numbers), tracks.plate_size,
                      source=str(path))


def _write_json(tracks: TrackSet, path: Path, options: dict) -> None:
    tracks.save_json(path)


def _write_csv(tracks: TrackSet, path: Path, options: dict) -> None:
    tracks.save_csv(path)


# csv keeps group membership per row but not object tracks; json keeps both.
CAPS = frozenset({"tracks", "groups", "visibility", "confidence", "queries"})


@hookimpl
def dtvfx_adapters():
    return [
        Adapter("json", (".json",), "core track file (tracks, groups with object tracks, visibility, confidence)",
                write=_write_json,
                read_queries=lambda p, o: _read_queries(TrackSet.load_json(p), p),
                read_tracks=lambda p, o: TrackSet.load_json(p), capabilities=CAPS),
        Adapter("csv", (".csv",), "core track file, long CSV (one row per track and image)",
                write=_write_csv,
                read_queries=lambda p, o: _read_queries(TrackSet.load_csv(p), p),
                read_tracks=lambda p, o: TrackSet.load_csv(p), capabilities=CAPS),
    ]
