"""dtvfx segment / dtvfx objects end to end on a tiny synthetic shot, and the object-track API with a
point tracker that knows the true motion (so the centroid must be the true mask centroid)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from _objects_helpers import DISC, SQUARE, ArrayShot, make_scene, truth_tracker, write_palette_mask, write_scene
from dino_tracker_vfx.cli import main
from dino_tracker_vfx.inputs import read_mask
from dino_tracker_vfx.objects.api import track_objects
from dino_tracker_vfx.objects.metrics import jaccard
from dino_tracker_vfx.objects.smoothing import parse_smooth
from dino_tracker_vfx.tracks import TrackSet

T = 8


@pytest.fixture(scope="module")
def scene():
    return make_scene(T=T)


@pytest.fixture
def shot_files(tmp_path, scene):
    pattern = write_scene(scene, tmp_path / "plate")
    mask = write_palette_mask(scene.masks[0], tmp_path / "mask.1001.png")
    return pattern, mask, tmp_path


def test_segment_writes_palette_masks_with_input_ids_and_mattes(shot_files, scene):
    pattern, mask, tmp = shot_files
    out = tmp / "seg"
    rc = main(["segment", pattern, "--masks", mask, "--features", "colour-texture", "--out", str(out), "-q",
               "--names", "7=disc"])
    assert rc == 0
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == [f"{t:05d}.png" for t in range(T)]
    first = Image.open(out / "00000.png")
    assert first.mode == "P" and np.array_equal(np.asarray(first), scene.masks[0])  # the given frame, exact
    last = read_mask(out / "00007.png")
    assert set(np.unique(last)) <= {0, SQUARE, DISC}
    assert jaccard(last == SQUARE, scene.masks[7] == SQUARE) > 0.6
    for name, i in (("obj3", SQUARE), ("disc", DISC)):
        mattes = sorted((out / "mattes" / name).glob("*.png"))
        assert len(mattes) == T
        m = np.asarray(Image.open(mattes[-1]))
        assert np.array_equal(m > 0, last == i) and set(np.unique(m)) <= {0, 255}
    rep = json.loads((out / "segment.json").read_text())
    assert rep["features"]["features"] == "colour-texture"
    assert [o["name"] for o in rep["objects"]] == ["obj3", "disc"] and rep["given_frames"] == [1001]
    assert rep["propagation"] == {"radius": 6, "topk": 5, "temperature": 0.2, "n_recent": 6}


def test_segment_keeps_the_palette_of_a_mask_in_a_folder_with_an_at_sign(shot_files, scene):
    """The output index PNGs take the input mask's palette; a folder named ``take@2`` is part of the path
    (only a final ``@FRAME`` is a frame), with and without an explicit frame."""
    pattern, _, tmp = shot_files
    folder = tmp / "roto@v2" / "take@2"
    folder.mkdir(parents=True)
    im = Image.fromarray(scene.masks[0].astype(np.uint8), mode="P")
    pal = [(7 * i + 11) % 256 for i in range(768)]  # not the DAVIS palette the output falls back to
    im.putpalette(pal)
    im.save(folder / "mask.png")
    for n, spec in enumerate((str(folder / "mask.png"), str(folder / "mask.png") + "@1001")):
        out = tmp / f"seg{n}"
        assert main(["segment", pattern, "--masks", spec, "--features", "colour-texture", "--out", str(out),
                     "-q"]) == 0
        first = Image.open(out / "00000.png")
        assert first.getpalette()[:768] == pal and np.array_equal(np.asarray(first), scene.masks[0])


def test_segment_mid_shot_mask_other_size_and_a_vanishing_object(shot_files, scene, capsys):
    pattern, _, tmp = shot_files
    half = scene.masks[4][::2, ::2]  # 80x60: resized to the plate with a warning
    m4 = write_palette_mask(half, tmp / "half.png")
    m6 = scene.masks[6].copy()
    m6[m6 == DISC] = 0  # at frame 1007 the disc is said to be gone
    m6p = write_palette_mask(m6, tmp / "m6.png")
    out = tmp / "seg2"
    rc = main(["segment", pattern, "--masks", f"{m4}@1005", "--masks", f"{m6p}@1007", "--features",
               "colour-texture", "--out", str(out), "-q", "--mattes", "soft", "--matte-format", "exr"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "resized" in err and "nearest" in err
    assert "obj7" in err and "1007" in err  # the vanished object is reported
    rep = json.loads((out / "segment.json").read_text())
    assert rep["given_frames"] == [1005, 1007]
    assert 1007 in rep["vanished"]["obj7"]
    assert len(list(out.glob("*.png"))) == T  # backward to 1001 as well
    assert len(list((out / "mattes" / "obj3").glob("*.exr"))) == T
    first = read_mask(out / "00000.png")
    assert jaccard(first == SQUARE, scene.masks[0] == SQUARE) > 0.5


def test_segment_bad_masks_exit_2_with_one_line(shot_files, scene, capsys):
    pattern, _, tmp = shot_files
    import cv2

    big = scene.masks[0].astype(np.uint16)
    big[big == DISC] = 300  # an id a palette PNG cannot hold
    cv2.imwrite(str(tmp / "ids16.png"), big)
    rc = main(["segment", pattern, "--masks", str(tmp / "ids16.png"), "--features", "colour-texture",
               "--out", str(tmp / "s3"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "object id 300" in err and "png16 or exr" in err and len(err.strip().splitlines()) == 1
    assert not (tmp / "s3").exists() or not list((tmp / "s3").glob("*.png"))
    rc = main(["segment", pattern, "--masks", str(tmp / "ids16.png"), "--features", "colour-texture",
               "--out", str(tmp / "s4"), "-q", "--index-format", "png16", "--mattes", "none"])
    assert rc == 0 and 300 in np.unique(read_mask(tmp / "s4" / "00000.png"))
    cv2.imwrite(str(tmp / "empty.png"), np.zeros((120, 160), np.uint8))
    rc = main(["segment", pattern, "--masks", str(tmp / "empty.png"), "--out", str(tmp / "s5"), "-q"])
    assert rc == 2 and "empty" in capsys.readouterr().err


def test_objects_api_centroid_is_the_mask_centroid(scene):
    shot = ArrayShot(scene.frames)
    ts = track_objects(shot, {0: scene.masks[0]}, points_per_object=12, point_tracker=truth_tracker(scene),
                       names={7: "disc"}, guide="none")  # the point model alone is exact here
    assert set(ts.groups) == {"obj3", "disc"}
    assert ts.names[:2] == ["obj3_p01", "obj3_p02"] and ts.queries[0].group == "obj3"
    assert len(ts.members("obj3")) == 12 and len(ts.members("disc")) == 12
    for name, i in (("obj3", SQUARE), ("disc", DISC)):
        obj = ts.groups[name]
        np.testing.assert_allclose(obj.centroid, scene.centroids[i], atol=1e-6)
        assert obj.visible.all()
        ys, xs = np.nonzero(scene.masks[5] == i)
        np.testing.assert_allclose(obj.bbox[5], [xs.min(), ys.min(), xs.max(), ys.max()], atol=1e-6)
    back = TrackSet.from_json_dict(json.loads(json.dumps(ts.to_json_dict())))
    np.testing.assert_allclose(back.groups["disc"].centroid, ts.groups["disc"].centroid, atol=1e-5)
    assert ts.meta["objects"]["objects"]["disc"]["query_frame"] == 1001


def test_objects_api_absent_object_is_invisible_and_smoothing_is_optional():
    sc = make_scene(T=T, disc_gone=(5, 6, 7))
    shot = ArrayShot(sc.frames)
    m5 = sc.masks[5]
    with pytest.warns(UserWarning, match="absent from the given mask at frame"):
        ts = track_objects(shot, {0: sc.masks[0], 5: m5}, points_per_object=8, point_tracker=truth_tracker(sc),
                           smooth=parse_smooth("savgol:window=5,order=2"), guide="none")
    disc = ts.groups["obj7"]
    assert not disc.visible[5:].any() and disc.visible[:5].all()  # points invisible too from 5 on
    assert ts.meta["objects"]["objects"]["obj7"]["absent_frames"] == [1006]
    # a quadratic-free (linear) motion survives Savitzky-Golay smoothing exactly
    np.testing.assert_allclose(ts.groups["obj3"].centroid, sc.centroids[SQUARE], atol=1e-6)


def test_objects_cli_with_flow_tracker(shot_files, scene, capsys):
    pattern, mask, tmp = shot_files
    out = tmp / "objects.json"
    rc = main(["objects", pattern, "--masks", mask, "--tracker", "flow", "--points-per-object", "16",
               "--out", str(out), "-q"])
    assert rc == 0, capsys.readouterr().err
    ts = TrackSet.load(out)
    assert set(ts.groups) == {"obj3", "obj7"} and ts.n_tracks == 32
    c, truth = ts.groups["obj3"].centroid, scene.centroids[SQUARE]
    err = np.linalg.norm(c - truth, axis=1)
    moved = np.linalg.norm(truth - truth[0], axis=1)
    # DIS flow under-estimates the motion of this small square (its edges blend with the static
    # background), so only the direction and a bounded lag are checked; exactness is tested above
    assert err[0] < 1e-9 and err[1] < 1.5 and (err[1:] < 0.5 * moved[1:]).all(), err
    assert np.all(np.diff(c[:, 0]) > 0) and np.all(np.diff(c[:, 1]) > 0)
    assert ts.meta["objects"]["point_tracker"] == "flow"
    rc = main(["objects", pattern, "--masks", mask, "--tracker", "flow", "--smooth", "gauss", "--out", str(out)])
    assert rc == 2 and "smoothing 'gauss'" in capsys.readouterr().err


def test_objects_and_features_with_the_real_tracker_briefly_trained(scene):
    """Wiring to tracker.api (A2): one training serves the object tracks and the tracker features."""
    from dino_tracker_vfx.tracker import api
    from dino_tracker_vfx.objects.features import TrackerFeatures
    from dino_tracker_vfx.objects.propagate import propagate_masks

    shot = ArrayShot(scene.frames[:4])
    preset = {"base": "cpu-preview", "train": {"iterations": 3, "checkpoint_every": 3}}
    st = api.ShotTracker(shot, preset, masks={0: scene.masks[0]}, device="cpu")
    st.prepare()
    st.train()
    ts = track_objects(shot, {0: scene.masks[0]}, points_per_object=6, point_tracker=lambda s, q, m: st.infer(q))
    assert set(ts.groups) == {"obj3", "obj7"} and ts.n_tracks == 12
    np.testing.assert_allclose(ts.groups["obj3"].centroid[0], scene.centroids[SQUARE][0])
    src = TrackerFeatures(st)
    assert src.describe()["features"] == "tracker"
    preds = list(propagate_masks(src, 4, {0: scene.masks[0]}, shot.size))
    assert [p.t for p in preds] == [0, 1, 2, 3] and set(np.unique(preds[-1].labels)) <= {0, SQUARE, DISC}
