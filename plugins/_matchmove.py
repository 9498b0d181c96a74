"""Helpers shared by the matchmove adapters (tde, syntheyes, pftrack, mmsolver) and the Blender one.
Not a plugin: the manager skips modules whose name starts with ``_``.

Frame numbers
-------------
Every format here counts frames either from a fixed first number (3DE 1, PFTrack 1 or 0, SynthEyes 0)
or on the plate's own numbers (mmSolver). One rule covers both, with the option ``first_frame`` = "the
file's frame number of the shot's first image":

    file_frame = host_frame - shot_first + first_frame          (writing)
    host_frame = file_frame - first_frame + shot_first          (reading)

``shot_first`` is the shot's first host frame (``TrackSet.frame_numbers[0]`` when writing; the
``frame_numbers`` context key when reading). Gaps in the plate's numbering are kept, never closed up
(a host that loads ``plate.####.exr`` shows a missing file as an empty frame). Reading without a shot
(no ``frame_numbers``) keeps the file's numbers as host frames and says so in ``ReadResult.notes``.

Reading
-------
A reader collects :class:`Sample` rows per track (:class:`Parsed`) and leaves validation to
:func:`to_read_result` / :func:`to_trackset`: a file with no tracks, a track with no visible frame,
a frame outside the shot and a track name given twice are :class:`InputError` naming the file and line
(``tracks.2dt: line 7: ...``); duplicate names in ``read_queries`` are renamed by
:class:`ReadResult` (``a``, ``a_2``...) and noted, in ``read_tracks`` the same rename is applied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from dino_tracker_vfx.adapters import HostQuery, OptionSpec, ReadResult
from dino_tracker_vfx.errors import ConfigError, InputError
from dino_tracker_vfx.tracks import Query, TrackSet, unique_names

from ._common import give_shot

log = logging.getLogger("dino_tracker_vfx.adapters")


def first_frame_option(default_text: str) -> OptionSpec:
    return OptionSpec("first_frame", "int", None,
                      f"file frame number of the shot's first image (default {default_text}); gaps are kept")


# ----------------------------------------------------------------------------- writing
def keyed(tracks: TrackSet, i: int) -> np.ndarray:
    """Bool [T]: images where track ``i`` is visible with a finite position (what writers key)."""
    return tracks.visible[i] & np.isfinite(tracks.xy[i]).all(-1)


def writable(tracks: TrackSet, path: Path) -> list[int]:
    """Indices of tracks with at least one visible image. Tracks never visible are left out (logged);
    nothing left -> InputError."""
    keep = [i for i in range(tracks.n_tracks) if keyed(tracks, i).any()]
    dropped = [tracks.names[i] for i in range(tracks.n_tracks) if i not in keep]
    if dropped:
        log.warning("%s: left out %d track(s) with no visible frame: %s", path, len(dropped), ", ".join(dropped))
    if not keep:
        raise InputError("no track has a visible frame; nothing to write" if tracks.n_tracks else
                         "the track set is empty; nothing to write", where=str(path))
    return keep


def file_frames(tracks: TrackSet, options: dict, default_first: int | None) -> np.ndarray:
    """int64 [T]: the file frame number of every image (see module docstring)."""
    ff = options.get("first_frame")
    if ff is None:
        ff = default_first
    shot_first = int(tracks.frame_numbers[0]) if tracks.n_images else 0
    if ff is None:
        return tracks.frame_numbers.astype(np.int64)
    return tracks.frame_numbers.astype(np.int64) - shot_first + int(ff)


def sanitise(names: Sequence[str], fix: Callable[[str], str]) -> list[str]:
    """Apply ``fix`` to every name, then make the results unique (``a``, ``a_2``...) in order.
    Deterministic: the same input always gives the same names."""
    fixed = [fix(n) or "track" for n in names]
    return unique_names(fixed)


# ----------------------------------------------------------------------------- reading
@dataclass
class Sample:
    frame: int  # file frame number
    x: float  # core plate px (already converted through dino_tracker_vfx.coords)
    y: float
    visible: bool = True
    confidence: float | None = None
    line: int | None = None
    keyed: bool = True  # placed by the artist (Blender: not a tracked marker); formats without the flag: all


@dataclass
class Parsed:
    name: str
    line: int | None  # where the track starts in the file
    group: str | None = None
    samples: list[Sample] = field(default_factory=list)


def plate_size(options: dict, path: Path, from_file: tuple[int, int] | None = None,
               needed: bool = True) -> tuple[int, int] | None:
    """Plate size from the file (when it says), else the ``plate_size`` context key / option
    (``(W, H)`` or ``"WxH"``). Both given and different -> InputError."""
    given = options.get("plate_size")
    if isinstance(given, str):
        try:
            w, h = given.lower().replace(",", "x").split("x")
            given = (int(w), int(h))
        except ValueError:
            raise ConfigError(f"plate_size={given!r} is not WxH", where=str(path)) from None
    if given is not None:
        given = (int(given[0]), int(given[1]))
    if from_file is not None and given is not None and tuple(from_file) != given:
        raise InputError(f"the file is for a {from_file[0]}x{from_file[1]} plate, the shot is "
                         f"{given[0]}x{given[1]}", where=str(path))
    size = tuple(from_file) if from_file is not None else given
    if size is None and needed:
        raise ConfigError("the plate size is needed to convert this format's coordinates: "
                          + give_shot("plate_size=WxH"), where=str(path))
    return size  # type: ignore[return-value]


def _frame_map(options: dict, default_first: int | None) -> tuple[Callable[[int], int], list[str]]:
    """file frame -> host frame, and notes."""
    ff = options.get("first_frame")
    if ff is None:
        ff = default_first
    frames = options.get("frame_numbers")
    notes: list[str] = []
    if ff is None:  # plate frames in the file
        return (lambda f: int(f)), notes
    if frames is None or len(frames) == 0:
        notes.append(f"no shot given: frame numbers are the file's own (file frame {ff} = host frame {ff})")
        return (lambda f: int(f)), notes
    shot_first = int(frames[0])
    return (lambda f: int(f) - int(ff) + shot_first), notes


def _check_tracks(parsed: list[Parsed], path: Path) -> None:
    if not parsed:
        raise InputError("the file holds no tracks", where=str(path))
    for p in parsed:
        if not any(s.visible for s in p.samples):
            raise InputError(f"line {p.line}: track {p.name!r} has no visible frame" if p.line else
                             f"track {p.name!r} has no visible frame", where=str(path))
        seen: dict[int, int | None] = {}
        for s in p.samples:
            if s.frame in seen:
                raise InputError(f"line {s.line}: track {p.name!r} has frame {s.frame} twice"
                                 f"{f' (first at line {seen[s.frame]})' if seen[s.frame] else ''}", where=str(path))
            seen[s.frame] = s.line


def to_read_result(parsed: list[Parsed], path: Path, options: dict, default_first: int | None,
                   size: tuple[int, int] | None, notes: Iterable[str] = ()) -> ReadResult:
    """Each track's query is its first visible sample (lowest frame); with the ``keyed`` context key
    (reading corrections) its other visible samples are its keyed frames."""
    _check_tracks(parsed, path)
    fmap, fnotes = _frame_map(options, default_first)
    qs = []
    for p in parsed:
        s = min((s for s in p.samples if s.visible), key=lambda s: s.frame)
        keys = tuple((fmap(k.frame), k.x, k.y) for k in sorted(p.samples, key=lambda k: k.frame)
                     if k.visible and k.keyed and k is not s) if options.get("keyed") else ()
        qs.append(HostQuery(fmap(s.frame), s.x, s.y, p.name, p.group, s.line, keys))
    frames = options.get("frame_numbers")
    return ReadResult(tuple(qs), tuple(int(f) for f in frames) if frames is not None else None, size,
                      tuple(fnotes) + tuple(notes), source=str(path))


def to_trackset(parsed: list[Parsed], path: Path, options: dict, default_first: int | None,
                size: tuple[int, int], meta: dict[str, Any] | None = None) -> TrackSet:
    """Full tracks on the shot's frames (the ``frame_numbers`` context key) or, without a shot, on the
    continuous range of the file's frames. Confidence: the sample's, else 1 where visible, 0 elsewhere."""
    _check_tracks(parsed, path)
    fmap, notes = _frame_map(options, default_first)
    frames = options.get("frame_numbers")
    if frames is None:
        hf = [fmap(s.frame) for p in parsed for s in p.samples]
        frames = list(range(min(hf), max(hf) + 1))
    frames = np.asarray([int(f) for f in frames], np.int64)
    index = {int(f): t for t, f in enumerate(frames)}
    rng = f"{frames[0]}-{frames[-1]}"
    N, T = len(parsed), len(frames)
    xy = np.full((N, T, 2), np.nan)
    vis = np.zeros((N, T), bool)
    conf = np.zeros((N, T), np.float32)
    names = unique_names([p.name for p in parsed])
    queries = []
    for i, p in enumerate(parsed):
        for s in p.samples:
            hfr = fmap(s.frame)
            t = index.get(hfr)
            if t is None:
                what = "outside" if not frames[0] <= hfr <= frames[-1] else "in a gap of"
                raise InputError(f"line {s.line}: track {p.name!r} frame {s.frame} is host frame {hfr}, {what} "
                                 f"the shot ({rng})", where=str(path))
            xy[i, t] = (s.x, s.y)
            vis[i, t] = s.visible
            conf[i, t] = (1.0 if s.visible else 0.0) if s.confidence is None else s.confidence
        tq = int(np.argmax(vis[i]))
        queries.append(Query(tq, float(xy[i, tq, 0]), float(xy[i, tq, 1]), names[i], p.group))
    m = dict(meta or {})
    if notes:
        m["notes"] = notes
    renamed = [f"{p.name!r} -> {n!r}" for p, n in zip(parsed, names) if p.name != n]
    if renamed:
        m.setdefault("notes", []).append("duplicate names renamed: " + ", ".join(renamed))
    return TrackSet(xy, vis, np.clip(conf, 0.0, 1.0), names, queries, frames, size, meta=m)


def read_lines(path: Path) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("file not found", where=str(path)) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not a text file ({e.reason} at byte {e.start})", where=str(path)) from None
    return text.splitlines()


def number(tok: str, what: str, path: Path, line: int, kind: type = float):
    try:
        v = kind(tok)
    except ValueError:
        raise InputError(f"line {line}: {what} {tok!r} is not {'an integer' if kind is int else 'a number'}",
                         where=str(path)) from None
    if kind is float and not np.isfinite(v):
        raise InputError(f"line {line}: {what} {tok!r} is not finite", where=str(path))
    return v
