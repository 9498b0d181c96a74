"""The job API that host plugins (Nuke panel, Blender add-on) and the ``dtvfx`` CLI use.

It never imports torch (nor the tracker): submitting starts a separate worker process, and everything
else reads the job directory. Hosts that prefer not to import this package at all run the CLI::

    dtvfx submit JOB.yaml                  # last stdout line: the job directory
    dtvfx status JOBDIR --json             # the status dict below, one JSON object
    dtvfx cancel JOBDIR / dtvfx resume JOBDIR / dtvfx wait JOBDIR

In Python::

    from dino_tracker_vfx.jobs import client
    job = client.submit("shots/sh010.yaml")          # or a dict (+ base_dir=...)
    st = job.status()                                # {'state': 'running', 'progress': 0.41, 'eta_s': 812.0, ...}
    job.cancel(); job.resume(); job.wait(progress=fn); job.outputs()

``state`` is one of queued, running, done, failed, cancelled, or ``died`` (a worker killed without
recording it; resumable).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import UserError
from ..progress import ProgressFn
from . import runner
from . import status as _status
from .spec import JobSpec, load_spec, spec_from_dict


@dataclass(frozen=True)
class JobDir:
    """A job directory (``str(job)`` is its path)."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    def status(self) -> dict:
        return status(self.path)

    @property
    def state(self) -> str:
        return self.status()["state"]

    def cancel(self, timeout: float = 60.0, kill: bool = True) -> str:
        return cancel(self.path, timeout=timeout, kill=kill)

    def resume(self, force: bool = False) -> "JobDir":
        return resume(self.path, force=force)

    def wait(self, progress: ProgressFn | None = None, timeout: float | None = None, poll: float = 0.5) -> str:
        return wait(self.path, progress=progress, timeout=timeout, poll=poll)

    def outputs(self) -> list[dict]:
        return outputs(self.path)

    @property
    def log(self) -> Path:
        return self.path / "job.log"


def _spec_of(spec: str | os.PathLike | Mapping | JobSpec, base_dir: str | os.PathLike | None) -> tuple[JobSpec, Path | None, str | None]:
    if isinstance(spec, JobSpec):
        return spec, None, None
    if isinstance(spec, Mapping):
        return spec_from_dict(spec, base_dir=base_dir or Path.cwd(), where=str(spec.get("name") or "job spec"),
                              default_name="job"), None, None
    p = Path(spec)
    js = load_spec(p)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError:
        text = None
    return js, p, text


def prepare(spec: str | os.PathLike | Mapping | JobSpec, jobs_root: str | os.PathLike | None = None,
            job_dir: str | os.PathLike | None = None, base_dir: str | os.PathLike | None = None,
            executor: str = "local") -> JobDir:
    """Validate ``spec`` (the spec, then :func:`.preflight.check_job`: inputs, adapter options, writable
    folders, device) and create its job directory (state queued), without starting anything. A failing
    check raises a UserError and creates or changes nothing."""
    from .preflight import check_job

    js, path, text = _spec_of(spec, base_dir)
    d = Path(job_dir) if job_dir is not None else runner.job_dir_for(js, path, jobs_root)
    check_job(js, d, device=executor != "ray")
    return JobDir(runner.prepare_job(js, d, executor=executor, source_text=text))


def submit(spec: str | os.PathLike | Mapping | JobSpec, jobs_root: str | os.PathLike | None = None,
           job_dir: str | os.PathLike | None = None, base_dir: str | os.PathLike | None = None,
           env: dict | None = None) -> JobDir:
    """Validate the spec, create the job directory and start a detached background worker."""
    job = prepare(spec, jobs_root=jobs_root, job_dir=job_dir, base_dir=base_dir, executor="local")
    runner.spawn_worker(job.path, env=env)
    return job


def status(job_dir: str | os.PathLike) -> dict:
    """The job's status dict with ``state`` as reported (``died`` for a dead worker) and
    ``recorded_state`` as written by the worker."""
    p = Path(job_dir).resolve()
    st = _status.read_status(p)
    st["recorded_state"] = st.get("state")
    st["state"] = _status.effective_state(p, st)
    if st["state"] == "died":
        st["message"] = (f"worker pid {st.get('pid')} on {st.get('host')} is gone without finishing; "
                         f"'dtvfx resume {p}' continues from the last checkpoint")
    st["resumable"] = st["state"] in ("failed", "cancelled", "died")
    return st


def cancel(job_dir: str | os.PathLike, timeout: float = 60.0, kill: bool = True) -> str:
    return runner.cancel_job(job_dir, timeout=timeout, kill=kill)


def resume(job_dir: str | os.PathLike, force: bool = False, env: dict | None = None) -> JobDir:
    """Restart a failed / cancelled / died job in a detached worker (from its cache and last checkpoint)."""
    p = Path(job_dir).resolve()
    runner.reset_for_resume(p, executor="local", force=force)
    runner.spawn_worker(p, env=env)
    return JobDir(p)


def wait(job_dir: str | os.PathLike, progress: ProgressFn | None = None, timeout: float | None = None,
         poll: float = 0.5) -> str:
    return runner.wait_job(job_dir, progress=progress, timeout=timeout, poll=poll)


def outputs(job_dir: str | os.PathLike) -> list[dict]:
    """``[{format, path, written, exists}]`` of the job (``exists``: the file is on disk now)."""
    st = _status.read_status(job_dir)
    return [{**o, "exists": Path(o["path"]).is_file()} for o in st.get("outputs") or []]


def run(spec: str | os.PathLike | Mapping | JobSpec | None = None, job_dir: str | os.PathLike | None = None,
        jobs_root: str | os.PathLike | None = None, progress: ProgressFn | None = None,
        executor: str = "foreground", base_dir: str | os.PathLike | None = None) -> dict:
    """Run a job in this process (``dtvfx run``; imports the tracker). ``job_dir`` alone: run that
    existing job again (it resumes from its cache and checkpoints)."""
    from .worker import run_job

    if spec is None and job_dir is None:
        raise UserError("give a job spec or a job directory")
    if spec is not None:
        d = prepare(spec, jobs_root=jobs_root, job_dir=job_dir, base_dir=base_dir, executor=executor).path
    else:
        d = Path(job_dir).resolve()
        st = _status.read_status(d)
        if _status.effective_state(d, st) != "queued":
            runner.reset_for_resume(d, executor=executor, force=True)
    return run_job(d, progress=progress, executor=executor)


def is_job_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / _status.STATUS_FILE).is_file()


__all__ = ["JobDir", "prepare", "submit", "status", "cancel", "resume", "wait", "outputs", "run", "is_job_dir"]
