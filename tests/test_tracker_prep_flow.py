"""tracker/flow.py: DIS / RAFT flow, bilinear sampling, chained points with the forward-backward check."""

from __future__ import annotations

import numpy as np
import pytest

from _prep_helpers import constant_flow, sliding_frames
from dino_tracker_vfx.errors import Cancelled, ConfigError
from dino_tracker_vfx.tracker import flow as fl


def test_dis_recovers_translation_both_directions():
    frames = sliding_frames(3, 96, 64, step=(3, -2))  # content moves by (-3, +2) px per frame
    ff = fl.compute_flow(frames)
    assert ff.fwd.shape == (2, 64, 96, 2) and ff.fwd.dtype == np.float32 and ff.size == (96, 64)
    inner = (slice(None), slice(12, -12), slice(12, -12))
    assert np.allclose(np.median(ff.fwd[inner].reshape(-1, 2), 0), (-3, 2), atol=0.1)
    assert np.allclose(np.median(ff.bwd[inner].reshape(-1, 2), 0), (3, -2), atol=0.1)
    direct = fl.flow_pair(frames[0], frames[2])  # long-range flow, twice the motion
    assert np.allclose(np.median(direct[12:-12, 12:-12].reshape(-1, 2), 0), (-6, 4), atol=0.15)


def test_seeded_dis_engine_refuses_plain_flows():
    frames = sliding_frames(3, 96, 64, step=(3, -2))
    eng = fl.make_engine("dis")
    a, b = eng.gray(frames[0]), eng.gray(frames[2])
    plain = eng(a, b)
    init = np.zeros_like(plain)
    init[..., 0], init[..., 1] = -5.0, 3.0
    seeded = eng(a, b, init=init)
    assert (init[..., 0] == -5.0).all() and (init[..., 1] == 3.0).all()  # the seed is not written to
    assert np.allclose(np.median(seeded[12:-12, 12:-12].reshape(-1, 2), 0), (-6, 4), atol=0.15)
    with pytest.raises(RuntimeError, match="initial flow"):  # OpenCV would silently reuse a seed
        eng(a, b)
    assert np.array_equal(fl.make_engine("dis")(a, b), plain)  # a fresh engine gives the plain flow again


def test_sample_flow_is_exact_bilinear_and_clamps():
    H, W = 7, 9
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    field = np.stack([2 * xx + 3 * yy, -xx + 0.5 * yy], -1)  # linear -> bilinear sampling is exact
    pts = np.array([[0.25, 0.5], [3.7, 5.2], [8.0, 6.0]], np.float32)
    want = np.stack([2 * pts[:, 0] + 3 * pts[:, 1], -pts[:, 0] + 0.5 * pts[:, 1]], 1)
    assert np.allclose(fl.sample_flow(field, pts), want, atol=1e-5)
    assert np.allclose(fl.sample_flow(field, np.array([[-5.0, 100.0]], np.float32)), field[H - 1, 0])


def test_chain_points_forward_backward_from_own_query_frame():
    ff = constant_flow(6, 40, 30, d=(1.0, 0.5))
    t0 = np.array([0, 3, 5])
    xy0 = np.array([[5.0, 5.0], [10.0, 10.0], [20.0, 8.0]])
    xy, valid = fl.chain_points(ff, t0, xy0)
    assert xy.shape == (3, 6, 2) and valid.shape == (3, 6)
    t = np.arange(6)
    for n in range(3):
        expect = xy0[n] + (t - t0[n])[:, None] * np.array([1.0, 0.5])
        assert np.allclose(xy[n], expect, atol=1e-5)
    assert valid.all()


def test_chain_points_occlusion_is_sticky_and_positions_stay_defined():
    ff = constant_flow(6, 40, 30)
    ff.bwd[2, :, 10:16] += 5.0  # backward flow into frame 2 disagrees around x = 10..15 of frame 3
    xy, valid = fl.chain_points(ff, np.array([0, 0, 5]), np.array([[9.0, 10.0], [30.0, 10.0], [14.0, 10.0]]))
    # point 0 reaches x=12 at frame 3 -> inconsistent step 2->3: invalid from frame 3 on, even where flow is fine
    assert valid[0].tolist() == [True, True, True, False, False, False]
    assert np.allclose(xy[0, :, 0], 9 + np.arange(6))  # still follows the flow
    assert valid[1].tolist() == [True] * 6
    # backward chaining from frame 5: x=14 -> 13 (frame 4) -> 12 (frame 3) -> step 3->2 inconsistent
    assert valid[2].tolist() == [False, False, False, True, True, True]
    assert np.isfinite(xy).all()


def test_chain_points_leaving_the_raster_is_invalid():
    ff = constant_flow(5, 20, 10, d=(3.0, 0.0))
    xy, valid = fl.chain_points(ff, np.array([0]), np.array([[12.0, 4.0]]))
    assert valid[0].tolist() == [True, True, True, False, False]  # 12, 15, 18, 21 (> 19.5)


def test_chained_dis_tracks_real_motion():
    frames = sliding_frames(6, 80, 60, step=(2, 1))
    ff = fl.compute_flow(frames)
    xy, valid = fl.chain_points(ff, np.array([0, 5]), np.array([[40.0, 30.0], [30.0, 25.0]]))
    assert np.allclose(xy[0, 5], (30.0, 25.0), atol=0.5) and valid[0].all()
    assert np.allclose(xy[1, 0], (40.0, 30.0), atol=0.5) and valid[1].all()


def test_progress_cancel_and_bad_input():
    frames = sliding_frames(3, 32, 24)
    seen = []
    fl.compute_flow(frames, progress=seen.append)
    assert [(p.stage, p.done, p.total) for p in seen] == [("flow", 1, 2), ("flow", 2, 2)]
    with pytest.raises(Cancelled):
        fl.compute_flow(frames, cancel=lambda: True)
    with pytest.raises(ConfigError, match="flow.method"):
        fl.compute_flow(frames, method="farneback")
    with pytest.raises(ConfigError, match="flow.params.finest: unknown dis setting"):
        fl.compute_flow(frames, params={"finest": 0})
    with pytest.raises(TypeError, match="uint8"):
        fl.compute_flow(frames.astype(np.float32))
    one = fl.compute_flow(frames[:1])
    assert one.fwd.shape == (0, 24, 32, 2) and one.num_frames == 1


def test_raft_small_with_local_random_weights(tmp_path):
    torch = pytest.importorskip("torch")
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path / "my_raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), path)
    frames = sliding_frames(3, 50, 36)  # not a multiple of 8: padded inside
    ff = fl.compute_flow(frames, method="raft_small", weights=path, params={"iters": 2})
    assert ff.fwd.shape == (2, 36, 50, 2) and np.isfinite(ff.fwd).all() and np.isfinite(ff.bwd).all()
    assert (path.parent / "my_raft_small.pth.sha256").is_file()  # hash recorded on first use
    assert ff.method == "raft_small" and ff.params == {"iters": 2}
