"""Helpers for the job tests: tiny shots, query files, job specs, and a small checkpointing tracker
(``counting_track``) used to test the job machinery (cancel, kill, locks, batches) in well under a second
per job. The real DINO-Tracker is used by the tests marked ``tracker``-dependent (see test_jobs_resume.py).

``counting_track`` has the tracker API's signature. It "trains" ``preset['iterations']`` steps of a
seeded random walk, sleeping ``preset['step_s']`` per step, saves a checkpoint (iteration + the exact
numpy RNG state + the walk so far) every ``preset['checkpoint_every']`` steps and when cancelled, atomically
into ``cache_dir``, resumes from it, and records every start iteration in ``cache_dir/starts.txt``. So a run
killed and resumed gives bit-identical tracks to an uninterrupted one only if resume really works.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HELPER_TRACK = "_jobs_helpers:counting_track"


def frame(t: int, w: int = 64, h: int = 48, seed: int = 0) -> np.ndarray:
    """uint8 [h, w, 3]: smooth random texture moving right by t px."""
    import cv2

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(h // 4 + 2, (w + 64) // 4 + 2, 3)).astype(np.uint8)
    big = cv2.resize(base, ((w + 64) // 4 * 4 + 8, h // 4 * 4 + 8), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(big[:h, 32 - t:32 - t + w])


def make_shot(folder: Path, name: str = "plate", n: int = 6, first: int = 1001, w: int = 64, h: int = 48,
              seed: int = 0) -> str:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{name}.{first + i:04d}.png"), frame(i, w, h, seed)[..., ::-1])
    return str(folder / f"{name}.####.png")


def write_queries(path: Path, rows=((1001, 20.0, 20.0), (1001, 40.0, 30.0), (1003, 10.0, 12.0))) -> Path:
    path.write_text("name,frame,x,y\n" + "".join(f"q{i},{f},{x},{y}\n" for i, (f, x, y) in enumerate(rows)))
    return path


def write_spec(path: Path, spec: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def tiny_job(folder: Path, name: str = "sh010", iterations: int = 20, step_s: float = 0.0,
             checkpoint_every: int = 5, outputs=None, corrupt: bool = False, **extra) -> Path:
    """A spec file ``folder/<name>.yaml`` over a 6-frame 64x48 PNG shot (relative paths)."""
    make_shot(folder / name, "plate")
    if corrupt:
        (folder / name / "plate.1003.png").write_bytes(b"this is not a png")
    write_queries(folder / f"{name}_q.csv")
    spec = {"shot": f"{name}/plate.####.png", "queries": f"{name}_q.csv",
            "preset": {"iterations": iterations, "step_s": step_s, "checkpoint_every": checkpoint_every},
            "seed": 7, "device": "cpu",
            "outputs": outputs if outputs is not None else [{"format": "csv", "path": f"out/{name}.csv"}]}
    for k in ("ignore_cancel", "fail_once_at"):  # settings of counting_track
        if k in extra:
            spec["preset"][k] = extra.pop(k)
    spec.update(extra)
    return write_spec(folder / f"{name}.yaml", spec)


def helper_env() -> dict:
    """Environment for worker processes that use ``counting_track``: this folder on PYTHONPATH so they
    can import it (the stand-in itself is registered by code, see :func:`counting_tracker`)."""
    pp = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)] + ([pp] if pp else []))}


@contextlib.contextmanager
def counting_tracker():
    """Jobs run or started by this process use ``counting_track`` (dino_tracker_vfx.jobs.tracker_entry);
    ``python tests/_jobs_cli.py ...`` is the dtvfx CLI with it registered."""
    from dino_tracker_vfx.jobs import tracker_entry

    tracker_entry.use(HELPER_TRACK)
    try:
        yield
    finally:
        tracker_entry.use(None)


JOBS_CLI = [sys.executable, str(HERE / "_jobs_cli.py")]


def checkpoint_iteration(cache_dir: Path) -> int:
    (ck,) = Path(cache_dir).glob("counting-*.ckpt.json")
    return json.loads(ck.read_text())["iteration"]


def wait_for(pred, timeout: float = 30.0, poll: float = 0.05, what: str = "condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ----------------------------------------------------------------------------- a checkpointing tracker
def counting_track(shot, queries, *, preset=None, masks=None, cache_dir=None, device=None, seed=0,
                   progress=None, cancel=None):
    from dino_tracker_vfx import atomic
    from dino_tracker_vfx.errors import Cancelled
    from dino_tracker_vfx.progress import Progress
    from dino_tracker_vfx.tracks import TrackSet

    p = dict(preset or {})
    n_it, step_s, every = int(p.get("iterations", 20)), float(p.get("step_s", 0.0)), int(p.get("checkpoint_every", 5))
    fail_once_at = p.get("fail_once_at")  # RuntimeError at this iteration on the first start only
    ignore_cancel = bool(p.get("ignore_cancel"))  # a stage that never checks cancel
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    import hashlib

    key = hashlib.sha1(repr(([(q.t, q.x, q.y) for q in queries], shot.n_images, n_it, every, seed)).encode())
    ck = cache / f"counting-{key.hexdigest()[:12]}.ckpt.json"  # keyed by inputs + settings, like the tracker's
    frames = [shot.read(t) for t in range(shot.n_images)]  # reads every frame: a corrupt one fails here
    if progress:
        progress(Progress("load", shot.n_images, shot.n_images))
    N, T = len(queries), shot.n_images
    if ck.is_file():
        d = json.loads(ck.read_text())
        it, walk = d["iteration"], np.array(d["walk"], np.float64).reshape(N, T, 2)
        rng = np.random.default_rng()
        rng.bit_generator.state = d["rng"]
    else:
        it, walk = 0, np.zeros((N, T, 2))
        rng = np.random.default_rng(seed)
    first_start = not (cache / "starts.txt").exists()
    with open(cache / "starts.txt", "a") as fh:
        fh.write(f"{it} {os.getpid()}\n")

    def save():
        atomic.write_json(ck, {"iteration": it, "rng": rng.bit_generator.state, "walk": walk.ravel().tolist()})

    if progress:
        progress(Progress("train", it, n_it, iteration=it))  # where training (re)starts, as the tracker does
    while it < n_it:
        if cancel is not None and cancel() and not ignore_cancel:
            save()
            raise Cancelled(f"training cancelled at iteration {it} (checkpoint saved)")
        walk += rng.normal(0, 0.1, size=walk.shape) * float(np.mean(frames[it % T]))
        it += 1
        if step_s:
            time.sleep(step_s)
        if fail_once_at is not None and first_start and it == int(fail_once_at):
            raise RuntimeError(f"simulated crash at iteration {it}")
        if it % every == 0 or it == n_it:
            save()
        if progress:
            progress(Progress("train", it, n_it, iteration=it, eta_s=(n_it - it) * step_s))
    xy = np.array([[[q.x, q.y]] * T for q in queries], np.float64) + walk
    return TrackSet(xy, np.ones((N, T), bool), np.ones((N, T), np.float32), [q.name for q in queries], list(queries),
                    shot.frame_numbers, shot.size, meta={"tracker": "counting_track", "device": device})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0)
