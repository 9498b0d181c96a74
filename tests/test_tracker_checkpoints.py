"""Training checkpoints: plain data only (a pickle in a cache folder never runs), resuming after Ctrl-C in
``dtvfx track``, and a changed ``train.iterations`` continuing from the last checkpoint."""

from __future__ import annotations

import builtins
import copy
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _tracker_helpers import TINY_WF, write_queries, write_shot
from dino_tracker_vfx.errors import CacheError
from dino_tracker_vfx.shots import open_shot
from dino_tracker_vfx.tracker.api import ShotTracker, track
from dino_tracker_vfx.tracker.cache import ShotCache, read_checkpoint
from dino_tracker_vfx.tracks import Query

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    return open_shot(str(write_shot(tmp_path_factory.mktemp("plates"))))


def _preset(iterations: int, every: int = 4) -> dict:
    p = copy.deepcopy(TINY_WF)
    p["train"].update(iterations=iterations, checkpoint_every=every)
    return p


class _Evil:
    """Unpickling this runs ``exec`` - what a planted checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def _train_events(st: ShotTracker, iterations: int | None = None) -> list:
    events = []
    st.progress = events.append
    st.train(iterations)
    return [e.done for e in events if e.stage == "train"]


def test_a_pickle_planted_as_a_checkpoint_is_never_run(shot, tmp_path):
    cache = tmp_path / "c"
    st = ShotTracker(shot, TINY_WF, cache_dir=cache)
    st.prepare()
    settings = st.train_settings()
    d = st.cache.checkpoint_dir(ShotCache.key("checkpoints", settings))
    d.mkdir(parents=True)
    marker = tmp_path / "marker"
    planted = d / "iter_0000008.pt"
    torch.save({"iteration": 8, "settings": settings, "model": _Evil(marker)}, planted)
    with pytest.raises(CacheError, match=r"iter_0000008.pt: unusable checkpoint \(holds objects other than tensors "
                                         r"and plain data \(refused: loading it could run code\)\)"):
        read_checkpoint(planted, settings)  # named explicitly: a one-line error
    assert not marker.exists()
    with pytest.warns(UserWarning, match=r"iter_0000008.pt: unusable checkpoint .*deleting it and ignoring it"):
        tracks = track(shot, [Query(0, 20.0, 20.0, "a")], preset=TINY_WF, cache_dir=cache)
    assert not marker.exists(), "unpickling the planted file ran its code"
    assert tracks.meta["tracker"]["iterations"] == TINY_WF["train"]["iterations"]
    assert not planted.exists() or read_checkpoint(planted, settings)["iteration"] == 8  # deleted or ours now
    # what training writes is plain data: it loads with weights_only=True and resumes
    for p in d.glob("iter_*.pt"):
        assert torch.load(p, weights_only=True)["iteration"] in (8, 12)
    assert _train_events(ShotTracker(shot, TINY_WF, cache_dir=cache)) == [12]


def test_checkpoints_refuse_objects_that_are_not_plain_data(tmp_path):
    c = ShotCache(tmp_path, {"source": "x"})
    with pytest.raises(TypeError, match=r"checkpoint.extra is a object: checkpoints hold tensors and plain data only"):
        c.save_checkpoint("k", 1, {"iteration": 1, "settings": {}, "extra": object()})
    assert not list(tmp_path.rglob("iter_*.pt"))
    c.save_checkpoint("k", 1, {"iteration": 1, "settings": {"a": [1, 2.0, "s", None, (True,)]},
                               "t": {"w": torch.ones(2)}})
    assert read_checkpoint(next(tmp_path.rglob("iter_*.pt")), {"a": [1, 2.0, "s", None, (True,)]})["iteration"] == 1


def test_more_iterations_continue_from_the_last_checkpoint(shot, tmp_path):
    cache = tmp_path / "c"
    assert _train_events(ShotTracker(shot, _preset(8), cache_dir=cache))[0] == 0
    st = ShotTracker(shot, _preset(12), cache_dir=cache)
    ev = _train_events(st)
    assert ev[0] == 8 and ev[-1] == 12 and st.trained_iterations == 12  # resumed, not restarted
    # a lower count uses the newest checkpoint at or below it (iteration 8), never a later one
    st = ShotTracker(shot, _preset(10), cache_dir=cache)
    ev = _train_events(st)
    assert ev[0] == 8 and st.trained_iterations == 10
    # the later checkpoint survives the shorter run's pruning: the full count needs no training
    assert _train_events(ShotTracker(shot, _preset(12), cache_dir=cache)) == [12]
    # a setting that changes training still starts anew
    other = _preset(12)
    other["train"]["lr"] = 0.02
    assert _train_events(ShotTracker(shot, other, cache_dir=cache))[0] == 0


@pytest.mark.slow
@pytest.mark.timeout(600)  # it reads the CLI's stderr until a training line: never forever
def test_ctrl_c_in_dtvfx_track_saves_a_checkpoint_and_a_rerun_resumes(shot, tmp_path):
    preset = tmp_path / "long.yaml"
    preset.write_text(json.dumps(_preset(100000, every=100000)))
    q = write_queries(tmp_path / "q.csv", [("a", 0, 20, 20, "")])
    cache, out = tmp_path / "c", tmp_path / "out.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "DTVFX_PROGRESS_INTERVAL": "0.5"}
    proc = subprocess.Popen([sys.executable, "-m", "dino_tracker_vfx.cli", "track", shot.source, "--queries", str(q),
                             "--preset", str(preset), "--cache", str(cache), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    lines = []
    try:
        for line in proc.stderr:  # plain progress lines per stage and every 0.5 s: wait for trained iterations
            lines.append(line)
            m = re.match(r"train\s+\d+%\|[#0-9 ]*\| (\d+)/100000", line)
            if m and int(m.group(1)) > 0:
                break
        else:
            pytest.fail("dtvfx track ended before training:\n" + "".join(lines))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "dtvfx: cancelled" in err and "Traceback" not in err
    ckpts = list(cache.rglob("iter_*.pt"))
    assert len(ckpts) == 1 and not out.exists()
    n = torch.load(ckpts[0], weights_only=True)["iteration"]
    assert n > 0
    st = ShotTracker(shot, _preset(n + 2), cache_dir=cache)
    st.prepare()
    ev = _train_events(st)
    assert ev[0] == n and ev[-1] == n + 2
