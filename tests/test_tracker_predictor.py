"""The array API (tracker/predictor.py) and in-memory shots (shots.from_array): contracts at the boundary,
the same tracks as the file path, exact query frames, a cache keyed on the pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _tracker_helpers import T, TINY_WF, moving_frames, true_track, write_shot
from dino_tracker_vfx.errors import InputError, ShotError
from dino_tracker_vfx.shots import from_array, open_shot
from dino_tracker_vfx.tracker.api import track
from dino_tracker_vfx.tracker.cache import shot_identity
from dino_tracker_vfx.tracker.predictor import TrackArrays, queries_from_array, track_arrays
from dino_tracker_vfx.tracks import Query

PRESET = {**TINY_WF, "infer": {"argmax_radius": 8.0, "flow_guided": True}}


def test_from_array_reads_the_pixels_it_was_given():
    frames = moving_frames()
    shot = from_array(frames, frame_numbers=np.arange(1001, 1001 + T), fps=24)
    assert shot.n_images == T and shot.size == (64, 48) and shot.kind == "array" and shot.fps == 24.0
    assert shot.frame_of(2) == 1003
    assert np.array_equal(shot.load(), frames)  # uint8 in, the same uint8 out (identity colour)
    assert shot.read(3).dtype == np.float32 and np.allclose(shot.read(3) * 255.0, frames[3])
    frames[0] = 0  # the shot holds its own copy
    assert shot.load()[0].any()
    # a torch tensor works the same
    assert np.array_equal(from_array(torch.from_numpy(moving_frames())).load(), moving_frames())


def test_from_array_identity_follows_the_pixels():
    a, b = moving_frames(seed=0), moving_frames(seed=1)
    assert shot_identity(from_array(a)) == shot_identity(from_array(a.copy()))
    assert shot_identity(from_array(a)) != shot_identity(from_array(b))


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((T, 48, 64), np.uint8), r"expected shape \(T, H, W, 3\)"),
    (np.zeros((T, 48, 64, 4), np.uint8), r"expected shape \(T, H, W, 3\)"),
    (np.zeros((T, 48, 64, 3), np.float32), "must be uint8"),
])
def test_from_array_rejects_bad_frames(bad, msg):
    with pytest.raises((ShotError, ValueError), match=msg):
        from_array(bad)


def test_from_array_rejects_bad_frame_numbers():
    with pytest.raises(ShotError, match="strictly increasing"):
        from_array(moving_frames(), frame_numbers=[5, 4, 6, 7, 8, 9])


def test_queries_from_array_checks_rows():
    qs = queries_from_array(np.array([[0, 10.5, 20.0], [5, 1.0, 2.0]]), T)
    assert qs == [Query(0, 10.5, 20.0, "q0"), Query(5, 1.0, 2.0, "q1")]
    assert queries_from_array(np.zeros((0, 3)), T) == []
    with pytest.raises(InputError, match=r"row 1: t = 2.5 is not an image index 0..5"):
        queries_from_array([[0, 1, 1], [2.5, 1, 1]], T)
    with pytest.raises(InputError, match=r"row 0: t = 6 is not an image index"):
        queries_from_array([[6, 1, 1]], T)
    with pytest.raises(InputError, match=r"row 0: .* not finite"):
        queries_from_array([[0, np.nan, 1]], T)
    with pytest.raises(InputError, match="must be numbers"):
        queries_from_array(np.array([[True, False, True]]), T)
    with pytest.raises(ValueError, match=r"expected shape \(N, 3\)"):
        queries_from_array(np.zeros((2, 2)), T)


def test_track_arrays_equals_the_file_path_and_pins_query_frames(tmp_path):
    q = np.array([[0, 20.0, 20.0], [3, 40.25, 25.5]], np.float64)
    out = track_arrays(moving_frames(), q, preset=PRESET)
    assert isinstance(out, TrackArrays)
    assert out.xy.shape == (2, T, 2) and out.xy.dtype == np.float32
    assert out.visible.shape == (2, T) and out.visible.dtype == bool and out.confidence.dtype == np.float32
    for n, (t, x, y) in enumerate(q):
        assert tuple(out.xy[n, int(t)]) == (np.float32(x), np.float32(y))
        assert out.visible[n, int(t)] and out.confidence[n, int(t)] == 1.0
    assert np.linalg.norm(out.xy[0] - true_track(0, (20.0, 20.0)), axis=1).max() < 1.0
    # the same frames through PNG files and track() give the same tracks
    shot = open_shot(str(write_shot(tmp_path / "plates")))
    ref = track(shot, [Query(0, 20.0, 20.0, "a"), Query(3, 40.25, 25.5, "b")], preset=PRESET)
    assert np.allclose(out.xy, ref.xy, atol=1e-4) and np.array_equal(out.visible, ref.visible)


def test_track_arrays_refuses_points_off_the_plate():
    with pytest.raises(InputError, match=r"q0: point \(70, 20\) at frame 0 is outside the 64x48 plate"):
        track_arrays(moving_frames(), [[0, 70.0, 20.0]], preset=PRESET)
