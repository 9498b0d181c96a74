"""Job lifecycle with real worker processes: detached submit, cancel (cooperative and forced), SIGKILL +
resume from the last checkpoint with identical results, full disk, shot lock, CLI contract, no torch on the
host side. The tracker here is ``counting_track`` (see _jobs_helpers); test_jobs_resume.py does the same
with the real DINO-Tracker."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from _jobs_helpers import (HELPER_TRACK, JOBS_CLI, checkpoint_iteration, counting_tracker, helper_env, tiny_job,
                           wait_for, write_spec)
from dino_tracker_vfx.jobs import client
from dino_tracker_vfx.jobs import status as S
from dino_tracker_vfx.tracks import TrackSet


@pytest.fixture(autouse=True)
def helper_tracker(monkeypatch):
    for k, v in helper_env().items():
        monkeypatch.setenv(k, v)
    with counting_tracker():
        yield


def _starts(job_dir: Path) -> list[int]:
    return [int(ln.split()[0]) for ln in (Path(job_dir) / "cache" / "starts.txt").read_text().splitlines()]


def _kill_leftover(job_dir: Path) -> None:
    try:
        st = S.read_status(job_dir)
    except Exception:
        return
    if st.get("state") == "running" and st.get("pid") and S.pid_alive(st["pid"]):
        os.kill(st["pid"], signal.SIGKILL)


@pytest.mark.slow
def test_submit_cancel_resume_sigkill_resume_gives_the_uninterrupted_result(tmp_path):
    spec = tiny_job(tmp_path, "sh010", iterations=150, step_s=0.02, checkpoint_every=10)
    job = client.submit(spec)
    assert job.path == tmp_path / "sh010.dtvfx"
    try:
        pid = wait_for(lambda: client.status(job)["pid"], what="worker pid")
        assert os.getsid(pid) == pid != os.getsid(0)  # its own session: survives the terminal

        # cooperative cancel: the worker saves a checkpoint where it stops
        wait_for(lambda: (client.status(job)["iteration"] or 0) >= 15, what="training")
        assert job.cancel(timeout=30) == "cancelled"
        st = job.status()
        assert st["state"] == "cancelled" and st["resumable"] and "cancelled by" in st["message"]
        stopped_at = checkpoint_iteration(job.path / "cache")
        assert stopped_at >= 15
        assert not (Path(st["outputs"][0]["path"])).exists()

        # resume, then SIGKILL mid-training
        job.resume()
        wait_for(lambda: client.status(job)["state"] == "running" and
                 (client.status(job)["iteration"] or 0) >= stopped_at + 25, what="resumed training")
        pid = client.status(job)["pid"]
        os.kill(pid, signal.SIGKILL)
        # the kernel drops the worker's lock once all its threads are gone
        st = wait_for(lambda: (lambda s: s if s["state"] != "running" else None)(client.status(job)),
                      timeout=10, what="worker gone")
        assert not S.pid_alive(pid)
        assert st["state"] == "died" and st["recorded_state"] == "running" and st["resumable"]
        killed_at = st["iteration"]  # status lags the worker by < 0.5 s, so the real iteration is >= this
        last_ckpt = checkpoint_iteration(job.path / "cache")
        job.resume()
        assert job.wait(timeout=60, poll=0.1) == "done"
        assert job.status()["train_started_at"] == last_ckpt
    finally:
        _kill_leftover(job.path)
    starts = _starts(job.path)
    assert starts[0] == 0 and starts[1] == stopped_at  # nothing lost on cancel
    assert starts[2] == last_ckpt and last_ckpt % 10 == 0  # resumed at the last checkpoint...
    assert last_ckpt > killed_at - 10  # ...losing less than one checkpoint interval
    st = job.status()
    assert st["state"] == "done" and st["progress"] == 1.0 and st["attempt"] == 3 and st["error"] is None
    assert [o["written"] for o in st["outputs"]] == [True]

    # an uninterrupted run of the same spec (same seed) in another job dir, in the foreground
    ref = client.run(spec, job_dir=tmp_path / "ref.dtvfx")
    assert ref["state"] == "done" and _starts(tmp_path / "ref.dtvfx") == [0]
    a = TrackSet.load_json(job.path / "tracks.json")
    b = TrackSet.load_json(tmp_path / "ref.dtvfx" / "tracks.json")
    np.testing.assert_array_equal(a.xy, b.xy)
    assert Path(st["outputs"][0]["path"]).read_bytes() == Path(ref["outputs"][0]["path"]).read_bytes()


def test_cancel_kills_a_worker_that_does_not_stop(tmp_path):
    spec = tiny_job(tmp_path, "stuck", iterations=2000, step_s=0.01, ignore_cancel=True)
    job = client.submit(spec)
    try:
        wait_for(lambda: (client.status(job)["iteration"] or 0) >= 5, what="training")
        pid = client.status(job)["pid"]
        assert client.cancel(job.path, timeout=1.0) == "cancelled"
        assert not S.pid_alive(pid)
        st = client.status(job)
        assert st["state"] == "cancelled" and "killed after not stopping within 1 s" in st["message"]
    finally:
        _kill_leftover(job.path)


def test_full_disk_fails_the_job_with_the_reason_and_a_rerun_reuses_the_tracks(tmp_path, monkeypatch):
    spec = tiny_job(tmp_path, "full", iterations=5, outputs=[{"format": "csv", "path": "out/a.csv"},
                                                            {"format": "json", "path": "out/b.json"}])
    import dino_tracker_vfx.jobs.outputs as O

    real = O.write_output

    def enospc(tracks, fmt, path, options):
        if fmt == "json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(tracks, fmt, path, options)

    monkeypatch.setattr(O, "write_output", enospc)
    st = client.run(spec)
    assert st["state"] == "failed" and st["error_kind"] == "ENOSPC"
    assert st["error"] == f"disk full (ENOSPC) while writing {tmp_path / 'out' / 'b.json'}"
    assert [o["written"] for o in st["outputs"]] == [True, False]
    assert not (tmp_path / "out" / "b.json").exists()
    assert client.status(tmp_path / "full.dtvfx")["state"] == "failed"

    monkeypatch.setattr(O, "write_output", real)
    st = client.run(job_dir=tmp_path / "full.dtvfx")  # resume in the foreground
    assert st["state"] == "done" and st["attempt"] == 2
    assert _starts(tmp_path / "full.dtvfx") == [0]  # tracks.json was valid: no tracking at all
    assert TrackSet.load_json(tmp_path / "out" / "b.json").n_tracks == 3


def test_changed_inputs_invalidate_the_saved_tracks(tmp_path):
    spec = tiny_job(tmp_path, "chg", iterations=3)
    assert client.run(spec)["state"] == "done"
    q = tmp_path / "chg_q.csv"
    q.write_text(q.read_text() + "q9,1002,5,5\n")
    st = client.run(spec)
    assert st["state"] == "done"
    assert TrackSet.load_json(tmp_path / "chg.dtvfx" / "tracks.json").n_tracks == 4


@pytest.mark.slow
def test_two_jobs_sharing_a_cache_never_train_the_same_shot_at_once(tmp_path):
    common = dict(iterations=250, step_s=0.02, cache="shared_cache")
    spec_a = tiny_job(tmp_path, "sh", **common)
    # job b names the shot's whole range (frames: 1001-1006), job a names none: the same resolved shot, the same
    # cache folder, so the same shot lock (it was keyed by the frames text, and b trained alongside a)
    spec_b = write_spec(tmp_path / "sh_range.yaml", {**yaml.safe_load(spec_a.read_text()), "frames": "1001-1006"})
    job_a = client.submit(spec_a, job_dir=tmp_path / "a.dtvfx")
    job_b = None
    try:
        pid_a = wait_for(lambda: client.status(job_a)["state"] == "running" and
                         (client.status(job_a)["iteration"] or 0) >= 3 and client.status(job_a)["pid"],
                         what="job a training")
        job_b = client.submit(spec_b, job_dir=tmp_path / "b.dtvfx")
        st_b = wait_for(lambda: (lambda s: s if s["stage"] == "waiting" else None)(client.status(job_b)),
                        what="job b waiting")
        assert f"waiting for the shot lock held by pid {pid_a} on host {S.hostname()}" in st_b["message"]
        assert client.status(job_a)["state"] == "running"
        assert job_a.wait(timeout=60, poll=0.1) == "done"
        assert job_b.wait(timeout=60, poll=0.1) == "done"
    finally:
        _kill_leftover(job_a.path)
        if job_b:
            _kill_leftover(job_b.path)
    starts = [int(x.split()[0]) for x in (tmp_path / "shared_cache" / "starts.txt").read_text().splitlines()]
    assert starts == [0, 250]  # b started only after a finished, from a's final checkpoint
    assert job_b.status()["state"] == "done"


def test_a_job_cannot_be_submitted_twice_while_running(tmp_path):
    spec = tiny_job(tmp_path, "twice", iterations=500, step_s=0.02)
    job = client.submit(spec)
    try:
        wait_for(lambda: client.status(job)["state"] == "running", what="running")
        r = subprocess.run(JOBS_CLI + ["submit", str(spec)], capture_output=True,
                           text=True, env=dict(os.environ))
        assert r.returncode == 2
        assert r.stderr.startswith(f"dtvfx: error: {job.path}: job is running (pid ")
        r = subprocess.run(JOBS_CLI + ["resume", str(job.path)],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "nothing to resume" in r.stderr
    finally:
        client.cancel(job.path, timeout=10)
        _kill_leftover(job.path)


def test_cli_submit_status_wait_contract_and_no_torch_on_the_host_side(tmp_path, capsys):
    spec = tiny_job(tmp_path, "cli", iterations=4)
    code = f"""
import json, subprocess, sys
from dino_tracker_vfx.jobs import client, tracker_entry
tracker_entry.use({HELPER_TRACK!r})
job = client.submit({str(spec)!r})
state = client.wait(job.path, poll=0.1, timeout=60)
print(json.dumps({{"state": state, "outputs": client.outputs(job.path), "torch": "torch" in sys.modules}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout.splitlines()[-1])
    assert d["state"] == "done" and d["torch"] is False and d["outputs"][0]["exists"]

    cli = JOBS_CLI
    r = subprocess.run(cli + ["submit", str(spec), "--jobs-root", str(tmp_path / "jobs")], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    job_dir = r.stdout.splitlines()[-1]
    assert job_dir == str(tmp_path / "jobs" / "cli")
    r = subprocess.run(cli + ["wait", job_dir, "--poll", "0.1", "--timeout", "60"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [str(tmp_path / "out" / "cli.csv")]
    r = subprocess.run(cli + ["status", job_dir, "--json"], capture_output=True, text=True)
    st = json.loads(r.stdout)
    assert st["state"] == "done" and st["progress"] == 1.0 and st["outputs"][0]["written"]
    for k in ("stage", "iteration", "eta_s", "pid", "error", "started", "updated", "finished", "attempt"):
        assert k in st
    from dino_tracker_vfx.cli import main

    assert main(["status", job_dir]) == 0
    assert capsys.readouterr().out.split()[:3] == ["cli", "done", "1"]
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err.strip().endswith("nope.yaml: job spec not found")


def test_registered_stand_in_tracker_is_used():
    from dino_tracker_vfx.errors import ConfigError
    from dino_tracker_vfx.jobs import tracker_entry
    from dino_tracker_vfx.jobs.worker import track_function

    assert track_function().__name__ == HELPER_TRACK.split(":")[1]
    assert tracker_entry.worker_argv(["j"])[1:4] == ["-c", tracker_entry._BOOTSTRAP, HELPER_TRACK]
    tracker_entry.use("no_such_module_x:track")
    with pytest.raises(ConfigError, match="tracker not available: cannot import no_such_module_x"):
        track_function()
    with pytest.raises(ValueError, match="expected 'module:function'"):
        tracker_entry.use("os; import x")


def test_dtvfx_track_fn_in_the_environment_imports_nothing_and_presets_are_still_checked(tmp_path, monkeypatch):
    """The old DTVFX_TRACK_FN variable can neither import code nor switch the preset check off."""
    from dino_tracker_vfx.jobs import tracker_entry

    marker = tmp_path / "imported.txt"
    (tmp_path / "evil_tracker.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                              "def track(*a, **k):\n    raise SystemExit(0)\n")
    spec = tiny_job(tmp_path, "env", iterations=3)  # counting_track's preset fields: not the tracker's
    env = dict(os.environ, DTVFX_TRACK_FN="evil_tracker:track",
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ["PYTHONPATH"]]))
    r = subprocess.run([sys.executable, "-m", "dino_tracker_vfx.cli", "run", str(spec)], capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"dtvfx: error: {spec}: preset: "), r.stderr
    assert not marker.exists()

    tracker_entry.use(None)  # this process: no stand-in registered
    monkeypatch.setenv("DTVFX_TRACK_FN", "evil_tracker:track")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert tracker_entry.worker_argv(["j"]) == [sys.executable, "-m", "dino_tracker_vfx.jobs.worker", "j"]
    fn = tracker_entry.track_function()
    assert (fn.__module__, fn.__name__) == ("dino_tracker_vfx.tracker.api", "track")
    assert not marker.exists() and "evil_tracker" not in sys.modules


def test_objects_and_mask_propagation_in_one_job(tmp_path):
    import cv2

    spec = tiny_job(tmp_path, "obj", iterations=3)
    m = np.zeros((48, 64), np.uint8)
    m[12:36, 16:44] = 255
    cv2.imwrite(str(tmp_path / "obj_mask.1001.png"), m)
    import yaml

    d = yaml.safe_load(spec.read_text())
    d["masks"] = ["obj_mask.1001.png"]
    d["objects"] = {"points_per_object": 4, "names": {1: "car"},
                    "segment": {"out": "out/obj_masks", "features": "colour-texture", "mattes": "none"}}
    spec.write_text(yaml.safe_dump(d))
    st = client.run(spec)
    assert st["state"] == "done", st["error"]
    ts = TrackSet.load_json(tmp_path / "obj.dtvfx" / "tracks.json")
    assert ts.names[:3] == ["q0", "q1", "q2"] and ts.n_tracks == 7
    assert ts.members("car") == [3, 4, 5, 6] and ts.groups["car"] is not None
    seg = tmp_path / "out" / "obj_masks"
    assert json.loads((seg / "segment.json").read_text())["objects"][0]["name"] == "car"
    assert len(list(seg.glob("0000*.png"))) == 6
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp folders left
    assert st["segment"] == str(seg)
    # a rerun reuses both the tracks and the propagated masks
    mtime = (seg / "segment.json").stat().st_mtime_ns
    assert client.run(spec)["state"] == "done"
    assert (seg / "segment.json").stat().st_mtime_ns == mtime and _starts(tmp_path / "obj.dtvfx") == [0]
