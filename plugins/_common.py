"""Helpers shared by the built-in writers (not a plugin: the manager skips ``_`` modules).

* :func:`num` - deterministic short number text (golden files compare byte for byte).
* :func:`runs` - split sorted host frame numbers into consecutive runs (for ``xN`` restarts etc.).
* :func:`writable_tracks` - the tracks a writer keys: tracks with no visible frame are left out and
  logged (documented in docs/adapters.md); all of them empty -> InputError.
* :func:`pick_tracks` - resolve a list of chosen track names (options ``cornerpin``/``track``) with a
  clear error naming the unknown or empty one.
* :func:`safe_name` - deterministic host-name sanitising: every character outside ``allowed`` becomes
  ``_``, a leading digit gets ``prefix``; names made equal by this are de-duplicated with ``_2``, ``_3``.
* :func:`encode_name` / :func:`decode_name` - the reversible ``%XX`` encoding of the few characters a
  line-based host format cannot carry in a name (docs/adapters.md lists them per format).
* :func:`double_quoted` - the double-quoted string literal of the Tcl and Lua writers.
* :func:`give_shot` - the wording of "this reader needs the shot" errors (names the real flags).
* :func:`read_frames` / :func:`key_index` - the host frames a read track file covers and the image
  index of each key, with one error for a key outside the shot (Nuke, Fusion and After Effects readers).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Callable, Iterable, Sequence

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


def check_names(names: Sequence[str], known: Sequence[str], option: str, where: str | None = None) -> None:
    """Every name chosen by ``option`` is one of the ``known`` track names."""
    for n in names:
        if n not in known:
            raise InputError(f"option {option}: no track named {n!r} (tracks: {', '.join(known)})", where=where)


def pick_tracks(tracks: TrackSet, names: Sequence[str], option: str, where: str) -> list[int]:
    check_names(names, tracks.names, option, where)
    out = []
    for n in names:
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


LINE_BREAKS = "\x85\u2028\u2029"  # Unicode line breaks that str.splitlines() and many editors honour


def _is_control(ch: str) -> bool:
    return ord(ch) < 32 or ord(ch) == 127 or ch in LINE_BREAKS


def double_quoted(s: str, escaped: str, code: Callable[[int], str]) -> str:
    """``s`` in double quotes (the Tcl and Lua writers' shared rule): a backslash before each ``escaped``
    character, ``\\n``/``\\t`` for newline/tab, and every other control character (C0, DEL) and Unicode
    line break (U+0085, U+2028, U+2029) as ``code(ord(ch))`` (the language's numeric escape), so no
    character is lost and the literal stays on one line."""
    out = []
    for ch in str(s):
        if ch in escaped:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif _is_control(ch):
            out.append(code(ord(ch)))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def encode_name(name: str, unsafe: str = "", spaces: bool = False) -> str:
    """A name for a line-based host format, reversibly: ``%``, control characters, Unicode line breaks,
    leading/trailing blanks, every character of ``unsafe`` and (``spaces``) every blank become ``%XX``
    (their UTF-8 bytes, as in a URL); everything else, non-ASCII letters included, is kept.
    :func:`decode_name` gives the name back exactly."""
    s = str(name)
    n = len(s)
    lead = n - len(s.lstrip())
    trail = len(s.rstrip())
    out = []
    for k, ch in enumerate(s):
        if (ch == "%" or ch in unsafe or _is_control(ch) or (ch.isspace() and (spaces or k < lead or k >= trail))):
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


def decode_name(text: str) -> str:
    """Inverse of :func:`encode_name`: every ``%XX`` sequence is decoded (UTF-8); other text is kept."""
    from urllib.parse import unquote

    return unquote(text)


def read_host_text(path) -> str:
    """A host file's text (undecodable bytes replaced); a missing file is a one-line InputError."""
    from pathlib import Path

    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError("file not found", where=str(path)) from None
