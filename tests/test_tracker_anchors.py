"""Artist corrections (issue 15): several anchors per track, the blend between them, re-tracking with
corrections from the cache without training, the bad inputs of ``dtvfx track --corrections``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _tracker_helpers import TINY_WF, true_track, write_queries, write_shot
from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.shots import open_shot
from dino_tracker_vfx.tracker.anchors import EPS, anchor_tracks, layout
from dino_tracker_vfx.tracker.api import ShotTracker
from dino_tracker_vfx.tracks import Query, TrackSet, group_anchors

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    return open_shot(str(write_shot(tmp_path_factory.mktemp("plates"))))


# ---------------------------------------------------------------------------- the rule
def _rows(K, T_, xy_fn, conf=0.8):
    xy = np.stack([xy_fn(k) for k in range(K)])
    return xy, np.ones((K, T_), bool), np.full((K, T_), conf, np.float32)


def test_blend_meets_every_anchor_exactly_and_follows_the_nearest_outside():
    T_ = 11
    qs = [Query(2, 10.0, 10.0, "a"), Query(8, 40.0, 10.0, "a"), Query(5, 3.0, 3.0, "b")]
    lay = layout(qs)
    assert [q.name for q in lay.queries] == ["a", "b"] and [len(a) for a in lay.anchors] == [2, 1]
    assert [(r.name, r.t) for r in lay.rows] == [("a", 2), ("a", 8), ("b", 5)] and lay.n_corrections == 1
    # row 0 (from the query) drifts +1 px/frame in x; row 1 (from the correction) is the true motion
    def truth(t):
        return np.stack([10.0 + 5.0 * (t - 2), np.full_like(t, 10.0)], -1)
    t = np.arange(T_, dtype=float)
    xy, vis, conf = _rows(3, T_, lambda k: truth(t) + ([[1.0, 0.0]] * (t - 2)[:, None] if k == 0 else 0.0))
    vis[0, 9:] = False  # the query's row loses the point late; the correction's row keeps it
    out_xy, out_vis, out_conf = anchor_tracks(xy, vis, conf, lay)
    assert out_xy.shape == (2, T_, 2)
    for n, anchors in enumerate(lay.anchors):
        for a in anchors:
            assert tuple(out_xy[n, a.t]) == (a.x, a.y) and out_vis[n, a.t] and out_conf[n, a.t] == 1.0
    np.testing.assert_allclose(out_xy[0, :2], xy[0, :2])  # before the first anchor: its row
    np.testing.assert_allclose(out_xy[0, 9:], xy[1, 9:])  # after the last: the correction's row
    assert out_vis[0, 9:].all()  # visibility from the nearest anchor's row
    # between: the drift of the query's row fades out linearly (equal confidences), no jump at either end
    err = out_xy[0, 2:9, 0] - truth(t[2:9])[:, 0]
    s = (t[2:9] - 2) / 6
    np.testing.assert_allclose(err, (1 - s) * (t[2:9] - 2), atol=1e-9)
    assert np.abs(np.diff(out_xy[0, :, 0])).max() <= 6.0 + 1e-9  # no step beyond the rows' own motion


def test_blend_weights_follow_the_confidences_and_skip_missing_positions():
    T_ = 5
    lay = layout([Query(0, 0.0, 0.0, "a"), Query(4, 8.0, 0.0, "a")])
    xy = np.zeros((2, T_, 2))
    xy[1, :, 0] = 8.0
    conf = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 1, 1]], np.float32)
    xy[0, 3] = np.nan  # the query's row has no position at image 3
    out_xy, _, out_conf = anchor_tracks(xy, np.ones((2, T_), bool), conf, lay)
    # image 1: s = 1/4, w_a = 3/4 * (1 + EPS), w_b = 1/4 * (0 + EPS)
    w_a, w_b = 0.75 * (1 + EPS), 0.25 * EPS
    assert out_xy[0, 1, 0] == pytest.approx(8.0 * w_b / (w_a + w_b))
    assert out_xy[0, 3, 0] == 8.0  # only the correction's row has a position
    assert out_conf[0, 1] == pytest.approx(0.75)


def test_two_anchors_of_one_track_at_one_frame_name_both():
    same = group_anchors([Query(1, 5.0, 5.0, "a"), Query(1, 5.0, 5.0, "a")])
    assert len(same) == 1 and len(same[0][1]) == 1  # the same point twice is one anchor
    with pytest.raises(InputError, match=r"track 'a' has two anchors at frame 1002 with different positions: "
                                         r"\(5, 5\) at q.csv: line 2 and \(6, 5\) at fix.csv: line 4"):
        group_anchors([Query(1, 5.0, 5.0, "a"), Query(1, 6.0, 5.0, "a")], ["q.csv: line 2", "fix.csv: line 4"],
                      lambda t: 1001 + t)


def test_track_files_keep_anchors_and_old_files_read_as_one_anchor(tmp_path):
    qa = (Query(0, 1.0, 2.0, "a"), Query(3, 4.0, 5.0, "a"))
    xy = np.zeros((2, 4, 2))
    xy[0, 0], xy[0, 3] = (1.0, 2.0), (4.0, 5.0)  # the track passes through its anchors
    ts = TrackSet(xy, np.ones((2, 4), bool), np.ones((2, 4), np.float32), ["a", "b"],
                  [qa[0], Query(1, 0.0, 0.0, "b")], [1, 2, 3, 4], (8, 8), anchors=[qa, (Query(1, 0.0, 0.0, "b"),)])
    for suffix in ("json", "csv"):
        ts.save(tmp_path / f"t.{suffix}")
        back = TrackSet.load(tmp_path / f"t.{suffix}")
        assert [[(q.t, q.x, q.y) for q in a] for a in back.anchors] == [[(0, 1.0, 2.0), (3, 4.0, 5.0)], [(1, 0.0, 0.0)]]
    d = json.loads((tmp_path / "t.json").read_text())
    assert "anchors" in d["tracks"][0] and "anchors" not in d["tracks"][1]  # written only where corrected
    del d["tracks"][0]["anchors"]
    old = TrackSet.from_json_dict(d)
    assert [len(a) for a in old.anchors] == [1, 1]


# ---------------------------------------------------------------------------- the tracker
def _quiet_preset(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(json.dumps({**TINY_WF, "infer": {**TINY_WF["infer"], "flow_guided": True}}))
    return p


def test_corrections_rerun_from_the_cache_without_training(shot, tmp_path):
    cfg = {**TINY_WF, "infer": {**TINY_WF["infer"], "flow_guided": True}}
    cache = tmp_path / "c"
    first = []
    st = ShotTracker(shot, cfg, cache_dir=cache, progress=first.append)
    st.prepare()
    st.train()
    q = Query(0, 20.0, 20.0, "a")
    before = st.infer([q])
    assert [e.done for e in first if e.stage == "train"][-1] == TINY_WF["train"]["iterations"]
    # the artist moves the point at image 4 by 3 px
    truth = true_track(0, (20.0, 20.0))
    fix = Query(4, float(truth[4, 0] + 3.0), float(truth[4, 1]), "a")
    events = []
    st2 = ShotTracker(shot, cfg, cache_dir=cache, progress=events.append)
    st2.prepare()
    st2.train()
    after = st2.infer([q, fix])
    computed = [e for e in events if e.message != "cached" and e.stage in ("load", "flow", "tracklets",
                                                                           "foreground", "features")]
    assert computed == [], computed  # every preprocessing stage came from the cache
    assert [e.message for e in events if e.stage == "refine"] == ["cached"]  # and the refined features
    train = [e for e in events if e.stage == "train"]
    assert all(e.done == TINY_WF["train"]["iterations"] for e in train)  # no iteration ran
    assert any("trained model reused" in e.message for e in train)
    assert any("1 correction on 1 track:" in e.message for e in events if e.stage == "infer")
    assert any("1 of 2 anchors from the cache, tracking 1" in e.message for e in events)  # only the fix tracked
    again = st2.infer([q])  # every row from the cache now: the first run's track
    np.testing.assert_allclose(again.xy, before.xy, atol=1e-6)
    np.testing.assert_array_equal(again.visible, before.visible)
    assert after.anchors[0] == (q, fix) and tuple(after.xy[0, 4]) == (fix.x, fix.y)
    assert tuple(after.xy[0, 0]) == (q.x, q.y) and after.visible[0, [0, 4]].all()
    np.testing.assert_allclose(after.xy[0, 5], before.xy[0, 5] + [3.0, 0.0], atol=0.5)  # follows the fix
    assert np.abs(after.xy[0, 1:4] - before.xy[0, 1:4]).max() <= 3.0 + 1e-6  # blended in, no jump


def test_rows_cached_by_older_inference_code_are_not_served(shot, tmp_path, monkeypatch):
    """Tracked rows are cached with the inference code's ROWS_VERSION in their key: after an upgrade that
    changes drift, visibility or plate refinement, the old tracks are recomputed, not returned."""
    from dino_tracker_vfx.tracker import api

    cfg = {**TINY_WF, "infer": {**TINY_WF["infer"], "flow_guided": True}}
    cache = tmp_path / "c"
    q = Query(0, 20.0, 20.0, "a")

    def run():
        events = []
        st = ShotTracker(shot, cfg, cache_dir=cache, progress=events.append)
        st.prepare()
        st.train()
        st.infer([q])
        return [e.message for e in events if e.stage == "infer"]

    run()
    assert any("1 of 1 anchors from the cache" in m for m in run())  # same code: served from the cache
    monkeypatch.setattr(api, "ROWS_VERSION", api.ROWS_VERSION + 1)
    assert not any("from the cache" in m for m in run())  # newer inference code: tracked again


def test_cli_corrections_and_their_bad_input(shot, tmp_path, capsys):
    from dino_tracker_vfx.cli import main

    preset = _quiet_preset(tmp_path)
    q = write_queries(tmp_path / "q.csv", [("a", 0, 20, 20), ("b", 2, 30.5, 10)])
    base = ["track", shot.source, "--queries", str(q), "--preset", str(preset), "--cache", str(tmp_path / "c")]
    out = tmp_path / "tracks.json"
    assert main([*base, "--out", str(out)]) == 0
    capsys.readouterr()
    fix = write_queries(tmp_path / "fix.csv", [("b", 4, 27.5, 9)])
    assert main([*base, "--corrections", str(fix), "--out", str(out)]) == 0
    res = capsys.readouterr()
    assert "1 correction)" in res.out and "trained model reused" in res.err
    tr = TrackSet.load(out)
    assert [len(a) for a in tr.anchors] == [1, 2] and tuple(tr.xy[1, 4]) == (27.5, 9.0)

    def err_of(rows, name="bad.csv", queries=q, preset_=preset):
        bad = write_queries(tmp_path / name, rows) if rows is not None else tmp_path / name
        rc = main(["track", shot.source, "--queries", str(queries), "--preset", str(preset_), "--cache",
                   str(tmp_path / "c"), "--corrections", str(bad), "--out", str(tmp_path / "o.json")])
        e = capsys.readouterr().err.strip()
        assert rc == 2 and e.count("\n") == 0, e
        return e

    assert "bad.csv: line 2: correction for unknown track 'zz' (not in q.csv)" in err_of([("zz", 1, 5, 5)])
    assert "t=9 is not an image index of the shot (0..5)" in err_of([("a", 9, 5, 5)])
    assert "bad.csv: line 2: point (70, 5) is outside the 64x48 plate" in err_of([("a", 1, 70, 5)])
    e = err_of([("a", 3, 5, 5), ("a", 3, 6, 5)])
    assert "track 'a' has two anchors at frame 1004 with different positions: (5, 5) at" in e
    assert "bad.csv: line 2 and (6, 5) at" in e and "bad.csv: line 3" in e
    assert "q.csv: line 2 and" in err_of([("a", 0, 21, 20)])  # a correction that contradicts the query
    # the corrected tracks file of this cache, corrected again with other training settings: refused
    other = tmp_path / "other.yaml"
    other.write_text(json.dumps({**TINY_WF, "train": {**TINY_WF["train"], "lr": 0.02}}))
    e = err_of([("a", 3, 5, 5)], name="fix2.csv", queries=out, preset_=other)
    assert "tracks.json: tracked with other settings (file vs requested: train.lr:" in e
    assert "without --corrections" in e
