"""Batches: many jobs from one YAML file, run locally (one at a time, or N in parallel with one GPU job
at a time by default) or on Ray (:mod:`.ray_executor`).

Batch file forms::

    # 1. a list of job specs (paths to spec files and/or inline specs)
    jobs:
      - sh010.yaml
      - {name: sh020, shot: plates/sh020.####.exr, queries: sh020.csv, outputs: [out/sh020.nk]}

    # 2. a template + a list of shots (each entry is merged over the template; "{name}" and any other
    #    "{field}" of the entry are filled into the template's strings)
    template:
      preset: balanced
      device: cuda
      queries: "points/{name}.csv"
      outputs: [{format: nuke, path: "out/{name}_tracks.nk"}]
    shots:
      - {name: sh010, shot: "plates/sh010/sh010.####.exr"}
      - {name: sh020, shot: "plates/sh020/sh020.####.exr", frames: 1001-1080}

A bare YAML list is form 1. Relative paths resolve against the batch file's folder. A job whose spec is
invalid fails alone (its reason is in the summary); the others run. Job directories:
``<jobs root>/<job name>`` (default jobs root: ``<batch dir>/<batch stem>.dtvfx``). The jobs root also
holds ``batch.json`` (every job in batch order, with the reason of those refused before queueing, which
have no job directory); ``dtvfx status JOBS_ROOT`` reads it (:func:`batch_status`).
"""

from __future__ import annotations

import json
import os
import signal
import string
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import atomic
from ..errors import ConfigError, UserError
from ..progress import Progress, ProgressFn
from . import runner
from . import status as _status
from .spec import JobSpec, _stem, deep_merge, load_spec, read_yaml, spec_from_dict
from .worker import LOG_FILE


@dataclass
class BatchJob:
    name: str
    spec: JobSpec | None = None
    error: str | None = None  # invalid spec / could not prepare
    job_dir: Path | None = None
    state: str = "queued"
    reason: str | None = None
    attempts: int = 0  # runs of the job in this batch (a Ray retry adds one)
    reused: bool = False  # its saved tracks.json was up to date: nothing was tracked
    outputs: list = field(default_factory=list)
    first_attempt: int = 0  # the job's status.json attempt when this batch prepared it

    @property
    def ok(self) -> bool:
        return self.state == "done"


def load_batch(path: str | os.PathLike) -> list[BatchJob]:
    """Read a batch file; every job is validated on its own (an invalid one carries ``error``)."""
    p = Path(path)
    where = str(path)
    if not p.is_file():
        raise ConfigError("batch file not found", where=where)
    d = read_yaml(p)
    base = p.resolve().parent
    entries: list[tuple[str, Any, str, Mapping | None]] = []  # (default name, raw entry, where, template)
    if isinstance(d, list):
        d = {"jobs": d}
    if not isinstance(d, Mapping):
        raise ConfigError("expected 'jobs: [...]', 'template: {...}' + 'shots: [...]', or a list of specs", where=where)
    bad = [k for k in d if k not in ("jobs", "template", "shots")]
    if bad:
        raise ConfigError(f"{bad[0]}: unknown field (known: jobs, template, shots)", where=where)
    if "jobs" in d:
        if not isinstance(d["jobs"], list):
            raise ConfigError("jobs: expected a list of spec paths or specs", where=where)
        for i, e in enumerate(d["jobs"]):
            entries.append((f"job{i + 1:02d}", e, f"jobs[{i}]", None))
    if "shots" in d or "template" in d:
        tpl = d.get("template") or {}
        shots = d.get("shots")
        if not isinstance(tpl, Mapping):
            raise ConfigError("template: expected a mapping of job fields", where=where)
        if not isinstance(shots, list) or not shots:
            raise ConfigError("shots: expected a non-empty list of shots (with a template)", where=where)
        for i, s in enumerate(shots):
            if isinstance(s, str):
                s = {"shot": s}
            entries.append((f"shot{i + 1:02d}", s, f"shots[{i}]", tpl))
    if not entries:
        raise ConfigError("no jobs in the batch", where=where)

    jobs: list[BatchJob] = []
    for default_name, e, loc, tpl in entries:
        try:
            if tpl is not None:
                if not isinstance(e, Mapping):
                    raise ConfigError(f"{loc}: expected a shot path or a mapping of job fields, got {e!r}",
                                      where=where)
                e = _apply_template(tpl, e, f"{where}: {loc}")
            if isinstance(e, (str, os.PathLike)):
                sp = Path(os.path.expanduser(str(e)))
                sp = sp if sp.is_absolute() else base / sp
                if not sp.is_file():
                    raise ConfigError(f"{loc}: job spec not found: {sp}", where=where)
                js = load_spec(sp)
            elif isinstance(e, Mapping):
                name = e.get("name") or (_stem(Path(str(e["shot"]))).split(".")[0] if isinstance(e.get("shot"), str)
                                         else default_name)
                js = spec_from_dict(e, base_dir=base, where=f"{where}: {loc}", default_name=_safe(name, default_name))
            else:
                raise ConfigError(f"{loc}: expected a spec path or a mapping, got {e!r}", where=where)
            jobs.append(BatchJob(js.name, js))
        except UserError as err:
            name = e.get("name") if isinstance(e, Mapping) and isinstance(e.get("name"), str) else (
                _stem(Path(str(e))) if isinstance(e, str) else default_name)
            jobs.append(BatchJob(str(name), None, error=str(err), state="failed", reason=str(err)))
    names = [j.name for j in jobs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"two jobs are named {dup[0]!r}; give each a unique name:", where=where)
    return jobs


def _safe(name: str, fallback: str) -> str:
    s = "".join(c if c.isalnum() or c in "_.-" else "_" for c in str(name))
    return s or fallback


def _apply_template(tpl: Mapping, entry: Mapping, where: str) -> dict:
    values = {k: v for k, v in entry.items() if isinstance(v, (str, int, float))}
    if "name" not in values and isinstance(entry.get("shot"), str):
        values["name"] = _stem(Path(entry["shot"])).split(".")[0]

    def fill(v: Any) -> Any:
        if isinstance(v, str):
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(v) if f]
            except ValueError:
                return v
            missing = [f for f in fields if f not in values]
            if missing:
                raise ConfigError(f"template uses {{{missing[0]}}} but the shot has no field {missing[0]!r}",
                                  where=where)
            return v.format(**values)
        if isinstance(v, Mapping):
            return {k: fill(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fill(x) for x in v]
        return v

    merged = deep_merge(fill(dict(tpl)), entry)
    if "name" not in merged and "name" in values:
        merged["name"] = values["name"]
    return merged


def default_jobs_root(batch_path: str | os.PathLike) -> Path:
    p = Path(batch_path).resolve()
    return p.parent / f"{_stem(p)}.dtvfx"


def prepare_batch(jobs: list[BatchJob], jobs_root: Path, executor: str) -> None:
    """Check every valid job (:func:`.preflight.check_job`; Ray: not the device, the driver may have no GPU)
    and prepare its job directory; a job failing its checks fails alone, without a job directory."""
    from .preflight import check_job

    Path(jobs_root).mkdir(parents=True, exist_ok=True)
    for j in jobs:
        if j.spec is None:
            continue
        try:
            check_job(j.spec, Path(jobs_root) / j.name, device=executor != "ray")
            j.job_dir = runner.prepare_job(j.spec, Path(jobs_root) / j.name, executor=executor)
            j.first_attempt = int(_status.read_status(j.job_dir).get("attempt") or 1)
        except UserError as e:
            j.state, j.reason, j.error = "failed", str(e), str(e)
    atomic.write_json(Path(jobs_root) / BATCH_FILE, {
        "format": BATCH_FORMAT, "version": 1, "created": _status.now_iso(), "executor": executor,
        "jobs": [{"name": j.name, "job_dir": str(j.job_dir) if j.job_dir else None, "error": j.error}
                 for j in jobs]})


BATCH_FILE = "batch.json"
BATCH_FORMAT = "dtvfx.batch"


def is_batch_dir(path: str | os.PathLike) -> bool:
    """A jobs root made by ``dtvfx batch`` (its batch.json), or any folder holding job directories."""
    p = Path(path)
    if not p.is_dir() or (p / _status.STATUS_FILE).is_file():
        return False
    return (p / BATCH_FILE).is_file() or any((c / _status.STATUS_FILE).is_file() for c in p.iterdir() if c.is_dir())


def batch_status(path: str | os.PathLike) -> dict:
    """``{"batch": DIR, "jobs": [...], "counts": {state: n}}``: every job's status dict as
    :func:`.client.status` gives it (batch order from batch.json, else by name); a job refused before it
    was queued is ``{"job": NAME, "state": "failed", "queued": False, "error": REASON}``."""
    from .client import status

    root = Path(path).resolve()
    entries: list[dict] = []
    try:
        d = json.loads((root / BATCH_FILE).read_text(encoding="utf-8"))
        entries = [e for e in d.get("jobs", []) if isinstance(e, dict) and e.get("name")]
    except (OSError, ValueError, AttributeError):
        pass
    seen = {e["name"] for e in entries}
    entries += [{"name": c.name, "job_dir": str(c)} for c in sorted(root.iterdir())
                if c.is_dir() and c.name not in seen and (c / _status.STATUS_FILE).is_file()]
    jobs = []
    for e in entries:
        jd = e.get("job_dir")
        if jd and (Path(jd) / _status.STATUS_FILE).is_file():
            jobs.append(status(jd))
        else:
            jobs.append({"job": e["name"], "state": "failed", "queued": False,
                         "error": e.get("error") or "no job directory", "outputs": []})
    counts: dict[str, int] = {}
    for st in jobs:
        counts[st["state"]] = counts.get(st["state"], 0) + 1
    return {"batch": str(root), "jobs": jobs, "counts": counts}


def collect(j: BatchJob) -> None:
    """Fill state/reason/outputs of a finished job from its status.json."""
    if j.job_dir is None:
        return
    try:
        st = _status.read_status(j.job_dir)
    except UserError as e:
        j.state, j.reason = "failed", str(e)
        return
    j.state = _status.effective_state(j.job_dir, st)
    attempt = int(st.get("attempt") or 0)
    j.attempts = attempt - j.first_attempt + 1 if j.first_attempt else attempt  # not the job's earlier runs
    j.reused = bool(st.get("reused"))
    j.outputs = [o["path"] for o in st.get("outputs") or [] if o.get("written")]
    if j.state == "failed":
        j.reason = st.get("error") or st.get("message")
    elif j.state in ("cancelled", "died"):
        j.reason = st.get("message") or j.state
    elif j.state != "done":
        j.reason = f"worker ended with the job {j.state}"
        j.state = "failed"


def overall(jobs: list[BatchJob], live: dict[str, float] | None = None) -> Progress:
    live = live or {}
    n = len(jobs)
    fin = [j for j in jobs if j.state in ("done", "failed", "cancelled", "died")]
    failed = [j for j in fin if j.state != "done"]
    frac = sum(1.0 if j in fin else live.get(j.name, 0.0) for j in jobs) / max(1, n)
    running = [j.name for j in jobs if j.name in live and j not in fin]
    msg = f"{len(fin)}/{n} finished, {len(failed)} failed" + (f"; running {', '.join(running[:4])}" if running else "")
    return Progress("batch", int(round(100 * frac)), 100, message=msg)


def _live_progress(j: BatchJob) -> float:
    try:
        return float(_status.read_status(j.job_dir, retries=2).get("progress") or 0.0)
    except UserError:
        return 0.0


def run_local(jobs: list[BatchJob], parallel: int = 1, gpus: int = 1, progress: ProgressFn | None = None,
              env: dict | None = None, poll: float = 0.5,
              cancel: Callable[[], bool] | None = None) -> list[BatchJob]:
    """Run prepared jobs as worker processes: at most ``parallel`` at once, at most ``gpus`` of the jobs that
    want a GPU at once (each gets its own ``CUDA_VISIBLE_DEVICES``). A failing job never stops the others.
    Ctrl-C / SIGTERM stop the running workers cooperatively (they checkpoint) and skip the rest."""
    parallel, gpus = max(1, int(parallel)), max(0, int(gpus))
    todo = [j for j in jobs if j.job_dir is not None and j.error is None]
    running: dict[str, tuple[BatchJob, subprocess.Popen, int | None]] = {}
    free_gpus = list(range(gpus))
    stop = {"flag": False}

    def on_signal(signum, _frame):
        stop["flag"] = True

    old = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, on_signal)
    except ValueError:  # not the main thread
        old = {}
    try:
        while todo or running:
            if (cancel and cancel()) or stop["flag"]:
                for j, proc, _ in running.values():
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
                for j in todo:
                    j.state, j.reason = "cancelled", "batch stopped before this job started"
                todo = []
            # start what fits
            i = 0
            while i < len(todo) and len(running) < parallel:
                j = todo[i]
                wants_gpu = j.spec.wants_gpu()
                if wants_gpu and not free_gpus:
                    i += 1
                    continue
                gpu = free_gpus.pop(0) if wants_gpu else None
                extra = dict(env or {})
                if gpu is not None:
                    extra["CUDA_VISIBLE_DEVICES"] = str(_visible_gpu(gpu))
                with open(j.job_dir / LOG_FILE, "ab") as log:
                    proc = subprocess.Popen(runner.worker_command(j.job_dir, "batch"), stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, cwd=str(j.job_dir),
                                            env=runner.worker_env(extra), start_new_session=True)
                j.state = "running"
                running[j.name] = (j, proc, gpu)
                todo.pop(i)
            # reap
            for name in list(running):
                j, proc, gpu = running[name]
                if proc.poll() is not None:
                    del running[name]
                    if gpu is not None:
                        free_gpus.append(gpu)
                        free_gpus.sort()
                    collect(j)
                    if j.state == "running":
                        j.state, j.reason = "failed", f"worker exited with code {proc.returncode}"
            if progress is not None:
                progress(overall(jobs, {n: _live_progress(j) for n, (j, _, _) in running.items()}))
            if todo or running:
                time.sleep(poll)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for j, proc, _ in running.values():  # only after an exception: never leave workers behind
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    if progress is not None:
        progress(overall(jobs))
    return jobs


def _visible_gpu(slot: int) -> str:
    ids = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return ids[slot] if slot < len(ids) else str(slot)


def summary(jobs: list[BatchJob]) -> str:
    lines = []
    w = max([len(j.name) for j in jobs] + [4])
    for j in jobs:
        what = (f"{len(j.outputs)} output(s)" if j.state == "done" else (j.reason or ""))
        if j.reused and j.state == "done":
            what += " (reused its saved tracks)"
        tries = f" (attempts: {j.attempts})" if j.attempts > 1 else ""
        lines.append(f"{j.name:<{w}}  {j.state:<9}  {what}{tries}")
    failed = [j for j in jobs if not j.ok]
    lines.append(f"{len(jobs) - len(failed)}/{len(jobs)} done, {len(failed)} failed"
                 + (": " + ", ".join(j.name for j in failed) if failed else ""))
    return "\n".join(lines)


__all__ = ["BatchJob", "load_batch", "default_jobs_root", "prepare_batch", "run_local", "collect", "summary",
           "overall", "batch_status", "is_batch_dir"]
