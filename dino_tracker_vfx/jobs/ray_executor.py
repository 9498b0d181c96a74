"""Run batch jobs on a Ray cluster: one shot per Ray task, nothing home-made.

* The driver (``dtvfx batch --executor ray``) validates the batch and prepares every job directory (on
  storage every node sees), then submits one task per job with its resources declared: ``num_gpus=1``
  for a job whose device is cuda (``resources:`` in the spec or ``--num-gpus`` override), ``num_cpus``
  otherwise (default 1, ``--num-cpus``). Ray places the tasks; results come back through ``ray.wait``.
* The task runs :func:`.worker.run_job` - the same code path as ``dtvfx run`` - on the job directory.
  Progress and the final state are in the job's ``status.json`` as for any job.
* Retries are Ray's: ``max_retries`` re-runs a task whose worker process or node died, and
  ``retry_exceptions=[RetryableJobError]`` re-runs one that failed with an unexpected error (not a bad
  input: those fail at once). Every retry resumes from the cached stages and the last checkpoint.
* ``address``: ``None`` starts a local Ray instance (or joins ``$RAY_ADDRESS``), ``"auto"`` joins the
  cluster running on this node, ``"ray://head:10001"`` connects through Ray Client.

``ray`` is imported only here, only when used (``pip install ray``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ..errors import ConfigError, UserError
from ..progress import ProgressFn
from . import status as _status
from . import tracker_entry
from .batch import BatchJob, collect, overall


class RetryableJobError(RuntimeError):
    """A job failed for a reason a re-run may not hit (crash, CUDA error, lost file system, ...)."""


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs the ray package (pip install 'ray>=2.9')") from None
    return ray


def run_job_task(job_dir: str, env: dict | None = None, stand_in: str | None = None) -> dict:
    """The body of one Ray task (runs on a Ray worker); ``stand_in``: the tracker stand-in registered in
    the submitting process (:mod:`.tracker_entry`), None for the built-in tracker."""
    env = dict(env or {})
    os.environ.update(env)
    for entry in reversed(env.get("PYTHONPATH", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)  # this process is already running: PYTHONPATH alone is too late
    from . import runner
    from .worker import run_job

    tracker_entry.use(stand_in)  # this Ray worker process may have run another driver's task before

    st = _status.read_status(job_dir)
    if st.get("state") != "queued":  # a retry after a crash or a retryable failure
        runner.reset_for_resume(job_dir, executor="ray", force=True)
    st = run_job(job_dir, executor="ray")
    if st.get("state") == "failed" and st.get("retryable"):
        raise RetryableJobError(st.get("error") or "job failed")
    return st


def task_options(spec, num_cpus: float | None, num_gpus: float | None, retries: int | None) -> dict[str, Any]:
    res = dict(spec.resources or {})
    gpus = num_gpus if num_gpus is not None else res.get("num_gpus", 1 if spec.wants_gpu() else 0)
    cpus = num_cpus if num_cpus is not None else res.get("num_cpus", 1)
    opts: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus,
                            "max_retries": spec.retries if retries is None else retries,
                            "retry_exceptions": [RetryableJobError], "name": f"dtvfx:{spec.name}"}
    if res.get("memory"):
        opts["memory"] = res["memory"]
    return opts


def run_ray(jobs: list[BatchJob], address: str | None = None, num_cpus: float | None = None,
            num_gpus: float | None = None, retries: int | None = None, progress: ProgressFn | None = None,
            env: dict | None = None, init_kwargs: dict | None = None, poll: float = 0.5) -> list[BatchJob]:
    """Run prepared jobs as Ray tasks; fills each BatchJob's state/reason. Connects to (or starts) Ray
    unless it is already initialised, and disconnects again if it connected."""
    ray = _ray()
    connected_here = False
    if not ray.is_initialized():
        kw = {"include_dashboard": False, "logging_level": "warning", "log_to_driver": False}
        kw.update(init_kwargs or {})
        try:
            ray.init(address=address, **kw)
        except ConnectionError as e:
            raise UserError(f"cannot connect to the Ray cluster at {address or '$RAY_ADDRESS'}: {e}") from None
        connected_here = True
    try:
        fn = ray.remote(run_job_task)
        stand_in = tracker_entry.stand_in()
        refs: dict[Any, BatchJob] = {}
        for j in jobs:
            if j.job_dir is None or j.error is not None:
                continue
            opts = task_options(j.spec, num_cpus, num_gpus, retries)
            refs[fn.options(**opts).remote(str(j.job_dir), env, stand_in)] = j
            j.state = "queued"
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=poll)
            for ref in done:
                j = refs[ref]
                try:
                    ray.get(ref)
                    collect(j)
                except Exception as e:  # noqa: BLE001 - RayTaskError, WorkerCrashedError, node loss...
                    collect(j)
                    if j.state == "done":
                        continue
                    j.state = "failed"
                    if not j.reason or j.reason.startswith("worker ended"):
                        j.reason = _ray_reason(e)
            if progress is not None:
                live = {j.name: _progress_of(j) for r, j in refs.items() if r in pending}
                progress(overall(jobs, live))
        if progress is not None:
            progress(overall(jobs))
    finally:
        if connected_here:
            ray.shutdown()
    return jobs


def _progress_of(j: BatchJob) -> float:
    try:
        return float(_status.read_status(j.job_dir, retries=2).get("progress") or 0.0)
    except UserError:
        return 0.0


def _ray_reason(e: Exception) -> str:
    cause = getattr(e, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}".splitlines()[0]
    return " ".join(f"{type(e).__name__}: {e}".split())[:300]


__all__ = ["run_ray", "run_job_task", "task_options", "RetryableJobError"]
