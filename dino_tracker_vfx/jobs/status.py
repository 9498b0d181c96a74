"""``status.json`` of a job directory: the one file hosts, ``dtvfx status`` and ``dtvfx wait`` read.

It is always rewritten whole through :func:`dino_tracker_vfx.atomic.atomic_path` (temp file + fsync +
``os.replace``), so a reader polling it never sees a half-written file. Fields::

    format, version           "dtvfx.job.status", 1
    job, job_dir, spec, log   job name, absolute job directory, spec copy, log file
    state                     queued | running | done | failed | cancelled   (written by the worker)
    stage                     the current stage (dino_tracker_vfx/stages.py: load, flow, tracklets,
                              features, ..., train, ..., outputs; docs/jobs.md lists them)
    stage_done, stage_total   progress inside the stage
    progress                  0..1 over the whole job
    iteration, eta_s          training iteration; estimated seconds left in the stage (null = unknown)
    message                   last progress message
    pid, host, executor       the worker (executor: local, foreground, batch, ray)
    attempt                   1 for the first run, +1 per resume
    error, error_kind         one-line reason and its type when failed (e.g. ShotError, ENOSPC, Killed)
    retryable                 false for a failure a re-run would hit again (bad input, unwritable path)
    reused                    true when this attempt reused the saved tracks.json (nothing was tracked)
    created, started, updated, finished   ISO 8601 UTC
    train_started_at          iteration this attempt's training started at (0, or the checkpoint resumed)
    outputs                   [{format, path, written}]
    tracks                    the job's core track file once written

Readers use :func:`effective_state`: a job whose status says running (or queued after a local spawn)
while no process holds the job's worker lock has died (SIGKILL, OOM, reboot) and reports ``died``.
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any

from .. import atomic
from ..progress import Progress
from ..stages import job_fraction
from . import lock as _lock
from .stamp import hostname, now_iso, parse_iso

STATUS_FILE = "status.json"
FORMAT = "dtvfx.job.status"
STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL = ("done", "failed", "cancelled")
REPORTED = STATES + ("died",)



def status_path(job_dir: str | os.PathLike) -> Path:
    return Path(job_dir) / STATUS_FILE


def new_status(job_dir: Path, name: str, outputs: list[dict], executor: str = "local",
               attempt: int = 1, created: str | None = None) -> dict:
    t = now_iso()
    return {"format": FORMAT, "version": 1, "job": name, "job_dir": str(Path(job_dir).resolve()),
            "spec": "job.yaml", "log": "job.log", "state": "queued", "stage": None, "stage_done": 0,
            "stage_total": 0, "progress": 0.0, "iteration": None, "eta_s": None, "message": "",
            "pid": None, "host": None, "executor": executor, "attempt": attempt, "error": None,
            "error_kind": None, "created": created or t, "started": None, "updated": t, "finished": None,
            "outputs": outputs, "tracks": None}


def read_status(job_dir: str | os.PathLike, retries: int = 20) -> dict:
    """Read status.json. A reader never sees a torn file (atomic replace); the retries only cover
    shared file systems that briefly show no file during a rename."""
    if Path(job_dir).is_file():
        from ..errors import UserError

        raise UserError("a file, not a job directory (give the folder 'dtvfx submit' made)", where=str(job_dir))
    p = status_path(job_dir)
    last: Exception | None = None
    for _ in range(max(1, retries)):
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
            if isinstance(d, dict) and d.get("format") == FORMAT:
                return d
            last = ValueError("not a dtvfx job status file")
            break
        except FileNotFoundError as e:
            last = e
            if not Path(job_dir).is_dir():
                break
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            last = e
        time.sleep(0.05)
    from ..errors import UserError

    if isinstance(last, FileNotFoundError):
        raise UserError("not a job directory (no status.json)", where=str(job_dir))
    raise UserError(f"unreadable status.json ({last})", where=str(job_dir))


def write_status(job_dir: str | os.PathLike, st: dict) -> None:
    st["updated"] = now_iso()
    atomic.write_json(status_path(job_dir), st)


def pid_alive(pid: int | None) -> bool:
    """A live, non-zombie process on this host."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def effective_state(job_dir: str | os.PathLike, st: dict | None = None) -> str:
    """The state to report: ``st['state']``, or ``died`` for a running/queued job nobody works on."""
    st = st if st is not None else read_status(job_dir)
    state = st.get("state")
    if state not in ("running", "queued"):
        return state
    if _lock.is_held(Path(job_dir) / _lock.JOB_LOCK):
        return state
    if state == "running":
        # re-read: the worker may have finished between our read and the lock probe
        fresh = read_status(job_dir)
        if fresh.get("state") != "running":
            return fresh.get("state")
        return "died"
    spawn = read_spawn(job_dir)
    if spawn.get("pid") and spawn.get("host") == hostname() and not pid_alive(spawn["pid"]):
        fresh = read_status(job_dir)
        if fresh.get("state") == "queued" and not _lock.is_held(Path(job_dir) / _lock.JOB_LOCK):
            return "died"
        return fresh.get("state")
    return state


SPAWN_FILE = "spawn.json"


def read_spawn(job_dir: str | os.PathLike) -> dict:
    """``{pid, host, time}`` of the detached worker last started for the job (written by the spawner,
    never by the worker, so the two never race on status.json)."""
    try:
        d = json.loads((Path(job_dir) / SPAWN_FILE).read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


class StatusWriter:
    """The worker's view of status.json: every change rewritten atomically; progress updates at most
    every ``min_interval`` seconds (stage changes and final states always). A full disk while writing
    frees the job's reserve file once so the failure itself can still be recorded."""

    def __init__(self, job_dir: Path, st: dict, min_interval: float = 0.5):
        self.job_dir = Path(job_dir)
        self.st = st
        self.min_interval = min_interval
        self._last = 0.0
        self._train_seen = False
        self.st["train_started_at"] = None

    def set(self, **fields: Any) -> None:
        self.st.update(fields)
        self.flush()

    def flush(self) -> None:
        try:
            write_status(self.job_dir, self.st)
        except OSError as e:
            if e.errno != errno.ENOSPC or not release_reserve(self.job_dir):
                raise
            write_status(self.job_dir, self.st)
        self._last = time.monotonic()

    def progress(self, p: Progress) -> None:
        new_stage = p.stage != self.st.get("stage")
        if p.stage == "train" and not self._train_seen:
            # the tracker's first train event is where this attempt starts: 0, or the resumed checkpoint
            self._train_seen = True
            self.st["train_started_at"] = int(p.iteration if p.iteration is not None else p.done)
            new_stage = True
        overall = job_fraction(p.stage, p.fraction)
        self.st.update(stage=p.stage, stage_done=int(p.done), stage_total=int(p.total),
                       iteration=p.iteration, eta_s=None if p.eta_s is None else round(float(p.eta_s), 1),
                       message=p.message or "")
        if overall >= 0:
            self.st["progress"] = round(max(float(self.st.get("progress") or 0.0), overall), 4)
        if new_stage or p.done >= p.total or time.monotonic() - self._last >= self.min_interval:
            self.flush()


RESERVE_FILE = ".reserve"
RESERVE_BYTES = 256 * 1024


def make_reserve(job_dir: Path) -> None:
    """Keep a little disk space in the job folder so a job that hits a full disk can still say so."""
    p = Path(job_dir) / RESERVE_FILE
    if p.is_file() and p.stat().st_size >= RESERVE_BYTES:
        return
    try:
        with open(p, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)
    except OSError:
        p.unlink(missing_ok=True)


def release_reserve(job_dir: Path) -> bool:
    p = Path(job_dir) / RESERVE_FILE
    if p.exists():
        p.unlink()
        return True
    return False


__all__ = ["STATES", "FINAL", "REPORTED", "read_status", "write_status", "effective_state", "StatusWriter",
           "new_status", "now_iso", "parse_iso", "pid_alive", "hostname"]
