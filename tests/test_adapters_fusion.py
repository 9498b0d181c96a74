"""Fusion adapter: .setting golden, Lua validity (luaparser), round trip, hand-made settings, bad input.

Hand-computed (u = (x + 0.5) / 1920, v = (1080 - (y + 0.5)) / 1080, plate frames, occluded keys omitted):
car_a t=0 (0, 0) -> [1001] u = 0.000260417, v = 0.999537037; corner 1 t=0 (1919, 1079) -> u 0.999739583,
v 0.000462963; car_b has keys 1001 1002 1004 1005 (1003 occluded).
"""

from __future__ import annotations

import re

import pytest

from dino_tracker_vfx.errors import InputError

from _adapter_helpers import assert_same_tracks, check_golden, golden_trackset, read_with, write_with


def _lua_parses(text: str) -> None:
    ast = pytest.importorskip("luaparser.ast", reason="pip install luaparser (test extra)")

    ast.parse("return " + text)  # raises on any syntax error


def _keys(text: str, spline: str) -> list[tuple[int, str]]:
    block = text.split(f"\t\t{spline} = BezierSpline {{", 1)[1].split("\t\t},", 1)[0]
    return [(int(f), v) for f, v in re.findall(r"\[(\d+)\] = \{ ([-0-9.e]+)", block)]


def test_setting_golden_spot_values_and_lua(tmp_path):
    out = write_with("fusion", golden_trackset(), tmp_path / "golden.setting")
    check_golden(out, "fusion")
    text = out.read_text()
    _lua_parses(text)
    assert _keys(text, "Tracker_carPath1X")[0] == (1001, "0.000260417")
    assert _keys(text, "Tracker_carPath1Y")[0] == (1001, "0.999537037")
    assert [f for f, _ in _keys(text, "Tracker_carPath2X")] == [1001, 1002, 1004, 1005]
    assert _keys(text, "Tracker_ungroupedPath1X")[0] == (1001, "0.999739583")
    assert _keys(text, "Tracker_ungroupedPath1Y")[0] == (1001, "0.000462963")
    assert 'Name3' not in text.split("Tracker_ungrouped = Tracker")[0].split("Tracker_car = Tracker")[1]
    assert '{ PatternTime = 1003, PatternX = 0.998177083' in text  # corner 1 query at frame 1003
    assert 'TrackedCenter1 = Input { SourceOp = "Tracker_carPath1", Source = "Value", },' in text


def test_setting_round_trip_and_queries(tmp_path):
    ts = golden_trackset()
    out = write_with("fusion", ts, tmp_path / "t.setting")
    assert_same_tracks(ts, read_with("fusion", out), atol=1e-5)
    rr = read_with("fusion", out, "read_queries")
    assert [(q.frame, q.name, q.group) for q in rr.queries] == [(1001, "car_a", "car"), (1001, "car_b", "car"),
                                                                (1003, "corner 1", None)]
    assert abs(rr.queries[2].x - 1916.0) < 1e-5 and abs(rr.queries[2].y - 1074.0) < 1e-5
    assert [q.t for q in rr.to_queries(ts)] == [0, 0, 2]


HAND = """{
	Tools = ordered() {
		-- a Tracker saved by Fusion, trimmed
		Tracker1 = Tracker {
			Trackers = { { PatternTime = 5, PatternX = 0.5, PatternY = 0.5, }, },
			Inputs = {
				Name1 = Input { Value = "Tracker 1", },
				TrackedCenter1 = Input { SourceOp = "Tracker1Path", Source = "Value", },
			},
		},
		Tracker1Path = XYPath { Inputs = {
			X = Input { SourceOp = "Tracker1PathX", Source = "Value", },
			Y = Input { SourceOp = "Tracker1PathY", Source = "Value", }, }, },
		Tracker1PathX = BezierSpline { KeyFrames = { [4] = { 0.25 }, [5] = { 0.5, Flags = { Linear = true } } } },
		Tracker1PathY = BezierSpline { KeyFrames = { [4] = { 0.75 }, [5] = { 0.5 } } },
	},
}
"""


def test_setting_reads_hand_made_with_plate_size(tmp_path):
    p = tmp_path / "hand.setting"
    p.write_text(HAND)
    _lua_parses(HAND)
    with pytest.raises(InputError, match="0..1 of the plate: give the shot"):
        read_with("fusion", p, "read_queries")
    rr = read_with("fusion", p, "read_queries", plate_size=(100, 50))
    q = rr.queries[0]
    # PatternTime 5: (0.5, 0.5) -> x = 0.5 * 100 - 0.5 = 49.5, y = 50 - 0.5 * 50 - 0.5 = 24.5
    assert (q.frame, q.x, q.y, q.name) == (5, 49.5, 24.5, "Tracker 1")


@pytest.mark.parametrize("text,msg", [
    ("{ Tools = ordered() { Blur1 = Blur { }, }, }", "no Tracker tool (tools: Blur)"),
    ("{ Tools = ordered() { T = Tracker { Inputs = { TrackedCenter1 = Input { SourceOp = \"nope\", }, }, }, }, }",
     "TrackedCenter1 is not connected to an XYPath"),
    ("{ Tools = ordered() { T = Tracker {\n Inputs = { ", ":2: not a Fusion setting"),
    ("return 5", "not a Fusion setting"),
])
def test_setting_bad_input(tmp_path, text, msg):
    p = tmp_path / "bad.setting"
    p.write_text(text)
    with pytest.raises(InputError, match=re.escape(msg)):
        read_with("fusion", p, "read_queries", plate_size=(10, 10))
