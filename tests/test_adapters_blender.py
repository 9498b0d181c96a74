"""Blender adapter: markers document (no bpy needed) and real .blend files written and read by Blender
(tests marked ``blender``). Blender is the bpy wheel in the tests' own venv (tests/_bpy_env.py), run as
the adapter's Blender executable, so bpy never enters (and never pins numpy in) the tested environment;
when that venv cannot be built the tests skip locally and fail under CI.

Hand-computed values (tests/_adapter_helpers.py, 1920x1080, frames 1001-1005):
car_a t=0 (0, 0) -> co ((0 + 0.5)/1920, (1080 - 0.5)/1080) = (0.000260417, 0.999537037);
car_b occluded at t=2 (frame 1003): a muted marker there at its estimated position (104.25, 198.5)
-> ((104.75)/1920, (1080 - 199)/1080) = (0.054557292, 0.815740741), unmuted again at 1004.
Clip frame 1 = plate.1001.png, so plate frame 1003 is clip frame 3.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from _adapter_helpers import FRAMES, assert_same_tracks, check_golden, golden_trackset
from _bpy_env import run_driver
from dino_tracker_vfx.adapters import read_queries, registry, resolve_options, write_tracks
from dino_tracker_vfx.errors import ConfigError, InputError
from dino_tracker_vfx.tracks import Query, TrackSet

REPO = Path(__file__).resolve().parents[1]
W, H = 1920, 1080
CAR_A_0 = (0.5 / W, 1079.5 / H)
CAR_B_MUTED = (104.75 / W, (1080 - 199.0) / H)


def _blender_mod():
    registry()
    import dtvfx_plugins.blender as m

    return m


def _reorder(ts: TrackSet, names: list[str]) -> TrackSet:
    return ts.subset([ts.names.index(n) for n in names])


# ----------------------------------------------------------------------------- markers document (no bpy)
def test_markers_document_hand_values_and_golden(tmp_path):
    p = tmp_path / "golden.blender.json"
    write_tracks(golden_trackset(), p)  # suffix picks blender_markers over core json
    check_golden(p, "blender")
    doc = json.loads(p.read_text())
    t = {x["name"]: x for x in doc["tracks"]}
    # default groups=prefix: every track in the camera object (what a camera solve uses), the group kept
    # as the name prefix and as the group's colour (the preview's object palette: one group -> hue 0.6,
    # s 0.9, v 1 -> RGB (0.1, 0.46, 1) -> uint8 (25, 117, 255))
    assert set(t) == {"car/car_a", "car/car_b", "corner 1"} and all(x["object"] is None for x in doc["tracks"])
    assert t["car/car_a"]["color"] == t["car/car_b"]["color"] == pytest.approx([25 / 255, 117 / 255, 1.0], abs=1e-6)
    assert "color" not in t["corner 1"] and "fps" not in doc  # no rate in the track file: none written
    t = {x.pop("name").split("/")[-1]: x for x in doc["tracks"]}
    f, u, v, mute, keyed = t["car_a"]["markers"][0]
    assert (f, mute, keyed) == (1001, False, True) and (u, v) == pytest.approx(CAR_A_0, abs=1e-12)
    assert [m[4] for m in t["car_a"]["markers"]] == [True, False, False, False, False]  # only the query is keyed
    mb = {m[0]: m for m in t["car_b"]["markers"]}
    assert sorted(mb) == FRAMES  # visible 1001, 1002, muted 1003, visible again 1004, 1005
    assert mb[1003][3] is True and mb[1003][1:3] == pytest.approx(CAR_B_MUTED, abs=1e-12)
    assert mb[1002][3] is False and mb[1004][3] is False
    u, v = t["corner 1"]["markers"][0][1:3]
    assert (u, v) == pytest.approx((1919.5 / W, 0.5 / H), abs=1e-12)


def test_markers_document_only_first_occluded_image_is_muted():
    ts = golden_trackset()
    ts.visible[0, 1:4] = False  # car_a occluded 1002-1004
    ts.xy[0, 2] = np.nan  # unknown position at 1003
    doc = _blender_mod().tracks_to_doc(ts, {}, Path("x.blend"))
    t = {x["name"]: x for x in doc["tracks"]}
    assert [(m[0], m[3]) for m in t["car/car_a"]["markers"]] == [(1001, False), (1002, True), (1005, False)]


def test_markers_document_groups_objects_option_and_fps():
    ts = golden_trackset().with_time(10)
    doc = _blender_mod().tracks_to_doc(ts, {"groups": "objects"}, Path("x.blend"))
    t = {x["name"]: x for x in doc["tracks"]}
    assert (t["car_a"]["object"], t["car_b"]["object"], t["corner 1"]["object"]) == ("car", "car", None)
    assert doc["fps"] == 10
    assert _blender_mod().split_prefix("car/car_a") == ("car", "car_a")
    assert _blender_mod().split_prefix("plain") == (None, "plain") and _blender_mod().split_prefix("/x") == (None, "/x")


def test_markers_document_round_trip_and_queries_at_a_frame(tmp_path):
    ts = golden_trackset()
    p = tmp_path / "t.blender.json"
    write_tracks(ts, p, "blender_markers")
    a = registry().get("blender_markers")
    back = a.read_tracks(p, resolve_options(a, {}))
    assert_same_tracks(ts, back, atol=1e-9)
    np.testing.assert_allclose(back.xy[1, 2], ts.xy[1, 2], atol=1e-9)  # muted marker keeps the estimate
    qs = read_queries(p, ts, "blender_markers", {"frame": 1002, "selected_only": False})
    assert [q.t for q in qs] == [1, 1, 1]
    np.testing.assert_allclose([[q.x, q.y] for q in qs], ts.xy[:, 1], atol=1e-9)
    assert [q.group for q in qs] == ["car", "car", None]
    with pytest.raises(InputError, match=r"track 'car_b' is muted \(occluded\) at plate frame 1003"):
        read_queries(p, ts, "blender_markers", {"frame": 1003, "selected_only": False})
    with pytest.raises(ConfigError, match="give frame="):
        read_queries(p, ts, "blender_markers", {"selected_only": False})


def test_blender_names_are_cut_to_63_bytes_and_stay_unique():
    m = _blender_mod()
    long = "é" * 40  # 80 bytes
    names = m._unique_short([long, long + "x", "a\nb"])
    assert all(len(n.encode()) <= 63 for n in names) and len(set(names)) == 3
    assert names[0] == "é" * 31 and names[1].endswith("_2") and names[2] == "a\nb"  # kept as it is


# ----------------------------------------------------------------------------- real Blender (own bpy venv)
@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """plate.1001-1005.png at the golden plate size (black, tiny files), plus a copy with 1003 missing."""
    import cv2

    d = tmp_path_factory.mktemp("plate")
    img = np.zeros((H, W, 3), np.uint8)
    for f in FRAMES:
        cv2.imwrite(str(d / f"plate.{f}.png"), img)
    return d


def _markers(py, blend: Path) -> dict:
    """The .blend read back by Blender: clip, scene, n_clips and tracks {name: [object, [[frame, u, v, mute]]]}."""
    return run_driver(py, "markers", blend=str(blend))


@pytest.mark.blender
def test_write_blend_then_reopen_markers_mute_and_frames(blender, plate, tmp_path):
    ts = golden_trackset()
    out = tmp_path / "shot.blend"
    write_tracks(ts, Path("ignored.blend"), "blender", {"blend": out, "clip": str(plate / "plate.####.png")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shot.blend"]  # no temp file, no .blend1
    mk = _markers(blender, out)
    clip, scene, tr = mk["clip"], mk["scene"], mk["tracks"]
    assert tuple(clip["size"]) == (W, H) and clip["frame_start"] == 1001 and clip["frame_offset"] == 0
    assert (scene["frame_start"], scene["frame_end"], scene["active_clip"]) == (1001, 1005, clip["name"])
    # default: every track in the camera object (a camera solve needs no option), groups as prefixes
    assert mk["objects"] == []
    obj, m = tr["car/car_a"]
    assert obj is None and [x[0] for x in m] == [1, 2, 3, 4, 5]  # clip frame 1 = plate.1001.png
    assert m[0][1:3] == pytest.approx(CAR_A_0, abs=1e-7) and not any(x[3] for x in m)
    assert mk["colors"]["car/car_a"] == pytest.approx([25 / 255, 117 / 255, 1.0], abs=1e-6)
    assert mk["colors"]["corner 1"] is None
    obj, m = tr["car/car_b"]
    assert [(x[0], x[3]) for x in m] == [(1, False), (2, False), (3, True), (4, False), (5, False)]
    assert m[2][1:3] == pytest.approx(CAR_B_MUTED, abs=1e-7)
    obj, m = tr["corner 1"]
    assert obj is None and m[0][1:3] == pytest.approx((1919.5 / W, 0.5 / H), abs=1e-7)
    assert scene["fps"] == 24  # no rate in the track file: Blender's default


@pytest.mark.blender
def test_groups_objects_option_and_the_shot_rate(blender, plate, tmp_path):
    out = tmp_path / "obj.blend"
    write_tracks(golden_trackset().with_time(23.976), out, "blender",
                 {"clip": str(plate / "plate.####.png"), "groups": "objects"})
    mk = _markers(blender, out)
    tr = mk["tracks"]
    assert (tr["car_a"][0], tr["car_b"][0], tr["corner 1"][0]) == ("car", "car", None)
    r = mk["scene"]
    assert (r["fps"], r["fps"] / r["fps_base"]) == (24, pytest.approx(23.976, abs=1e-4))
    a = registry().get("blender")
    back = a.read_tracks(out, resolve_options(a, {"frame_numbers": FRAMES}))
    assert {n: back.queries[i].group for i, n in enumerate(back.names)} == {"car_a": "car", "car_b": "car",
                                                                             "corner 1": None}


@pytest.mark.blender
def test_blend_round_trip_tracks_and_queries(blender, plate, tmp_path):
    ts = golden_trackset()
    out = tmp_path / "rt.blend"
    write_tracks(ts, out, "blender", {"clip": str(plate / "plate.####.png")})
    a = registry().get("blender")
    back = a.read_tracks(out, resolve_options(a, {"frame_numbers": FRAMES}))
    assert set(back.names) == set(ts.names)
    assert_same_tracks(ts, _reorder(back, ts.names), atol=2e-4)  # marker.co is float32
    # queries: selected tracks (written tracks are selected) at plate frame 1004
    qs = read_queries(out, ts, "blender", {"frame": 1004})
    by = {q.name: q for q in qs}
    assert {q.t for q in qs} == {3}
    np.testing.assert_allclose([by[n].x for n in ts.names], ts.xy[:, 3, 0], atol=2e-4)
    np.testing.assert_allclose([by[n].y for n in ts.names], ts.xy[:, 3, 1], atol=2e-4)
    assert by["car_b"].group == "car" and by["corner 1"].group is None
    # default frame: the scene's current frame (1001 = scene start)
    assert {q.t for q in read_queries(out, ts, "blender")} == {0}
    with pytest.raises(InputError, match=r"'car_b' is muted \(occluded\) at plate frame 1003 \(clip frame 3\)"):
        read_queries(out, ts, "blender", {"frame": 1003})


@pytest.mark.blender
def test_write_into_existing_blend_refills_same_named_tracks(blender, plate, tmp_path):
    ts = golden_trackset()
    out = tmp_path / "upd.blend"
    write_tracks(ts, out, "blender", {"clip": str(plate / "plate.####.png")})
    moved = golden_trackset()
    moved.xy[:, :, 0] += 7.0
    moved.visible[0, 4] = False  # car_a now ends occluded
    write_tracks(moved, out, "blender", {})  # no --clip: the file's active clip
    mk = _markers(blender, out)
    assert mk["n_clips"] == 1
    assert sorted(mk["tracks"]) == ["car/car_a", "car/car_b", "corner 1"]  # refilled, not duplicated
    m = mk["tracks"]["car/car_a"][1]
    assert [(x[0], x[3]) for x in m] == [(1, False), (2, False), (3, False), (4, False), (5, True)]
    assert m[0][1] == pytest.approx(7.5 / W, abs=1e-7)
    with pytest.raises(InputError, match="already has a track 'car/car_a'"):
        write_tracks(moved, out, "blender", {"replace": False})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upd.blend"]


@pytest.mark.blender
def test_gaps_and_bad_input(blender, plate, tmp_path):
    import shutil

    seq = tmp_path / "gap"
    seq.mkdir()
    for f in (1001, 1002, 1004):
        shutil.copy(plate / f"plate.{f}.png", seq / f"plate.{f}.png")
    ts = golden_trackset().subset([0])
    ts = TrackSet(ts.xy[:, [0, 1, 3]], ts.visible[:, [0, 1, 3]], ts.confidence[:, [0, 1, 3]], ts.names, ts.queries,
                  [1001, 1002, 1004], ts.plate_size, ts.groups)
    out = tmp_path / "gap.blend"
    write_tracks(ts, out, "blender", {"clip": str(seq / "plate.####.png")})
    assert [x[0] for x in _markers(blender, out)["tracks"]["car/car_a"][1]] == [1, 2, 4]  # plate 1004 = clip frame 4
    with pytest.raises(ConfigError, match="--clip"):
        write_tracks(ts, tmp_path / "new.blend", "blender", {})
    small = TrackSet(ts.xy, ts.visible, ts.confidence, ts.names, ts.queries, ts.frame_numbers, (640, 360))
    with pytest.raises(InputError, match="1920x1080, the tracks are for a 640x360 plate"):
        write_tracks(small, tmp_path / "small.blend", "blender", {"clip": str(seq / "plate.####.png")})
    with pytest.raises(InputError, match="track frame 1003 is not in the clip"):
        write_tracks(golden_trackset(), tmp_path / "g.blend", "blender", {"clip": str(seq / "plate.####.png")})
    run_driver(blender, "deselect_all", blend=str(out))
    with pytest.raises(InputError, match="no selected tracks"):
        read_queries(out, ts, "blender", {"frame": 1001})
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


@pytest.mark.blender
def test_subprocess_mode_runs_a_blender_executable(blender, plate, tmp_path, monkeypatch):
    """mode=subprocess uses the executable even where bpy imports; a missing one is a ConfigError."""
    monkeypatch.setattr(_blender_mod(), "bpy_available", lambda: True)
    ts = golden_trackset()
    out = tmp_path / "sub.blend"
    write_tracks(ts, out, "blender", {"clip": str(plate / "plate.####.png"), "mode": "subprocess"})
    qs = read_queries(out, ts, "blender", {"frame": 1002, "mode": "subprocess"})
    np.testing.assert_allclose(sorted(q.x for q in qs), sorted(ts.xy[:, 1, 0]), atol=2e-4)
    with pytest.raises(InputError, match="no clip 'nope' in the file"):
        read_queries(out, ts, "blender", {"frame": 1002, "mode": "subprocess", "clip": "nope"})
    monkeypatch.setenv("DTVFX_BLENDER", str(tmp_path / "missing-blender"))
    with pytest.raises(ConfigError, match="Blender executable not found"):
        write_tracks(ts, out, "blender", {"mode": "subprocess"})


def test_inprocess_mode_without_bpy_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setattr(_blender_mod(), "bpy_available", lambda: False)
    with pytest.raises(ConfigError, match="mode=inprocess but the bpy module cannot be imported"):
        read_queries(_write_empty(tmp_path / "x.blend"), golden_trackset(), "blender", {"mode": "inprocess"})


def _write_empty(p: Path) -> Path:
    p.write_bytes(b"BLENDER")
    return p


# ----------------------------------------------------------------------------- the add-on
FAKE_DTVFX = r'''
"""Stand-in for the studio's dtvfx: 'submit' reads the queries through the real adapters and the
real shot, 'tracks' them (+3 px in x per image, occluded on the third image) and writes the job's
outputs through the real writers; 'status' prints status.json."""
import json, os, sys
sys.path.insert(0, {repo!r})
import numpy as np
from dino_tracker_vfx.adapters import read_queries, write_tracks
from dino_tracker_vfx.shots import open_shot
from dino_tracker_vfx.tracks import TrackSet
cmd, arg = sys.argv[1], sys.argv[2]
if cmd == "submit":
    assert sys.argv[3] == "--job-dir"
    job_dir = sys.argv[4]
    os.makedirs(job_dir, exist_ok=True)  # a re-track submits the same job again
    spec = json.load(open(arg))
    shot = open_shot(spec["shot"]["path"])
    qs = read_queries(spec["queries"], shot)
    T = shot.n_images
    if spec.get("corrections"):  # the worker's reading, then each anchor tracked and the rows blended
        from dino_tracker_vfx.inputs import add_corrections
        from dino_tracker_vfx.tracker.anchors import anchor_tracks, layout
        prev = [o["path"] for o in spec["outputs"] if o["format"] == "json"][0]
        qs = add_corrections(qs, spec["corrections"], shot, previous=TrackSet.load_json(prev))
        lay = layout(qs)
        rows = np.array([[[q.x + 3.0 * (t - q.t), q.y] for t in range(T)] for q in lay.rows])
        xy, vis, conf = anchor_tracks(rows, np.ones(rows.shape[:2], bool), np.ones(rows.shape[:2]), lay)
        ts = TrackSet(xy, vis, conf, [q.name for q in lay.queries], list(lay.queries), shot.frame_numbers,
                      shot.size, anchors=list(lay.anchors))
    else:
        xy = np.array([[[q.x + 3.0 * (t - q.t), q.y] for t in range(T)] for q in qs])
        vis = np.ones(xy.shape[:2], bool); vis[:, 2] = False
        ts = TrackSet(xy, vis, vis.astype(np.float32), [q.name for q in qs], qs, shot.frame_numbers, shot.size)
    outs = []
    for o in spec["outputs"]:
        write_tracks(ts, o["path"], o["format"])
        outs.append({{"format": o["format"], "path": o["path"], "written": True}})
    json.dump({{"state": "done", "progress": 1.0, "stage": "outputs", "outputs": outs}},
              open(os.path.join(job_dir, "status.json"), "w"))
    print("submitted job x (log: ...)")
    print(job_dir)
elif cmd == "status":
    print(open(os.path.join(arg, "status.json")).read())
'''


def _addon_setup(plate, tmp_path):
    """The golden tracks in a .blend on the plate, and the add-on settings running the stand-in dtvfx."""
    fake = tmp_path / "fake_dtvfx.py"
    fake.write_text(FAKE_DTVFX.format(repo=str(REPO)))
    out = tmp_path / "a.blend"
    write_tracks(golden_trackset(), out, "blender", {"clip": str(plate / "plate.####.png")})
    return out, {"dtvfx_cmd": f"{sys.executable} {fake}", "jobs_dir": str(tmp_path / "jobs"), "preset": "fast",
                 "poll_seconds": 0.05}


@pytest.mark.blender
def test_addon_submits_selected_tracks_polls_and_imports(blender, plate, tmp_path):
    """The add-on runs in Blender (the bpy venv); the stand-in dtvfx runs in this environment."""
    out, cfg = _addon_setup(plate, tmp_path)
    r = run_driver(blender, "addon", plugins=str(REPO / "plugins"), blend=str(out), cfg=cfg,
                   select=["car/car_a", "corner 1"], frame=1002,  # queries at plate frame 1002
                   refuse={"select": "car/car_b", "frame": 1003})
    assert {"dtvfx_cmd", "jobs_dir", "preset", "poll_seconds"} <= set(r["props"])
    job_dir = Path(r["job_dir"])
    spec = json.loads((job_dir / "job.yaml").read_text())
    assert spec["shot"]["path"].endswith("plate.1001.png")
    assert spec["queries"] == str(job_dir / "queries.blender.json")
    assert r["phase"] == "done", r["message"]
    assert r["state_job_dir"] == str(job_dir / "job")  # the last line of 'dtvfx submit'
    assert r["imported"] == ["car/car_a", "corner 1"]  # the group survives the trip
    mk = r["tracks"]["car/car_a"][1]
    # car_a at 1002 was (10, 5); fake tracker: x = 10 + 3 (t - 1); occluded on image 3 (muted marker)
    assert [(x[0], x[3]) for x in mk] == [(1, False), (2, False), (3, True), (4, False), (5, False)]
    assert mk[0][1] == pytest.approx((7 + 0.5) / W, abs=1e-6) and mk[3][1] == pytest.approx(16.5 / W, abs=1e-6)
    car_b = r["tracks"]["car/car_b"][1]
    assert car_b[2][3] and len(car_b) == 5  # not selected: untouched
    # a track with no unmuted marker on the current frame is refused before anything runs
    assert r["refused"] and re.search("no unmuted marker on the current frame .*car_b", r["refused"]), r["refused"]


@pytest.mark.blender
def test_addon_retrack_sends_keyed_markers_and_refills_the_same_tracks(blender, plate, tmp_path):
    out, cfg = _addon_setup(plate, tmp_path)
    r = run_driver(blender, "retrack", plugins=str(REPO / "plugins"), blend=str(out), cfg=cfg,
                   select=["car/car_a", "corner 1"], frame=1002,
                   fix={"track": "car/car_a", "frame": 4, "du": 3.0 / W})  # clip frame 4 = plate 1004
    assert r["refused"].startswith("track the clip first")  # no job yet: nothing to correct
    first = r["first"]["car/car_a"]
    assert [m[2] for m in first] == [False, True, False, False, False]  # only the query (1002) is keyed
    # first job: x = 10 + 3 (t - 1) px; the artist moved 1004 (t = 3) from 16 to 19 px
    assert first[3][1] == pytest.approx(16.5 / W, abs=1e-6)
    assert r["phase"] == "done", r["message"]
    spec = json.loads((Path(r["job_dir"]) / "job.yaml").read_text())
    assert spec["corrections"] == str(Path(r["job_dir"]) / "corrections.blender.json")
    after = r["after"]["car/car_a"]
    assert r["imported"] == ["car/car_a", "corner 1"] and r["n_tracks"] == 3  # the job's tracks, refilled in place
    assert [m[2] for m in after] == [False, True, False, True, False]  # query + correction keyed
    assert after[3][1] == pytest.approx(19.5 / W, abs=1e-6)  # the anchor, exactly
    assert after[4][1] == pytest.approx(22.5 / W, abs=1e-6)  # after it: tracked from the correction
    assert after[1][1] == pytest.approx(10.5 / W, abs=1e-6)  # the query frame is kept
    assert [m[2] for m in r["after"]["corner 1"]] == [False, True, False, False, False]  # no correction: its query


@pytest.mark.blender
@pytest.mark.shared_data
def test_movie_clip_frames(blender, tmp_path):
    from conftest import SHARED_DATA
    from dino_tracker_vfx.shots import open_shot

    mv = Path(SHARED_DATA) / "demo_videos" / "horsejump-high_480p.mp4"
    shot = open_shot(str(mv))  # movie frames 1..50
    T = shot.n_images
    xy = np.stack([np.stack([np.arange(T) * 1.0, np.full(T, 100.0)], -1)])
    ts = TrackSet(xy, np.ones((1, T), bool), np.ones((1, T), np.float32), ["p"], [Query(0, 0.0, 100.0, "p")],
                  shot.frame_numbers, shot.size)
    out = tmp_path / "mv.blend"
    write_tracks(ts, out, "blender", {"clip": str(mv)})
    mk = _markers(blender, out)
    clip = mk["clip"]
    assert clip["source"] == "MOVIE" and clip["first_frame_prop"] == 1 and clip["frame_start"] == 1
    m = mk["tracks"]["p"][1]
    assert [x[0] for x in m][:3] == [1, 2, 3] and m[9][1] == pytest.approx((9 + 0.5) / 854, abs=1e-7)
    (q,) = read_queries(out, ts, "blender", {"frame": 10})
    assert q.t == 9 and q.x == pytest.approx(9.0, abs=1e-4) and q.y == pytest.approx(100.0, abs=1e-4)
