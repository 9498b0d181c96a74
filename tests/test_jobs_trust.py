"""Jobs that can be trusted: everything checkable is checked before a job is queued (``dtvfx submit`` exits 2
with one line and leaves nothing behind), identical runs write byte-identical tracks.json, and ``dtvfx status``
/ ``dtvfx wait`` report batches and stages as they are. The tracker is ``counting_track`` (_jobs_helpers)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from _jobs_helpers import JOBS_CLI, counting_tracker, helper_env, tiny_job, write_spec
from dino_tracker_vfx.jobs import client


@pytest.fixture(autouse=True)
def helper_tracker(monkeypatch):
    for k, v in helper_env().items():
        monkeypatch.setenv(k, v)
    with counting_tracker():  # registered by code and handed on to the workers this process starts
        yield


def _cli(*args, env=None, timeout=120):
    return subprocess.run([*JOBS_CLI, *map(str, args)], capture_output=True,
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


# ----------------------------------------------------------------------------- checks before queueing
def _zero_mask(tmp_path: Path) -> str:
    import cv2

    cv2.imwrite(str(tmp_path / "matte.png"), np.zeros((48, 64), np.uint8))
    return "matte.png@1001"


def _bad_queries(tmp_path: Path) -> str:
    (tmp_path / "bin_q.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 not text")
    return "bin_q.csv"


def _frame_outside(tmp_path: Path) -> str:
    (tmp_path / "far_q.csv").write_text("name,frame,x,y\nq0,2001,5,5\n")
    return "far_q.csv"


def _nuke(options):
    return {"outputs": [{"format": "nuke", "path": "out/x.nk", "options": options}]}


CASES = {
    "cornerpin-count": (lambda p: _nuke({"cornerpin": ["q0", "q1", "q2"]}),
                        "outputs[0].options: option cornerpin needs 4 track names"),
    "cornerpin-name": (lambda p: _nuke({"cornerpin": ["q0", "q1", "q2", "nope"]}),
                       "outputs[0].options: option cornerpin: no track named 'nope' (tracks: q0, q1, q2)"),
    "reference-frame": (lambda p: _nuke({"reference_frame": 999}),
                        "outputs[0].options: option reference_frame=999 is not a frame of the shot (1001-1006)"),
    "output-under-a-file": (lambda p: (p / "blocker").write_text("x") and
                            {"outputs": [{"format": "csv", "path": "blocker/out.csv"}]},
                            "outputs[0].path: cannot create {p}/blocker: {p}/blocker is a file, not a folder"),
    "cache-under-a-file": (lambda p: (p / "blocker").write_text("x") and {"cache": "blocker/cache"},
                           "cache: cannot create {p}/blocker/cache: {p}/blocker is a file, not a folder"),
    "cuda-index": (lambda p: {"device": "cuda:64"}, "device: cuda:64 was asked for but "),
    "undecodable-queries": (lambda p: {"queries": _bad_queries(p)}, "{p}/bin_q.csv: a binary file, not CSV text"),
    "query-outside-the-shot": (lambda p: {"queries": _frame_outside(p)},
                               "{p}/far_q.csv: line 2: frame 2001 is not in the shot (1001-1006)"),
    "all-zero-mask": (lambda p: {"masks": [_zero_mask(p)]}, "{p}/matte.png: mask is empty (no object) at frame 1001"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_submit_refuses_a_job_that_would_fail_after_training(tmp_path, capsys, case):
    from dino_tracker_vfx.cli import main

    make_fields, expect = CASES[case]
    spec = tiny_job(tmp_path, "sh", iterations=3)
    spec = write_spec(spec, {**yaml.safe_load(spec.read_text()), **make_fields(tmp_path)})
    assert main(["submit", str(spec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dtvfx: error: ") and expect.format(p=tmp_path) in err[0], err
    assert not (tmp_path / "sh.dtvfx").exists()  # nothing queued, no job directory


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_has_cuda(), reason="this machine has CUDA (the cuda:64 case above covers it)")
def test_submit_refuses_cuda_without_cuda(tmp_path, capsys):
    from dino_tracker_vfx.cli import main

    spec = tiny_job(tmp_path, "gpu", iterations=3, device="cuda")
    assert main(["submit", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"dtvfx: error: {spec}: device: cuda was asked for but CUDA is not available on this machine "
                   f"(use cpu or auto)")
    assert not (tmp_path / "gpu.dtvfx").exists()


def test_a_refused_resubmit_leaves_the_existing_job_as_it_was(tmp_path):
    from dino_tracker_vfx.errors import InputError

    spec = tiny_job(tmp_path, "again", iterations=3)
    job = client.prepare(spec)
    before = (job.path / "status.json").read_bytes()
    (tmp_path / "again_q.csv").write_text("name,frame,x,y\nq0,2001,5,5\n")
    with pytest.raises(InputError, match=r"again_q.csv: line 2: frame 2001 is not in the shot \(1001-1006\)"):
        client.submit(spec)
    assert (job.path / "status.json").read_bytes() == before


# ----------------------------------------------------------------------------- what the commands show
def test_track_help_lists_every_host_file_that_gives_queries(capsys):
    from dino_tracker_vfx.adapters import registry
    from dino_tracker_vfx.cli import main

    with pytest.raises(SystemExit):
        main(["track", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    suffixes = sorted({s for a in registry() if a.can("read_queries") for s in a.suffixes})
    assert [s for s in suffixes if s not in text] == []


def _running_at(job_dir: Path, **fields) -> None:
    from dino_tracker_vfx.jobs import status as S

    st = S.read_status(job_dir)
    st.update(state="running", pid=os.getpid(), host=S.hostname(), **fields)
    S.write_status(job_dir, st)


def test_wait_shows_the_stage_counter_and_the_job_share(tmp_path, capsys):
    from dino_tracker_vfx.cli import main
    from dino_tracker_vfx.jobs import lock as L

    job = client.prepare(tiny_job(tmp_path, "w", iterations=3))
    _running_at(job.path, stage="train", stage_done=166, stage_total=300, iteration=166, progress=0.4512,
                eta_s=90.0, message="")
    held = L.job_lock(job.path)
    held.acquire()  # a live worker, as far as readers can tell
    try:
        assert main(["wait", str(job.path), "--timeout", "0.2", "--poll", "0.1"]) == 124
    finally:
        held.release()
    bar = capsys.readouterr().err.splitlines()[0]
    assert bar.split()[0] == "train" and " 166/300 " in bar and "job 45%" in bar, bar


def test_status_of_a_batch_folder_lists_its_jobs_and_counts_them(tmp_path, capsys):
    from dino_tracker_vfx.cli import main
    from dino_tracker_vfx.jobs import batch as B

    for n in ("a", "b", "c"):
        tiny_job(tmp_path, n, iterations=3)
    (tmp_path / "c_q.csv").write_text("name,frame,x,y\nq0,2001,5,5\n")  # refused before queueing
    write_spec(tmp_path / "shots.yaml", {"jobs": ["a.yaml", "b.yaml", "c.yaml", "missing.yaml"]})
    jobs = B.load_batch(tmp_path / "shots.yaml")
    root = B.default_jobs_root(tmp_path / "shots.yaml")
    B.prepare_batch(jobs, root, "batch")
    B.run_local(jobs[:1], poll=0.1)  # a runs; b stays queued

    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"batch {root}"
    assert [ln.split()[:2] for ln in out[1:5]] == [["a", "done"], ["b", "queued"], ["c", "failed"],
                                                  ["missing", "failed"]]
    assert "not queued: " in out[3] and "c_q.csv: line 2: frame 2001 is not in the shot" in out[3]
    assert "not queued: " in out[4] and "job spec not found" in out[4]
    assert out[5] == "4 job(s): 1 queued, 1 done, 2 failed"
    assert main(["status", str(root), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["batch"] == str(root) and d["counts"] == {"done": 1, "queued": 1, "failed": 2}
    assert [(j["job"], j["state"]) for j in d["jobs"]] == [("a", "done"), ("b", "queued"), ("c", "failed"),
                                                           ("missing", "failed")]
    assert d["jobs"][0]["outputs"][0]["written"] and d["jobs"][2]["queued"] is False


def test_an_output_the_user_cannot_write_fails_not_retryable(tmp_path, monkeypatch):
    """A path that cannot be written (EACCES here; as root chmod stops nothing, so the adapter call is made to
    fail) is the user's to fix: a re-run would fail the same way, so it is not retryable (Ray runs it once)."""
    import errno

    from dino_tracker_vfx.jobs import outputs

    target = tmp_path / "out" / "deny.csv"

    def denied(tracks, fmt, path, options):
        raise PermissionError(errno.EACCES, "Permission denied", str(target))

    monkeypatch.setattr(outputs, "write_output", denied)
    st = client.run(tiny_job(tmp_path, "deny", iterations=3))
    assert (st["state"], st["retryable"], st["error_kind"]) == ("failed", False, "PermissionError")
    assert st["error"] == f"cannot write {target} (Permission denied)"
