"""A batch of tiny shots as Ray tasks on a local Ray instance (CPU): one task crashes once and is retried by
Ray (retry_exceptions), resuming from its checkpoint; one fails on the user's path and is not retried; run
again, the done jobs report that they reused their tracks, not a second attempt."""

from __future__ import annotations

import pytest

from _jobs_helpers import HERE, REPO, checkpoint_iteration, counting_tracker, tiny_job, write_spec
from dino_tracker_vfx.jobs import batch as B
from dino_tracker_vfx.jobs import status as S
from dino_tracker_vfx.tracks import TrackSet

pytestmark = pytest.mark.ray


@pytest.fixture
def local_ray(monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="error", log_to_driver=False)
    try:
        with counting_tracker():  # handed on to the Ray tasks by run_ray
            yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_batch_of_three_tiny_shots(tmp_path, local_ray):
    from dino_tracker_vfx.jobs.ray_executor import run_ray, task_options

    specs = [tiny_job(tmp_path, n, iterations=20, checkpoint_every=5, fail_once_at=(12 if n == "b" else None))
             for n in ("a", "b", "c")]
    specs.append(tiny_job(tmp_path, "d", iterations=3, outputs=["d_out/d.csv"]))
    write_spec(tmp_path / "shots.yaml", {"jobs": [s.name for s in specs]})
    jobs = B.load_batch(tmp_path / "shots.yaml")
    root = tmp_path / "shared" / "jobs"
    B.prepare_batch(jobs, root, "ray")
    (tmp_path / "d_out").write_text("a file where d's output folder should be, made after d was checked")
    assert task_options(jobs[0].spec, None, None, None)["num_gpus"] == 0
    seen = []
    env = {"PYTHONPATH": f"{HERE}:{REPO}"}
    run_ray(jobs, env=env, progress=seen.append, poll=0.2)
    assert [(j.name, j.state) for j in jobs] == [("a", "done"), ("b", "done"), ("c", "done"), ("d", "failed")], \
        [j.reason for j in jobs]
    st_d = S.read_status(root / "d")  # the user's path: not retryable, so Ray ran it once
    assert st_d["retryable"] is False and st_d["error_kind"] == "ConfigError"
    assert "d_out is a file, not a folder" in st_d["error"]
    assert st_d["attempt"] == 1 and jobs[3].attempts == 1
    assert len((root / "d" / "cache" / "starts.txt").read_text().splitlines()) == 1
    assert jobs[1].attempts == 2 and "(attempts: 2)" in B.summary(jobs).splitlines()[1]
    st_b = S.read_status(root / "b")
    assert st_b["executor"] == "ray" and st_b["attempt"] == 2  # Ray re-ran the crashed task once
    starts = [int(x.split()[0]) for x in (root / "b" / "cache" / "starts.txt").read_text().splitlines()]
    assert starts == [0, 10] and checkpoint_iteration(root / "b" / "cache") == 20  # resumed at its checkpoint
    assert "simulated crash at iteration 12" in (root / "b" / "job.log").read_text()
    for n in ("a", "b", "c"):
        assert TrackSet.load_csv(tmp_path / "out" / f"{n}.csv").n_tracks == 3
    assert seen[-1].message.startswith("4/4 finished, 1 failed")

    again = B.load_batch(tmp_path / "shots.yaml")[:3]  # the same batch again: all three results are reused
    B.prepare_batch(again, root, "ray")
    run_ray(again, env=env, poll=0.2)
    assert [(j.state, j.attempts, j.reused) for j in again] == [("done", 1, True)] * 3
    rows = B.summary(again).splitlines()
    assert all("reused its saved tracks" in r and "attempts" not in r for r in rows[:3]), rows
    assert S.read_status(root / "b")["reused"] is True


@pytest.fixture
def stand_in():
    with counting_tracker():
        yield


def test_task_resources_follow_the_device(tmp_path, stand_in):
    from dino_tracker_vfx.jobs.ray_executor import RetryableJobError, task_options
    from dino_tracker_vfx.jobs.spec import load_spec

    gpu = load_spec(tiny_job(tmp_path, "g", device="cuda", retries=3))
    o = task_options(gpu, None, None, None)
    assert (o["num_gpus"], o["num_cpus"], o["max_retries"], o["retry_exceptions"]) == (1, 1, 3, [RetryableJobError])
    o = task_options(gpu, 4, 0.5, 0)
    assert (o["num_gpus"], o["num_cpus"], o["max_retries"]) == (0.5, 4, 0)
    cpu = load_spec(tiny_job(tmp_path, "c", device="cpu", resources={"num_cpus": 2, "memory": 2e9}))
    o = task_options(cpu, None, None, None)
    assert (o["num_gpus"], o["num_cpus"], o["memory"]) == (0, 2, 2e9)
