"""The shot's frame rate and timecode: read from the plate (EXR FramesPerSecond / smpte:TimeCode, movie
rate), overridden with --fps, kept in the track file (optional, old files still read) and used by the
exporters that write time (After Effects Units Per Second and .jsx key times)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _objects_helpers import make_scene, write_palette_mask
from conftest import write_exr
from dino_tracker_vfx.cli import main
from dino_tracker_vfx.errors import InputError, ShotError
from dino_tracker_vfx.shots import open_shot
from dino_tracker_vfx.tracks import DEFAULT_FPS, TrackSet

TC_1H = 0x01000000  # BCD 01:00:00:00


def _exr_scene(folder, fps=None, timecode=None, T=6):
    """The objects test scene as linear-light EXRs (sRGB decoded), frames 1001..."""
    sc = make_scene(T=T)
    folder.mkdir(parents=True, exist_ok=True)
    v = sc.frames.astype(np.float32) / 255.0
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    for t in range(T):
        write_exr(folder / f"plate.{1001 + t}.exr", lin[t], fps=fps, timecode=timecode)
    return sc, str(folder / "plate.####.exr")


def test_sequence_fps_and_timecode_from_exr_metadata_and_the_override(tmp_path):
    _, pat = _exr_scene(tmp_path / "a", fps=10, timecode=TC_1H, T=2)
    shot = open_shot(pat)
    assert shot.fps == 10 and shot.timecode == "01:00:00:00"
    assert shot.info()["fps"] == 10 and shot.info()["timecode"] == "01:00:00:00"
    assert open_shot(pat, fps=23.976).fps == 23.976
    _, bare = _exr_scene(tmp_path / "b", T=2)
    assert open_shot(bare).fps is None and open_shot(bare).timecode is None
    with pytest.raises(ShotError, match=r"--fps -5 is not a frame rate"):
        open_shot(bare, fps=-5)


def test_track_file_keeps_fps_and_timecode_and_old_files_still_read(tmp_path):
    from _adapter_helpers import golden_trackset

    ts = golden_trackset().with_time(10, "01:00:00:00")
    for name in ("t.json", "t.csv"):
        ts.save(tmp_path / name)
        back = TrackSet.load(tmp_path / name)
        assert (back.fps, back.timecode) == (10.0, "01:00:00:00"), name
    d = json.loads((tmp_path / "t.json").read_text())
    assert d["time"] == {"fps": 10, "timecode": "01:00:00:00"}
    del d["time"]  # a file written before the rate was kept
    (tmp_path / "old.json").write_text(json.dumps(d))
    old = TrackSet.load(tmp_path / "old.json")
    assert old.fps is None and old.rate() == DEFAULT_FPS == 24 and old.rate(30) == 30
    assert "time" not in golden_trackset().to_json_dict()  # unknown rate: nothing written
    d["time"] = {"fps": "fast"}
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"bad\.json: time\.fps='fast' is not a frame rate"):
        TrackSet.load(tmp_path / "bad.json")


def test_a_10_fps_shot_exports_10_fps_keyframe_data_to_after_effects(tmp_path, capsys):
    """EXR plates at 10 fps -> dtvfx objects -> tracks.json -> dtvfx export: AE says 10, not 24."""
    sc, pat = _exr_scene(tmp_path / "plate", fps=10, timecode=TC_1H)
    mask = write_palette_mask(sc.masks[0], tmp_path / "mask.1001.png")
    out = tmp_path / "objects.json"
    assert main(["objects", pat, "--masks", mask, "--tracker", "flow", "--points-per-object", "4",
                 "--out", str(out), "-q"]) == 0, capsys.readouterr().err
    ts = TrackSet.load(out)
    assert (ts.fps, ts.timecode) == (10.0, "01:00:00:00")
    assert main(["export", str(out), "--to", "aftereffects", "--out", str(tmp_path / "t.ae.txt"), "-q"]) == 0
    text = (tmp_path / "t.ae.txt").read_text()
    assert "\tUnits Per Second\t10\n" in text and "\tUnits Per Second\t24\n" not in text
    assert main(["export", str(out), "--to", "aftereffects-jsx", "--out", str(tmp_path / "t.jsx"), "-q"]) == 0
    jsx = (tmp_path / "t.jsx").read_text()
    assert "var frameTime = 1 / 10;" in jsx and "times.push(tr.frames[k] * frameTime)" in jsx
    # --fps overrides metadata the plate lacks (or gets wrong) and reaches the exporter the same way
    assert main(["objects", pat, "--masks", mask, "--tracker", "flow", "--points-per-object", "4",
                 "--fps", "12.5", "--out", str(out), "-q"]) == 0
    assert main(["export", str(out), "--to", "aftereffects", "--out", str(tmp_path / "u.ae.txt"), "-q"]) == 0
    assert "\tUnits Per Second\t12.5\n" in (tmp_path / "u.ae.txt").read_text()
