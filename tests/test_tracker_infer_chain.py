"""tracker/infer/chain.py: points chained through consecutive flows with the forward-backward check."""

from __future__ import annotations

import numpy as np

from _prep_helpers import constant_flow, sliding_frames
from dino_tracker_vfx.shots import from_array
from dino_tracker_vfx.tracker.infer.chain import chain_on_shot, chain_points
from dino_tracker_vfx.tracker.preprocess.flow import compute_flow


def test_chain_points_forward_backward_from_own_query_frame():
    ff = constant_flow(6, 40, 30, d=(1.0, 0.5))
    t0 = np.array([0, 3, 5])
    xy0 = np.array([[5.0, 5.0], [10.0, 10.0], [20.0, 8.0]])
    xy, valid = chain_points(ff, t0, xy0)
    assert xy.shape == (3, 6, 2) and valid.shape == (3, 6)
    t = np.arange(6)
    for n in range(3):
        expect = xy0[n] + (t - t0[n])[:, None] * np.array([1.0, 0.5])
        assert np.allclose(xy[n], expect, atol=1e-5)
    assert valid.all()


def test_chain_points_occlusion_is_sticky_and_positions_stay_defined():
    ff = constant_flow(6, 40, 30)
    ff.bwd[2, :, 10:16] += 5.0  # backward flow into frame 2 disagrees around x = 10..15 of frame 3
    xy, valid = chain_points(ff, np.array([0, 0, 5]), np.array([[9.0, 10.0], [30.0, 10.0], [14.0, 10.0]]))
    # point 0 reaches x=12 at frame 3 -> inconsistent step 2->3: invalid from frame 3 on, even where flow is fine
    assert valid[0].tolist() == [True, True, True, False, False, False]
    assert np.allclose(xy[0, :, 0], 9 + np.arange(6))  # still follows the flow
    assert valid[1].tolist() == [True] * 6
    # backward chaining from frame 5: x=14 -> 13 (frame 4) -> 12 (frame 3) -> step 3->2 inconsistent
    assert valid[2].tolist() == [False, False, False, True, True, True]
    assert np.isfinite(xy).all()


def test_chain_points_leaving_the_raster_is_invalid():
    ff = constant_flow(5, 20, 10, d=(3.0, 0.0))
    xy, valid = chain_points(ff, np.array([0]), np.array([[12.0, 4.0]]))
    assert valid[0].tolist() == [True, True, True, False, False]  # 12, 15, 18, 21 (> 19.5)


def test_chained_dis_tracks_real_motion():
    frames = sliding_frames(6, 80, 60, step=(2, 1))
    ff = compute_flow(frames)
    xy, valid = chain_points(ff, np.array([0, 5]), np.array([[40.0, 30.0], [30.0, 25.0]]))
    assert np.allclose(xy[0, 5], (30.0, 25.0), atol=0.5) and valid[0].all()
    assert np.allclose(xy[1, 0], (40.0, 30.0), atol=0.5) and valid[1].all()


def test_chain_on_shot_is_the_flow_point_tracker_in_plate_px():
    """The flow baseline (flow on the plate, positions as chained) and the objects' flow tracker (flow on a
    smaller raster or given, plate px through shot.resize) are this one function."""
    shot = from_array(sliding_frames(6, 80, 60, step=(2, 1)))
    t0, xy0 = np.array([0, 5]), np.array([[40.0, 30.0], [30.0, 25.0]])
    xy, valid, wh = chain_on_shot(shot, t0, xy0)
    assert wh == (80, 60) and xy.dtype == np.float32
    want, want_valid = chain_points(compute_flow(shot.load()), t0, xy0)
    assert np.array_equal(xy, want) and np.array_equal(valid, want_valid)
    assert np.allclose(xy[0, 5], (30.0, 25.0), atol=0.5) and valid.all()
    half, hv, hwh = chain_on_shot(shot, t0, xy0, wh=(40, 30))  # a half-size raster, positions back in plate px
    assert hwh == (40, 30) and half.dtype == np.float64 and hv[:, :4].all()
    assert np.allclose(half[0, 4], (32.0, 26.0), atol=1.0) and np.allclose(half[1, 1], (38.0, 29.0), atol=1.0)
    given, gv, gwh = chain_on_shot(shot, t0, xy0, flow=compute_flow(shot.load((40, 30))))
    assert gwh == (40, 30) and np.array_equal(given, half) and np.array_equal(gv, hv)
