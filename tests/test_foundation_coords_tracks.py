"""Coordinates (plate <-> working, normalised, host spaces) and the track model (JSON/CSV)."""

from __future__ import annotations

import numpy as np
import pytest

from dino_tracker_vfx import coords
from dino_tracker_vfx.checks import check_shape
from dino_tracker_vfx.errors import InputError, ShapeError
from dino_tracker_vfx.tracks import ObjectTrack, Query, TrackSet, unique_names


@pytest.mark.parametrize("plate, work", [((1920, 1080), (854, 476)), ((854, 480), (256, 256)),
                                         ((2048, 858), (1000, 420)), ((64, 48), (64, 48))])
def test_plate_working_round_trip_both_ways(plate, work):
    r = coords.Resize(plate, work)
    rng = np.random.default_rng(0)
    p = rng.uniform(-0.5, 1, size=(1000, 2)) * np.array(plate)
    np.testing.assert_allclose(r.to_plate(r.to_working(p)), p, atol=1e-4, rtol=0)
    w = rng.uniform(-0.5, 1, size=(1000, 2)) * np.array(work)
    np.testing.assert_allclose(r.to_working(r.to_plate(w)), w, atol=1e-4, rtol=0)
    # the image edges map to the image edges, pixel centres as in cv2.resize
    np.testing.assert_allclose(r.to_working([[-0.5, -0.5], [plate[0] - 0.5, plate[1] - 0.5]]),
                               [[-0.5, -0.5], [work[0] - 0.5, work[1] - 0.5]], atol=1e-12)


def test_resize_mapping_matches_pixels_resized_by_opencv():
    """A blob drawn at a plate position lands, after cv2.resize, where Resize.to_working says."""
    import cv2

    W, H, w, h = 400, 300, 100, 75
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    x0, y0 = 123.3, 201.7
    img = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 6.0 ** 2)).astype(np.float32)
    small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA).astype(np.float64)
    ys, xs = np.mgrid[0:h, 0:w]
    centroid = np.array([(small * xs).sum(), (small * ys).sum()]) / small.sum()
    np.testing.assert_allclose(coords.Resize((W, H), (w, h)).to_working([x0, y0]), centroid, atol=0.02)


def test_normalised_coordinates_match_grid_sample():
    import torch
    import torch.nn.functional as F

    img = torch.arange(5 * 7, dtype=torch.float32).reshape(1, 1, 5, 7)
    xy = torch.tensor([[3.0, 2.0], [0.0, 0.0], [6.0, 4.0]])
    uv = coords.px_to_norm_t(xy, (7, 5))
    out = F.grid_sample(img, uv.view(1, 1, 3, 2), align_corners=False).flatten()
    assert out.tolist() == [2 * 7 + 3, 0, 4 * 7 + 6]
    np.testing.assert_allclose(coords.norm_to_px(coords.px_to_norm(xy.numpy(), (7, 5)), (7, 5)), xy.numpy(), atol=1e-12)


def test_host_spaces_by_hand():
    # pixel centre (0, 0) of a 1920x1080 plate is (0.5, 1079.5) in Nuke's bottom-left pixel-corner space
    np.testing.assert_allclose(coords.to_bottom_left_corner([0.0, 0.0], 1080), [0.5, 1079.5])
    np.testing.assert_allclose(coords.to_unit_bottom_left([959.5, 539.5], (1920, 1080)), [0.5, 0.5])
    np.testing.assert_allclose(coords.to_unit_bottom_left([-0.5, -0.5], (1920, 1080)), [0.0, 1.0])
    p = np.array([[12.25, 800.0], [1919.5, -0.5]])
    np.testing.assert_allclose(coords.from_bottom_left_corner(coords.to_bottom_left_corner(p, 1080), 1080), p)
    np.testing.assert_allclose(coords.from_unit_bottom_left(coords.to_unit_bottom_left(p, (1920, 1080)),
                                                            (1920, 1080)), p, atol=1e-9)
    np.testing.assert_allclose(coords.to_eval_raster([[854, 480]], (854, 480)), [[256, 256]])
    assert coords.in_plate(np.array([[-0.5, 0], [-0.6, 0], [1919.5, 1079.5]]), (1920, 1080)).tolist() == \
        [True, False, True]


def test_check_shape_names_dims():
    d = check_shape(np.zeros((3, 5, 2)), "N T 2", "tracks")
    assert d == {"N": 3, "T": 5}
    with pytest.raises(ShapeError, match=r"tracks: expected shape \(N, T, 2\) with T=4, N=3, got \(3, 5, 2\)"):
        check_shape(np.zeros((3, 5, 2)), "N T 2", "tracks", {"T": 4})
    check_shape(np.zeros((9, 3, 2)), "* 2", "pts")
    with pytest.raises(ShapeError):
        coords.to_bottom_left_corner(np.zeros((3, 3)), 10)


def _tracks():
    T = 4
    xy = np.array([[[0, 0], [1.5, 2.25], [np.nan, np.nan], [3, 4]],
                   [[10, 10], [11, 10], [12, 10], [13, 10]]], float)
    vis = np.array([[1, 1, 0, 1], [1, 0, 1, 1]], bool)
    conf = np.array([[1, .9, 0, .8], [1, .2, .7, .6]], np.float32)
    qs = [Query(0, 0, 0, "a", "obj"), Query(3, 13, 10, "b", None)]
    obj = ObjectTrack(np.array([[1, 1], [2, 2], [3, 3], [4, 4.5]]), np.array([1, 1, 0, 1], bool),
                      np.array([[0, 0, 2, 2]] * T, float))
    return TrackSet(xy, vis, conf, ["a", "b"], qs, [1001, 1002, 1004, 1005], (1920, 1080), {"obj": obj})


def test_trackset_json_round_trip(tmp_path):
    ts = _tracks()
    ts.save_json(tmp_path / "t.json")
    back = TrackSet.load_json(tmp_path / "t.json")
    np.testing.assert_array_equal(back.xy, ts.xy)  # NaN positions survive as null
    np.testing.assert_array_equal(back.visible, ts.visible)
    np.testing.assert_allclose(back.confidence, ts.confidence, atol=1e-4)
    assert back.queries == ts.queries and list(back.frame_numbers) == [1001, 1002, 1004, 1005]
    np.testing.assert_array_equal(back.groups["obj"].centroid, ts.groups["obj"].centroid)
    np.testing.assert_array_equal(back.groups["obj"].bbox, ts.groups["obj"].bbox)
    d = (tmp_path / "t.json").read_text()
    assert "origin top-left" in d and "pixel" in d  # conventions written into the file


def test_trackset_csv_round_trip(tmp_path):
    ts = _tracks()
    ts.save_csv(tmp_path / "t.csv")
    text = (tmp_path / "t.csv").read_text()
    assert text.splitlines()[1] == "# plate 1920 1080 pixel_aspect 1"
    assert "a,obj,1,1002,1.5,2.25,1,0.9,0" in text
    back = TrackSet.load(tmp_path / "t.csv")
    np.testing.assert_array_equal(back.xy, ts.xy)
    assert back.queries[1] == Query(3, 13.0, 10.0, "b", None)


def test_trackset_rejects_duplicates_and_bad_shapes():
    ts = _tracks()
    with pytest.raises(InputError, match="duplicate track names"):
        TrackSet(ts.xy, ts.visible, ts.confidence, ["a", "a"], ts.queries, ts.frame_numbers, ts.plate_size)
    with pytest.raises(ShapeError, match="TrackSet.visible"):
        TrackSet(ts.xy, ts.visible[:, :3], ts.confidence, ts.names, ts.queries, ts.frame_numbers, ts.plate_size)
    assert unique_names(["a", None, "a", "a"]) == ["a", "track_002", "a_2", "a_3"]


def test_bad_track_file_is_one_line(tmp_path):
    (tmp_path / "x.json").write_text('{"format": "something else"}')
    with pytest.raises(InputError, match=r"x\.json: not a dino_tracker_vfx.tracks file"):
        TrackSet.load_json(tmp_path / "x.json")


def test_centre_and_top_left_host_spaces_by_hand():
    # PFTrack: centre of the top-left pixel of a 1920x1080 plate is (0, 1079); AE: (0.5, 0.5)
    np.testing.assert_allclose(coords.to_bottom_left_centre([0.0, 0.0], 1080), [0.0, 1079.0])
    np.testing.assert_allclose(coords.to_top_left_corner([0.0, 0.0]), [0.5, 0.5])
    p = np.array([[3.25, 7.5], [1919.5, 1079.5]])
    np.testing.assert_allclose(coords.from_bottom_left_centre(coords.to_bottom_left_centre(p, 1080), 1080), p)
    np.testing.assert_allclose(coords.from_top_left_corner(coords.to_top_left_corner(p)), p)


def test_atomic_write_keeps_old_file_on_error_and_uses_umask(tmp_path):
    import os

    from dino_tracker_vfx import atomic

    target = tmp_path / "out.json"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind
    old = os.umask(0o022)
    try:
        atomic.write_text(target, "new")
    finally:
        os.umask(old)
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o644
    old = os.umask(0o077)  # the umask is read at each write, not once at import
    try:
        atomic.write_json(target, {"a": 1})
        assert (target.stat().st_mode & 0o777) == 0o600
        atomic.write_text(target, "shared", mode=0o664)  # an explicit mode wins
    finally:
        os.umask(old)
    assert target.read_text() == "shared" and (target.stat().st_mode & 0o777) == 0o664
