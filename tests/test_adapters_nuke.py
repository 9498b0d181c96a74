"""Nuke adapters: golden .nk / Import Ascii files, hand-computed values, Tcl validity, readers, bad input.

Hand-computed (1920x1080, x_n = x + 0.5, y_n = 1080 - (y + 0.5), plate frames):
car_a t=0 (0, 0) -> 0.5 1079.5 at 1001; t=4 (40, 20) -> 40.5 1059.5 at 1005.
car_b (100.25 + 2t, 200.5 - t), occluded at 1003 -> x 100.75 102.75 | 106.75 108.75, y 879 880 | 882 883,
error 1 - conf = 0.05 0.1 | 0.15 0.2, enable 1 1 0 1 1.
corner 1 t=0 (1919, 1079) -> 1919.5 0.5.
"""

from __future__ import annotations

import re
import subprocess
import textwrap

import numpy as np
import pytest

from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.tracks import Query, TrackSet

from _adapter_helpers import (assert_same_tracks, check_golden, corner_trackset, golden_trackset, has_tclsh,
                              read_with, write_with)

TCL_CHECK = r"""
set f [open [lindex $argv 0]]; set s [read $f]; close $f
if {![info complete $s]} { puts "incomplete script"; exit 1 }
if {[catch {llength $s} n]} { puts "not a list: $n"; exit 1 }
foreach {cls body} [lrange $s 0 end] {}
puts "ok $n"
"""


def _tcl_valid(tmp_path, nk):
    if not has_tclsh():
        pytest.skip("tclsh not installed")
    script = tmp_path / "check.tcl"
    script.write_text(TCL_CHECK)
    r = subprocess.run(["tclsh", str(script), str(nk)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr


def test_nk_golden_spot_values_and_tcl(tmp_path):
    out = write_with("nuke", golden_trackset(), tmp_path / "golden.nk")
    check_golden(out, "nuke")
    text = out.read_text()
    assert '"car_a" {curve x1001 0.5 10.5 20.5 30.5 40.5} {curve x1001 1079.5 1074.5 1069.5 1064.5 1059.5}' in text
    assert ('{curve K x1001 1 1 0 1 1} "car_b" {curve x1001 100.75 102.75 x1004 106.75 108.75} '
            '{curve x1001 879 880 x1004 882 883}') in text
    assert "{curve x1001 0.05 0.1 x1004 0.15 0.2} 0.05 0.2" in text  # error = 1 - confidence, min, max
    assert '"corner 1" {curve x1001 1919.5 1918 1916.5 1915 1913.5} {curve x1001 0.5 3 5.5 8 10.5}' in text
    assert " name Tracker_car\n label \"car\"" in text and " name Tracker_ungrouped" in text
    assert " reference_frame 1001" in text and " reference_frame 1003" in text  # query frame of first track
    assert text.count("Tracker4 {") == 2 and '"car_centroid" {curve x1001 50.625' in text
    rows = [ln for ln in text.splitlines() if ln.startswith(" { {curve K")]
    assert len(rows) == 4
    _tcl_valid(tmp_path, out)


def test_nk_cornerpin_golden(tmp_path):
    out = write_with("nuke", corner_trackset(), tmp_path / "cornerpin.nk", cornerpin="bl,br,tr,tl")
    check_golden(out, "nuke")
    text = out.read_text()
    # bl (100, 200) + (4, 2) t -> x 100.5 104.5 108.5, y 1080 - 200.5 = 879.5, 877.5, 875.5
    assert " to1 {{curve x1001 100.5 104.5 108.5} {curve x1001 879.5 877.5 875.5}}" in text
    assert " from1 {100.5 879.5}" in text and " from3 {300.5 979.5}" in text  # tr (300, 100) at 1001
    assert 'label "bl br tr tl ref 1001"' in text
    _tcl_valid(tmp_path, out)
    out2 = write_with("nuke", corner_trackset(), tmp_path / "cp2.nk", cornerpin="bl,br,tr,tl", reference_frame=1003)
    assert " from1 {108.5 875.5}" in out2.read_text()


def test_nk_cornerpin_and_trackers_share_one_reference_frame(tmp_path):
    """Issue 16: CornerPin2D from at 1001 while Tracker4 reference_frame was 1003 in the same file."""
    ts = corner_trackset()
    ts.queries = [Query(2, *ts.xy[i, 2], n, q.group) for i, (n, q) in enumerate(zip(ts.names, ts.queries))]
    text = write_with("nuke", ts, tmp_path / "q.nk", cornerpin="bl,br,tr,tl").read_text()
    refs = re.findall(r"^ reference_frame (\d+)$", text, re.M)
    assert refs == ["1003"]  # the first corner track's query frame (all four visible there)
    assert " from1 {108.5 875.5}" in text and 'label "bl br tr tl ref 1003"' in text  # bl (108, 204) at 1003
    ts.visible[1, 2] = False  # br occluded at the query frame: the first frame all four are visible
    text = write_with("nuke", ts, tmp_path / "q2.nk", cornerpin="bl,br,tr,tl").read_text()
    assert re.findall(r"^ reference_frame (\d+)$", text, re.M) == ["1001"] and " from1 {100.5 879.5}" in text
    text = write_with("nuke", ts, tmp_path / "q3.nk", cornerpin="bl,br,tr,tl", reference_frame=1002).read_text()
    assert re.findall(r"^ reference_frame (\d+)$", text, re.M) == ["1002"] and 'ref 1002"' in text


def test_nk_round_trip_and_queries(tmp_path):
    ts = golden_trackset()
    nk = write_with("nuke", ts, tmp_path / "t.nk", cornerpin="car_a,car_b,corner 1,car_a")
    back = read_with("nuke", nk)
    assert_same_tracks(ts, back, confidence=True)
    np.testing.assert_allclose(back.groups["car"].centroid, ts.groups["car"].centroid)
    assert np.isnan(back.xy[1, 2]).all() and not back.visible[1, 2]  # occluded: no key, not invented
    # a file with a CornerPin2D has one reference frame (1001: car_a's query, all four visible there),
    # so every query comes back at 1001; without a corner pin each node keeps its first query frame
    rr = read_with("nuke", nk, "read_queries")
    assert [(q.frame, q.name) for q in rr.queries] == [(1001, "car_a"), (1001, "car_b"), (1001, "corner 1")]
    rr = read_with("nuke", write_with("nuke", ts, tmp_path / "u.nk"), "read_queries")
    assert [(q.frame, q.x, q.y, q.name, q.group) for q in rr.queries] == [
        (1001, 0.0, 0.0, "car_a", "car"), (1001, 100.25, 200.5, "car_b", "car"),
        (1003, 1916.0, 1074.0, "corner 1", None)]
    assert rr.plate_size == (1920, 1080) and rr.frame_numbers == (1001, 1002, 1003, 1004, 1005)
    assert [q.t for q in rr.to_queries(ts)] == [0, 0, 2]


def test_nk_gappy_shot_frames_restart_and_never_shift(tmp_path):
    ts = golden_trackset()
    ts = TrackSet(ts.xy, ts.visible, ts.confidence, ts.names, ts.queries, [1001, 1002, 1005, 1006, 1007],
                  ts.plate_size, ts.groups)
    text = write_with("nuke", ts, tmp_path / "g.nk").read_text()
    assert '"car_a" {curve x1001 0.5 10.5 x1005 20.5 30.5 40.5}' in text
    assert "{curve K x1001 1 1 x1005 0 1 1}" in text and "{curve x1001 100.75 102.75 x1006 106.75 108.75}" in text
    assert_same_tracks(ts, read_with("nuke", tmp_path / "g.nk"))


HAND_T4 = textwrap.dedent("""\
    Root {
     inputs 0
     name /shots/sh010/comp.nk
     format "2048 1152 0 0 2048 1152 1 2K_DCP"
    }
    Read {
     inputs 0
     file /plates/sh010.####.exr
    }
    Tracker4 {
     tracks { { 1 31 2 }
    { { 5 1 20 enable e 1 }
    { 3 1 75 name name 1 }
    { 2 1 58 track_x track_x 1 }
    { 2 1 58 track_y track_y 1 }
    { 2 0 45 error error 1 } }
    {
     { {curve K x1001 1} "track 1" {curve x1001 1024 1025.5 1027} {curve x1001 576 575 574} {curve x1001 0 0.01 0.02} }
     { 1 "lamp post" {curve L x1010 10.5 s0 x1012 12.5} {curve x1010 100 x1012 102} 0 }
    }
    }
     reference_frame 1002
     name Tracker1
     selected true
    }
    """)


def test_nk_reads_hand_written_tracker4_with_root_format(tmp_path):
    p = tmp_path / "hand.nk"
    p.write_text(HAND_T4)
    rr = read_with("nuke", p, "read_queries")
    assert rr.plate_size == (2048, 1152)
    a, b = rr.queries
    # track 1 at reference frame 1002: (1025.5, 575) -> x 1025, y 1152 - 575 - 0.5 = 576.5
    assert (a.frame, a.x, a.y, a.name, a.group) == (1002, 1025.0, 576.5, "track 1", None)
    # lamp post not keyed at 1002 -> first key 1010: (10.5, 100) -> (10, 1051.5); 'L' and 's0' are flags
    assert (b.frame, b.x, b.y, b.name) == (1010, 10.0, 1051.5, "lamp post")
    tr = read_with("nuke", p)
    assert list(tr.frame_numbers) == list(range(1001, 1013))
    assert tr.visible[1].sum() == 2 and abs(tr.confidence[0, 1] - 0.99) < 1e-6


def test_nk_tracker3_and_cornerpin_only(tmp_path):
    p = tmp_path / "t3.nk"
    p.write_text("Tracker3 {\n track1 {{curve x1 10.5 11.5} {curve x1 20.5 21.5}}\n enable2 false\n"
                 " track2 {0 0}\n name Stab\n}\n")
    rr = read_with("nuke", p, "read_queries", plate_size=(100, 50))
    assert [(q.name, q.frame, q.x, q.y) for q in rr.queries] == [("Stab_track1", 1, 10.0, 29.0)]
    p2 = tmp_path / "cp.nk"
    p2.write_text("CornerPin2D {\n to1 {{curve x5 0.5} {curve x5 49.5}}\n to2 {99.5 49.5}\n name CP\n}\n")
    rr = read_with("nuke", p2, "read_queries", plate_size=(100, 50), frame=7)
    assert [(q.name, q.frame, q.x, q.y) for q in rr.queries] == [("CP_to1", 5, 0.0, 0.0), ("CP_to2", 7, 99.0, 0.0)]


@pytest.mark.parametrize("text,opts,msg", [
    ("Blur {\n size 3\n}\nRead {\n file x\n}\n", {}, "no Tracker4, Tracker3 or CornerPin2D node to read (found: Blur, Read)"),
    ("Tracker4 {\n tracks { { 1 31 0 } { { 3 1 75 name name 1 } { 2 1 58 track_x track_x 1 } "
     "{ 2 1 58 track_y track_y 1 } } { } }\n name T\n}\n", {"plate_size": (10, 10)}, "no tracks in Tracker4 T (line 1)"),
    ("Tracker4 {\n tracks { { 1 31 1 }\n{ { 2 1 58 track_x track_x 1 } { 2 1 58 track_y track_y 1 } }\n"
     "{ { {parent.x} {curve x1 1} } } }\n name T\n}\n", {"plate_size": (10, 10)}, ":4: T track 'track 1' track_x: expected a number or a curve"),
    ("Tracker4 {\n tracks { { 1 31 1 }\n", {}, ":1: not a readable Nuke script (missing close-brace"),
    ("Tracker4 {\n tracks { { 1 31 1 } { { 2 1 58 track_x track_x 1 } { 2 1 58 track_y track_y 1 } } "
     "{ { {curve x1 1} {curve x1 2} } } }\n}\n", {}, "without the plate height"),
])
def test_nk_bad_input_is_clear(tmp_path, text, opts, msg):
    p = tmp_path / "bad.nk"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        read_with("nuke", p, "read_queries", **opts)
    assert msg in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)


def test_nk_frames_outside_shot_and_empty_tracks(tmp_path):
    ts = golden_trackset()
    nk = write_with("nuke", ts, tmp_path / "t.nk")
    rr = read_with("nuke", nk, "read_queries")
    with pytest.raises(InputError, match="'corner 1' is at frame 1003, outside the shot"):
        rr.to_queries([1001, 1002])
    vis = ts.visible.copy()
    vis[2] = False  # corner 1 never visible: left out (logged), the rest written
    ts2 = TrackSet(ts.xy, vis, ts.confidence, ts.names, ts.queries, ts.frame_numbers, ts.plate_size, ts.groups)
    assert '"corner 1"' not in write_with("nuke", ts2, tmp_path / "e.nk").read_text()
    with pytest.raises(InputError, match="option cornerpin: track 'corner 1' has no visible frame"):
        write_with("nuke", ts2, tmp_path / "e2.nk", cornerpin="car_a,car_b,corner 1,car_a")
    assert not (tmp_path / "e2.nk").exists()


def test_nk_node_names_sanitised_track_names_and_labels_kept(tmp_path):
    xy = np.zeros((3, 2, 2))
    qs = [Query(0, 0, 0, 'say "hi" {x}', "my car!"), Query(0, 0, 0, "say _hi_ _x_", "my car!"),
          Query(0, 0, 0, "p$[1]", "2nd")]
    ts = TrackSet(xy, np.ones((3, 2), bool), np.ones((3, 2)), [q.name for q in qs], qs, [1, 2], (4, 4))
    text = write_with("nuke", ts, tmp_path / "n.nk").read_text()
    # Tcl-quoted; \\ [ ] $ carry one more backslash for the substitution Nuke applies to knob values
    assert r'"say \"hi\" \{x\}"' in text and '"say _hi_ _x_"' in text and r'"p\\\$\\\[1\\\]"' in text
    assert " name Tracker_my_car_\n label \"my car!\"" in text and " name Tracker_2nd\n" in text
    _tcl_valid(tmp_path, tmp_path / "n.nk")
    back = read_with("nuke", tmp_path / "n.nk")
    assert sorted(back.names) == sorted(ts.names)
    assert {n: q.group for n, q in zip(back.names, back.queries)} == {q.name: q.group for q in qs}


def test_nuke_ascii_golden_round_trip(tmp_path):
    ts = golden_trackset()
    main = write_with("nuke-ascii", ts, tmp_path / "golden.nuke.txt")
    check_golden(main, "nuke")
    for n in ("car_a", "car_b", "corner_1"):
        check_golden(tmp_path / f"golden.{n}.nuke.txt", "nuke")
    assert (tmp_path / "golden.car_a.nuke.txt").read_text().splitlines()[0] == "1001 0.5 1079.5"
    assert "1003 " not in (tmp_path / "golden.car_b.nuke.txt").read_text()  # occluded frame omitted
    assert "corner 1\tgolden.corner_1.nuke.txt" in main.read_text()
    assert_same_tracks(ts, read_with("nuke-ascii", main), groups=False)
    single = write_with("nuke-ascii", ts, tmp_path / "one.nuke.txt", track="corner 1")
    assert single.read_text().splitlines()[0] == "1001 1919.5 0.5"
    rr = read_with("nuke-ascii", single, "read_queries", plate_size=(1920, 1080))
    assert (rr.queries[0].frame, rr.queries[0].x, rr.queries[0].y) == (1001, 1919.0, 1079.0)
    bad = tmp_path / "bad.nuke.txt"
    bad.write_text("1001 1 2\n1002 oops\n")
    with pytest.raises(InputError, match=r"bad.nuke.txt:2: expected 'frame x y'"):
        read_with("nuke-ascii", bad, plate_size=(10, 10))
    late = tmp_path / "late.nuke.txt"
    late.write_text("1001 1 2\n1005 3 4\n")
    with pytest.raises(InputError, match=r"late.nuke.txt: track 'late' has a key at frame 1005, outside the shot "
                                         r"\(1001-1002\)"):
        read_with("nuke-ascii", late, plate_size=(10, 10), frame_numbers=[1001, 1002])


def test_nk_duplicate_names_renamed_with_note_and_keys_outside_shot(tmp_path):
    row = '{ {curve K x1 1} "pt" {curve x1 1.5 2.5} {curve x1 3.5 4.5} }'
    p = tmp_path / "dup.nk"
    p.write_text("Tracker4 {\n tracks { { 1 31 2 }\n{ { 5 1 20 enable e 1 } { 3 1 75 name name 1 } "
                 "{ 2 1 58 track_x track_x 1 } { 2 1 58 track_y track_y 1 } }\n{\n " + row + "\n " + row +
                 "\n}\n}\n name T\n}\n")
    rr = read_with("nuke", p, "read_queries", plate_size=(10, 10))
    assert [q.name for q in rr.queries] == ["pt", "pt_2"] and rr.notes == ("duplicate name 'pt' renamed to 'pt_2'",)
    assert read_with("nuke", p, plate_size=(10, 10)).names == ["pt", "pt_2"]
    with pytest.raises(InputError, match=r"dup.nk:5: track 'pt' has a key at frame 2, outside the shot \(1-1\)"):
        read_with("nuke", p, plate_size=(10, 10), frame_numbers=[1])
