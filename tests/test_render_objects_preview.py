"""Visual checks for masks and objects: mask tints in the object's colour, object boxes / centroids, a
legend of objects (not of their member points), and ``--preview`` on ``dtvfx segment`` / ``objects``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from _objects_helpers import DISC, SQUARE, make_scene, write_palette_mask, write_scene
from dino_tracker_vfx.cli import main
from dino_tracker_vfx.render.overlay import MASK_ALPHA, OverlayStyle, object_colours
from dino_tracker_vfx.render.preview import legend_entries, mask_objects, render_preview
from dino_tracker_vfx.shots import open_shot
from dino_tracker_vfx.tracks import Query, TrackSet

W, H, GREY = 160, 120, 128
NAMES = {SQUARE: "box", DISC: "disc"}


@pytest.fixture
def flat(tmp_path):
    """A flat grey plate (4 frames) and id maps: a 40x30 box (id 3) and a 30x30 block (id 7)."""
    for f in range(1001, 1005):
        cv2.imwrite(str(tmp_path / f"g.{f}.png"), np.full((H, W, 3), GREY, np.uint8))
    ids = np.zeros((H, W), np.int32)
    ids[40:70, 20:60] = SQUARE
    ids[50:80, 100:130] = DISC
    return open_shot(str(tmp_path / "g.####.png")), ids


def test_pixels_inside_a_mask_are_tinted_with_the_objects_colour(tmp_path, flat):
    shot, ids = flat
    ts = TrackSet.empty(shot.frame_numbers, shot.size)
    ts.groups = mask_objects(lambda t: ids, shot.n_images, NAMES)
    np.testing.assert_allclose(ts.groups["box"].centroid[0], (39.5, 54.5))  # mask centroid
    np.testing.assert_allclose(ts.groups["box"].bbox[0], (20, 40, 59, 69))  # extreme pixel centres
    res = render_preview(shot, ts, tmp_path / "m.mp4", tmp_path / "m.png", masks=lambda t: ids, mask_names=NAMES)
    cols = object_colours(NAMES.values())
    sheet = cv2.imread(res["png"])[..., ::-1].astype(float)
    tile = sheet[4:4 + H, 4:4 + W]  # first tile, plate size (lossless PNG)
    # regions clear of the outline, the bbox (2 px + AA) and the centroid cross (12 px arms at (39.5, 54.5) / (114.5, 64.5))
    for name, (ys, xs) in (("box", (slice(59, 66), slice(24, 31))), ("disc", (slice(69, 76), slice(104, 110)))):
        want = (1 - MASK_ALPHA) * GREY + MASK_ALPHA * np.array(cols[name], float)
        got = tile[ys, xs].reshape(-1, 3)
        assert np.abs(got - want).max() <= 2, (name, got.mean(0), want)
    assert np.abs(tile[95:115, 60:90] - GREY).max() <= 1  # outside every mask: the plate
    # the movie shows the same tint (H.264: mean over the interior)
    import av

    with av.open(res["mp4"]) as c:
        fr = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    want = (1 - MASK_ALPHA) * GREY + MASK_ALPHA * np.array(cols["disc"], float)
    assert np.abs(fr[69:76, 104:110].reshape(-1, 3).mean(0) - want).max() < 8


def test_legend_lists_objects_not_their_member_points(flat):
    shot, _ = flat
    T = shot.n_images
    qs = [Query(0, 10.0 + i, 20.0, f"{g}_p{i:02d}", g) for g in ("box", "disc") for i in range(24)]
    ts = TrackSet(np.tile(np.array([[[q.x, q.y]] for q in qs]), (1, T, 1)), np.ones((48, T), bool),
                  np.ones((48, T), np.float32), [q.name for q in qs], qs, shot.frame_numbers, shot.size)
    plain = OverlayStyle(ts, (W, H))
    assert len(legend_entries(ts, plain)) == 48  # groups without object tracks: a track legend, as before
    ts.groups = mask_objects(lambda t: np.zeros((H, W), np.int32), T, {1: "box", 2: "disc"})
    style = OverlayStyle(ts, (W, H))
    cols = object_colours(["box", "disc"])
    assert legend_entries(ts, style) == [("box (24 pts)", cols["box"]), ("disc (24 pts)", cols["disc"])]
    # a track outside every object keeps its own legend entry
    lone = TrackSet(np.concatenate([ts.xy, ts.xy[:1]]), np.ones((49, T), bool), np.ones((49, T), np.float32),
                    ts.names + ["lone"], qs + [Query(0, 1.0, 1.0, "lone")], shot.frame_numbers, shot.size, ts.groups)
    assert [e[0] for e in legend_entries(lone, OverlayStyle(lone, (W, H)))] == ["box (24 pts)", "disc (24 pts)",
                                                                                "lone"]
    # member points are drawn in their object's colour
    assert tuple(style.colours[0]) == cols["box"] and tuple(style.colours[47]) == cols["disc"]


@pytest.fixture(scope="module")
def scene():
    return make_scene(T=8)


def test_segment_and_objects_preview_flags(tmp_path, scene, capsys):
    pattern = write_scene(scene, tmp_path / "plate")
    mask = write_palette_mask(scene.masks[0], tmp_path / "mask.1001.png")
    seg = tmp_path / "seg"
    assert main(["segment", pattern, "--masks", mask, "--features", "colour-texture", "--out", str(seg), "-q",
                 "--names", "7=disc", "--preview"]) == 0, capsys.readouterr().err
    sheet = cv2.imread(str(seg / "segment.preview.png"))[..., ::-1].astype(float)
    assert (seg / "segment.preview.mp4").stat().st_size > 1000
    grid_h = 2 * (H + 4) + 4  # 8 frames in 2 rows of 4 tiles
    assert sheet.shape == (grid_h + 48, 4 * (W + 4) + 4, 3)  # legend: one row (2 objects)
    cols = object_colours(["disc", "obj3"])
    # the square's propagated mask at t=0 is the given one: tinted in obj3's colour inside it
    # square_pos(0) = (24, 30), 32 px: its lower-left quarter, clear of the box and the centroid cross
    ys, xs = slice(49, 59), slice(27, 35)
    got = sheet[4:4 + H, 4:4 + W][ys, xs].reshape(-1, 3).mean(0)
    plate = scene.frames[0][ys, xs].reshape(-1, 3).astype(float).mean(0)
    want = (1 - MASK_ALPHA) * plate + MASK_ALPHA * np.array(cols["obj3"], float)
    assert np.abs(got - want).max() < 3, (got, want)
    out = tmp_path / "objects.json"
    assert main(["objects", pattern, "--masks", mask, "--tracker", "flow", "--points-per-object", "24",
                 "--out", str(out), "-q", "--preview"]) == 0, capsys.readouterr().err
    sheet = cv2.imread(str(tmp_path / "objects.preview.png"))
    assert (tmp_path / "objects.preview.mp4").stat().st_size > 1000
    assert sheet.shape[0] == grid_h + 48  # 48 member points, but a legend of 2 objects (one row)
