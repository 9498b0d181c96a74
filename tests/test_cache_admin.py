"""Cache management: `dtvfx cache list|clean`, the $DTVFX_CACHE_MAX limit after a run, and entries in use
(held by a live ShotCache) never deleted."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from _tracker_helpers import TINY_WF, write_queries, write_shot
from dino_tracker_vfx.cli import main
from dino_tracker_vfx.errors import ConfigError
from dino_tracker_vfx.tracker import cache_admin as ca
from dino_tracker_vfx.tracker.cache import ShotCache

DAY = 86400.0
MB = 2 ** 20


def make_entry(root, name: str, mb: float, days_ago: float, checkpoint: bool = False) -> ShotCache:
    """A real cache entry of about ``mb`` MB, every file last modified ``days_ago`` days ago."""
    c = ShotCache(root, {"source": f"/plates/{name}.####.exr", "frames": [1001, 1002, 1003], "size": [64, 48]})
    c.save("flow", "k1", {"flow": np.zeros(int(mb * MB / 8), np.float64)})
    c.save("features", "k2", {"f": np.zeros(8, np.float32)})
    if checkpoint:
        c.save_checkpoint("ck", 40, {"iteration": 40})
    t = time.time() - days_ago * DAY
    for dirpath, _dirs, files in os.walk(c.root):
        for f in files:
            os.utime(os.path.join(dirpath, f), (t, t))
    return c


@pytest.fixture
def cache(tmp_path):
    """Three released entries: a (1 MB, 10 days), b (2 MB, 3 days, checkpoint), c (3 MB, 1 hour)."""
    root = tmp_path / "cache"
    keys = {}
    for name, mb, days, ck in (("a", 1, 10, False), ("b", 2, 3, True), ("c", 3, 1 / 24, False)):
        keys[name] = make_entry(root, name, mb, days, ck).shot_key  # the ShotCache is dropped: released
    (root / "not-an-entry").mkdir()
    (root / "not-an-entry" / "keep.txt").write_text("user file")
    (root / "shot-0123456789abcdef.lock").write_text("")  # a job's shot lock lives in the root too
    return root, keys


def _names(entries) -> list[str]:
    return [e.shot.split("/")[-1].split(".")[0] for e in entries]


def test_list_reports_each_shot_most_recent_first(cache, capsys):
    root, keys = cache
    entries = ca.list_entries(root)
    assert _names(entries) == ["c", "b", "a"]
    b = entries[1]
    assert b.path == root / keys["b"] and b.frames == "1001-1003 (3 images)"
    assert b.stages == ["features", "flow"] and b.checkpoints == {"ck": 40} and not b.in_use
    assert 2 * MB < b.size < 2 * MB + 64 * 1024
    assert time.time() - b.last_used == pytest.approx(3 * DAY, abs=60)
    assert main(["cache", "list", "--cache", str(root), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["key"] for e in doc["entries"]] == [keys["c"], keys["b"], keys["a"]]
    assert doc["entries"][1]["checkpoints"] == {"ck": 40} and doc["entries"][1]["shot"] == "/plates/b.####.exr"
    assert main(["cache", "list", "--cache", str(root)]) == 0
    out = capsys.readouterr().out
    assert "used 3.0d ago" in out and "checkpoints ck @ 40" in out and out.rstrip().endswith("3 shot(s), 6.0M")


def test_dry_run_deletes_nothing(cache, capsys):
    root, keys = cache
    before = sorted(p.name for p in root.rglob("*"))
    assert main(["cache", "clean", "--cache", str(root), "--all", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("would remove /") == 3 and "would remove 3 shot(s), 6.0M; 0B left" in out
    assert sorted(p.name for p in root.rglob("*")) == before


def test_max_size_evicts_least_recently_used_first(cache, capsys):
    root, keys = cache
    assert main(["cache", "clean", "--cache", str(root), "--max-size", "4M"]) == 0
    # 6 MB total: a (oldest, 1 MB) then b (2 MB) go; c (newest, 3 MB) fits
    assert _names(ca.list_entries(root)) == ["c"]
    assert "removed 2 shot(s), 3.0M; 3.0M left" in capsys.readouterr().out
    assert (root / "not-an-entry" / "keep.txt").read_text() == "user file"
    assert (root / "shot-0123456789abcdef.lock").exists()


def test_older_than_and_all(cache):
    root, keys = cache
    res = ca.clean(root, older_than=ca.parse_age("2d", "--older-than"))
    assert _names(res.removed) == ["a", "b"] and _names(ca.list_entries(root)) == ["c"]
    ca.clean(root, everything=True)
    assert ca.list_entries(root) == [] and (root / "not-an-entry").is_dir()


def test_entry_in_use_is_kept(cache, capsys):
    root, keys = cache
    live = ShotCache(root, {"source": "/plates/a.####.exr", "frames": [1001, 1002, 1003], "size": [64, 48]})
    assert live.shot_key == keys["a"]  # the oldest entry, now held by a running tracker
    assert [e.in_use for e in ca.list_entries(root)] == [True, False, False]  # opening it made it the newest
    assert main(["cache", "clean", "--cache", str(root), "--all"]) == 0
    assert "removed 2 shot(s)" in capsys.readouterr().out
    assert [e.key for e in ca.list_entries(root)] == [keys["a"]]
    # a holder that appears between planning and deleting is still respected
    entry = ca.read_entry(root / keys["a"])
    entry.in_use = False
    assert ca.remove(entry) is False and (root / keys["a"] / "shot.json").is_file()
    del live  # released: now it can go, and a new run simply recreates it
    assert ca.remove(ca.read_entry(root / keys["a"])) is True and not (root / keys["a"]).exists()
    again = ShotCache(root, {"source": "/plates/a.####.exr", "frames": [1001, 1002, 1003], "size": [64, 48]})
    assert (again.root / "shot.json").is_file() and ca.in_use(again.root)


def test_limit_after_a_run_keeps_the_entry_just_used(cache, monkeypatch):
    root, keys = cache
    monkeypatch.setenv(ca.LIMIT_ENV, "1M")
    res = ca.enforce_limit(root, keep=(keys["a"],))  # a just ran: over the limit, it still stays
    assert _names(res.removed) == ["b", "c"] and [e.key for e in ca.list_entries(root)] == [keys["a"]]
    monkeypatch.setenv(ca.LIMIT_ENV, "none")
    assert ca.enforce_limit(root) is None
    monkeypatch.setenv(ca.LIMIT_ENV, "lots")
    with pytest.raises(ConfigError, match="DTVFX_CACHE_MAX: 'lots' is not a size"):
        ca.enforce_limit(root)


def test_track_command_applies_the_limit(tmp_path, monkeypatch, capsys):
    root = tmp_path / "cache"
    old = make_entry(root, "old", 2, 5).shot_key
    shot = write_shot(tmp_path / "plates", n=4)
    q = write_queries(tmp_path / "q.csv", [("a", 0, 20, 20)])
    preset = tmp_path / "tiny.yaml"
    preset.write_text(json.dumps({**TINY_WF, "train": {**TINY_WF["train"], "iterations": 2}}))
    monkeypatch.setenv(ca.LIMIT_ENV, "1M")
    rc = main(["track", str(shot), "--queries", str(q), "--preset", str(preset), "--cache", str(root),
               "--out", str(tmp_path / "t.json")])
    assert rc == 0, capsys.readouterr().err
    left = ca.list_entries(root)
    assert len(left) == 1 and left[0].key != old and left[0].shot == str(shot)  # the run's own entry stays
    monkeypatch.setenv(ca.LIMIT_ENV, "10 parsecs")
    rc = main(["track", str(shot), "--queries", str(q), "--preset", str(preset), "--cache", str(root)])
    assert rc == 2 and "DTVFX_CACHE_MAX: '10 parsecs' is not a size" in capsys.readouterr().err


def test_clean_needs_a_criterion_and_valid_values(tmp_path, capsys):
    assert main(["cache", "clean", "--cache", str(tmp_path)]) == 2
    assert "say what to clean: --older-than AGE, --max-size SIZE or --all" in capsys.readouterr().err
    assert main(["cache", "clean", "--cache", str(tmp_path), "--older-than", "7 fortnights"]) == 2
    assert "--older-than: '7 fortnights' is not an age" in capsys.readouterr().err
    assert ca.parse_size("1.5G", "x") == int(1.5 * 2 ** 30) and ca.parse_size("2048", "x") == 2048
    assert ca.parse_age("2w", "x") == 14 * DAY


def test_job_worker_applies_the_limit_and_keeps_its_shot(tmp_path, monkeypatch):
    from dino_tracker_vfx.jobs import worker
    from dino_tracker_vfx.shots import open_shot
    from dino_tracker_vfx.tracker.cache import shot_identity

    root = tmp_path / "shared-cache"
    old = make_entry(root, "old", 2, 5).shot_key
    shot = open_shot(str(write_shot(tmp_path / "plates", n=3)))
    mine = ShotCache(root, shot_identity(shot)).shot_key  # the job's entry (released: the run is over)
    job = tmp_path / "job.dtvfx"
    job.mkdir()
    monkeypatch.setenv(ca.LIMIT_ENV, "1K")
    worker._enforce_cache_limit(job, root, shot)
    assert [e.key for e in ca.list_entries(root)] == [mine] and old != mine
    assert "removed 1 least recently used shot(s), 2.0M freed" in (job / "job.log").read_text()
    monkeypatch.setenv(ca.LIMIT_ENV, "huge")
    worker._enforce_cache_limit(job, root, shot)  # a bad setting is logged; the job's work stands
    assert "cache size limit not applied: DTVFX_CACHE_MAX: 'huge' is not a size" in (job / "job.log").read_text()


def test_listing_does_not_count_as_a_use(cache):
    root, keys = cache
    for e in ca.list_entries(root):  # entries written before the in-use lock existed have no lock file
        (e.path / ca.LOCK_NAME).unlink(missing_ok=True)
        t = e.last_used
        for dirpath, _dirs, files in os.walk(e.path):
            for f in files:
                os.utime(os.path.join(dirpath, f), (t, t))
    before = {e.key: e.last_used for e in ca.list_entries(root)}
    after = {e.key: e.last_used for e in ca.list_entries(root)}
    assert after == before and not any((root / k / ca.LOCK_NAME).exists() for k in keys.values())
