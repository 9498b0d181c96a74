"""Queries and masks from hosts, and the CLI's handling of bad input (one line, exit 2, no traceback)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, write_exr
from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.inputs import object_ids, read_mask, read_masks, read_queries
from dino_tracker_vfx.shots import open_shot


@pytest.fixture
def shot(png_sequence):
    return open_shot(png_sequence(first=1001, n=5))


def test_queries_csv_by_frame_and_index(shot, tmp_path):
    q = tmp_path / "q.csv"
    q.write_text("# comment\nname,frame,x,y,group\np1,1003,10.5,20,car\n,1001,0,0,\np1,1005,63.5,47.5,car\n")
    qs = read_queries(q, shot)
    assert [(x.t, x.x, x.y) for x in qs] == [(2, 10.5, 20.0), (0, 0.0, 0.0), (4, 63.5, 47.5)]
    assert [x.name for x in qs] == ["p1", "track_002", "p1"]  # a shared name: one track, the second row a correction
    assert qs[0].group == "car" and qs[1].group is None
    j = tmp_path / "q.json"
    j.write_text('{"queries": [{"t": 1, "x": 3, "y": 4, "name": "k"}]}')
    assert read_queries(j, shot)[0].t == 1


@pytest.mark.parametrize("body, message", [
    ("frame,x,y\n1003,64.0,10\n", r"q\.csv: line 2: point \(64, 10\) is outside the 64x48 plate"),
    ("frame,x,y\n1003,10,10\n1200,1,1\n", r"q\.csv: line 3: frame 1200 is not in the shot \(1001-1005\)"),
    ("t,x,y\n5,1,1\n", r"q\.csv: line 2: t=5 is not an image index of the shot \(0\.\.4\)"),
    ("frame,x\n1003,1\n", r"q\.csv: missing column 'y'"),
    ("t,frame,x,y\n0,1001,1,1\n", r"needs exactly one of the columns 't'"),
    ("t,x,y\n0,abc,1\n", r"q\.csv: line 2: field 'x'='abc' is not a number"),
])
def test_bad_queries_name_file_line_field(shot, tmp_path, body, message):
    q = tmp_path / "q.csv"
    q.write_text(body)
    with pytest.raises(InputError, match=message):
        read_queries(q, shot)


def test_masks_binary_palette_and_integer_exr(shot, tmp_path):
    from PIL import Image

    a = np.zeros((48, 64), np.uint8)
    a[5:10, 5:10] = 255
    Image.fromarray(a).save(tmp_path / "matte.1002.png")
    pal = np.zeros((48, 64), np.uint8)
    pal[1:4, 1:4], pal[20:30, 30:40] = 1, 3
    im = Image.fromarray(pal, mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12))
    im.save(tmp_path / "ids.png")
    ids = np.zeros((48, 64, 3), np.float32)
    ids[10:20, 10:20] = 7
    ids[30:40, 0:5] = 300
    write_exr(tmp_path / "ids.exr", ids, pixel_type="float")
    write_exr(tmp_path / "ids32.exr", ids[..., :1], pixel_type="uint32")

    assert set(np.unique(read_mask(tmp_path / "matte.1002.png"))) == {0, 1}
    assert set(np.unique(read_mask(tmp_path / "ids.png"))) == {0, 1, 3}  # palette indices, not colours
    assert set(np.unique(read_mask(tmp_path / "ids.exr"))) == {0, 7, 300}
    ids32 = read_mask(tmp_path / "ids32.exr")  # integer EXR ids come back as integers, not normalised
    assert set(np.unique(ids32)) == {0, 7, 300} and ids32[15, 15] == 7
    m = read_masks([str(tmp_path / "matte.1002.png"), str(tmp_path / "ids.png") + "@1004"], shot)
    assert sorted(m) == [1, 3]  # frame from the file name; explicit @frame
    assert object_ids(m) == [1, 3]


def test_split_mask_spec_takes_only_a_final_at_frame(tmp_path):
    from dino_tracker_vfx.inputs import split_mask_spec

    assert split_mask_spec("/sh/roto.png@1004") == ("/sh/roto.png", 1004)
    assert split_mask_spec("/sh/roto.png@-3") == ("/sh/roto.png", -3)
    assert split_mask_spec("/shots@v2/take@3/roto.png") == ("/shots@v2/take@3/roto.png", None)  # '@' in folders
    assert split_mask_spec("/shots@v2/roto.png@7") == ("/shots@v2/roto.png", 7)
    assert split_mask_spec("/sh/roto@v2.png") == ("/sh/roto@v2.png", None)
    odd = tmp_path / "roto.png@12"  # a file really named like a spec is a path
    odd.write_bytes(b"")
    assert split_mask_spec(str(odd)) == (str(odd), None)
    assert split_mask_spec(str(odd), exists=lambda s: False) == (str(tmp_path / "roto.png"), 12)


def test_mask_errors(shot, tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((48, 64), np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(InputError, match=r"empty\.png: mask is empty \(no object\) at frame 1001"):
        read_masks([str(tmp_path / "empty.png")], shot)
    Image.fromarray(np.full((10, 30), 255, np.uint8)).save(tmp_path / "wrong.png")
    with pytest.raises(InputError, match=r"wrong\.png: mask is 30x10, the plate is 64x48"):
        read_masks([str(tmp_path / "wrong.png")], shot)
    half = np.zeros((24, 32), np.uint8)
    half[4:8, 4:8] = 255
    Image.fromarray(half).save(tmp_path / "half.png")
    with pytest.warns(UserWarning, match="resized to the 64x48 plate"):
        m = read_masks([str(tmp_path / "half.png")], shot)[0]
    assert m[8:16, 8:16].all() and m.sum() == 64  # nearest neighbour, exact 2x scaling
    with pytest.raises(Exception, match=r"frame 999 is not in the shot"):
        read_masks([str(tmp_path / "half.png") + "@999"], shot)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dino_tracker_vfx.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_cli_info(png_sequence):
    pat = png_sequence(first=1001, n=5, gaps=(1003,))
    r = _cli("info", pat)
    assert r.returncode == 0, r.stderr
    assert "1001-1005 (4 images)" in r.stdout and "gaps         1003" in r.stdout
    r = _cli("info", pat, "--json")
    import json

    assert json.loads(r.stdout)["gaps"] == [[1003, 1003]]


@pytest.mark.parametrize("make_spec, message", [
    (lambda p: p + " 1001-1005", "plate.1003.png: frame 1003 is missing from range 1001-1005"),
    (lambda p: p.replace("plate", "nothing"), "no frames on disk match the pattern"),
])
def test_cli_bad_input_is_one_line(png_sequence, make_spec, message):
    pat = png_sequence(first=1001, n=5, gaps=(1003,))
    r = _cli("info", make_spec(pat))
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_queries_from_host_files_and_track_files(shot, tmp_path):
    """Host formats and core track files go through the adapters, mapped by the shot's frame numbers."""
    from dino_tracker_vfx.adapters import write_tracks
    from dino_tracker_vfx.tracks import Query, TrackSet

    T = shot.n_images
    xy = np.zeros((2, T, 2))
    xy[0, :] = [10.0, 20.0]
    xy[1, :] = [30.5, 5.5]
    qs = [Query(1, 10.0, 20.0, "a", "obj"), Query(3, 30.5, 5.5, "b", None)]
    vis = np.ones((2, T), bool)
    vis[0, :1] = vis[1, :3] = False  # formats without a query frame use the first visible one
    ts = TrackSet(xy, vis, np.ones((2, T)), ["a", "b"], qs, shot.frame_numbers, shot.size)
    for name in ("t.json", "t.csv", "t.nk", "t.3de.txt"):
        write_tracks(ts, tmp_path / name)
        got = read_queries(tmp_path / name, shot)
        assert [(q.name, q.t) for q in got] == [("a", 1), ("b", 3)], name
        np.testing.assert_allclose([[q.x, q.y] for q in got], [[10.0, 20.0], [30.5, 5.5]], atol=1e-6)
