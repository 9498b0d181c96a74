"""Flow-guided visibility (tracker/infer/flow_guided.py): only a persistent flow failure or leaving the raster occludes."""

from __future__ import annotations

import numpy as np
import torch

from _tracker_helpers import run_flow_guided
from dino_tracker_vfx.coords import Resize
from dino_tracker_vfx.tracker.model.feature_grid import FeatureGrid
from dino_tracker_vfx.tracker.preprocess.flow import FlowField
from dino_tracker_vfx.tracker.infer.flow_guided import pattern_gone
from dino_tracker_vfx.tracker.infer.inference import FeatureStore

S, T = 32, 6  # 32 x 32 raster (working = flow), 6 frames


def _case(err=10.0):
    """Everything moves +1 px in x per frame. The backward flow is wrong by ``err`` px (default 10 > 5 x 1.5)
    in rows y < 10 for ONE step (1 -> 2) and in rows y >= 15 for TWO consecutive steps (1 -> 2, 2 -> 3)."""
    fwd = np.zeros((T - 1, S, S, 2), np.float32)
    fwd[..., 0] = 1.0
    bwd = -fwd.copy()
    bwd[1, :10, :, 1] = err
    bwd[1, 15:, :, 1] = err
    bwd[2, 15:, :, 1] = err
    flow = FlowField(fwd, bwd)
    g = FeatureGrid(4, 4, 8.0, 3.5)
    phi = torch.zeros(T, 2, 4, 4)
    phi[:, 1] = 1.0  # every feature orthogonal to the queries' (cos = 0): the chain alone decides
    store = FeatureStore(phi, 1.0 / phi.norm(dim=1), g)
    xy_q = torch.tensor([[2.0, 5.0], [2.0, 20.0], [29.0, 12.0]])  # one glitch / persistent failure / leaves
    t_q = torch.zeros(3, dtype=torch.long)
    q_feat = torch.tensor([[1.0, 0.0]] * 3)
    far = torch.full((3, T, 2), 100.0)  # the learned tracker disagrees everywhere
    return flow, store, t_q, xy_q, q_feat, far


def test_single_glitch_stays_visible_persistent_failure_and_leaving_occlude():
    flow, store, t_q, xy_q, q_feat, far = _case()
    xy, vis, conf = run_flow_guided(flow, Resize((S, S), (S, S)), store, t_q, xy_q, q_feat, far, fb_thresh=1.5)
    # positions follow the chain whatever the checks say
    assert torch.allclose(xy[:, :, 0], xy_q[:, None, 0] + torch.arange(T).float())
    assert vis[0].all()  # one failed step (1 -> 2): not an occlusion, but a doubt: the confidence dips there
    assert conf[0, 0] == 1 and conf[0, 2] < conf[0, [1, 3, 4, 5]].min() - 0.2
    assert vis[1].tolist() == [True, True, True, False, False, False]  # 2nd consecutive failure at frame 3
    assert vis[2].tolist() == [True, True, True, False, False, False]  # x = 32 > 31.5 at frame 3: left
    assert conf[1, 3:].max() < 0.5 * conf[1, 1]  # occluded: half the confidence of its clean visible step


def test_fail_run_one_restores_first_failure_rule():
    flow, store, t_q, xy_q, q_feat, far = _case()
    _, vis, _ = run_flow_guided(flow, Resize((S, S), (S, S)), store, t_q, xy_q, q_feat, far, fb_thresh=1.5, fail_run=1)
    assert vis[0].tolist() == [True, True, False, False, False, False]
    assert vis[1].tolist() == [True, True, False, False, False, False]


def test_fb_scale_sets_what_counts_as_a_failed_step():
    """5 px of forward-backward error on two steps: a failure at 2 x 1.5 = 3 px, not at the default 5 x 1.5."""
    flow, store, t_q, xy_q, q_feat, far = _case(err=5.0)
    args = (flow, Resize((S, S), (S, S)), store, t_q, xy_q, q_feat, far)
    _, vis, _ = run_flow_guided(*args, fb_thresh=1.5)
    assert vis[1].all()
    _, vis, _ = run_flow_guided(*args, fb_thresh=1.5, occ_fb_scale=2.0)
    assert vis[1].tolist() == [True, True, True, False, False, False]


def _replaced_pattern_case(T_=10, t_swap=5):
    """A texture sliding by (-2, -1) px per frame with exact flows; from image ``t_swap`` on, a 24 x 24
    square around the query's true track shows another texture (the pattern is replaced, the flow is not)."""
    from _tracker_helpers import moving_frames, texture, true_track

    w, h = 96, 72
    frames = moving_frames(T_, w, h, (2.0, 1.0), seed=3).copy()
    other = texture(h, w, seed=11)
    xy_q = np.array([[60.0, 40.0]])
    truth = true_track(0, xy_q[0], T_, (2.0, 1.0))
    for t in range(t_swap, T_):
        x, y = np.round(truth[t]).astype(int)
        frames[t, y - 12:y + 12, x - 12:x + 12] = other[y - 12:y + 12, x - 12:x + 12]
    fwd = np.zeros((T_ - 1, h, w, 2), np.float32)
    fwd[..., 0], fwd[..., 1] = -2.0, -1.0
    flow = FlowField(fwd, -fwd)
    g = FeatureGrid(4, 4, 8.0, 3.5)
    phi = torch.zeros(T_, 2, 4, 4)
    phi[:, 1] = 1.0
    store = FeatureStore(phi, 1.0 / phi.norm(dim=1), g)
    return (flow, Resize((w, h), (w, h)), store, torch.zeros(1, dtype=torch.long), torch.tensor(xy_q, dtype=torch.float32),
            torch.tensor([[1.0, 0.0]]), torch.full((1, T_, 2), 500.0)), frames


def test_confidence_drops_and_visibility_ends_where_the_pattern_is_replaced():
    args, frames = _replaced_pattern_case()
    xy, vis, conf = run_flow_guided(*args, frames=frames, drift_correct=False, gone_ncc=0.2, gone_run=4)
    c = conf[0].numpy()
    assert c[0] == 1.0 and (c[1:5] > 0.8).all() and c[5:].max() < c[1:5].min() - 0.3
    assert vis[0].tolist() == [True] * 5 + [False] * 5  # >= gone_run images below gone_ncc: occluded
    # a dip shorter than gone_run is no occlusion: replace only the last 2 images
    args2, frames2 = _replaced_pattern_case(t_swap=8)
    _, vis2, conf2 = run_flow_guided(*args2, frames=frames2, drift_correct=False, gone_ncc=0.2, gone_run=4)
    assert vis2[0].all() and conf2[0, 8:].max() < conf2[0, 1:8].min() - 0.3


def test_pattern_gone_needs_a_low_run():
    nc = np.array([[1.0, 0.1, 0.1, 0.1, 0.9, 0.1, 0.3, 0.0, 0.1, np.nan]])
    # windows of 4: only 5..8 averages below 0.2 (0.125); 1..4 is lifted by the 0.9, NaN reads as 1
    assert pattern_gone(nc, 0.2, 4).tolist() == [[False] * 5 + [True] * 4 + [False]]
    assert pattern_gone(nc, 0.2, 3).tolist() == [[False, True, True, True, False, True, True, True, True, False]]
    assert not pattern_gone(nc, -0.05, 1).any() and not pattern_gone(nc, 0.2, 11).any()
