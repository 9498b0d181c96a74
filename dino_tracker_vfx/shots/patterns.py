"""Frame-sequence patterns: ``plate.####.exr``, ``plate.@.png``, ``plate.%04d.dpx``, ``plate.$F4.exr``
and explicit ranges (``plate.####.exr 1001-1100`` or ``...:1001-1100``, ``1-10x2`` steps,
``1001,1003,1005-1010`` lists), which movies take too (``clip.mov 21-60``).

``####`` is 4 digits (zero padded), ``@`` is one digit per ``@``, ``%0Nd`` is N digits. Frame numbers
may start anywhere and may be negative (``-001``). A range names at most :data:`MAX_RANGE_FRAMES` frames
(counted before any list is built, so ``1-99999999`` is refused at once)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ShotError

_HASH = re.compile(r"#+")
_AT = re.compile(r"@+")
_PRINTF = re.compile(r"%(0?)(\d*)d")
_HOUDINI = re.compile(r"\$F(\d*)")
_RANGE_SUFFIX = re.compile(r"(?:\s+|:)(-?\d+(?:-\-?\d+)?(?:x\d+)?(?:,-?\d+(?:-\-?\d+)?(?:x\d+)?)*)$")
_TRAILING_DIGITS = re.compile(r"^(.*?)(-?\d+)(\.[A-Za-z0-9]+)$")
MAX_RANGE_FRAMES = 100_000  # over an hour at 24 fps; a longer range is a typo (1-99999999), not a shot


@dataclass(frozen=True)
class SeqPattern:
    """A sequence pattern split as ``head + <frame padded to pad> + tail``."""

    head: str
    pad: int
    tail: str

    def path(self, frame: int) -> str:
        sign = "-" if frame < 0 else ""
        return f"{self.head}{sign}{abs(frame):0{self.pad}d}{self.tail}"

    @property
    def display(self) -> str:
        return f"{self.head}{'#' * self.pad}{self.tail}"

    def glob(self) -> dict[int, str]:
        """Frames present on disk: ``{frame: path}``."""
        folder_text, name_head = os.path.split(self.head)
        folder = Path(folder_text or ".")
        rx = re.compile(re.escape(name_head) + r"(-?\d+)" + re.escape(self.tail) + "$")
        found: dict[int, str] = {}
        if not folder.is_dir():
            return found
        for p in folder.iterdir():
            m = rx.match(p.name)
            if m and (len(m.group(1).lstrip("-")) == self.pad or (self.pad <= 1) or
                      len(m.group(1).lstrip("-")) > self.pad):
                found[int(m.group(1))] = os.path.join(folder_text, p.name)
        return dict(sorted(found.items()))


def parse_frame_range(text: str) -> list[int]:
    """``"1001-1100"``, ``"1-20x2"``, ``"1001,1005,1010-1012"`` -> sorted unique frame list."""
    parts = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(-?\d+)(?:-(-?\d+))?(?:x(\d+))?\s*", part)
        if not m:
            raise ShotError(f"bad frame range {text!r} (expected e.g. 1001-1100, 1-20x2 or 1,3,5-9)")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        step = int(m.group(3) or 1)
        if b < a or step < 1:
            raise ShotError(f"bad frame range {text!r}: end before start or step < 1")
        parts.append(range(a, b + 1, step))
    n = sum(len(r) for r in parts)  # an upper bound of the unique count, without building anything
    if n > MAX_RANGE_FRAMES:
        raise ShotError(f"frame range {text!r} names {n} frames; a shot has at most {MAX_RANGE_FRAMES}")
    frames: set[int] = set()
    for r in parts:
        frames.update(r)
    return sorted(frames)


def split_range(spec: str) -> tuple[str, list[int] | None]:
    """Split a trailing explicit range off a shot spec: ``"a.####.exr 1001-1010"`` -> (pattern, frames);
    movies too: ``"clip.mov 21-60"`` (the movie's frame numbers, 1 for its first frame by default)."""
    from .movie import MOVIE_SUFFIXES

    m = _RANGE_SUFFIX.search(spec)
    head = spec[: m.start()] if m else ""
    if m and (any(tok in head for tok in ("#", "@", "%", "$F")) or Path(head).suffix.lower() in MOVIE_SUFFIXES):
        return head, parse_frame_range(m.group(1))
    return spec, None


def parse_pattern(spec: str) -> SeqPattern | None:
    """Return the sequence pattern in ``spec`` or None when it has no frame token."""
    name = Path(spec).name
    folder = spec[: len(spec) - len(name)]
    for rx, pad_of in ((_HASH, lambda m: len(m.group(0))), (_AT, lambda m: len(m.group(0))),
                       (_PRINTF, lambda m: int(m.group(2) or 1)), (_HOUDINI, lambda m: int(m.group(1) or 1))):
        hits = list(rx.finditer(name))
        if hits:
            m = hits[-1]
            return SeqPattern(folder + name[: m.start()], pad_of(m), name[m.end():])
    return None


def pattern_from_file(path: str) -> SeqPattern | None:
    """``plate.1001.exr`` -> pattern ``plate.####.exr`` (as hosts do when a single frame is dropped in)."""
    name = Path(path).name
    m = _TRAILING_DIGITS.match(name)
    if not m:
        return None
    folder = path[: len(path) - len(name)]
    digits = m.group(2).lstrip("-")
    pad = len(digits) if digits.startswith("0") or len(digits) > 1 else 1
    return SeqPattern(folder + m.group(1), pad, m.group(3))
