"""Write files so a reader never sees them half-written: write a temp file beside the
target, fsync, then ``os.replace`` (atomic on POSIX and Windows for same-volume paths).

An ``OSError`` while writing (disk full, quota, permissions) is re-raised with ``filename`` = the
*target* (not the hidden temp file), so the message names the file the user asked for; the temp file is
removed and an older target is left as it was. :func:`is_disk_full` tells the CLI which errors are a
full disk (one line, exit 2).

Every file is written readable by others (``mode``, default ``0o666`` less the process's umask *at write
time*, not mkstemp's 0600): outputs and job folders on farm storage are shared between users.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None, mode: int | None = None) -> Iterator[Path]:
    """Yield a temp path in the target's folder; on success it replaces ``path``.

    On an exception the temp file is removed and the old ``path`` (if any) is untouched.
    ``suffix`` keeps the extension for writers that pick a format by it (default: the target's).
    ``mode``: the written file's permissions (default ``0o666 & ~umask``, the umask read now).
    """
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix if suffix is not None else path.suffix,
                                   dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask() if mode is None else mode)  # mkstemp makes 0600
        os.replace(tmp_path, path)
    except OSError as e:
        if e.errno is None or e.filename not in (None, str(tmp_path), str(path)):
            raise  # not about this file (e.g. a reader inside the writer)
        raise OSError(e.errno, e.strerror, str(path)) from e  # the target, not the hidden temp file
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def is_disk_full(e: BaseException) -> bool:
    """True for the errors of a full disk or an exceeded quota."""
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = None) -> None:
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str, mode: int | None = None) -> None:
    write_bytes(path, text.encode("utf-8"), mode=mode)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2, mode: int | None = None) -> None:
    write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n", mode=mode)
