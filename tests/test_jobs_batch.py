"""Batches: one corrupt shot fails alone; the summary names every failure; exit code 1."""

from __future__ import annotations

import subprocess

import pytest

from _jobs_helpers import JOBS_CLI, counting_tracker, helper_env, make_shot, tiny_job, write_queries, write_spec
from dino_tracker_vfx.jobs import batch as B
from dino_tracker_vfx.jobs import status as S
from dino_tracker_vfx.tracks import TrackSet


@pytest.fixture(autouse=True)
def helper_tracker(monkeypatch):
    for k, v in helper_env().items():
        monkeypatch.setenv(k, v)
    with counting_tracker():
        yield


def test_batch_with_a_corrupt_shot_finishes_the_others(tmp_path):
    for n in ("a", "b", "c"):
        tiny_job(tmp_path, n, iterations=5, corrupt=(n == "b"))
    write_spec(tmp_path / "shots.yaml", {"jobs": ["a.yaml", "b.yaml", "c.yaml", "missing.yaml"]})
    r = subprocess.run(JOBS_CLI + ["batch", str(tmp_path / "shots.yaml"),
                        "--parallel", "2"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    out = r.stdout.splitlines()
    assert out[-1] == str(tmp_path / "shots.dtvfx")
    rows = {ln.split()[0]: ln for ln in out[:-2]}
    assert rows["a"].split()[1] == "done" and rows["c"].split()[1] == "done"
    assert rows["b"].split()[1] == "failed" and "plate.1003.png" in rows["b"]  # the reason names the frame
    assert rows["missing"].split()[1] == "failed" and "job spec not found" in rows["missing"]
    assert out[-2] == "2/4 done, 2 failed: b, missing"
    assert f"dtvfx: b: failed: {tmp_path / 'b' / 'plate.1003.png'}" in r.stderr
    assert "batch" in r.stderr  # the overall progress bar
    for n in ("a", "c"):
        assert TrackSet.load_csv(tmp_path / "out" / f"{n}.csv").n_tracks == 3
        assert S.read_status(tmp_path / "shots.dtvfx" / n)["executor"] == "batch"
    st_b = S.read_status(tmp_path / "shots.dtvfx" / "b")
    assert st_b["state"] == "failed" and st_b["error_kind"] == "ShotError"
    assert not (tmp_path / "out" / "b.csv").exists()


def test_template_batch_in_process_with_gpu_slots(tmp_path):
    for n in ("sh010", "sh020"):
        make_shot(tmp_path / "plates" / n, n)
        write_queries(tmp_path / f"{n}.csv")
    write_spec(tmp_path / "shots.yaml", {
        "template": {"queries": "{name}.csv", "preset": {"iterations": 4}, "device": "cpu",
                     "outputs": ["out/{name}.json"]},
        "shots": [{"name": "sh010", "shot": "plates/sh010/sh010.####.png"},
                  {"name": "sh020", "shot": "plates/sh020/sh020.####.png", "resources": {"num_gpus": 1}}]})
    jobs = B.load_batch(tmp_path / "shots.yaml")
    root = B.default_jobs_root(tmp_path / "shots.yaml")
    B.prepare_batch(jobs, root, "batch")
    seen = []
    B.run_local(jobs, parallel=2, gpus=1, progress=seen.append, poll=0.1)
    assert [j.state for j in jobs] == ["done", "done"], [j.reason for j in jobs]
    assert jobs[1].spec.wants_gpu() and not jobs[0].spec.wants_gpu()
    assert seen[-1].done == seen[-1].total == 100 and seen[-1].message.startswith("2/2 finished, 0 failed")
    assert (tmp_path / "out" / "sh020.json").is_file()
    assert "2/2 done, 0 failed" in B.summary(jobs)
