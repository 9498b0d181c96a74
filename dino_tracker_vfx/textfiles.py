"""Reading the small text files users hand us (query CSV/JSON, presets) as UTF-8, with one clear error.

:func:`read_user_text` returns the text (a UTF-8 byte-order mark is dropped). A binary file (NUL bytes) or
text in another encoding (Latin-1, UTF-16, ...) raises the caller's :class:`~dino_tracker_vfx.errors.UserError`
subclass naming the file and the line of the first bad byte, never a ``UnicodeDecodeError`` traceback.
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError, UserError


def read_user_text(path: str | Path, error: type[UserError] = InputError, what: str = "text") -> str:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise error(f"cannot read ({e.strerror})", where=str(p)) from None
    if b"\x00" in data[:65536]:
        raise error(f"a binary file, not {what}", where=str(p))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error(f"not UTF-8 {what}: byte 0x{data[e.start]:02x} at line {line} (save it as UTF-8)",
                    where=str(p)) from None
