"""One list of progress stages (dino_tracker_vfx/stages.py) for the tracker, the jobs and the docs."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _tracker_helpers import TINY_WF, write_shot
from dino_tracker_vfx import stages
from dino_tracker_vfx.jobs.status import StatusWriter
from dino_tracker_vfx.progress import Progress
from dino_tracker_vfx.shots import open_shot
from dino_tracker_vfx.tracker.api import track
from dino_tracker_vfx.tracks import Query

ROOT = Path(__file__).resolve().parents[1]


def test_progress_refuses_a_stage_that_is_not_in_the_list():
    with pytest.raises(ValueError, match=r"unknown progress stage 'correspondences': add it to "
                                         r"dino_tracker_vfx/stages.py"):
        Progress("correspondences", 1, 1)
    assert Progress("tracklets", 1, 2).fraction == 0.5


def test_the_stage_list_imports_without_torch():
    code = "import sys, dino_tracker_vfx.stages, dino_tracker_vfx.progress; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_docs_list_the_same_stages_in_the_same_order():
    text = (ROOT / "docs" / "jobs.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+?) \| ([\d.]+) \|$", text, re.M)
    assert [(n, lab, float(w)) for n, lab, w in rows] == [(s.name, s.label, s.job_weight) for s in stages.STAGES]


def test_a_real_run_reports_known_stages_in_order_and_job_progress_only_grows(tmp_path):
    shot = open_shot(str(write_shot(tmp_path / "plates")))
    p = copy.deepcopy(TINY_WF)
    p["infer"].update(flow_guided=True, drift_correct=True)
    events = []
    st = {"stage": None, "progress": 0.0}
    w = StatusWriter(tmp_path, st, min_interval=0.0)
    overall = []

    def progress(e):
        events.append(e)
        w.progress(e)
        overall.append(st["progress"])

    for run in range(2):  # computed, then from the cache (the tracked point too: no refine, no drift)
        events.clear()
        track(shot, [Query(0, 20.0, 20.0, "a")], preset=p, cache_dir=tmp_path / "c", progress=progress)
        seen = list(dict.fromkeys(e.stage for e in events))
        assert {"load", "flow", "tracklets", "foreground", "train", "infer"} <= set(seen)
        assert ({"refine", "drift", "plate_refine"} <= set(seen)) == (run == 0), seen
        order = [stages.NAMES.index(s) for s in seen]
        assert order == sorted(order), seen  # each stage comes in the list's order
    assert any("1 of 1 anchors from the cache" in e.message for e in events if e.stage == "infer")
    # the job's overall progress moved in every stage (none is unknown to its weights) and never went back
    assert all(b >= a for a, b in zip(overall, overall[1:]))
    assert len(set(overall)) > 10 and 0.0 < overall[-1] < 1.0
