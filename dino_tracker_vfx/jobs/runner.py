"""Job directories and their lifecycle: prepare, start a detached worker, cancel, resume, wait.

A job directory (default ``<spec dir>/<spec stem>.dtvfx/``) holds::

    job.yaml        the spec, copied with every path made absolute (the worker reads only this)
    status.json     see :mod:`.status` (atomic rewrites)
    job.log         the worker's log (a detached worker's stdout/stderr too)
    spawn.json      pid/host of the last detached worker started for it
    cancel          present while a cancel is requested
    .worker.lock    flock held by the running worker
    cache/          tracker stage cache + checkpoints (unless the spec names a shared ``cache:``)
    tracks.json     the result in core form (+ tracks.key: the inputs it was made from)
    outputs/        outputs without an explicit path

No torch import here: host plugins drive jobs through :mod:`.client`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

import yaml

from .. import atomic
from ..errors import UserError
from ..progress import Progress, ProgressFn
from ..stages import NAMES
from . import lock as _lock
from . import status as _status
from . import tracker_entry
from .spec import JobSpec
from .worker import CANCEL_FILE, LOG_FILE, SPEC_COPY

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def job_dir_for(spec: JobSpec, spec_path: str | os.PathLike | None = None,
                jobs_root: str | os.PathLike | None = None) -> Path:
    """``<jobs_root>/<name>`` or ``<spec dir>/<spec stem>.dtvfx`` (``<cwd>/<name>.dtvfx`` for a dict)."""
    if jobs_root is not None:
        return (Path(jobs_root) / spec.name).resolve()
    if spec_path is not None:
        p = Path(spec_path).resolve()
        stem = p.name.rsplit(".", 1)[0] if "." in p.name else p.name
        if stem.endswith(".dtvfx"):  # sh010.dtvfx.yaml (as the Nuke panel names specs) -> sh010.dtvfx/
            stem = stem[: -len(".dtvfx")]
        return p.parent / f"{stem}.dtvfx"
    return (Path.cwd() / f"{spec.name}.dtvfx").resolve()


def is_active(job_dir: Path) -> str | None:
    """The live state (running / queued with a live spawner) of an existing job, else None."""
    if not (job_dir / _status.STATUS_FILE).is_file():
        return None
    st = _status.read_status(job_dir)
    eff = _status.effective_state(job_dir, st)
    if eff == "running":
        return eff
    if eff == "queued":
        spawn = _status.read_spawn(job_dir)
        if _lock.is_held(job_dir / _lock.JOB_LOCK) or (
                spawn.get("host") == _status.hostname() and _status.pid_alive(spawn.get("pid"))):
            return eff
    return None


def _describe_worker(job_dir: Path, st: dict) -> str:
    h = _lock.read_holder(job_dir / _lock.JOB_LOCK)
    if h:
        return _lock.describe(h)
    return f"pid {st.get('pid')} on host {st.get('host')}"


def prepare_job(spec: JobSpec, job_dir: str | os.PathLike, executor: str = "local",
                source_text: str | None = None) -> Path:
    """Create/refresh a job directory for ``spec`` (state ``queued``). An existing job is reused (its cache
    and a still-valid tracks.json are kept); a job that is running refuses."""
    job_dir = Path(job_dir).resolve()
    job_dir.mkdir(parents=True, exist_ok=True)
    old: dict | None = None
    if (job_dir / _status.STATUS_FILE).is_file():
        try:
            old = _status.read_status(job_dir)
        except UserError:
            old = None
        active = is_active(job_dir) if old else None
        if active:
            raise UserError(f"job is {active} ({_describe_worker(job_dir, old)}); cancel it or wait for it",
                            where=str(job_dir))
    from .outputs import default_path

    d = spec.to_dict()
    header = f"# dtvfx job spec: copied from {spec.source} at {_status.now_iso()}; paths made absolute\n"
    atomic.write_text(job_dir / SPEC_COPY, header + yaml.safe_dump(d, sort_keys=False))
    if source_text is not None:
        atomic.write_text(job_dir / "job.source.yaml", source_text)
    (job_dir / CANCEL_FILE).unlink(missing_ok=True)
    (job_dir / _status.SPAWN_FILE).unlink(missing_ok=True)
    outputs = [{"format": o.format, "path": str(Path(o.path) if o.path else default_path(o.format, job_dir, spec.name)),
                "written": False} for o in spec.outputs]
    st = _status.new_status(job_dir, spec.name, outputs, executor=executor,
                            attempt=(int(old.get("attempt") or 0) + 1) if old else 1,
                            created=old.get("created") if old else None)
    _status.write_status(job_dir, st)
    return job_dir


def reset_for_resume(job_dir: str | os.PathLike, executor: str = "local", force: bool = False) -> dict:
    """Make a failed / cancelled / died job ``queued`` again (cache, checkpoints and tracks are kept)."""
    job_dir = Path(job_dir).resolve()
    st = _status.read_status(job_dir)
    active = is_active(job_dir)
    if active:
        raise UserError(f"job is {active} ({_describe_worker(job_dir, st)}); nothing to resume", where=str(job_dir))
    eff = _status.effective_state(job_dir, st)
    if eff == "done" and not force:
        raise UserError("job is done; nothing to resume (--force runs it again from its cache)", where=str(job_dir))
    (job_dir / CANCEL_FILE).unlink(missing_ok=True)
    (job_dir / _status.SPAWN_FILE).unlink(missing_ok=True)
    st.update(state="queued", error=None, error_kind=None, retryable=None, executor=executor,
              attempt=int(st.get("attempt") or 0) + 1, finished=None, pid=None,
              message=f"resuming after {eff}")
    for o in st.get("outputs") or []:
        o["written"] = False
    _status.write_status(job_dir, st)
    return st


def worker_env(extra: dict | None = None) -> dict:
    env = os.environ.copy()
    pp = env.get("PYTHONPATH", "")
    if PACKAGE_PARENT not in pp.split(os.pathsep):
        env["PYTHONPATH"] = PACKAGE_PARENT + (os.pathsep + pp if pp else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def worker_command(job_dir: Path, executor: str) -> list[str]:
    return tracker_entry.worker_argv([str(job_dir), "--executor", executor])


def spawn_worker(job_dir: str | os.PathLike, env: dict | None = None) -> int:
    """Start a detached worker for a queued job: a new session (no controlling terminal, survives the
    terminal closing), stdin from /dev/null, stdout/stderr appended to job.log. Returns its pid."""
    job_dir = Path(job_dir).resolve()
    with open(job_dir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(worker_command(job_dir, "local"), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                                cwd=str(job_dir), env=worker_env(env))
    atomic.write_json(job_dir / _status.SPAWN_FILE,
                      {"pid": proc.pid, "host": _status.hostname(), "time": _status.now_iso()})
    # reap it when it ends if this process lives on (a host application), so it never lingers as a zombie
    threading.Thread(target=proc.wait, name=f"dtvfx-reap-{proc.pid}", daemon=True).start()
    return proc.pid


def request_cancel(job_dir: Path, who: str = "") -> None:
    atomic.write_text(job_dir / CANCEL_FILE,
                      f"cancelled by {who or 'user'} (pid {os.getpid()} on {_status.hostname()}) at "
                      f"{_status.now_iso()}\n")


def cancel_job(job_dir: str | os.PathLike, timeout: float = 60.0, kill: bool = True,
               on_wait: Callable[[str], None] | None = None) -> str:
    """Ask the worker to stop (it saves a checkpoint first); after ``timeout`` s, SIGKILL it if it runs on
    this host. Returns the final state."""
    job_dir = Path(job_dir).resolve()
    st = _status.read_status(job_dir)
    eff = _status.effective_state(job_dir, st)
    if eff in _status.FINAL:
        return eff
    request_cancel(job_dir)
    if eff == "died" or (eff == "queued" and not is_active(job_dir)):
        if not _lock.is_held(job_dir / _lock.JOB_LOCK):
            _mark(job_dir, "cancelled", f"cancelled ({'worker had died' if eff == 'died' else 'before it started'})")
            return "cancelled"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = _status.read_status(job_dir)
        eff = _status.effective_state(job_dir, st)
        if eff in _status.FINAL:
            return eff
        if eff == "died":
            _mark(job_dir, "cancelled", "cancelled (worker ended without recording it)")
            return "cancelled"
        time.sleep(0.2)
    if not kill:
        return _status.effective_state(job_dir)
    holder = _lock.read_holder(job_dir / _lock.JOB_LOCK) or {}
    pid, host = holder.get("pid") or st.get("pid"), holder.get("host") or st.get("host")
    if host != _status.hostname():
        raise UserError(f"worker pid {pid} on host {host} did not stop within {timeout:g} s; kill it there "
                        f"(it resumes from its last checkpoint)", where=str(job_dir))
    if pid and _lock.is_held(job_dir / _lock.JOB_LOCK) and _status.pid_alive(pid):
        if on_wait:
            on_wait(f"worker pid {pid} did not stop within {timeout:g} s: killing it")
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
        t1 = time.monotonic()
        while _lock.is_held(job_dir / _lock.JOB_LOCK) and time.monotonic() - t1 < 10:
            time.sleep(0.1)
    st = _status.read_status(job_dir)
    if st.get("state") not in _status.FINAL:
        _mark(job_dir, "cancelled", f"killed after not stopping within {timeout:g} s (resumable)")
        return "cancelled"
    return st["state"]


def _mark(job_dir: Path, state: str, message: str) -> None:
    st = _status.read_status(job_dir)
    st.update(state=state, message=message, finished=_status.now_iso(), eta_s=None,
              error=message if state == "failed" else None)
    _status.write_status(job_dir, st)


def status_progress(st: dict) -> Progress:
    """A job's status as a :class:`Progress` (for ConsoleBar and host progress bars): the stage's own counter
    (``train`` 166/300), with the share of the whole job first in the message (``job 45%``; the overall
    0..1 value stays ``st['progress']``). A stage outside ``stages.NAMES`` (an old status file) shows as
    ``queued``."""
    stage = st.get("stage")
    job = f"job {100 * float(st.get('progress') or 0.0):.0f}%"
    message = st.get("message") or ""
    return Progress(stage=stage if stage in NAMES else "queued", done=int(st.get("stage_done") or 0),
                    total=int(st.get("stage_total") or 0), iteration=st.get("iteration"), eta_s=st.get("eta_s"),
                    message=f"{job} {message}".strip())


def wait_job(job_dir: str | os.PathLike, progress: ProgressFn | None = None, timeout: float | None = None,
             poll: float = 0.5) -> str:
    """Poll until the job is done/failed/cancelled or has died; returns that state
    (``timeout`` passed: the current state)."""
    job_dir = Path(job_dir).resolve()
    t0 = time.monotonic()
    while True:
        st = _status.read_status(job_dir)
        eff = _status.effective_state(job_dir, st)
        if progress is not None and eff not in ("queued",):
            progress(status_progress(st))
        if eff in _status.FINAL or eff == "died":
            return eff
        if timeout is not None and time.monotonic() - t0 >= timeout:
            return eff
        time.sleep(poll)
