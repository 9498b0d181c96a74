"""Managing tracker caches: list the entries, clean them, keep them under a size limit.

A cache root (``--cache DIR``; default ``$DTVFX_CACHE``, else ``$XDG_CACHE_HOME/dino_tracker_vfx``, else
``~/.cache/dino_tracker_vfx``; a job's is ``<job dir>/cache`` unless its spec names one) holds one
**entry** per shot: ``root/<shot-key>/`` with ``shot.json``, the stage ``.npz`` files and
``checkpoints/<key>/iter_<n>.pt`` (layout: :mod:`.cache`). Only folders named like a shot key (16 hex
digits) that hold a ``shot.json`` are entries; nothing else under the root is ever touched.

* **In use**: every :class:`~.cache.ShotCache` (a ``dtvfx track`` run, a job's worker, a ``ShotTracker``
  in Python) holds a shared ``flock`` on ``<entry>/.in-use.lock`` while it lives (:func:`hold`). Deleting
  takes the exclusive lock without waiting, so an entry in use is never deleted: it is reported as kept.
  The kernel drops the lock when its holder dies, so a crashed run pins nothing.
* **Last used**: the newest modification time of the entry's files; opening an entry touches its lock
  file, so a run served entirely from the cache counts as a use.
* **Size limit**: ``$DTVFX_CACHE_MAX`` (``20G``, ``500M``, bytes; ``0`` / ``none`` / ``off``: no limit;
  default :data:`DEFAULT_LIMIT`), enforced after ``dtvfx track`` and after a job's run
  (:func:`enforce_limit`): least-recently-used entries go first; the entry just used and entries in use
  are never evicted.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locking, nothing is deleted
    fcntl = None

log = logging.getLogger(__name__)

LOCK_NAME = ".in-use.lock"
LIMIT_ENV = "DTVFX_CACHE_MAX"
DEFAULT_LIMIT = "20G"
_KEY_RE = re.compile(r"^[0-9a-f]{16}$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)
_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.I)
_UNITS = {"": 1, "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# ----------------------------------------------------------------------------- settings
def default_root() -> Path:
    """Where ``dtvfx track`` caches when no ``--cache`` is given."""
    base = os.environ.get("DTVFX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "dino_tracker_vfx")
    return Path(base)


def parse_size(text: str, what: str) -> int:
    """``10G``, ``500M``, ``1.5T``, ``2048`` (bytes; binary units) -> bytes."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ConfigError(f"{text!r} is not a size (like 10G, 500M or a number of bytes)", where=what)
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_age(text: str, what: str) -> float:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` -> seconds."""
    m = _AGE_RE.match(str(text))
    if not m:
        raise ConfigError(f"{text!r} is not an age (like 7d, 12h, 30m, 2w)", where=what)
    return float(m.group(1)) * _SECONDS[m.group(2).lower()]


def size_limit() -> int | None:
    """The limit from ``$DTVFX_CACHE_MAX`` (default :data:`DEFAULT_LIMIT`); ConfigError naming it when bad."""
    text = os.environ.get(LIMIT_ENV) or DEFAULT_LIMIT
    if text.strip().lower() in ("0", "none", "off", "no"):
        return None
    return parse_size(text, LIMIT_ENV)


def human(n: float) -> str:
    for unit in ("B", "K", "M", "G"):
        if abs(n) < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024.0
    return f"{n:.1f}G"  # pragma: no cover


# ----------------------------------------------------------------------------- in-use locks
class EntryHold:
    """A shared lock on an entry for as long as this object lives (or :meth:`close`)."""

    def __init__(self, fd: int | None):
        self._fd = fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the flock
            self._fd = None

    def __del__(self):
        self.close()


def hold(entry: Path) -> EntryHold:
    """Create ``entry`` if needed and hold its in-use lock (shared: many runs may read one entry). Waits
    while a cleaner is deleting it, then recreates it."""
    entry = Path(entry)
    if fcntl is None:  # pragma: no cover
        entry.mkdir(parents=True, exist_ok=True)
        return EntryHold(None)
    lock = entry / LOCK_NAME
    while True:
        entry.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:  # deleted between mkdir and open
            continue
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not the lock file of an entry a cleaner has just removed
            try:
                os.utime(lock)  # last used
            except OSError:
                pass
            return EntryHold(fd)
        os.close(fd)


def _lock_exclusive(entry: Path, create: bool = True) -> int | None:
    """The exclusive lock of an entry without waiting (fd), or None when a run holds it. ``create=False``
    (probing): a missing lock file means no holder (holders create it), and probing must not add a file
    (its time would count as a use)."""
    if fcntl is None:  # pragma: no cover
        return None
    try:
        fd = os.open(entry / LOCK_NAME, os.O_RDWR | (os.O_CREAT if create else 0), 0o666)
    except FileNotFoundError:
        return -1 if not create else None
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def in_use(entry: Path) -> bool:
    fd = _lock_exclusive(entry, create=False)
    if fd is None:
        return True
    if fd >= 0:
        os.close(fd)
    return False


# ----------------------------------------------------------------------------- listing
@dataclass
class Entry:
    path: Path
    shot: str
    frames: str
    size: int
    last_used: float
    stages: list[str] = field(default_factory=list)
    checkpoints: dict[str, int] = field(default_factory=dict)  # checkpoint key -> newest iteration
    in_use: bool = False

    @property
    def key(self) -> str:
        return self.path.name

    def as_dict(self) -> dict:
        return {"path": str(self.path), "key": self.key, "shot": self.shot, "frames": self.frames,
                "size": self.size, "last_used": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.last_used)),
                "stages": self.stages, "checkpoints": self.checkpoints, "in_use": self.in_use}


def _frames_text(frames: list) -> str:
    return f"{frames[0]}-{frames[-1]} ({len(frames)} images)" if frames else "?"


def read_entry(path: Path) -> Entry | None:
    """The entry at ``path``, or None when it is not a cache entry."""
    info = path / "shot.json"
    if not (_KEY_RE.match(path.name) and path.is_dir() and info.is_file()):
        return None
    try:
        meta = json.loads(info.read_text())
    except (OSError, ValueError):
        meta = {}
    size, newest, stages, ckpts = 0, 0.0, set(), {}
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.stat(os.path.join(dirpath, f))
            except OSError:
                continue
            size += st.st_size
            newest = max(newest, st.st_mtime)
            if dirpath == str(path) and f.endswith(".npz") and "-" in f:
                stages.add(f.rsplit("-", 1)[0])
            m = re.match(r"iter_(\d+)\.pt$", f)
            if m:
                k = os.path.basename(dirpath)
                ckpts[k] = max(ckpts.get(k, 0), int(m.group(1)))
    return Entry(path, str(meta.get("source", "?")), _frames_text(meta.get("frames") or []), size, newest,
                 sorted(stages), ckpts, in_use(path))


def list_entries(root: str | os.PathLike) -> list[Entry]:
    """Every entry under ``root``, most recently used first (an absent root has none)."""
    root = Path(root)
    if not root.is_dir():
        return []
    entries = [e for e in (read_entry(p) for p in root.iterdir()) if e is not None]
    return sorted(entries, key=lambda e: e.last_used, reverse=True)


# ----------------------------------------------------------------------------- cleaning
@dataclass
class CleanResult:
    removed: list[Entry]
    kept_in_use: list[Entry]
    remaining: int  # bytes left in the cache after the clean (as planned when dry_run)

    @property
    def freed(self) -> int:
        return sum(e.size for e in self.removed)


def plan(entries: list[Entry], *, older_than: float | None = None, max_size: int | None = None,
         everything: bool = False, keep: tuple[str, ...] = (), now: float | None = None
         ) -> tuple[list[Entry], list[Entry]]:
    """(to remove, least recently used first; wanted but in use). ``everything`` takes every entry;
    ``older_than`` (seconds) those last used longer ago; then ``max_size`` (bytes) evicts the least
    recently used of the rest until the total fits. ``keep`` (entry keys) are never taken."""
    now = time.time() if now is None else now
    lru = sorted(entries, key=lambda e: e.last_used)
    removable = [e for e in lru if e.key not in keep]
    wanted = []
    for e in removable:
        if everything or (older_than is not None and now - e.last_used > older_than):
            wanted.append(e)
    if max_size is not None:
        total = sum(e.size for e in entries) - sum(e.size for e in wanted if not e.in_use)
        for e in removable:
            if total <= max_size:
                break
            if e not in wanted and not e.in_use:
                wanted.append(e)
                total -= e.size
    busy = [e for e in wanted if e.in_use]
    return [e for e in wanted if not e.in_use], busy


def remove(entry: Entry) -> bool:
    """Delete an entry unless a run holds it (checked again now, under the exclusive lock)."""
    fd = _lock_exclusive(entry.path)
    if fd is None:
        return False
    try:
        shutil.rmtree(entry.path)
    finally:
        os.close(fd)
    return True


def clean(root: str | os.PathLike, *, older_than: float | None = None, max_size: int | None = None,
          everything: bool = False, dry_run: bool = False, keep: tuple[str, ...] = ()) -> CleanResult:
    if older_than is None and max_size is None and not everything:
        raise UserError("say what to clean: --older-than AGE, --max-size SIZE or --all")
    entries = list_entries(root)
    todo, busy = plan(entries, older_than=older_than, max_size=max_size, everything=everything, keep=keep)
    removed = []
    for e in todo:
        if dry_run or remove(e):
            removed.append(e)
        else:
            busy.append(e)
    remaining = sum(e.size for e in entries) - sum(e.size for e in removed)
    return CleanResult(removed, busy, remaining)


def enforce_limit(root: str | os.PathLike | None, keep: tuple[str, ...] = ()) -> CleanResult | None:
    """After a run: evict least-recently-used entries until the cache fits ``$DTVFX_CACHE_MAX``; never
    the entries in ``keep`` (the one just used) nor any in use. None when there is no limit or cache."""
    limit = size_limit()
    if root is None or limit is None:
        return None
    res = clean(root, max_size=limit, keep=keep)
    if res.removed:
        log.warning("cache %s over %s (%s): removed %d least recently used shot(s), %s freed", root, LIMIT_ENV,
                    human(limit), len(res.removed), human(res.freed))
    return res
