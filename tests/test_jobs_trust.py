"""Jobs that can be trusted: everything checkable is checked before a job is queued (``dtvfx submit`` exits 2
with one line and leaves nothing behind), identical runs write byte-identical tracks.json, and ``dtvfx status``
/ ``dtvfx wait`` report batches and stages as they are. The tracker is ``counting_track`` (_jobs_helpers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from _jobs_helpers import helper_env, tiny_job, write_spec
from dino_tracker_vfx.jobs import client


@pytest.fixture(autouse=True)
def helper_tracker(monkeypatch):
    for k, v in helper_env().items():
        monkeypatch.setenv(k, v)


def _cli(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "dino_tracker_vfx.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


# ----------------------------------------------------------------------------- reproducible outputs
def test_the_same_job_twice_writes_byte_identical_tracks_json(tmp_path):
    """Groups were ordered by a set of names (string hashing differs per process): two runs of one job wrote
    the groups of tracks.json in different orders."""
    spec = tiny_job(tmp_path, "rep", iterations=3)
    rows = "".join(f"p{i},1001,{5 + 6 * i},{10 + 3 * i},grp{i}\n" for i in range(8))
    (tmp_path / "rep_q.csv").write_text("name,frame,x,y,group\n" + rows)
    files = []
    for seed in ("1", "2"):
        job = client.submit(spec, job_dir=tmp_path / f"run{seed}", env={"PYTHONHASHSEED": seed})
        assert job.wait(timeout=60, poll=0.1) == "done", job.status()["error"]
        files.append((job.path / "tracks.json").read_bytes())
    assert [g["name"] for g in json.loads(files[0])["groups"]] == [f"grp{i}" for i in range(8)]  # query order
    assert files[0] == files[1]
