"""tracker/preprocess/flow.py: DIS / RAFT flow and bilinear sampling."""

from __future__ import annotations

import numpy as np
import pytest

from _prep_helpers import sliding_frames
from dino_tracker_vfx.errors import Cancelled, ConfigError
from dino_tracker_vfx.tracker.preprocess import flow as fl


def test_dis_recovers_translation_both_directions():
    frames = sliding_frames(3, 96, 64, step=(3, -2))  # content moves by (-3, +2) px per frame
    ff = fl.compute_flow(frames)
    assert ff.fwd.shape == (2, 64, 96, 2) and ff.fwd.dtype == np.float32 and ff.size == (96, 64)
    inner = (slice(None), slice(12, -12), slice(12, -12))
    assert np.allclose(np.median(ff.fwd[inner].reshape(-1, 2), 0), (-3, 2), atol=0.1)
    assert np.allclose(np.median(ff.bwd[inner].reshape(-1, 2), 0), (3, -2), atol=0.1)
    eng = fl.make_engine("dis")
    direct = eng(eng.gray(frames[0]), eng.gray(frames[2]))  # long-range flow, twice the motion
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
    import torch
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path / "my_raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), path)
    frames = sliding_frames(3, 50, 36)  # not a multiple of 8: padded inside
    ff = fl.compute_flow(frames, method="raft_small", weights=path, params={"iters": 2})
    assert ff.fwd.shape == (2, 36, 50, 2) and np.isfinite(ff.fwd).all() and np.isfinite(ff.bwd).all()
    assert (path.parent / "my_raft_small.pth.sha256").is_file()  # hash recorded on first use
    assert ff.method == "raft_small" and ff.params == {"iters": 2}
