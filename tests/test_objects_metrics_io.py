"""DAVIS J/F metrics and centroid error; index images and mattes written and read back with the ids."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.inputs import read_mask
from dino_tracker_vfx.objects import masks_io
from dino_tracker_vfx.objects.metrics import (bound_pixels, boundary_map, centroid_error, f_measure, jaccard,
                                              mask_centroid)


def _box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_jaccard_values():
    a = _box(10, 10, 0, 4, 0, 4)  # 16 px
    b = _box(10, 10, 2, 6, 2, 6)  # 16 px, overlap 4
    assert jaccard(a, b) == pytest.approx(4 / 28)
    assert jaccard(a, a) == 1.0
    assert jaccard(np.zeros_like(a), np.zeros_like(a)) == 1.0  # both empty (DAVIS)
    assert jaccard(a, np.zeros_like(a)) == 0.0


def test_boundary_map_marks_the_transition_pixels():
    m = _box(5, 6, 1, 4, 1, 4)
    b = boundary_map(m)
    # left edge: background column 0 differs from its right neighbour (rows 1..3) and row 0 from below
    assert b[1, 0] and b[2, 0] and b[0, 1]
    assert not b[2, 2]  # interior
    assert b[3, 3]  # bottom-right corner of the square (its right and lower neighbours are background)
    assert not boundary_map(np.zeros((4, 4), bool)).any()


def test_f_measure_tolerance_and_edge_cases():
    H, W = 200, 300
    assert bound_pixels((H, W)) == int(np.ceil(0.008 * np.hypot(H, W)))  # 3 px here
    gt = _box(H, W, 50, 150, 80, 200)
    assert f_measure(gt, gt) == 1.0
    near = _box(H, W, 52, 152, 82, 202)  # 2 px off: within the 3 px tolerance
    far = _box(H, W, 60, 160, 90, 210)  # 10 px off
    assert f_measure(near, gt) == 1.0
    assert f_measure(far, gt) < 0.5
    empty = np.zeros((H, W), bool)
    assert f_measure(empty, empty) == 1.0
    assert f_measure(empty, gt) == 0.0 and f_measure(gt, empty) == 0.0
    assert f_measure(far, gt, bound_th=15) == 1.0  # >= 1 means pixels (the shift is 10*sqrt(2) px)


def test_centroid_error_normalised_by_area():
    gt = _box(100, 100, 10, 30, 40, 60)  # 20x20, centre (49.5, 19.5)
    c, a = mask_centroid(gt)
    assert tuple(c) == (49.5, 19.5) and a == 400
    e, en = centroid_error([52.5, 23.5], gt)
    assert e == pytest.approx(5.0) and en == pytest.approx(5.0 / 20.0)
    assert np.isnan(centroid_error([0, 0], np.zeros((5, 5), bool))[0])


@pytest.mark.parametrize("fmt", ["png", "png16", "exr"])
def test_index_images_round_trip_with_the_input_ids(tmp_path, fmt):
    lab = np.zeros((30, 40), np.int32)
    lab[2:9, 3:12] = 7
    lab[15:, 20:] = 200
    lab[0, 39] = 1
    p = masks_io.index_path(tmp_path, 12, fmt)
    assert p.name == ("00012.exr" if fmt == "exr" else "00012.png")
    masks_io.write_index(p, lab, fmt)
    assert np.array_equal(read_mask(p), lab)
    assert [x.name for x in tmp_path.iterdir()] == [p.name]  # no temp file left behind
    if fmt == "png":
        im = Image.open(p)
        assert im.mode == "P" and im.getpalette()[:6] == [0, 0, 0, 128, 0, 0]


def test_palette_png_refuses_ids_above_255_with_a_message(tmp_path):
    lab = np.zeros((8, 8), np.int32)
    lab[0, 0] = 300
    with pytest.raises(InputError, match="png16 or exr"):
        masks_io.write_index(tmp_path / "a.png", lab, "png")
    many = list(range(1, 301))
    with pytest.raises(InputError, match="300 objects"):
        masks_io.check_ids_fit(many, "png")
    with pytest.raises(InputError, match="use --index-format exr"):
        masks_io.check_ids_fit([70000], "png16")
    masks_io.check_ids_fit(many, "png16")
    assert not (tmp_path / "a.png").exists()


def test_mattes_png_and_exr(tmp_path):
    a = np.zeros((10, 12), np.float32)
    a[2:5, 3:7] = 1.0
    a[6, 6] = 0.5
    masks_io.write_matte(tmp_path / "m.png", a, "png")
    masks_io.write_matte(tmp_path / "m.exr", a, "exr")
    png = np.asarray(Image.open(tmp_path / "m.png"))
    assert png.dtype == np.uint8 and png[3, 4] == 255 and png[6, 6] == 128 and png[0, 0] == 0
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(str(tmp_path / "m.exr"))
    assert inp.spec().channelnames == ("A",)
    px = inp.read_image("float")[..., 0]
    inp.close()
    np.testing.assert_allclose(px, a)


def test_object_names():
    assert masks_io.object_names([1, 5]) == {1: "obj1", 5: "obj5"}
    assert masks_io.object_names([1, 5], masks_io.parse_names("5=rider")) == {1: "obj1", 5: "rider"}
    with pytest.raises(InputError, match="not in the masks"):
        masks_io.object_names([1], {2: "x"})
    with pytest.raises(InputError, match="only letters"):
        masks_io.object_names([1], {1: "a b"})
    with pytest.raises(InputError, match="same name"):
        masks_io.object_names([1, 2], {1: "a", 2: "a"})
    with pytest.raises(InputError, match="ID=NAME"):
        masks_io.parse_names("horse")
