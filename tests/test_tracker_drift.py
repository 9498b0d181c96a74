"""Drift correction by direct flow from the query image (tracker/infer/drift.py) and its use in flow_guided."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _tracker_helpers import moving_frames, run_flow_guided, true_track
from dino_tracker_vfx.coords import Resize
from dino_tracker_vfx.errors import Cancelled
from dino_tracker_vfx.tracker.infer.drift import accept, anchored_chain, correct_drift, gray_frames, ncc, patches
from dino_tracker_vfx.tracker.model.feature_grid import FeatureGrid
from dino_tracker_vfx.tracker.infer.chain import chain_points, chain_steps
from dino_tracker_vfx.tracker.preprocess.flow import FlowField
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
    c = correct_drift(frames, flow, t_q, xy_q, margin=0.2)
    err = np.linalg.norm(c.xy - truth, axis=-1)
    assert c.used.any(axis=1).all()  # every query re-anchored somewhere: its chain had drifted
    # re-anchored chains drift at most a few steps' 0.8 px before the next correction: never far
    assert np.median(err[far]) < 1.0 and err.max() < 2.5 and (err <= err_chain + 1e-4).all()
    rows = np.arange(len(t_q))
    assert np.array_equal(c.xy[rows, t_q], xy_q.astype(np.float32)) and not c.used[rows, t_q].any()
    one_step = np.abs(np.arange(T)[None] - t_q[:, None]) == 1
    assert not c.used[one_step].any()  # one step: the chain's own answer
    assert (c.age[c.used] == 0).all() and (c.age[rows, t_q] == 0).all() and (c.ncc[rows, t_q] == 1).all()
    np.testing.assert_array_equal(c.inside, np.ones_like(c.inside))


def test_margin_keeps_the_chain():
    frames, flow, t_q, xy_q, _ = _biased_case()
    chain, fb, inside = chain_steps(flow, t_q, xy_q)
    cand: dict = {}
    c = correct_drift(frames, flow, t_q, xy_q, margin=2.0, candidates=cand)  # NCC gain < 2: never
    assert not c.used.any() and np.array_equal(c.xy, chain.astype(np.float32))
    np.testing.assert_allclose(c.fb, fb, atol=1e-5)
    np.testing.assert_array_equal(c.inside, inside)
    assert np.isnan(cand["direct"][np.arange(len(t_q)), t_q]).all()  # the candidates let a caller re-decide
    again = anchored_chain(flow, cand["gray"], t_q, xy_q, cand["direct"], margin=0.2)
    np.testing.assert_array_equal(again.xy, correct_drift(frames, flow, t_q, xy_q, margin=0.2).xy)


def test_accept_rule_by_hand():
    """A candidate passes on patch NCC (better by the margin) AND distance (within radius + share of the path
    the chain has moved since its last anchor) - or, when far, on confirmation by the next images."""
    s_dir = np.array([0.9, 0.9, 0.9, 0.9, 0.9, np.nan, 0.9, 0.9])
    s_pred = np.array([0.2, 0.5, 0.2, 0.2, 0.2, 0.2, 0.2, 0.5])
    jump = np.array([3.0, 3.0, 9.0, 9.0, 40.0, 1.0, 40.0, 40.0])
    path = np.array([0.0, 0.0, 0.0, 24.0, 24.0, 0.0, 0.0, 0.0])
    confirmed = np.array([False] * 6 + [True, True])
    got = accept(s_dir, s_pred, jump, path, confirmed, margin=0.5, radius=4.0, radius_per_px=0.25)
    # near+better, not better enough, too far, far but the chain moved 24 px, much too far, no score,
    # far but confirmed, confirmed but not better enough
    assert got.tolist() == [True, False, False, True, False, False, True, False]


def test_far_lookalike_candidate_is_not_taken_unless_confirmed():
    """A direct candidate far from the chained prediction is refused however well it matches, unless the next
    images' candidates follow it along the flow: no one-image jump to a look-alike and back (issue 16,
    item 1), but a chain that slipped can still be brought back. Here query 0's candidates point 30 px away
    on the same texture (a perfect patch match); the chain's drift is only 0.8 px per step."""
    frames, flow, t_q, xy_q, truth = _biased_case()
    gray = gray_frames(frames)
    far = np.abs(np.arange(T) - t_q[0]) >= 2
    lone = far & (np.arange(T) % 2 == 0)  # every other image only: nothing confirms them
    direct = np.full((len(t_q), T, 2), np.nan, np.float32)
    direct[0, lone] = truth[0, lone] + np.float32([30.0, 0.0])
    free = anchored_chain(flow, gray, t_q, xy_q, direct, margin=-2.0, radius=1e9, radius_per_px=0.0)
    assert free.used[0, lone].all()  # without the distance rule the look-alike wins
    c = anchored_chain(flow, gray, t_q, xy_q, direct, margin=-2.0)
    assert not c.used.any()
    assert np.linalg.norm(np.diff(c.xy, axis=1), axis=-1).max() < 3.0  # the texture moves 2.2 px per step
    direct[0, far] = truth[0, far] + np.float32([30.0, 0.0])  # a whole consistent course: confirmed
    c = anchored_chain(flow, gray, t_q, xy_q, direct, margin=-2.0, confirm=2)
    assert c.used[0, 2] and c.used[0, far].sum() >= 1


def test_cancel_stops_drift_correction():
    frames, flow, t_q, xy_q, _ = _biased_case()
    with pytest.raises(Cancelled, match="drift correction"):
        correct_drift(frames, flow, t_q, xy_q, cancel=lambda: True)


def test_flow_guided_uses_drift_correction():
    frames, flow, t_q, xy_q, truth = _biased_case()
    g = FeatureGrid(4, 4, 8.0, 3.5)
    phi = torch.zeros(T, 2, 4, 4)
    phi[:, 1] = 1.0
    store = FeatureStore(phi, 1.0 / phi.norm(dim=1), g)
    args = (flow, Resize((W, H), (W, H)), store, torch.tensor(t_q), torch.tensor(xy_q, dtype=torch.float32),
            torch.tensor([[1.0, 0.0]] * len(t_q)), torch.full((len(t_q), T, 2), 500.0))
    plain, vis0, _ = run_flow_guided(*args, frames=frames, drift_correct=False)
    fixed, vis1, _ = run_flow_guided(*args, frames=frames)
    far = np.abs(np.arange(T)[None] - t_q[:, None]) >= 3
    e_plain = np.linalg.norm(plain.numpy() - truth, axis=-1)[far]
    e_fixed = np.linalg.norm(fixed.numpy() - truth, axis=-1)[far]
    assert e_plain.min() > 2.0 and np.median(e_fixed) < 0.3 * np.median(e_plain) and e_fixed.max() < e_plain.max()
    assert vis1.all()  # the corrected tracks stay on their pattern: visible
    err0 = np.linalg.norm(plain.numpy() - truth, axis=-1)
    assert (err0[~vis0.numpy()] > 2.0).all()  # the drifted chain is off its pattern where it is called occluded


def test_a_taken_candidate_off_the_raster_is_outside():
    """``inside`` (what visibility reads) is of the FINAL positions: a taken candidate off the raster is
    outside even though the chain it replaced was on it (issue 16: a track at x = -69 stayed visible)."""
    frames, flow, t_q, xy_q, _ = _biased_case()
    chain, _, inside_chain = chain_steps(flow, t_q, xy_q)
    direct = np.full((len(t_q), T, 2), np.nan, np.float32)
    direct[0, 4] = (-20.0, 30.0)
    c = anchored_chain(flow, gray_frames(frames), t_q, xy_q, direct, margin=-2.0, radius=1e9, confirm=0)
    assert c.used[0, 4] and inside_chain[0, 4] and not c.inside[0, 4]
    assert c.inside[0, 3] and c.inside[1:].all()
