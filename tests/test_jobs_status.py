"""status.json atomicity, died detection and flock locks that survive a crashed holder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from _jobs_helpers import REPO, wait_for
from dino_tracker_vfx import atomic
from dino_tracker_vfx.errors import Cancelled
from dino_tracker_vfx.jobs import client
from dino_tracker_vfx.jobs import lock as L
from dino_tracker_vfx.jobs import status as S


def _py(code: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def test_status_json_is_never_seen_half_written(tmp_path):
    """A reader polling status.json while another process rewrites it (~150 KB each time) always reads
    a complete JSON document of one version."""
    S.write_status(tmp_path, S.new_status(tmp_path, "job", []))
    writer = _py(f"""
        from dino_tracker_vfx.jobs import status as S
        st = S.new_status({str(tmp_path)!r}, "job", [])
        for i in range(1, 61):
            st["iteration"] = i
            st["outputs"] = [{{"format": "csv", "path": "x" * 200 + str(i), "written": False}}] * 600
            S.write_status({str(tmp_path)!r}, st)
        print("wrote", i)
    """)
    reads, seen = 0, set()
    try:
        while writer.poll() is None:
            d = json.loads((tmp_path / "status.json").read_text())  # no retries: must parse every time
            it = d["iteration"]
            if it is not None:
                assert len(d["outputs"]) == 600 and all(o["path"].endswith(str(it)) for o in d["outputs"])
            seen.add(it)
            reads += 1
    finally:
        out = writer.communicate(timeout=60)[0].decode()
    assert writer.returncode == 0, out
    assert reads >= 20 and len(seen) >= 5, (reads, len(seen))
    assert json.loads((tmp_path / "status.json").read_text())["iteration"] == 60
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".status")]  # no temp files left
    mode = (tmp_path / "status.json").stat().st_mode & 0o777
    assert mode & 0o044, oct(mode)  # readable by the group/others (shared job folders), unlike mkstemp's 0600


def test_running_job_whose_worker_was_killed_reports_died(tmp_path):
    S.write_status(tmp_path, S.new_status(tmp_path, "sh010", []))
    holder = _py(f"""
        import time
        from dino_tracker_vfx.jobs import lock as L, status as S
        lk = L.job_lock({str(tmp_path)!r}); lk.acquire(info={{"job": "sh010"}})
        st = S.read_status({str(tmp_path)!r}); st.update(state="running", pid=__import__("os").getpid(), stage="train")
        S.write_status({str(tmp_path)!r}, st)
        time.sleep(60)
    """)
    try:
        wait_for(lambda: S.read_status(tmp_path)["state"] == "running", what="running")
        st = client.status(tmp_path)
        assert st["state"] == "running" and not st["resumable"]
        assert L.is_held(tmp_path / L.JOB_LOCK)
        assert L.read_holder(tmp_path / L.JOB_LOCK)["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    st = client.status(tmp_path)
    assert st["state"] == "died" and st["recorded_state"] == "running" and st["resumable"]
    assert f"worker pid {holder.pid}" in st["message"] and "dtvfx resume" in st["message"]


def test_queued_job_whose_spawned_worker_never_started_reports_died(tmp_path):
    S.write_status(tmp_path, S.new_status(tmp_path, "sh010", []))
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    atomic.write_json(tmp_path / S.SPAWN_FILE, {"pid": p.pid, "host": S.hostname()})
    assert S.effective_state(tmp_path) == "died"
    (tmp_path / S.SPAWN_FILE).unlink()
    assert S.effective_state(tmp_path) == "queued"  # e.g. waiting in a Ray queue: no local worker to check


def test_lock_survives_a_crashed_holder_and_names_it(tmp_path):
    lk_path = tmp_path / "cache" / "shot-x.lock"
    holder = _py(f"""
        import sys, time
        from dino_tracker_vfx.jobs import lock as L
        lk = L.FileLock({str(lk_path)!r}, what="shot lock"); lk.acquire(info={{"job": "/jobs/sh010"}})
        print("locked", flush=True); time.sleep(60)
    """)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        mine = L.FileLock(lk_path, what="shot lock")
        assert not mine.try_acquire()
        with pytest.raises(L.LockBusy) as e:
            mine.acquire(timeout=0.3)
        assert f"shot lock is held by pid {holder.pid} on host {S.hostname()}, job /jobs/sh010" in str(e.value)
        waited = []
        with pytest.raises(Cancelled):
            mine.acquire(cancel=lambda: bool(waited), on_wait=waited.append)
        assert waited and waited[0]["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    t0 = time.monotonic()
    mine.acquire(timeout=5)  # the kernel released the dead holder's lock
    assert time.monotonic() - t0 < 1 and mine.held and L.is_held(lk_path)
    assert L.read_holder(lk_path)["pid"] == os.getpid()
    mine.release()
    assert not L.is_held(lk_path)


def test_lock_imports_without_status_and_job_files_follow_the_umask_at_write_time(tmp_path):
    # lock.py must not import status.py (status asks lock whether a worker lock is held): a fresh interpreter
    # importing only the lock module leaves status unimported
    r = subprocess.run([sys.executable, "-c", "import sys; import dino_tracker_vfx.jobs.lock as L; "
                        "L.FileLock(sys.argv[1]).try_acquire(); "
                        "print('dino_tracker_vfx.jobs.status' in sys.modules)", str(tmp_path / "x.lock")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    assert json.loads((tmp_path / "x.lock.holder.json").read_text())["host"] == S.hostname()
    old = os.umask(0o027)  # a umask set after import (a farm wrapper's) is the one job files get
    try:
        S.write_status(tmp_path, S.new_status(tmp_path, "job", []))
        lk = L.FileLock(tmp_path / "y.lock")
        assert lk.try_acquire()
        lk.release()
    finally:
        os.umask(old)
    assert (S.status_path(tmp_path).stat().st_mode & 0o777) == 0o640
    assert ((tmp_path / "y.lock.holder.json").stat().st_mode & 0o777) == 0o640


def test_job_fraction_is_monotonic_over_the_stages():
    from dino_tracker_vfx import stages

    prev = -1.0
    for st in stages.STAGES:
        for f in (0.0, 0.5, 1.0):
            v = stages.job_fraction(st.name, f)
            assert v >= prev
            prev = v
    assert stages.job_fraction("outputs", 1.0) == pytest.approx(1.0)
    assert stages.job_fraction("something-else", 0.5) == -1.0


def test_status_of_a_folder_that_is_not_a_job(tmp_path):
    from dino_tracker_vfx.errors import UserError

    with pytest.raises(UserError, match="not a job directory"):
        client.status(tmp_path)
    Path(tmp_path / "status.json").write_text("{}")
    with pytest.raises(UserError, match="unreadable status.json"):
        client.status(tmp_path)
