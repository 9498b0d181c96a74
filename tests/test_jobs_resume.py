"""The real DINO-Tracker under the job machinery: a background worker killed with SIGKILL mid-training
resumes at its last checkpoint and ends with the same outputs as an uninterrupted run (same seed).

Weight-free tiny preset (Delta-CNN alone, DIS flow), 6 frames of 64x48, a checkpoint every 4 iterations.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest

from _jobs_helpers import make_shot, wait_for, write_queries, write_spec
from dino_tracker_vfx.jobs import client
from dino_tracker_vfx.jobs import status as S
from dino_tracker_vfx.tracks import TrackSet

ITERATIONS = 40
EVERY = 4
TINY = {
    "name": "jobs-test-tiny",
    "backbone": "none",
    "working_height": 48,
    "amp": False,
    "delta": {"hidden": [4, 8], "out_channels": 8, "kernel": 3},
    "refiner": False,
    "flow": {"method": "dis"},
    "best_buddies": {"enabled": False},
    "foreground": {"source": "all"},
    "train": {"iterations": ITERATIONS, "checkpoint_every": EVERY, "frames_per_step": 2, "flow_pairs": 16,
              "cyc_frame_pairs": 0, "cyc_points_per_pair": 0, "bb_pairs": 0, "lambda_dino_bb": 0.0,
              "lambda_rfn_bb": 0.0, "lambda_cyc": 0.0},
    "infer": {"occlusion": False},
}


def _checkpoints(job_dir: Path) -> dict[int, Path]:
    out = {}
    for p in (job_dir / "cache").rglob("iter_*.pt"):
        m = re.match(r"iter_(\d+)\.pt$", p.name)
        if m:
            out[int(m.group(1))] = p
    return out


@pytest.mark.slow
def test_sigkill_mid_training_resumes_at_the_last_checkpoint_with_identical_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # workers: no OpenMP spinning on a shared 2-core machine
    make_shot(tmp_path / "plates", "sh")
    write_queries(tmp_path / "q.csv")
    spec = write_spec(tmp_path / "sh.yaml", {
        "shot": "plates/sh.####.png", "queries": "q.csv", "preset": TINY, "seed": 3, "device": "cpu",
        "outputs": [{"format": "csv", "path": "out/sh.csv"}, {"format": "json", "path": "out/sh.json"}]})
    job = client.submit(spec)
    pid = None
    try:
        pid = wait_for(lambda: client.status(job)["pid"], timeout=60, what="worker pid")
        # kill once a couple of checkpoints exist and training is still going
        wait_for(lambda: len(_checkpoints(job.path)) >= 1 and max(_checkpoints(job.path)) >= 3 * EVERY
                 or client.status(job)["state"] != "running", timeout=120, poll=0.01, what="checkpoints")
        st = client.status(job)
        assert st["state"] == "running", f"trained to the end before the kill: {st}"
        os.kill(pid, signal.SIGKILL)
        # the kernel drops the worker's lock once all its threads are gone
        st = wait_for(lambda: (lambda s: s if s["state"] != "running" else None)(client.status(job)),
                      timeout=10, what="worker gone")
        assert st["state"] == "died" and st["resumable"]
        last = max(_checkpoints(job.path))
        assert last < ITERATIONS
        job.resume()
        assert job.wait(timeout=180, poll=0.2) == "done", job.status().get("error")
    finally:
        st = S.read_status(job.path)
        if st.get("state") == "running" and st.get("pid") and S.pid_alive(st["pid"]):
            os.kill(st["pid"], signal.SIGKILL)
    st = job.status()
    assert st["train_started_at"] == last and st["attempt"] == 2  # resumed at the last checkpoint
    assert f"training from iteration {last} of {ITERATIONS}" in (job.path / "job.log").read_text()

    resumed = TrackSet.load_json(job.path / "tracks.json")
    assert resumed.n_tracks == 3 and all(o["written"] for o in st["outputs"])
    resumed_files = {o["path"]: Path(o["path"]).read_bytes() for o in st["outputs"]}

    # the same spec uninterrupted (same seed, one thread like the workers), in another job directory
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = client.run(spec, job_dir=tmp_path / "ref.dtvfx")
    finally:
        torch.set_num_threads(threads)
    assert ref["state"] == "done" and ref["train_started_at"] == 0, ref.get("error")
    uninterrupted = TrackSet.load_json(tmp_path / "ref.dtvfx" / "tracks.json")
    np.testing.assert_array_equal(resumed.xy, uninterrupted.xy)  # needs the tracker's seeded init + RNG in ckpt
    np.testing.assert_array_equal(resumed.visible, uninterrupted.visible)
    np.testing.assert_array_equal(resumed.confidence, uninterrupted.confidence)
    for path, data in resumed_files.items():  # the reference run rewrote the same output files
        assert Path(path).read_bytes() == data, path
