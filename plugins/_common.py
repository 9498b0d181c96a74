"""Helpers shared by the built-in writers (not a plugin: the manager skips ``_`` modules).

* :func:`num` - deterministic short number text (golden files compare byte for byte).
* :func:`runs` - split sorted host frame numbers into consecutive runs (for ``xN`` restarts etc.).
* :func:`writable_tracks` - the tracks a writer keys: tracks with no visible frame are left out and
  logged (documented in docs/adapters.md); all of them empty -> InputError.
* :func:`pick_tracks` - resolve a list of chosen track names (options ``cornerpin``/``track``) with a
  clear error naming the unknown or empty one.
* :func:`safe_name` - deterministic host-name sanitising: every character outside ``allowed`` becomes
  ``_``, a leading digit gets ``prefix``; names made equal by this are de-duplicated with ``_2``, ``_3``.
* :func:`give_shot` - the wording of "this reader needs the shot" errors (names the real flags).
* :func:`read_frames` / :func:`key_index` - the host frames a read track file covers and the image
  index of each key, with one error for a key outside the shot (Nuke, Fusion and After Effects readers).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Iterable, Sequence

import numpy as np

from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.tracks import TrackSet, unique_names

log = logging.getLogger("dino_tracker_vfx.adapters")


def num(v: float, nd: int = 6) -> str:
    """``1079.5`` -> ``"1079.5"``, ``2.0`` -> ``"2"``, ``-0.0`` -> ``"0"``; at most ``nd`` decimals."""
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"non-finite value {v}")
    s = f"{v:.{nd}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def runs(frames: Iterable[int]) -> list[list[int]]:
    """``[1001, 1002, 1004, 1005]`` -> ``[[1001, 1002], [1004, 1005]]``."""
    out: list[list[int]] = []
    for f in frames:
        f = int(f)
        if out and f == out[-1][-1] + 1:
            out[-1].append(f)
        else:
            out.append([f])
    return out


def keyed(tracks: TrackSet, i: int) -> np.ndarray:
    """Bool [T]: images where track ``i`` is visible with a finite position (what writers key)."""
    return tracks.visible[i] & np.isfinite(tracks.xy[i]).all(-1)


def writable_tracks(tracks: TrackSet, where: str) -> list[int]:
    keep = [i for i in range(tracks.n_tracks) if keyed(tracks, i).any()]
    dropped = [tracks.names[i] for i in range(tracks.n_tracks) if i not in keep]
    if dropped:
        log.warning("%s: left out %d track(s) with no visible frame: %s", where, len(dropped), ", ".join(dropped))
    if not keep:
        raise InputError("no track has a visible frame; nothing to write" if tracks.n_tracks
                         else "the track file holds no tracks; nothing to write", where=where)
    return keep


def pick_tracks(tracks: TrackSet, names: Sequence[str], option: str, where: str) -> list[int]:
    out = []
    for n in names:
        if n not in tracks.names:
            raise InputError(f"option {option}: no track named {n!r} (tracks: {', '.join(tracks.names)})",
                             where=where)
        i = tracks.names.index(n)
        if not keyed(tracks, i).any():
            raise InputError(f"option {option}: track {n!r} has no visible frame", where=where)
        out.append(i)
    return out


def safe_name(names: Sequence[str], allowed: str = r"A-Za-z0-9_", prefix: str = "_") -> list[str]:
    """Sanitise host names deterministically (see module docstring)."""
    bad = re.compile(f"[^{allowed}]")
    cleaned = []
    for n in names:
        s = bad.sub("_", str(n)) or "_"
        if s[0].isdigit():
            s = prefix + s
        cleaned.append(s)
    return unique_names(cleaned)


def read_frames(frames: Sequence[int] | None, options: dict, keyed: Iterable[int], where: str
                ) -> tuple[list[int], dict[int, int]]:
    """(host frames, {host frame: image index}) of a track file being read: the file's own frame list,
    else the shot's (``frame_numbers`` option), else every frame from the first key to the last.
    No frames and no keys -> InputError."""
    if not frames:
        frames = options.get("frame_numbers")
    if frames is None:
        allf = sorted({int(f) for f in keyed})
        if not allf:
            raise InputError("no visible keys in any track", where=where)
        frames = list(range(allf[0], allf[-1] + 1))
    frames = [int(f) for f in frames]
    return frames, {f: t for t, f in enumerate(frames)}


def key_index(fidx: dict[int, int], frames: Sequence[int], f: int, what: str, where: str) -> int:
    """Image index of host frame ``f`` (a key of ``what``, e.g. ``"track 'pt'"``); outside -> InputError."""
    if f not in fidx:
        raise InputError(f"{what} has a key at frame {f}, outside the shot ({frames[0]}-{frames[-1]})", where=where)
    return fidx[f]


def give_shot(option: str) -> str:
    """How a reader asks for what only the shot knows (``option`` e.g. ``plate_size=WxH``): the one
    wording of the ``dtvfx export`` flags (``--shot`` / ``--read-option``)."""
    return f"give the shot (dtvfx export FILE --shot PLATE) or --read-option {option}"


def first_frame(tracks: TrackSet, options: dict) -> int:
    ff = options.get("first_frame")
    return int(tracks.frame_numbers[0]) if ff is None else int(ff)


def double_quoted(s: str, escaped: str) -> str:
    """``s`` in double quotes with backslash escapes for ``escaped`` characters, ``\\n``/``\\t`` for
    newline/tab and other control characters replaced by a space (the Tcl and Lua writers' shared rule)."""
    out = []
    for ch in str(s):
        if ch in escaped:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32:
            out.append(" ")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def read_host_text(path) -> str:
    """A host file's text (undecodable bytes replaced); a missing file is a one-line InputError."""
    from pathlib import Path

    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError("file not found", where=str(path)) from None
