"""Checks a job passes before it is queued: everything that would otherwise fail only after training.

:func:`check_job` runs in ``dtvfx submit`` / ``dtvfx run SPEC`` / ``dtvfx batch`` (through
:func:`.client.prepare` and :func:`.batch.prepare_batch`) after the spec itself is valid
(:mod:`.spec`: fields, files exist, preset) and before any job directory is created or changed:

* the shot opens, and every query file and mask decodes and fits it (the same readers the worker uses,
  :func:`.worker.read_inputs`: frames in the shot, plate size, masks not empty);
* every output's adapter options pass the adapter's ``check`` hook with the names and frames the
  tracks will have (e.g. a Nuke ``cornerpin`` naming 3 tracks, or a track that is not queried);
* every folder the job will write (job directory, outputs, ``cache:``, ``objects.segment.out``) can be
  created: its nearest existing ancestor is a folder this user may write;
* ``device: cuda`` / ``cuda:N``: a CUDA device with that index exists on this machine (probed in a child
  process, so the caller never imports torch). Ray batches skip this check: the driver need not have
  the GPUs the cluster's workers have.

A failure raises a :class:`~dino_tracker_vfx.errors.UserError` naming the spec field or the file; nothing is
queued (no job directory is created, an existing one is left as it was).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..errors import ConfigError
from .spec import JobSpec


def check_job(spec: JobSpec, job_dir: str | os.PathLike, *, device: bool = True) -> None:
    """Raise the first problem of ``spec`` (to run in ``job_dir``) that would fail it after training."""
    from .outputs import check_options, default_path
    from .worker import read_inputs

    def err(field: str, msg: str) -> ConfigError:
        return ConfigError(f"{field}: {msg}", where=spec.source)

    shot = spec.shot.open()
    queries, _masks = read_inputs(spec, shot)
    wants_objects = spec.objects is not None and bool(spec.objects.get("tracks", True))
    context = {"track_names": None if wants_objects else [q.name for q in queries],  # objects add names later
               "frame_numbers": [int(f) for f in shot.frame_numbers], "plate_size": tuple(shot.size)}
    job_dir = Path(job_dir)
    writable_folder(job_dir, lambda m: err("job directory", m))
    for i, o in enumerate(spec.outputs):
        check_options(o.format, o.options, lambda m, i=i: err(f"outputs[{i}].options", m), context)
        path = Path(o.path) if o.path else default_path(o.format, job_dir, spec.name)
        if path.is_dir():
            raise err(f"outputs[{i}].path", f"{path} is a folder, not a file")
        writable_folder(path.parent, lambda m, i=i: err(f"outputs[{i}].path", m))
    if spec.cache:
        writable_folder(Path(spec.cache), lambda m: err("cache", m))
    segment = (spec.objects or {}).get("segment")
    if segment:
        writable_folder(Path(segment["out"]), lambda m: err("objects.segment.out", m))
    if device and spec.device and spec.device.startswith("cuda"):
        problem = cuda_problem(spec.device)
        if problem:
            raise err("device", problem)


def writable_folder(folder: Path, fail) -> None:
    """``folder`` exists as a writable folder or can be created: its nearest existing ancestor is a folder
    this user may write into. Nothing is created."""
    p = Path(os.path.abspath(folder))
    while not p.exists() and not p.is_symlink() and p.parent != p:
        p = p.parent
    if not p.is_dir():
        raise fail(f"cannot create {folder}: {p} is a file, not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise fail(f"cannot write into {folder}: {p} is not writable by this user")


_PROBE = ("import sys, torch\n"
          "print(torch.cuda.device_count() if torch.cuda.is_available() else 0)\n")


def cuda_problem(device: str, timeout: float = 300.0) -> str | None:
    """Why ``device`` (``cuda`` / ``cuda:N``) cannot run here, or None. Probed in a child process with this
    Python, so the caller (a host application) never imports torch."""
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot probe this machine for CUDA ({type(e).__name__}: {e})"
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return f"{device} was asked for but torch cannot be imported here ({last})"
    n = int(r.stdout.strip().splitlines()[-1])
    if n == 0:
        return f"{device} was asked for but CUDA is not available on this machine (use cpu or auto)"
    if index >= n:
        return f"{device} was asked for but this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})"
    return None


__all__ = ["check_job", "writable_folder", "cuda_problem"]
