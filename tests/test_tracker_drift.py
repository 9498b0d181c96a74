"""Drift correction by direct flow from the query image (tracker/infer/drift.py) and its use in flow_guided."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _tracker_helpers import moving_frames, true_track
from dino_tracker_vfx.coords import Resize
from dino_tracker_vfx.errors import Cancelled
from dino_tracker_vfx.tracker.infer.drift import correct_drift, ncc, patches
from dino_tracker_vfx.tracker.model.feature_grid import FeatureGrid
from dino_tracker_vfx.tracker.infer.chain import chain_points
from dino_tracker_vfx.tracker.preprocess.flow import FlowField
from dino_tracker_vfx.tracker.infer.flow_guided import flow_guided
from dino_tracker_vfx.tracker.infer.inference import FeatureStore

W, H, T = 96, 72, 8
BIAS = 0.8  # px per step the chained flow is wrong by, in x


def _biased_case():
    """Texture sliding by (-2, -1) px per frame; the given flows say (-2 + BIAS, -1), consistently both ways,
    so the chain passes every forward-backward check and still drifts BIAS px per step."""
    frames = moving_frames(T, W, H, (2.0, 1.0), seed=3)
    fwd = np.zeros((T - 1, H, W, 2), np.float32)
    fwd[..., 0], fwd[..., 1] = -2.0 + BIAS, -1.0
    flow = FlowField(fwd, -fwd)
    t_q = np.array([0, 0, 0, 7, 7])
    xy_q = np.array([[50.0, 40.0], [70.5, 55.25], [62.0, 30.0], [30.0, 20.0], [40.5, 25.5]])
    truth = np.stack([true_track(int(t), p, T, (2.0, 1.0)) for t, p in zip(t_q, xy_q)])
    return frames, flow, t_q, xy_q, truth


def test_patches_and_ncc_by_hand():
    g = np.arange(100, dtype=np.float32).reshape(10, 10)
    p = patches(g, np.array([[4.0, 5.0]]), r=1)
    assert p.shape == (1, 9)
    assert p[0].tolist() == [g[y, x] for y in (4, 5, 6) for x in (3, 4, 5)]
    half = patches(g, np.array([[4.5, 5.0]]), r=0)  # bilinear between columns 4 and 5
    assert half[0, 0] == 54.5
    a = np.random.default_rng(0).random((3, 25)).astype(np.float32)
    assert np.allclose(ncc(a, a), 1.0, atol=1e-6)
    assert np.allclose(ncc(a, -a), -1.0, atol=1e-6)
    assert np.allclose(ncc(a, 2 * a + 7), 1.0, atol=1e-6)  # gain and offset do not matter
    assert ncc(a[:1], np.full((1, 25), 3.0, np.float32))[0] == 0.0  # flat patch: no evidence


def test_direct_flow_removes_chain_drift():
    frames, flow, t_q, xy_q, truth = _biased_case()
    chain, _ = chain_points(flow, t_q, xy_q)
    err_chain = np.linalg.norm(chain - truth, axis=-1)
    far = np.abs(np.arange(T)[None] - t_q[:, None]) >= 3
    assert err_chain[far].min() > 2.0  # the chain has drifted >= 3 x 0.8 px there
    xy, used = correct_drift(frames, flow, t_q, xy_q, chain, margin=0.2)
    err = np.linalg.norm(xy - truth, axis=-1)
    very_far = np.abs(np.arange(T)[None] - t_q[:, None]) >= 4
    assert used[very_far].all()  # >= 3.2 px of drift: the direct candidate's patch is clearly better
    assert np.median(err[far]) < 0.1 and (err <= err_chain + 1e-4).all()  # exact where taken, never worse
    rows = np.arange(len(t_q))
    assert np.array_equal(xy[rows, t_q], xy_q.astype(np.float32)) and not used[rows, t_q].any()
    one_step = np.abs(np.arange(T)[None] - t_q[:, None]) == 1
    assert not used[one_step].any()  # one step: the chain's own answer


def test_margin_keeps_the_chain():
    frames, flow, t_q, xy_q, _ = _biased_case()
    chain, _ = chain_points(flow, t_q, xy_q)
    cand: dict = {}
    xy, used = correct_drift(frames, flow, t_q, xy_q, chain, margin=2.0, candidates=cand)  # NCC gain < 2: never
    assert not used.any() and np.array_equal(xy, chain.astype(np.float32))
    gain = cand["ncc_direct"] - cand["ncc_chain"]  # the scores let a caller re-decide at another margin
    _, used02 = correct_drift(frames, flow, t_q, xy_q, chain, margin=0.2)
    assert np.array_equal(used02, gain > 0.2)
    assert np.isnan(cand["direct"][np.arange(len(t_q)), t_q]).all()


def test_cancel_stops_drift_correction():
    frames, flow, t_q, xy_q, _ = _biased_case()
    chain, _ = chain_points(flow, t_q, xy_q)
    with pytest.raises(Cancelled, match="drift correction"):
        correct_drift(frames, flow, t_q, xy_q, chain, cancel=lambda: True)


def test_flow_guided_uses_drift_correction():
    frames, flow, t_q, xy_q, truth = _biased_case()
    g = FeatureGrid(4, 4, 8.0, 3.5)
    phi = torch.zeros(T, 2, 4, 4)
    phi[:, 1] = 1.0
    store = FeatureStore(phi, 1.0 / phi.norm(dim=1), g)
    args = (flow, Resize((W, H), (W, H)), store, torch.tensor(t_q), torch.tensor(xy_q, dtype=torch.float32),
            torch.tensor([[1.0, 0.0]] * len(t_q)), torch.full((len(t_q), T, 2), 500.0))
    plain, vis0, _ = flow_guided(*args)
    fixed, vis1, _ = flow_guided(*args, drift_frames=frames)
    far = np.abs(np.arange(T)[None] - t_q[:, None]) >= 3
    e_plain = np.linalg.norm(plain.numpy() - truth, axis=-1)[far]
    e_fixed = np.linalg.norm(fixed.numpy() - truth, axis=-1)[far]
    assert e_plain.min() > 2.0 and np.median(e_fixed) < 0.5
    assert torch.equal(vis0, vis1)  # visibility still comes from the chain's checks
