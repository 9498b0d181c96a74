"""Run one job directory to the end: the one code path of ``dtvfx run``, the detached ``dtvfx submit``
worker, batch jobs and Ray tasks.

``python -m dino_tracker_vfx.jobs.worker JOBDIR [--executor local]`` runs it as a process.

Steps: take the job's worker lock -> read the spec copy (``job.yaml``) -> open the shot, read queries and
masks -> reuse ``tracks.json`` if it was made from the same inputs and settings, else take the shot lock
of the cache and call the tracker with ``cache_dir`` (cached stages and checkpoints; a killed run resumes
there) -> object tracks -> outputs (each written atomically by its adapter) -> ``done``.

Cancel: ``<job dir>/cancel`` (``dtvfx cancel``) or SIGTERM/SIGINT (a farm manager stopping the task)
make the CancelFn return True; the tracker stops after saving a checkpoint and the job ends
``cancelled``. Any error ends it ``failed`` with a one-line reason (a full disk: ``ENOSPC``) and
``retryable``: false for the user's errors (a UserError, a full disk, a path that cannot be written:
:data:`USER_ERRNOS`), which a re-run would hit again, so Ray does not retry them; true otherwise.
``reused`` is true when the saved tracks.json was up to date and nothing was tracked.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from .. import atomic
from ..errors import Cancelled, ConfigError, UserError
from ..progress import Progress, ProgressFn, catch_signals
from . import lock as _lock
from . import status as _status
from .spec import JobSpec, merged_preset, read_yaml, spec_from_dict
from .tracker_entry import track_function

SPEC_COPY = "job.yaml"
LOG_FILE = "job.log"
CANCEL_FILE = "cancel"
TRACKS_FILE = "tracks.json"
RESULT_META = "tracks.key"
EXIT_CODES = {"done": 0, "failed": 1, "cancelled": 130}
# OSErrors that are the user's paths, not the machine: not retryable (Ray does not re-run the task)
USER_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR)


def log_line(job_dir: Path, msg: str) -> None:
    """Append one timestamped line to the job log (never raises: logging must not fail a job)."""
    try:
        with open(Path(job_dir) / LOG_FILE, "a", encoding="utf-8") as fh:
            fh.write(f"{_status.now_iso()} [{os.getpid()}] {msg}\n")
    except OSError:
        pass


def load_job_spec(job_dir: Path) -> JobSpec:
    p = Path(job_dir) / SPEC_COPY
    if not p.is_file():
        raise ConfigError("job directory has no job.yaml", where=str(job_dir))
    d = read_yaml(p)
    if not isinstance(d, dict):
        raise ConfigError("expected a mapping of job fields", where=str(p))
    return spec_from_dict(d, base_dir=job_dir, where=str(p))


class CancelFlag:
    """The job's CancelFn: the cancel file exists, or SIGTERM/SIGINT arrived. Checks the file at most
    every ``interval`` seconds (cheap on shared storage)."""

    def __init__(self, job_dir: Path, interval: float = 0.25):
        self.path = Path(job_dir) / CANCEL_FILE
        self.interval = interval
        self.signalled: str | None = None
        self._last = 0.0
        self._hit = False

    def __call__(self) -> bool:
        if self._hit or self.signalled:
            return True
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._hit = self.path.exists()
        return self._hit

    def reason(self) -> str:
        if self.signalled:
            return f"stopped by {self.signalled}"
        try:
            return self.path.read_text().strip() or "cancel requested"
        except OSError:
            return "cancel requested"


def input_key(spec: JobSpec, shot) -> str:
    """Spec tracking settings + size/mtime of every input file: a result made from other inputs is stale."""
    h = hashlib.sha256(spec.tracking_key().encode())
    files = list(getattr(shot, "paths", None) or [shot.source]) + list(spec.queries) + [m.path for m in spec.masks] \
        + ([spec.corrections] if spec.corrections else [])
    for f in files:
        try:
            s = os.stat(f)
            h.update(f"{f}|{s.st_size}|{s.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{f}|missing\n".encode())
    return h.hexdigest()[:24]


def _install_signals(flag: CancelFlag) -> Callable[[], None]:
    def on_signal(name: str) -> None:
        flag.signalled = name

    return catch_signals(on_signal)


def run_job(job_dir: str | os.PathLike, *, progress: ProgressFn | None = None, executor: str = "foreground",
            lock_wait: float | None = None, job_lock_timeout: float = 10.0) -> dict:
    """Run the job in ``job_dir`` in this process and return its final status dict.

    Never raises for a failing job (the reason is in the status); raises :class:`LockBusy` when another
    live process already runs this job (its status is left alone).
    """
    job_dir = Path(job_dir).resolve()
    if not (job_dir / _status.STATUS_FILE).is_file():
        raise UserError("not a job directory (no status.json)", where=str(job_dir))
    jl = _lock.job_lock(job_dir)
    try:
        jl.acquire(info={"job": str(job_dir)}, timeout=job_lock_timeout)
    except _lock.LockBusy:
        raise _lock.LockBusy(f"job is already running ({_lock.describe(jl.holder())})", where=str(job_dir))
    flag = CancelFlag(job_dir)
    restore = _install_signals(flag)
    try:
        return _run_locked(job_dir, flag, progress, executor, lock_wait)
    finally:
        restore()
        jl.release()


def _run_locked(job_dir: Path, flag: CancelFlag, progress: ProgressFn | None, executor: str,
                lock_wait: float | None) -> dict:
    st = _status.read_status(job_dir)
    st.update(state="running", stage=None, stage_done=0, stage_total=0, progress=0.0, iteration=None, eta_s=None,
              message="", pid=os.getpid(), host=_status.hostname(), executor=executor, error=None,
              error_kind=None, retryable=None, reused=False, started=_status.now_iso(), finished=None)
    w = _status.StatusWriter(job_dir, st)
    log_line(job_dir, f"start attempt {st.get('attempt', 1)} on {st['host']} (executor {executor})")

    def prog(p: Progress) -> None:
        first_train = p.stage == "train" and st.get("train_started_at") is None
        w.progress(p)
        if first_train:
            log_line(job_dir, f"training from iteration {st['train_started_at']} of {p.total}")
        if progress is not None:
            progress(p)

    shot_lock = None
    try:
        w.flush()
        _status.make_reserve(job_dir)
        if flag():
            raise Cancelled(flag.reason())
        spec = load_job_spec(job_dir)
        prog(Progress("load", 0, 1, message="opening shot"))
        shot = spec.shot.open()
        queries, masks = read_inputs(spec, shot, _previous_result(job_dir) if spec.corrections else None)
        key = input_key(spec, shot)
        tracks = _valid_result(job_dir, key)
        segment = (spec.objects or {}).get("segment")
        seg_ok = segment is None or _segment_valid(job_dir, segment, key)
        if tracks is not None:
            log_line(job_dir, "tracks.json is up to date: tracking skipped")
        st["reused"] = tracks is not None and seg_ok  # nothing tracked: the saved result was reused
        if tracks is None or not seg_ok:
            cache = Path(spec.cache) if spec.cache else job_dir / "cache"
            cache.mkdir(parents=True, exist_ok=True)
            shot_lock = _lock.shot_lock(cache, shot)

            def waiting(holder):
                msg = f"waiting for the shot lock held by {_lock.describe(holder)}"
                log_line(job_dir, msg)
                prog(Progress("waiting", 0, 1, message=msg))

            shot_lock.acquire(info={"job": str(job_dir)}, timeout=lock_wait, cancel=flag, on_wait=waiting)
            kwargs: dict[str, Any] = dict(masks=masks or None, cache_dir=cache, device=spec.device, seed=spec.seed,
                                          progress=prog, cancel=flag)
            preset = merged_preset(spec)
            if preset is not None:
                kwargs["preset"] = preset
            if tracks is None:
                track = track_function()
                log_line(job_dir, f"tracking {len(queries)} queries{' + objects' if _wants_objects(spec) else ''} "
                                  f"on {shot.n_images} images ({shot.size[0]}x{shot.size[1]}), cache {cache}")
                if _wants_objects(spec):
                    tracks = _track_objects(spec, shot, queries, masks, track, kwargs)
                else:
                    tracks = track(shot, queries, **kwargs)
                _save_result(job_dir, tracks, key, spec)
            if not seg_ok:
                _segment(job_dir, spec, shot, masks, kwargs, key)
            shot_lock.release()
            shot_lock = None
            _enforce_cache_limit(job_dir, cache, shot)
        st["tracks"] = str(job_dir / TRACKS_FILE)
        if segment is not None:
            st["segment"] = segment["out"]
        _write_outputs(job_dir, spec, tracks, w, prog, flag)
        w.set(state="done", stage="outputs", progress=1.0, eta_s=0.0, message="done",
              finished=_status.now_iso())
        log_line(job_dir, "done")
    except Cancelled as e:
        reason = flag.reason() if flag() else str(e)
        _finish(w, job_dir, "cancelled", reason, "Cancelled", False)
    except UserError as e:
        _finish(w, job_dir, "failed", str(e), type(e).__name__, False)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            _status.release_reserve(job_dir)
            where = e.filename or "a file"
            _finish(w, job_dir, "failed", f"disk full (ENOSPC) while writing {where}", "ENOSPC", False)
        elif e.errno in USER_ERRNOS:  # a path the user named cannot be written: a re-run fails the same way
            where = e.filename or "a file"
            _finish(w, job_dir, "failed", f"cannot write {where} ({e.strerror})", type(e).__name__, False)
        else:
            log_line(job_dir, traceback.format_exc().rstrip())
            _finish(w, job_dir, "failed", f"{type(e).__name__}: {e}", type(e).__name__, True)
    except MemoryError as e:
        _finish(w, job_dir, "failed", f"out of memory ({e})", "MemoryError", True)
    except Exception as e:  # noqa: BLE001 - a failing stage fails the job, with the reason
        log_line(job_dir, traceback.format_exc().rstrip())
        msg = " ".join(f"{type(e).__name__}: {e}".split())
        _finish(w, job_dir, "failed", f"{st.get('stage') or 'job'} stage: {msg}", type(e).__name__, True)
    finally:
        if shot_lock is not None:
            shot_lock.release()
    return st


def _previous_result(job_dir: Path):
    """The job's last saved tracks (None when there are none or they cannot be read)."""
    from ..tracks import TrackSet

    p = job_dir / TRACKS_FILE
    try:
        return TrackSet.load_json(p) if p.is_file() else None
    except UserError:
        return None


def _finish(w: _status.StatusWriter, job_dir: Path, state: str, reason: str, kind: str, retryable: bool) -> None:
    log_line(job_dir, f"{state}: {reason}")
    try:
        w.set(state=state, error=reason if state == "failed" else None, error_kind=kind, retryable=retryable,
              message=reason, eta_s=None, finished=_status.now_iso())
    except OSError as e:  # the disk is still full even after releasing the reserve
        print(f"dtvfx: cannot record job state {state} ({reason}): {e}", file=sys.stderr)


def read_inputs(spec: JobSpec, shot, previous=None):
    """Queries (then the spec's corrections; ``previous``: the job's last tracks, so an edited host export
    gives only the keys the artist moved) and masks of ``spec`` for ``shot``."""
    from .. import inputs

    per_file = [inputs.read_queries(q, shot) for q in spec.queries]
    if len(per_file) > 1:  # a name in two files is two tracks (renamed); rows sharing one in a file stay one
        from ..tracks import Query, unique_names

        keys = list(dict.fromkeys((i, q.name) for i, qs in enumerate(per_file) for q in qs))
        names = dict(zip(keys, unique_names([n for _, n in keys], prefix="track")))
        per_file = [[Query(q.t, q.x, q.y, names[(i, q.name)], q.group) for q in qs] for i, qs in enumerate(per_file)]
    queries = [q for qs in per_file for q in qs]
    if spec.corrections:
        queries = inputs.add_corrections(queries, spec.corrections, shot,
                                         source=", ".join(os.path.basename(q) for q in spec.queries),
                                         previous=previous)
    masks = inputs.read_masks([m.text for m in spec.masks], shot) if spec.masks else None
    return queries, masks


def _valid_result(job_dir: Path, key: str):
    tp, kp = job_dir / TRACKS_FILE, job_dir / RESULT_META
    try:
        if kp.read_text().strip() != key or not tp.is_file():
            return None
        from ..tracks import TrackSet

        return TrackSet.load_json(tp)
    except (OSError, UserError, ValueError):
        return None


def _save_result(job_dir: Path, tracks, key: str, spec: JobSpec) -> None:
    tracks.meta.setdefault("job", spec.name)
    tracks.save_json(job_dir / TRACKS_FILE)  # atomic
    atomic.write_text(job_dir / RESULT_META, key + "\n")


def _wants_objects(spec: JobSpec) -> bool:
    return spec.objects is not None and bool(spec.objects.get("tracks", True))


def _track_objects(spec: JobSpec, shot, queries, masks, track: Callable, kwargs: dict):
    """Object tracks (:func:`dino_tracker_vfx.objects.api.track_objects`) with ONE tracker training for the
    user's queries and the points sampled in the objects together."""
    from ..objects.api import track_objects
    from ..objects.centroids import CentroidParams
    from ..objects.smoothing import parse_smooth

    o = spec.objects or {}
    d = CentroidParams()
    centroid = CentroidParams(min_visible_fraction=float(o.get("min_visible", d.min_visible_fraction)),
                              motion_model=o.get("motion_model", d.motion_model)).validate()
    user = list(queries)
    parts: dict[str, Any] = {}

    def point_tracker(shot_, object_queries, masks_):
        ts = track(shot_, user + list(object_queries), **kwargs)
        parts["user"] = ts.subset(range(len(user))) if user else None
        return ts.subset(range(len(user), ts.n_tracks))

    objects = track_objects(shot, masks, names=o.get("names"), points_per_object=int(o.get("points_per_object", 24)),
                            point_tracker=point_tracker, centroid=centroid, smooth=parse_smooth(o.get("smooth")),
                            seed=spec.seed, progress=kwargs.get("progress"), cancel=kwargs.get("cancel"))
    return merge_tracks(parts.get("user"), objects)


def merge_tracks(a, b):
    """``a`` + ``b`` (same shot) as one TrackSet; names kept unique."""
    if a is None:
        return b
    import numpy as np

    from ..tracks import Query, TrackSet, unique_names

    names = unique_names(list(a.names) + list(b.names))
    qs = [Query(q.t, q.x, q.y, n, q.group) for q, n in zip(list(a.queries) + list(b.queries), names)]
    return TrackSet(np.concatenate([a.xy, b.xy]), np.concatenate([a.visible, b.visible]),
                    np.concatenate([a.confidence, b.confidence]), names, qs, a.frame_numbers, a.plate_size,
                    {**a.groups, **b.groups}, a.pixel_aspect, {**a.meta, **b.meta}, a.fps, a.timecode)


SEGMENT_KEY = "segment.key"


def _segment_valid(job_dir: Path, seg: dict, key: str) -> bool:
    try:
        return ((Path(seg["out"]) / "segment.json").is_file() and
                (job_dir / SEGMENT_KEY).read_text().strip() == _segment_key(seg, key))
    except OSError:
        return False


def _segment_key(seg: dict, key: str) -> str:
    return hashlib.sha256(f"{key}|{sorted(seg.items())}".encode()).hexdigest()[:24]


def _segment(job_dir: Path, spec: JobSpec, shot, masks, kwargs: dict, key: str) -> None:
    """Mask propagation into ``objects.segment.out``: written into a temporary folder beside it, then swapped
    in, so the folder never holds a half-written set of frames."""
    import shutil

    from ..objects.api import segment_to_dir

    seg = dict(spec.objects["segment"])
    out = Path(seg.pop("out"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.dtvfx-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    extra = {"preset": kwargs["preset"]} if kwargs.get("preset") is not None else {}
    log_line(job_dir, f"propagating masks into {out}")
    try:
        segment_to_dir(shot, masks, tmp, names=spec.objects.get("names"), cache_dir=kwargs["cache_dir"],
                       progress=kwargs["progress"], cancel=kwargs["cancel"], **seg, **extra)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.dtvfx-old-{os.getpid()}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic.write_text(job_dir / SEGMENT_KEY, _segment_key(dict(spec.objects["segment"]), key) + "\n")
    log_line(job_dir, f"wrote propagated masks {out}")


def _write_outputs(job_dir: Path, spec: JobSpec, tracks, w: _status.StatusWriter, prog: ProgressFn,
                   cancel) -> None:
    from .outputs import write_output

    outs = w.st.get("outputs") or []
    n = len(outs)
    if n != len(spec.outputs):
        raise ConfigError("status.json and job.yaml list different outputs; resubmit the job", where=str(job_dir))
    for i, (o, want) in enumerate(zip(outs, spec.outputs)):
        if cancel():
            raise Cancelled("cancelled before writing outputs")
        prog(Progress("outputs", i, n, message=Path(o["path"]).name))
        write_output(tracks, want.format, Path(o["path"]), want.options)
        o["written"] = True
        w.flush()
        log_line(job_dir, f"wrote {o['format']} {o['path']}")
    prog(Progress("outputs", n, max(n, 1) if n else 0))


def exit_code(st: dict) -> int:
    return EXIT_CODES.get(st.get("state"), 1)


def _enforce_cache_limit(job_dir: Path, cache: Path, shot) -> None:
    """Keep the job's cache under $DTVFX_CACHE_MAX (least recently used shots first, never this one nor
    one in use); a bad setting is logged, the finished work stands."""
    from ..errors import UserError
    from ..tracker import cache_admin
    from ..tracker.cache import ShotCache, shot_identity

    try:
        res = cache_admin.enforce_limit(cache, keep=(ShotCache(None, shot_identity(shot)).shot_key,))
    except (UserError, OSError) as e:
        log_line(job_dir, f"cache size limit not applied: {e}")
        return
    if res is not None and res.removed:
        log_line(job_dir, f"cache over {cache_admin.LIMIT_ENV}: removed {len(res.removed)} least recently used "
                          f"shot(s), {cache_admin.human(res.freed)} freed")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dino_tracker_vfx.jobs.worker",
                                 description="Run one dtvfx job directory (what dtvfx submit starts).")
    ap.add_argument("job_dir")
    ap.add_argument("--executor", default="local")
    ap.add_argument("--lock-wait", type=float, default=None, help="seconds to wait for a busy shot lock")
    a = ap.parse_args(argv)
    import logging

    # stderr is the job log: keep the tracker's INFO lines (e.g. "resuming training at iteration N")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(levelname)s: %(message)s")
    try:
        st = run_job(a.job_dir, executor=a.executor, lock_wait=a.lock_wait)
    except UserError as e:
        print(f"dtvfx worker: error: {e}", file=sys.stderr)
        return e.exit_code
    if st.get("state") != "done":
        print(f"dtvfx worker: job {st.get('state')}: {st.get('error') or st.get('message')}", file=sys.stderr)
    return exit_code(st)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
