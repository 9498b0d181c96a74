"""After Effects adapters: keyframe data text and .jsx.

Hand-computed (AE layer space = pixel corners, top-left, y down: x + 0.5, y + 0.5; AE frame = host - 1001):
car_a t=0 (0, 0) -> frame 0: 0.5 0.5; corner 1 t=0 (1919, 1079) -> 1919.5 1079.5;
car_b occluded at host 1003 = AE frame 2: no Feature Center key, Confidence 0 there.
"""

from __future__ import annotations

import numpy as np
import pytest

from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.tracks import TrackSet

from _adapter_helpers import assert_same_tracks, check_golden, golden_trackset, read_with, write_with


def test_ae_keyframe_golden_and_spot_values(tmp_path):
    out = write_with("aftereffects", golden_trackset(), tmp_path / "golden.ae.txt")
    check_golden(out, "aftereffects")
    text = out.read_text()
    assert text.startswith("Adobe After Effects 8.0 Keyframe Data\n\n\tUnits Per Second\t24\n\tSource Width\t1920\n"
                           "\tSource Height\t1080\n\tSource Pixel Aspect Ratio\t1\n\tComp Pixel Aspect Ratio\t1\n")
    blocks = text.split("\n\n")
    fc_a = next(b for b in blocks if b.startswith("Motion Trackers\tcar\tcar_a\tFeature Center"))
    assert fc_a.splitlines()[2] == "\t0\t0.5\t0.5\t"
    fc_b = next(b for b in blocks if b.startswith("Motion Trackers\tcar\tcar_b\tFeature Center"))
    assert [ln.split("\t")[1] for ln in fc_b.splitlines()[2:]] == ["0", "1", "3", "4"]  # frame 2 occluded
    conf_b = next(b for b in blocks if b.startswith("Motion Trackers\tcar\tcar_b\tConfidence"))
    assert conf_b.splitlines()[2:] == ["\t0\t95\t", "\t1\t90\t", "\t2\t0\t", "\t3\t85\t", "\t4\t80\t"]
    assert "Motion Trackers\tungrouped\tcorner 1\tFeature Center\n\tFrame\tX pixels\tY pixels\t\n\t0\t1919.5\t1079.5\t" in text
    assert text.rstrip("\n").endswith("End of Keyframe Data")


def test_ae_options_track_first_frame_fps_and_gaps(tmp_path):
    ts = golden_trackset()
    ts = TrackSet(ts.xy, ts.visible, ts.confidence, ts.names, ts.queries, [1001, 1002, 1005, 1006, 1007],
                  ts.plate_size, ts.groups, pixel_aspect=2.0, meta={"fps": 25})
    text = write_with("aftereffects", ts, tmp_path / "one.ae.txt", track="car_a").read_text()
    assert "car_b" not in text and "\tUnits Per Second\t25\n" in text and "Pixel Aspect Ratio\t2\n" in text
    assert [ln.split("\t")[1] for ln in text.split("Feature Center")[1].split("\n\n")[0].splitlines()[2:]] == \
        ["0", "1", "4", "5", "6"]  # frames are host - first frame, gaps kept (never renumbered)
    text = write_with("aftereffects", ts, tmp_path / "ff.ae.txt", first_frame=1000, fps=23.976).read_text()
    assert "\t1\t0.5\t0.5\t" in text and "Units Per Second\t23.976" in text
    with pytest.raises(InputError, match="option track: no track named 'nope'"):
        write_with("aftereffects", ts, tmp_path / "x.ae.txt", track="nope")


def test_ae_round_trip_and_queries(tmp_path):
    ts = golden_trackset()
    out = write_with("aftereffects", ts, tmp_path / "t.ae.txt")
    back = read_with("aftereffects", out, first_frame=1001)
    assert_same_tracks(ts, back, confidence=True)
    rr = read_with("aftereffects", out, "read_queries", frame_numbers=[1001, 1002, 1003, 1004, 1005])
    assert [(q.frame, q.x, q.y, q.name, q.group) for q in rr.queries][1:] == [
        (1001, 100.25, 200.5, "car_b", "car"), (1001, 1919.0, 1079.0, "corner 1", None)]
    assert rr.plate_size == (1920, 1080)
    with pytest.raises(InputError, match="frames count from 0 = the first shot frame"):
        read_with("aftereffects", out, "read_queries")  # never guesses the offset


def test_ae_reads_a_pasted_position_block(tmp_path):
    p = tmp_path / "pos.ae.txt"
    p.write_text("Adobe After Effects 8.0 Keyframe Data\r\n\r\n\tUnits Per Second\t24\r\n\tSource Width\t100\r\n"
                 "\tSource Height\t50\r\n\r\nTransform\tPosition\r\n\tFrame\tX pixels\tY pixels\tZ pixels\t\r\n"
                 "\t3\t10.5\t20.5\t0\t\r\n\r\nEnd of Keyframe Data\r\n")
    rr = read_with("aftereffects", p, "read_queries", first_frame=1)
    assert [(q.frame, q.x, q.y) for q in rr.queries] == [(4, 10.0, 20.0)]


@pytest.mark.parametrize("text,msg", [
    ("hello\n", ":1: not After Effects keyframe data"),
    ("Adobe After Effects 8.0 Keyframe Data\n\nTransform\tScale\n\tFrame\tpercent\n\t0\t100\n", "no Feature Center"),
    ("Adobe After Effects 8.0 Keyframe Data\n\nMotion Trackers\tT\tP\tFeature Center\n\tFrame\tX\tY\n\t0\tx\t1\n",
     ":5: bad keyframe row"),
])
def test_ae_bad_input(tmp_path, text, msg):
    p = tmp_path / "bad.ae.txt"
    p.write_text(text)
    with pytest.raises(InputError, match=msg):
        read_with("aftereffects", p, "read_queries", first_frame=1)


def test_jsx_golden_and_values(tmp_path):
    out = write_with("aftereffects-jsx", golden_trackset(), tmp_path / "golden.jsx")
    check_golden(out, "aftereffects")
    text = out.read_text()
    assert '{name: "car_b", frames: [0, 1, 3, 4], xy: [[100.75, 201], [102.75, 200], [106.75, 198]' in text
    assert '{name: "car_a", frames: [0, 1, 2, 3, 4], xy: [[0.5, 0.5],' in text
    assert "comp.layers.addNull()" in text and "setValuesAtTimes" in text and "app.endUndoGroup()" in text
    assert text.count("{") == text.count("}") and text.count("[") == text.count("]")


def test_jsx_escapes_names(tmp_path):
    ts = golden_trackset()
    ts.names[0] = 'a "quoted" \\ name'
    text = write_with("aftereffects-jsx", TrackSet(ts.xy, ts.visible, ts.confidence, ts.names, ts.queries,
                                                   ts.frame_numbers, ts.plate_size), tmp_path / "e.jsx").read_text()
    assert r'name: "a \"quoted\" \\ name"' in text
    assert np.isfinite(ts.xy).all()
