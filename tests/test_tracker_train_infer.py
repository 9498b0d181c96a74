"""Training on exact synthetic correspondences, deterministic resume, inference and occlusion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _tracker_helpers import H, TINY_WF, W, exact_pairs, moving_frames, true_track
from dino_tracker_vfx.errors import Cancelled
from dino_tracker_vfx.tracker.config import TrackerConfig
from dino_tracker_vfx.tracker.model.delta_dino import DeltaDino
from dino_tracker_vfx.tracker.model.feature_grid import FeatureGrid
from dino_tracker_vfx.tracker.infer.inference import FeatureStore, build_store, track_points
from dino_tracker_vfx.tracker.model.tracker_model import TrackerModel
from dino_tracker_vfx.tracker.infer.occlusion import occlusion, trajectory_cosine
from dino_tracker_vfx.tracker.model.refiner import Refiner
from dino_tracker_vfx.tracker.train.sampling import PairPool, draw_frame_set, sample_mask_points
from dino_tracker_vfx.tracker.train.trainer import TrainData, Trainer, mutual_nearest_cells

torch.set_num_threads(1)


def _setup(iterations=60, seed=0, **train):
    cfg = TrackerConfig.from_dict({**TINY_WF, "train": {**TINY_WF["train"], "iterations": iterations,
                                                        "checkpoint_every": 1000, **train}})
    torch.manual_seed(seed)
    grid = FeatureGrid.cnn((W, H), 2)
    m = TrackerModel((W, H), grid, "delta", DeltaDino(16, (8, 16), 3, zero_init=False), Refiner(), 8.0)
    imgs = torch.from_numpy(moving_frames()).permute(0, 3, 1, 2).contiguous()
    ti, xi, tj, xj = exact_pairs(3000)
    pool = PairPool(ti, xi, tj, xj)
    return cfg, m, imgs, pool


def test_frame_sets_and_pair_draws_respect_the_set_and_fg_ratio():
    g = torch.Generator().manual_seed(0)
    pool = PairPool(np.array([0, 1, 2, 3, 0, 1]), np.zeros((6, 2)), np.array([1, 2, 3, 4, 2, 4]), np.zeros((6, 2)))
    pool.fg = torch.tensor([True, True, False, False, True, False])
    in_set = torch.zeros(5, dtype=torch.bool)
    in_set[[0, 1, 2]] = True
    idx = pool.draw(10, 0.5, in_set, g)
    assert sorted(idx.tolist()) == [0, 1, 4]  # the only pairs with both ends in {0, 1, 2}
    idx = pool.draw(2, 1.0, None, g)
    assert pool.fg[idx].all() and len(idx) == 2
    fs = draw_frame_set(50, 8, g, pool)
    assert len(fs) == 8 and len(set(fs.tolist())) == 8 and fs.max() < 50
    masks = torch.zeros(3, 10, 12, dtype=torch.bool)
    masks[:, 2:4, 3:6] = True
    rows, xy = sample_mask_points(masks, torch.tensor([0, 2]), 20, 0.75, g, (12, 10))
    fg = masks[torch.tensor([0, 2])[rows], xy[:, 1].long(), xy[:, 0].long()]
    assert len(rows) == 40 and fg.sum() == 30


def test_mutual_nearest_cells_are_mutual():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(8, 5, 6), dim=0)
    b = a[:, :, torch.randperm(6)]
    ia, ib, s = mutual_nearest_cells(a, b, chunk=7)
    S = a.reshape(8, -1).t() @ b.reshape(8, -1)
    for i, j in zip(ia.tolist(), ib.tolist()):
        assert S[i].argmax() == j and S[:, j].argmax() == i
    assert len(ia) == 30 and torch.allclose(s, torch.ones(30), atol=1e-5)


@pytest.mark.slow
def test_weight_free_training_learns_the_motion():
    cfg, m, imgs, pool = _setup(iterations=60)
    hist = []
    tr = Trainer(m, TrainData(imgs, None, None, pool), cfg, progress=lambda p: hist.append(p))
    first = tr.step(0)["flow"].item()
    tr.run()
    assert hist[-1].done == 60 and hist[-1].stage == "train"
    assert tr.history[-1]["flow"] < 0.8 * first
    st = build_store(m, imgs, None)
    q = torch.tensor([[20.0, 20.0], [40.0, 25.0]])
    tq = torch.tensor([0, 3])
    xy, peak = track_points(m, st, tq, q, query_chunk=1, frame_chunk=4)
    gt = np.stack([true_track(0, (20, 20)), true_track(3, (40, 25))])
    err = np.linalg.norm(xy.numpy() - gt, axis=-1)
    assert err.mean() < 1.5, err
    assert torch.equal(xy[0, 0], q[0]) and torch.equal(xy[1, 3], q[1])  # the query frame is the query


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    cfg, m1, imgs, pool = _setup(iterations=8, rfn_after=0.25)
    Trainer(m1, TrainData(imgs, None, None, pool), cfg, seed=5).run()
    saved = {}
    cfg, m2, imgs, pool = _setup(iterations=8, rfn_after=0.25)
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] == 4  # stop before the 4th iteration

    tr = Trainer(m2, TrainData(imgs, None, None, pool), cfg, seed=5, save=lambda it, s: saved.update({it: s}),
                 cancel=cancel)
    with pytest.raises(Cancelled):
        tr.run()
    assert list(saved) == [3]
    state = torch.load(_roundtrip(tmp_path, saved[3]), weights_only=False)
    cfg, m3, imgs, pool = _setup(iterations=8, rfn_after=0.25, seed=99)  # other init: the state must win
    tr3 = Trainer(m3, TrainData(imgs, None, None, pool), cfg, seed=123)
    tr3.load_state_dict(state)
    tr3.run()
    for (k, a), b in zip(m1.state_dict().items(), m3.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def _roundtrip(tmp_path, state):
    p = tmp_path / "s.pt"
    torch.save(state, p)
    return p


def _synthetic_store(T_=6, occluded=(3, 4)):
    """A "dino"-mode model over hand-made unit features: the scene shifts by one cell per frame and an
    occluder with unrelated features covers the cell tracked by query 0 in frames ``occluded``."""
    torch.manual_seed(0)
    g = FeatureGrid.dino((14 + 7 * 19, 14 + 7 * 11), 7)  # 20 x 12 cells
    base = torch.nn.functional.normalize(torch.randn(32, g.h, g.w + T_), dim=0)
    maps = torch.stack([base[:, :, t:t + g.w] for t in range(T_)])  # content moves one cell left per frame
    q_cell = (5, 12)  # (i, j) in frame 0
    for t in occluded:
        i, j = q_cell[0], q_cell[1] - t
        maps[t, :, i - 1:i + 2, j - 1:j + 2] = torch.nn.functional.normalize(torch.randn(32, 3, 3), dim=0)
    m = TrackerModel((g.w * 7 + 7, g.h * 7 + 7), g, "dino", None, None, argmax_radius=3.0)
    store = FeatureStore(maps, 1.0 / maps.norm(dim=1), g)
    centre = lambda i, j: torch.tensor([j * 7 + 6.5, i * 7 + 6.5])  # noqa: E731
    return m, store, centre, q_cell


def test_occlusion_marks_the_covered_frames_and_keeps_the_query_visible():
    m, store, centre, (i, j) = _synthetic_store()
    q = torch.stack([centre(i, j), centre(8, 15)])
    tq = torch.tensor([0, 2])
    qf = store.sample(tq, q)
    xy, peak = track_points(m, store, tq, q, q_feat=qf)
    expect1 = torch.stack([centre(8, 15 + 2 - t) for t in range(6)])
    torch.testing.assert_close(xy[1], expect1, atol=1e-4, rtol=0)
    vis, conf, extra = occlusion(m, store, xy, tq, qf, query_chunk=1, row_chunk=5)
    assert vis[0].tolist() == [True, True, True, False, False, True]
    assert vis[1].all()
    assert conf[0, 0] == 1.0 and conf[1, 2] == 1.0 and (conf >= 0).all() and (conf <= 1).all()
    assert (conf[0, 3:5] < 0.5).all()


def test_trajectory_cosine_of_the_features_along_a_track():
    """The one trajectory cosine (occlusion's anchors, the api's per-frame scores): cos of the bilinear
    feature at each trajectory point vs the query feature, both normalised, and the normalised features."""
    g = FeatureGrid(2, 2, 8.0, 3.5)  # cell centres x, y in {3.5, 11.5}
    phi = torch.zeros(3, 2, 2, 2)
    phi[0, 0], phi[1, 1] = 2.0, 5.0  # frame 0 along the query, frame 1 orthogonal
    phi[2, 0, :, 0], phi[2, 1, :, 1] = 1.0, 1.0  # frame 2: left column (1, 0), right column (0, 1)
    store = FeatureStore(phi, 1.0 / phi.norm(dim=1), g)
    xy = torch.tensor([[[3.5, 3.5], [11.5, 3.5], [7.5, 3.5]], [[3.5, 3.5], [3.5, 11.5], [3.5, 11.5]]])
    cos, f = trajectory_cosine(store, xy, torch.tensor([[3.0, 0.0], [0.0, 0.5]]))
    assert torch.allclose(cos, torch.tensor([[1.0, 0.0, 0.5 ** 0.5], [0.0, 1.0, 0.0]]), atol=1e-6)
    assert f.shape == (2, 3, 2) and torch.allclose(f.norm(dim=-1), torch.ones(2, 3))
