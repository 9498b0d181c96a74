"""Exclusive locks that survive a crashed holder: ``fcntl.flock`` on a lock file.

The kernel drops an flock when its holder exits in any way (SIGKILL, OOM kill, crash), so a lock is never
left stale; on NFSv4 Linux maps flock onto POSIX byte-range locks, which the server also releases for a
dead client. Who holds a lock (pid, host, job, since) is written atomically to a ``<lock>.holder.json``
beside it, for messages only: the flock is the truth.

Two locks are used by jobs:

* the **worker lock** ``<job dir>/.worker.lock``: held by the process running the job; no lock holder while
  status.json says running means the worker died (see :func:`.status.effective_state`).
* the **shot lock** ``<cache dir>/shot-<key>.lock``: keyed by the shot as the tracker cache keys it (resolved frames), so two workers
  never train the same shot into the same cache at once (two jobs sharing ``cache:`` for one shot, or a
  job resumed while its old worker still runs). The second one waits, showing who holds it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

from .. import atomic
from ..errors import UserError
from .stamp import hostname, now_iso

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows hosts only read job folders
    fcntl = None

JOB_LOCK = ".worker.lock"


class LockBusy(UserError):
    """The lock is held by another live process."""


class FileLock:
    def __init__(self, path: str | os.PathLike, what: str = "lock"):
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    @property
    def holder_path(self) -> Path:
        return self.path.with_name(self.path.name + ".holder.json")

    def try_acquire(self, info: dict | None = None) -> bool:
        if fcntl is None:  # pragma: no cover
            raise UserError("job workers need POSIX file locks (Linux/macOS)")
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        holder = {"pid": os.getpid(), "host": hostname(), "since": now_iso(), **(info or {})}
        try:
            atomic.write_json(self.holder_path, holder)
        except OSError:
            pass  # messages only
        return True

    def acquire(self, info: dict | None = None, timeout: float | None = None,
                cancel: Callable[[], bool] | None = None, on_wait: Callable[[dict | None], None] | None = None,
                poll: float = 0.2) -> None:
        """Wait for the lock (``timeout`` None = forever). ``on_wait(holder)`` is called once when it has
        to wait; ``cancel()`` returning True stops waiting (:class:`~dino_tracker_vfx.errors.Cancelled`)."""
        from ..errors import Cancelled

        t0 = time.monotonic()
        told = False
        while not self.try_acquire(info):
            if cancel is not None and cancel():
                raise Cancelled(f"cancelled while waiting for the {self.what}")
            if not told and on_wait is not None:
                on_wait(self.holder())
                told = True
            if timeout is not None and time.monotonic() - t0 >= timeout:
                raise LockBusy(f"{self.what} is held by {describe(self.holder())}", where=str(self.path))
            time.sleep(poll)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict | None:
        return read_holder(self.path)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def read_holder(lock_path: str | os.PathLike) -> dict | None:
    p = Path(lock_path)
    try:
        d = json.loads(p.with_name(p.name + ".holder.json").read_text())
        return d if isinstance(d, dict) else None
    except (OSError, ValueError):
        return None


def describe(holder: dict | None) -> str:
    if not holder:
        return "another process"
    job = f", job {holder['job']}" if holder.get("job") else ""
    return f"pid {holder.get('pid')} on host {holder.get('host')}{job} since {holder.get('since')}"


def is_held(lock_path: str | os.PathLike) -> bool:
    """True while some live process holds the lock (probe with a shared non-blocking lock)."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our shared lock if we got it
    return False


def shot_lock(cache_dir: str | os.PathLike, shot) -> FileLock:
    """The lock of an opened ``shot`` inside ``cache_dir``, keyed exactly as the tracker cache keys the shot's
    folder (:func:`dino_tracker_vfx.tracker.cache.shot_key` of its resolved frames and files), so
    ``frames: 1001-1006`` and no ``frames:`` on a 6-frame shot are one lock, as they are one cache folder."""
    from ..tracker.cache import shot_identity, shot_key

    return FileLock(Path(cache_dir) / f"shot-{shot_key(shot_identity(shot))}.lock", what="shot lock")


def job_lock(job_dir: str | os.PathLike) -> FileLock:
    return FileLock(Path(job_dir) / JOB_LOCK, what="job")
