"""tracker/preprocess/tracklets.py: dense chained tracklets, FB and drift filters, sampling, coverage, caching."""

from __future__ import annotations

import numpy as np
import pytest

from _prep_helpers import constant_flow, sliding_frames
from dino_tracker_vfx.errors import CacheError, ConfigError, ShapeError
from dino_tracker_vfx.tracker.preprocess.flow import FlowField, compute_flow
from dino_tracker_vfx.tracker.preprocess.tracklets import FlowCorrespondences, build_tracklets, dyadic_pairs


def test_translation_gives_exact_dense_tracklets():
    T, W, H = 6, 40, 30
    fc = build_tracklets(None, constant_flow(T, W, H, (1.0, 0.0)), drift_pairs="none")
    # every pixel of every frame is on exactly one tracklet, except the length-1 ones (dropped):
    # the last column of frame 0 leaves at once, the new left column of the last frame has no future
    assert np.diff(fc.ptr).tolist() == [W * H - H] + [W * H] * (T - 2) + [W * H - H]
    rng = np.random.default_rng(0)
    t_i, xy_i, t_j, xy_j = fc.sample(2000, rng=rng)
    assert len(t_i) == 2000 and np.all(t_i != t_j)
    assert np.allclose(xy_j - xy_i, np.stack([t_j - t_i, 0 * t_j], 1), atol=1 / 32)
    k = fc.nearest_track(0, np.array([[3.0, 4.0]]))[0]
    s, track = fc.track(int(k))
    assert s == 0 and np.allclose(track, [[3 + t, 4] for t in range(T)], atol=1 / 32)


def test_fb_failure_ends_tracklets_and_new_ones_start_there():
    T, W, H = 5, 30, 20
    ff = constant_flow(T, W, H, (1.0, 0.0))
    ff.bwd[1, :, 10:14] += 4.0  # step 1 -> 2 inconsistent for points landing at x = 10..13 in frame 2
    fc = build_tracklets(None, ff, drift_pairs="none")
    ids1, xy1 = fc.at_frame(1)
    ids2, xy2 = fc.at_frame(2)
    k_bad = ids1[np.argmin(np.abs(xy1[:, 0] - 10) + np.abs(xy1[:, 1] - 5))]  # at x=10 in frame 1 -> 11 in frame 2
    assert fc.end[k_bad] == 1 and k_bad not in ids2
    k_new = fc.nearest_track(2, np.array([[11.0, 5.0]]))[0]
    assert fc.start[k_new] == 2  # a new tracklet starts where frame 2 lost its correspondence
    assert not fc.covered(1, np.array([[10.0, 5.0]]), 3)[0] and fc.covered(1, np.array([[20.0, 5.0]]), 3)[0]


def test_drift_filter_cuts_where_direct_flow_disagrees():
    T, W, H = 5, 72, 56
    frames = sliding_frames(T, W, H, step=(1, 0))  # true motion: -1 px per frame
    ff = constant_flow(T, W, H, (-1.3, 0.0))  # biased but FB-consistent chain: drifts 0.3 px per frame
    assert dyadic_pairs(4) == [2, 0] and dyadic_pairs(6) == [4] and dyadic_pairs(1) == []
    kept = build_tracklets(frames, ff, drift_pairs="none")
    cut = build_tracklets(frames, ff, drift_pairs="dyadic", drift_thresh=1.0)
    centre = np.array([[40.0, 28.0]])
    k_kept, k_cut = kept.nearest_track(0, centre)[0], cut.nearest_track(0, centre)[0]
    assert kept.end[k_kept] == T - 1
    # frame 4 vs 0: drift 1.2 px >= 1 px (frame 2 vs 0: 0.6 px, kept), so the tracklet ends at frame 3
    assert cut.end[k_cut] == 3
    also = build_tracklets(frames, ff, drift_pairs="start", drift_thresh=1.0)
    assert also.end[also.nearest_track(0, centre)[0]] == 3  # start->every frame: 0.9 px at 3, 1.2 px at 4


def test_real_flow_tracklets_are_consistent_with_the_motion():
    frames = sliding_frames(5, 64, 48, step=(2, 1))
    fc = build_tracklets(frames, compute_flow(frames))
    t_i, xy_i, t_j, xy_j = fc.sample(3000, rng=np.random.default_rng(1))
    err = np.linalg.norm((xy_j - xy_i) - np.stack([-2.0 * (t_j - t_i), -1.0 * (t_j - t_i)], 1), axis=1)
    assert np.median(err) < 0.25 and np.mean(err < 1.0) > 0.95


def test_sampling_frames_foreground_ratio_and_determinism():
    T, W, H = 6, 40, 30
    fc = build_tracklets(None, constant_flow(T, W, H, (1.0, 0.0)), drift_pairs="none")
    t_i, _, t_j, _ = fc.sample(500, rng=np.random.default_rng(0), frames=[1, 4])
    assert set(t_i.tolist()) == {1, 4} and np.all(t_i != t_j)
    fg = np.zeros((T, H, W), bool)
    fg[:, :, :10] = True
    t_i, xy_i, _, _ = fc.sample(400, 0.3, fg, rng=np.random.default_rng(0))
    assert len(t_i) == 400 and int((xy_i[:, 0] < 9.5).sum()) == 120
    t_i, xy_i, _, _ = fc.sample(100, 0.5, np.zeros((T, H, W), bool), rng=np.random.default_rng(0))
    assert len(t_i) == 100  # no foreground at all: background fills in
    a = fc.sample(50, rng=np.random.default_rng(7))
    b = fc.sample(50, rng=np.random.default_rng(7))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ShapeError, match=r"fg_masks: expected shape \(T, H, W\) with T=6, H=30, W=40, got \(6, 31, 40\)"):
        fc.sample(10, 0.5, np.zeros((T, H + 1, W), bool))


def test_arrays_round_trip_through_npz(tmp_path):
    fc = build_tracklets(None, constant_flow(4, 20, 10, (0.5, 0.25)), drift_pairs="none")
    np.savez(tmp_path / "c.npz", **fc.to_arrays())
    with np.load(tmp_path / "c.npz") as d:
        fc2 = FlowCorrespondences.from_arrays(dict(d))
    assert fc2.wh == (20, 10) and fc2.num_entries == fc.num_entries and fc2.params == fc.params
    a = fc.sample(64, rng=np.random.default_rng(3))
    b = fc2.sample(64, rng=np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    bad = fc.to_arrays()
    bad["format"] = np.array("something else")
    with pytest.raises(CacheError):
        FlowCorrespondences.from_arrays(bad)


def test_bad_settings():
    ff = constant_flow(3, 10, 8)
    with pytest.raises(ConfigError, match="drift_pairs"):
        build_tracklets(None, ff, drift_pairs="all")
    with pytest.raises(ValueError, match="frames"):
        build_tracklets(None, ff)
    with pytest.raises(ConfigError, match="seed_step"):
        build_tracklets(None, ff, drift_pairs="none", seed_step=0)
    half = build_tracklets(None, FlowField(ff.fwd, ff.bwd), drift_pairs="none", seed_step=2)
    assert half.num_entries < build_tracklets(None, ff, drift_pairs="none").num_entries / 3


def test_covered_builds_one_nearest_map_per_frame_for_the_best_buddy_access_pattern(monkeypatch):
    from dino_tracker_vfx.tracker.preprocess.best_buddies import all_pairs

    T, W, H = 6, 40, 30
    ff = constant_flow(T, W, H, (1.0, 0.0))
    ff.bwd[1, :, 10:14] += 4.0
    fc = build_tracklets(None, ff, drift_pairs="none", seed_step=2)  # holes between seeds: distances matter
    builds = []
    real = FlowCorrespondences._nearest_map
    monkeypatch.setattr(FlowCorrespondences, "_nearest_map", lambda self, t: builds.append(t) or real(self, t))
    rng = np.random.default_rng(0)
    pts = rng.uniform([-2, -2], [W + 1, H + 1], (200, 2)).astype(np.float32)
    got = []
    for s, t in all_pairs(T):  # mine_best_buddies asks about both frames of each pair, alternately
        got.append(fc.covered(s, pts, t))
        got.append(fc.covered(t, pts, s))
    assert sorted(builds) == list(range(T)), "a frame's nearest-tracklet map was rebuilt"
    ref = []
    for s, t in all_pairs(T):  # a fresh store per call: the uncached answer
        ref.append(FlowCorrespondences.from_arrays(fc.to_arrays()).covered(s, pts, t))
        ref.append(FlowCorrespondences.from_arrays(fc.to_arrays()).covered(t, pts, s))
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    assert any(a.any() and not a.all() for a in got)
    # another max_dist is another map (the distance cut is part of it)
    n = len(builds)
    wide = fc.covered(0, pts, 3, max_dist=None)
    assert len(builds) == n + 1 and wide.sum() >= got[4].sum()
