"""``dtvfx export HOSTFILE --to json``: reading host files back. Plate-relative formats ask for the shot
with the flags that exist (``--shot PLATE`` / ``--read-option plate_size=WxH``) and read with them;
``.blender.json`` is read by its own suffix; a markers document under another name names ``--from``."""

from __future__ import annotations

import numpy as np
import pytest

from _adapter_helpers import FRAMES, H, W, assert_same_tracks, golden_trackset
from dino_tracker_vfx.adapters import write_tracks
from dino_tracker_vfx.cli import main
from dino_tracker_vfx.tracks import TrackSet

HOST_FILES = [("x.3de.txt", "tde"), ("x.2dt", "pftrack"), ("x.syntheyes.txt", "syntheyes")]


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """plate.1001-1005.png at the golden plate size (black; only size and frame numbers matter)."""
    import cv2

    d = tmp_path_factory.mktemp("plate")
    for f in FRAMES:
        cv2.imwrite(str(d / f"plate.{f}.png"), np.zeros((H, W, 3), np.uint8))
    return str(d / "plate.####.png")


@pytest.mark.parametrize("name,adapter", HOST_FILES)
def test_plate_relative_host_file_names_the_real_flags_then_reads_with_them(tmp_path, plate, capsys, name, adapter):
    src = tmp_path / name
    write_tracks(golden_trackset(), src, adapter)
    out = tmp_path / "back.json"
    assert main(["export", str(src), "--to", "json", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"dtvfx: error: {src}: the plate size is needed to convert this format's coordinates: give the "
                   "shot (dtvfx export FILE --shot PLATE) or --read-option plate_size=WxH")
    assert main(["export", str(src), "--to", "json", "--out", str(out), "--shot", plate, "-q"]) == 0
    back = TrackSet.load(out)
    assert list(back.frame_numbers) == FRAMES and back.plate_size == (W, H)
    want = golden_trackset()  # these formats carry no groups; SynthEyes names have no blanks
    assert [n.replace(" ", "_") for n in want.names] == [n.replace(" ", "_") for n in back.names]
    np.testing.assert_array_equal(want.visible, back.visible)
    np.testing.assert_allclose(want.xy[want.visible], back.xy[back.visible], atol=1e-3)  # SynthEyes: 6 decimals of 0..1
    # the size alone also works (frame numbers are then the file's own)
    assert main(["export", str(src), "--to", "json", "--out", str(out), "--read-option",
                 f"plate_size={W}x{H}", "-q"]) == 0
    assert TrackSet.load(out).plate_size == (W, H)


def test_shot_flag_gives_the_read_back_tracks_the_shot_fps(tmp_path, plate):
    src = tmp_path / "x.3de.txt"
    write_tracks(golden_trackset(), src, "tde")
    out = tmp_path / "back.json"
    assert main(["export", str(src), "--to", "json", "--out", str(out), "--shot", plate, "--fps", "10", "-q"]) == 0
    assert TrackSet.load(out).fps == 10


def test_blender_markers_document_is_read_by_its_own_suffix(tmp_path, capsys):
    src = tmp_path / "x.blender.json"
    write_tracks(golden_trackset(), src, "blender_markers")
    out = tmp_path / "back.json"
    assert main(["export", str(src), "--to", "json", "--out", str(out), "-q"]) == 0, capsys.readouterr().err
    assert_same_tracks(golden_trackset(), TrackSet.load(out), atol=1e-9)


def test_markers_document_under_a_plain_json_name_names_from_blender_markers(tmp_path, capsys):
    src = tmp_path / "markers.json"
    write_tracks(golden_trackset(), src, "blender_markers")
    out = tmp_path / "back.json"
    assert main(["export", str(src), "--to", "json", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"dtvfx: error: {src}: not a dino_tracker_vfx.tracks file (format='dino_tracker_vfx.blender_"
                   "markers'); it is a blender_markers document: read it with --from blender_markers")
    assert main(["export", str(src), "--from", "blender_markers", "--to", "json", "--out", str(out), "-q"]) == 0
    assert_same_tracks(golden_trackset(), TrackSet.load(out), atol=1e-9)
