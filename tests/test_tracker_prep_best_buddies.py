"""tracker/preprocess/best_buddies.py: mutual nearest neighbours, NMS ratio, confidence, flow exclusion, round trip."""

from __future__ import annotations

import numpy as np
import torch

from _prep_helpers import constant_flow
from dino_tracker_vfx.tracker.preprocess.best_buddies import (BestBuddies, all_pairs, bb_weight, mine_best_buddies,
                                                    mutual_nearest, nms_ratio)
from dino_tracker_vfx.tracker.model.feature_grid import FeatureGrid
from dino_tracker_vfx.tracker.preprocess.tracklets import build_tracklets


def _brute_mnn(fa, fb):
    S = torch.nn.functional.normalize(fa, dim=1) @ torch.nn.functional.normalize(fb, dim=1).t()
    ra, ca = S.argmax(1), S.argmax(0)
    ia = [i for i in range(len(fa)) if ca[ra[i]] == i]
    return ia, [int(ra[i]) for i in ia], S


def test_mutual_nearest_matches_brute_force_with_chunks():
    g = torch.Generator().manual_seed(0)
    fa, fb = torch.randn(300, 16, generator=g), torch.randn(257, 16, generator=g)
    ia, ib, sim = mutual_nearest(fa, fb, chunk=64)
    ra, rb, S = _brute_mnn(fa, fb)
    assert ia.tolist() == ra and ib.tolist() == rb and len(ra) > 10
    assert torch.allclose(sim, S[ia, ib], atol=1e-6)


def test_nms_ratio_second_peak_outside_the_box():
    centres = np.array([[0, 0], [10, 0], [50, 0], [100, 0]], np.float32)
    sims = torch.tensor([[0.9, 0.85, 0.45, 0.3]])
    # box half-size 30 (60 px wide): x=10 overlaps the peak with IoU 0.71 (suppressed), x=50 has IoU 0.09
    r = nms_ratio(sims, torch.tensor([0]), centres, box=30, iou=0.2)
    assert torch.allclose(r, torch.tensor([0.5]))
    r = nms_ratio(torch.tensor([[0.9, 0.85, -0.2, -0.3]]), torch.tensor([0]), centres)
    assert r.item() == 0.0  # only negative competitors -> unambiguous


def test_weight_formula_is_reference_sigmoid_plus_b():
    w = bb_weight(np.array([0.0, 0.79, 1.0, 0.5]), np.array([1.0, 1.0, 1.0, -0.5]))
    assert np.allclose(w[:3], [2 / (1 + np.exp(-(27 - 5.7))), 2 / (1 + np.exp(-(27 * 0.21 - 5.7))),
                               2 / (1 + np.exp(5.7))], rtol=1e-5)
    assert w[3] == 0.0  # negative similarity: no weight
    tw = bb_weight(torch.tensor([0.79]), torch.tensor([1.0]))
    assert torch.allclose(tw, torch.from_numpy(w[1:2]))


def _features_with_known_matches(T=3, h=6, w=8, C=32, seed=0):
    """Frame t is frame 0's features shifted by t patch columns (wrapping), plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(C, h, w, generator=g)
    return torch.stack([torch.roll(base, shifts=t, dims=2) + 0.01 * torch.randn(C, h, w, generator=g)
                        for t in range(T)])


def test_mining_finds_the_shift_and_positions_are_patch_centres():
    feats = _features_with_known_matches()
    bb = mine_best_buddies(feats, stride=7)
    assert bb.pairs.tolist() == all_pairs(3).tolist() == [[0, 1], [0, 2], [1, 2]]
    assert len(bb) == 3 * 48  # every patch is a buddy of its shifted copy
    d = (bb.t_j - bb.t_i) * 7.0
    dx = (bb.xy_j[:, 0] - bb.xy_i[:, 0]) % (8 * 7)
    assert np.allclose(dx, d) and np.allclose(bb.xy_j[:, 1], bb.xy_i[:, 1])
    centres = set(map(tuple, FeatureGrid.dino_map(6, 8, 7).centres().tolist()))
    assert set(map(tuple, bb.xy_i.tolist())) <= centres
    assert np.all((bb.r >= 0) & (bb.r <= 1)) and np.allclose(bb.w, bb_weight(bb.r, bb.sim))


def test_flow_covered_buddies_are_dropped():
    feats = _features_with_known_matches(T=2, h=4, w=6)
    W, H = 14 + 7 * 5, 14 + 7 * 3
    flow = build_tracklets(None, constant_flow(2, W, H, (10.0, 0.0)), drift_pairs="none")
    all_bb = mine_best_buddies(feats)
    kept = mine_best_buddies(feats, flow_pairs=flow)
    # flow links frame 0 to 1 for x <= 38; the last patch column (x = 41.5) leaves the raster and its buddy
    # (x = 6.5 in frame 1) has no tracklet within 2 px (new pixels there live one frame): only they survive
    assert len(all_bb) == 24 and len(kept) == 4
    assert np.allclose(kept.xy_i[:, 0], 6.5 + 7 * 5)


def test_round_trip_through_arrays(tmp_path):
    bb = mine_best_buddies(_features_with_known_matches(T=4))
    np.savez(tmp_path / "bb.npz", **bb.to_arrays())
    with np.load(tmp_path / "bb.npz") as d:
        bb2 = BestBuddies.from_arrays(dict(d))
    assert len(bb2) == len(bb) and np.array_equal(bb2.w, bb.w) and bb2.params == bb.params
    assert {"t_i", "xy_i", "t_j", "xy_j", "w"} <= set(bb.to_arrays())
    assert len(mine_best_buddies(_features_with_known_matches(T=2), sig_a=10.0, sig_b=0.0)) == 48
