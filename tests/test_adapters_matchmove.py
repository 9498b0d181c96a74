"""Matchmove adapters: 3DEqualizer v4 (tde), SynthEyes 2-D paths, PFTrack .2dt, mmSolver .uv v4.

Golden files (tests/golden/<adapter>/) are compared byte for byte; the spot checks below pin origin,
units, first frame and occlusion with values computed by hand from tests/_adapter_helpers.py
(1920x1080, frames 1001-1005; car_a (10 t, 5 t); car_b (100.25 + 2 t, 200.5 - t) occluded at t=2;
"corner 1" (1919 - 1.5 t, 1079 - 2.5 t)). Regenerate goldens with DTVFX_UPDATE_GOLDEN=1 (then review the diff).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _adapter_helpers import FRAMES, assert_same_tracks, check_golden, golden_trackset
from dino_tracker_vfx.adapters import read_queries, registry, resolve_options, write_tracks
from dino_tracker_vfx.errors import ConfigError, InputError, UserError
from dino_tracker_vfx.tracks import Query, TrackSet

FILES = {"tde": "golden.3de.txt", "syntheyes": "golden.syntheyes.txt", "pftrack": "golden.2dt",
         "mmsolver": "golden.uv"}
CTX = {"plate_size": (1920, 1080), "frame_numbers": FRAMES}
# Precision of each format as written (px): 3DE 15 decimals, SynthEyes 6 decimals of -1..1 (0.5e-6 * 960),
# PFTrack 6 decimals, mmSolver 10 decimals of 0..1.
ATOL = {"tde": 1e-9, "syntheyes": 1e-3, "pftrack": 1e-6, "mmsolver": 1e-6}


def _adapter(name):
    return registry().get(name)


def _write(name, tmp_path, ts=None, **opts) -> Path:
    p = tmp_path / FILES[name]
    write_tracks(ts or golden_trackset(), p, name, opts)
    return p


def _read_tracks(name, path, **opts) -> TrackSet:
    a = _adapter(name)
    return a.read_tracks(Path(path), resolve_options(a, {**CTX, **opts}))


def _same_no_groups(ts: TrackSet, back: TrackSet, atol: float) -> None:
    """Formats without groups: back has none; everything else equal."""
    assert [q.group for q in back.queries] == [None] * back.n_tracks
    back.queries = [Query(q.t, q.x, q.y, q.name, g.group) for q, g in zip(back.queries, ts.queries)]
    assert_same_tracks(ts, back, atol=atol)


def _lines(p: Path) -> list[str]:
    return p.read_text().splitlines()


def test_registered_with_suffixes_and_capabilities():
    reg = registry()
    for name, suffix in [("tde", ".3de.txt"), ("syntheyes", ".syntheyes.txt"), ("pftrack", ".2dt"),
                         ("mmsolver", ".uv")]:
        a = reg.get(name)
        assert a.can("write") and a.can("read_queries") and a.can("read_tracks")
        assert reg.for_path(f"x{suffix}").name == name
        assert {"tracks", "visibility", "queries"} <= a.capabilities
        assert "first_frame" in [o.name for o in a.options]
    assert "groups" in reg.get("mmsolver").capabilities and "groups" not in reg.get("tde").capabilities


@pytest.mark.parametrize("name", sorted(FILES))
def test_golden_byte_for_byte(name, tmp_path):
    check_golden(_write(name, tmp_path), name)  # DTVFX_UPDATE_GOLDEN=1 rewrites (review the diff)


# ----------------------------------------------------------------------------- hand-computed values
def test_tde_bottom_left_corner_pixels_frame_1_missing_frames(tmp_path):
    L = _lines(_write("tde", tmp_path))
    assert L[0] == "3"
    assert L[1:4] == ["car_a", "0", "5"]
    # car_a t=0 (0, 0): x + 0.5 = 0.5, 1080 - (0 + 0.5) = 1079.5; frame 1 = first image (1001)
    assert L[4] == "1 0.500000000000000 1079.500000000000000"
    assert L[5] == "2 10.500000000000000 1074.500000000000000"  # (10, 5)
    i = L.index("car_b")
    assert L[i + 2] == "4"  # occluded 1003 is a missing frame
    frames = [int(s.split()[0]) for s in L[i + 3:i + 7]]
    assert frames == [1, 2, 4, 5]
    assert L[i + 3] == "1 100.750000000000000 879.000000000000000"  # (100.25, 200.5)
    j = L.index("corner 1")  # names are whole lines: the blank is kept
    assert L[j + 3] == "1 1919.500000000000000 0.500000000000000"  # centre of the bottom-right pixel


def test_tde_first_frame_option_renumbers(tmp_path):
    L = _lines(_write("tde", tmp_path, first_frame=1001))
    assert L[4].startswith("1001 ") and L[8].startswith("1005 ")
    back = _read_tracks("tde", tmp_path / FILES["tde"], first_frame=1001)
    _same_no_groups(golden_trackset(), back, atol=1e-9)


def test_syntheyes_top_left_minus1_1_frame_0_outcome_codes(tmp_path):
    L = _lines(_write("syntheyes", tmp_path))
    rows = {(r.split()[0], int(r.split()[1])): r.split() for r in L}
    # car_a t=0: u = (2*0 + 1)/1920 - 1 = -0.99947917, v = (2*0 + 1)/1080 - 1 = -0.99907407
    assert rows[("car_a", 0)] == ["car_a", "0", "-0.999479", "-0.999074", "15"]  # first frame: KEY set
    assert rows[("car_a", 1)][4] == "7"  # RUN | ENABLE | OK
    # car_b t=0 (100.25, 200.5): u = 201.5/1920 - 1 = -0.895052, v = 402/1080 - 1 = -0.627778
    assert rows[("car_b", 0)][2:4] == ["-0.895052", "-0.627778"]
    assert rows[("car_b", 2)][4] == "0"  # occluded: enable off, no usable u/v
    assert rows[("car_b", 3)][4] == "15"  # visible again: restart with a key
    # "corner 1" -> corner%201 (whitespace-separated format); (1919, 1079) -> 3839/1920 - 1, 2159/1080 - 1
    assert rows[("corner%201", 0)][2:5] == ["0.999479", "0.999074", "15"]
    assert all(len(r.split()) == 5 for r in L)


def test_pftrack_centre_on_integers_frame_1_and_pftrack5_frame_0(tmp_path):
    L = _lines(_write("pftrack", tmp_path))
    i = L.index('"car_a"')
    assert L[i + 1:i + 3] == ["1", "5"]  # clip number 1, 5 frames
    # car_a t=0 (0, 0): x = 0, y = 1080 - 1 - 0 = 1079 (bottom-left, -0.5 px shift from corners)
    assert L[i + 3] == "1 0.000000 1079.000000 0.000000"
    j = L.index('"car_b"')
    assert L[j + 2] == "4" and [int(s.split()[0]) for s in L[j + 3:j + 7]] == [1, 2, 4, 5]
    assert L[j + 3] == "1 100.250000 878.500000 0.000000"  # 1079 - 200.5
    k = L.index('"corner 1"')
    assert L[k + 3] == "1 1919.000000 0.000000 0.000000"
    p5 = tmp_path / "v5.2dt"
    write_tracks(golden_trackset(), p5, "pftrack", {"flavour": "5"})
    L5 = _lines(p5)
    i = L5.index('"car_a"')
    assert L5[i + 1] == '"Primary"' and L5[i + 3].startswith("0 0.000000 1079.000000")
    back = _read_tracks("pftrack", p5)  # flavour auto: camera name -> frames from 0
    _same_no_groups(golden_trackset(), back, atol=1e-6)


def test_mmsolver_unit_bottom_left_plate_frames_sets(tmp_path):
    d = json.loads(_write("mmsolver", tmp_path).read_text())
    assert d["version"] == 4 and d["num_points"] == 3 and d["is_undistorted"] is None
    a, b, c = d["points"]
    assert (a["name"], a["set_name"], c["set_name"]) == ("car_a", "car", None)
    f0 = a["per_frame"][0]
    assert f0["frame"] == 1001 and f0["weight"] == 1.0
    # (0, 0) -> ((0 + 0.5)/1920, (1080 - 0.5)/1080)
    assert f0["pos"] == pytest.approx([0.5 / 1920, 1079.5 / 1080], abs=1e-10)
    assert f0["pos_dist"] == f0["pos"]
    assert [f["frame"] for f in b["per_frame"]] == [1001, 1002, 1004, 1005]  # occlusion: missing frame
    # confidence -> per-frame weight (golden_trackset's confidence rows; b's 0.1 is on its occluded frame)
    assert [f["weight"] for f in a["per_frame"]] == [1.0, 0.9, 0.8, 0.75, 0.5]
    assert [f["weight"] for f in b["per_frame"]] == [0.95, 0.9, 0.85, 0.8]
    assert c["per_frame"][0]["pos"] == pytest.approx([1919.5 / 1920, 0.5 / 1080], abs=1e-10)
    cam = d["camera"]
    assert cam["resolution"] == [1920, 1080]
    assert cam["film_back_cm"] == pytest.approx([3.6, 3.6 * 1080 / 1920])
    assert [f["frame"] for f in cam["per_frame"]] == FRAMES


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", sorted(FILES))
def test_round_trip_tracks_and_queries(name, tmp_path):
    ts = golden_trackset()
    p = _write(name, tmp_path)
    back = _read_tracks(name, p)
    assert back.names == ts.names  # "corner 1" too (syntheyes: written corner%201, decoded)
    if name == "syntheyes":  # estimated occluded position kept (outcome 0 line)
        np.testing.assert_allclose(back.xy[1, 2], ts.xy[1, 2], atol=ATOL[name])
    back.queries = [Query(q.t, q.x, q.y, n, q.group) for q, n in zip(back.queries, back.names)]
    if name == "mmsolver":  # set_name carries the group
        assert_same_tracks(ts, back, atol=ATOL[name])
    else:
        _same_no_groups(ts, back, atol=ATOL[name])
    assert list(back.frame_numbers) == FRAMES and back.plate_size == (1920, 1080)
    qs = read_queries(p, ts, name)  # mapped to image indices through the shot
    assert [q.t for q in qs] == [0, 0, 0]  # each track's first visible frame
    np.testing.assert_allclose([[q.x, q.y] for q in qs], ts.xy[:, 0], atol=ATOL[name])


def test_gaps_in_plate_numbering_are_kept(tmp_path):
    ts = golden_trackset().subset([0])
    ts = TrackSet(ts.xy[:, :3], ts.visible[:, :3], ts.confidence[:, :3], ts.names, ts.queries, [1001, 1002, 1004],
                  ts.plate_size)
    p = tmp_path / "gap.3de.txt"
    write_tracks(ts, p)
    assert [ln.split()[0] for ln in _lines(p)[4:]] == ["1", "2", "4"]  # 1003 is missing on disk
    back = registry().get("tde").read_tracks(p, {"plate_size": (1920, 1080), "frame_numbers": [1001, 1002, 1004]})
    _same_no_groups(ts, back, atol=1e-9)
    with pytest.raises(InputError, match=r"line 7: .*host frame 1003, in a gap of the shot \(1001-1004\)"):
        registry().get("tde").read_tracks(
            _text(tmp_path, "g2.3de.txt", "1\na\n0\n3\n1 5 5\n2 5 5\n3 5 5\n"),
            {"plate_size": (1920, 1080), "frame_numbers": [1001, 1002, 1004]})


# ----------------------------------------------------------------------------- bad input
def _text(tmp_path, name, text) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _one_line(e: UserError, fname: str, line: int | None = None):
    s = str(e)
    assert "\n" not in s and fname in s
    if line is not None:  # "file: line N: ..." or, from ReadResult.to_queries, "file:N: ..."
        assert f"line {line}:" in s or f"{fname}:{line}:" in s


@pytest.mark.parametrize("name,fname,text,line,msg", [
    ("tde", "e.3de.txt", "", None, "no points"),
    ("tde", "z.3de.txt", "0\n", 1, "no points"),
    ("tde", "n.3de.txt", "1\na\n0\n0\n", 2, "no visible frame"),
    ("tde", "o.3de.txt", "1\na\n0\n1\n9 5 5\n", 5, "frame 1009, outside the shot"),
    ("tde", "b.3de.txt", "1\na\n0\n1\n1 x 5\n", 5, "x 'x' is not a number"),
    ("tde", "d.3de.txt", "1\na\n0\n2\n1 5 5\n1 6 6\n", 6, "frame 1 twice"),
    ("syntheyes", "e.syntheyes.txt", "\n\n", None, "no tracker lines"),
    ("syntheyes", "n.syntheyes.txt", "a 0 0 0 0\na 1 0 0 1\n", 1, "no visible frame"),
    ("syntheyes", "o.syntheyes.txt", "a 7 0 0 7\n", 1, "frame 1008, outside the shot"),
    ("syntheyes", "m.syntheyes.txt", "a 0 0 0 7 1 2\n", 1, "expected 'name frame u v"),
    ("pftrack", "e.2dt", "# only a comment\n", None, "no trackers"),
    ("pftrack", "n.2dt", '"a"\n1\n0\n', 1, "no visible frame"),
    ("pftrack", "o.2dt", '"a"\n1\n1\n6 1 1 0\n', 4, "frame 1006, outside the shot"),
    ("pftrack", "q.2dt", 'a\n1\n1\n1 1 1 0\n', 1, "expected a quoted tracker name"),
    ("mmsolver", "e.uv", '{"version": 4, "points": []}', None, "no points"),
    ("mmsolver", "n.uv", '{"version": 4, "points": [{"name": "a", "per_frame": '
                         '[{"frame": 1001, "pos": [0.5, 0.5], "weight": 0}]}]}', None, "no visible frame"),
    ("mmsolver", "o.uv", '{"version": 4, "points": [{"name": "a", "per_frame": '
                         '[{"frame": 1, "pos": [0.5, 0.5], "weight": 1}]}]}', None, "frame 1 is outside the shot"),
    ("mmsolver", "j.uv", '{"version": 4,\n "points": [}', 2, "invalid JSON"),
    ("mmsolver", "v1.uv", "1\na\n1\n1 0.5 0.5 1\n", None, "not an mmSolver JSON .uv"),
])
def test_bad_host_files_are_one_line_input_errors(name, fname, text, line, msg, tmp_path):
    p = _text(tmp_path, fname, text)
    a = registry().get(name)
    for fn in (a.read_tracks, lambda pp, o: a.read_queries(pp, o).to_queries(golden_trackset())):
        with pytest.raises(InputError, match=msg) as ei:
            fn(p, resolve_options(a, dict(CTX)))
        _one_line(ei.value, fname, line)


def test_duplicate_names_are_renamed_and_noted(tmp_path):
    p = _text(tmp_path, "dup.3de.txt", "2\na\n0\n1\n1 5 5\na\n0\n1\n2 6 6\n")
    a = registry().get("tde")
    res = a.read_queries(p, resolve_options(a, dict(CTX)))
    assert [q.name for q in res.queries] == ["a", "a_2"]
    assert any("renamed" in n for n in res.notes)
    ts = a.read_tracks(p, resolve_options(a, dict(CTX)))
    assert ts.names == ["a", "a_2"] and "renamed" in " ".join(ts.meta["notes"])
    # SynthEyes: a tracker's lines in two separate blocks are two trackers of that name
    p = _text(tmp_path, "dup.syntheyes.txt", "a 0 0 0 15\nb 0 0 0 15\na 1 0 0 15\n")
    ts = registry().get("syntheyes").read_tracks(p, dict(CTX))
    assert ts.names == ["a", "b", "a_2"]


def test_reading_needs_the_plate_size_and_maps_frames(tmp_path):
    p = _write("pftrack", tmp_path)
    a = registry().get("pftrack")
    with pytest.raises(ConfigError, match="plate size"):
        a.read_queries(p, resolve_options(a, {}))
    res = a.read_queries(p, resolve_options(a, {"plate_size": "1920x1080"}))  # no shot: file frames kept
    assert [q.frame for q in res.queries] == [1, 1, 1] and "no shot given" in res.notes[0]
    res = a.read_queries(p, resolve_options(a, dict(CTX)))
    assert [q.frame for q in res.queries] == [1001, 1001, 1001]
    # mmSolver carries its resolution: a shot of another size is refused
    u = _write("mmsolver", tmp_path)
    with pytest.raises(InputError, match="1920x1080 plate, the shot is 1280x720"):
        registry().get("mmsolver").read_queries(u, {"plate_size": (1280, 720)})


def test_writers_leave_out_never_visible_tracks_and_encode_names(tmp_path, caplog):
    ts = golden_trackset()
    ts.visible[2] = False
    ts.names[0] = 'say "hi"\tnow'
    ts = TrackSet(ts.xy, ts.visible, ts.confidence, ts.names, ts.queries, ts.frame_numbers, ts.plate_size)
    p = tmp_path / "s.2dt"
    write_tracks(ts, p)
    L = _lines(p)
    assert '"say %22hi%22%09now"' in L and '"corner 1"' not in L
    assert _read_tracks("pftrack", p).names == ['say "hi"\tnow', "car_b"]
    assert "left out 1 track" in caplog.text
    ts.visible[:] = False
    with pytest.raises(InputError, match="no track has a visible frame"):
        write_tracks(ts, tmp_path / "none.uv")
    assert not (tmp_path / "none.uv").exists()


def test_mmsolver_weight_carries_confidence_and_never_reads_as_occluded(tmp_path):
    ts = golden_trackset()
    ts.confidence[0, 1] = 0.0  # visible with no confidence: still a visible marker
    p = tmp_path / "c.uv"
    write_tracks(ts, p, "mmsolver", {})
    a = json.loads(p.read_text())["points"][0]
    assert [f["weight"] for f in a["per_frame"]] == [1.0, 0.01, 0.8, 0.75, 0.5]
    back = _read_tracks("mmsolver", p)
    assert back.visible[0].all()
    np.testing.assert_allclose(back.confidence[0], [1.0, 0.01, 0.8, 0.75, 0.5], atol=1e-6)
