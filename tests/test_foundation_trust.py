"""Bad input and a hostile environment give one line naming the file, frame or field and exit 2 (never a
traceback, never a silently wrong result): full disks, outputs that would overwrite inputs, undecodable
query/preset files, huge ranges and windows, booleans as coordinates, preset ``base:`` paths, gaps."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from _tracker_helpers import TINY_WF, write_queries, write_shot
from dino_tracker_vfx.cli import main


def _one_line_error(capsys, *needles: str) -> str:
    text = capsys.readouterr().err.strip()
    assert "Traceback" not in text, text
    err = text.splitlines()[-1]  # progress bars may come before it
    assert err.startswith("dtvfx: error: ") and text.count("dtvfx: error:") == 1, text
    for n in needles:
        assert n in err, (n, err)
    return err


# --------------------------------------------------------------------------- a full disk
@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """``(folder, fill)``: after ``fill()`` nothing more fits in ``folder``. A 64 KiB tmpfs filled with a
    file when this process may mount one (root), else ``os.fsync`` raises ENOSPC (how NFS reports it)."""
    d = tmp_path / "full"
    d.mkdir()
    mounted = False
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True)
        mounted = r.returncode == 0

    def fill():
        if mounted:
            with open(d / "filler.bin", "wb", buffering=0) as fh:
                with pytest.raises(OSError) as e:
                    while True:
                        fh.write(b"\0" * 4096)
                assert e.value.errno == errno.ENOSPC
        else:
            def fsync(fd):
                raise OSError(errno.ENOSPC, "No space left on device")

            monkeypatch.setattr(os, "fsync", fsync)

    yield d, fill
    if mounted:
        subprocess.run(["umount", str(d)], check=True)


def test_export_to_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, full_disk, capsys):
    from _adapter_helpers import golden_trackset

    src = tmp_path / "tracks.json"
    golden_trackset().save(src)
    d, fill = full_disk
    out = d / "shot.nk"
    out.write_text("old nuke script\n")
    fill()
    rc = main(["export", str(src), "--to", "nuke", "--out", str(out)])
    assert rc == 2
    _one_line_error(capsys, f"{out}: cannot write it, disk full")
    assert out.read_text() == "old nuke script\n"
    assert sorted(p.name for p in d.iterdir() if p.name != "filler.bin") == ["shot.nk"]  # no temp file left


def test_track_to_a_full_disk_names_the_file(tmp_path, full_disk, capsys):
    shot = write_shot(tmp_path / "shot")
    q = write_queries(tmp_path / "q.csv", [("a", 0, 20, 20, "")])
    preset = tmp_path / "tiny.yaml"
    preset.write_text(json.dumps(TINY_WF))
    d, fill = full_disk
    out = d / "tracks.json"
    out.write_text('{"old": true}\n')
    fill()
    rc = main(["track", str(shot), "--queries", str(q), "--preset", str(preset), "--cache", str(tmp_path / "c"),
               "--out", str(out)])
    assert rc == 2
    _one_line_error(capsys, f"{out}: cannot write it, disk full")
    assert out.read_text() == '{"old": true}\n'
    # the cache on the full disk: the first cache file is named
    rc = main(["track", str(shot), "--queries", str(q), "--preset", str(preset), "--cache", str(d / "cache"),
               "--out", str(tmp_path / "t.json")])
    assert rc == 2
    _one_line_error(capsys, f"{d / 'cache'}", "disk full")


def test_run_with_outputs_on_a_full_disk_fails_the_job_naming_the_file(tmp_path, full_disk, capsys, monkeypatch):
    from _jobs_helpers import counting_tracker, helper_env

    for k, v in helper_env().items():
        monkeypatch.setenv(k, v)
    with counting_tracker():
        _run_on_full_disk(tmp_path, full_disk, capsys)


def _run_on_full_disk(tmp_path, full_disk, capsys):
    from _jobs_helpers import tiny_job

    d, fill = full_disk
    out = d / "b.json"
    out.write_text("old\n")
    spec = tiny_job(tmp_path, "sh", iterations=3, outputs=[{"format": "json", "path": str(out)}])
    fill()
    rc = main(["run", str(spec), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 1  # a job that ran and failed (dtvfx run's documented exit code)
    assert f"failed: disk full (ENOSPC) while writing {out}" in err and "Traceback" not in err
    assert out.read_text() == "old\n"
    # the job folder itself on the full disk: the job cannot be created, one line naming the file, exit 2
    rc = main(["run", str(spec), "--quiet", "--job-dir", str(d / "job")])
    assert rc == 2
    _one_line_error(capsys, str(d / "job"), "disk full")


def test_track_refuses_to_overwrite_its_query_file(tmp_path, capsys):
    shot = write_shot(tmp_path / "shot")
    q = write_queries(tmp_path / "q.csv", [("a", 0, 20, 20, "")])
    before = q.read_bytes()
    rc = main(["track", str(shot), "--queries", str(q), "--out", str(tmp_path / "." / "q.csv")])
    assert rc == 2
    _one_line_error(capsys, "q.csv", "would overwrite the query file")
    assert q.read_bytes() == before


# --------------------------------------------------------------------------- files that are not what they claim
def _pal_png_with_300_entries(path: Path) -> Path:
    """A palette PNG whose PLTE chunk holds 300 colours (a PNG allows at most 256)."""
    import struct
    import zlib

    from PIL import Image

    im = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    im.save(path)
    raw = path.read_bytes()
    i = raw.index(b"PLTE") - 4
    n = struct.unpack(">I", raw[i:i + 4])[0]
    data = bytes(300 * 3)
    chunk = struct.pack(">I", len(data)) + b"PLTE" + data + struct.pack(">I", zlib.crc32(b"PLTE" + data))
    path.write_bytes(raw[:i] + chunk + raw[i + 12 + n:])
    return path


@pytest.mark.parametrize("name, body, needle", [
    ("latin1.csv", "name,frame,x,y\ncaf\xe9,1001,3,4\n".encode("latin-1"),
     "latin1.csv: not UTF-8 CSV text: byte 0xe9 at line 2"),
    ("binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary.csv: a binary file, not CSV text"),
    ("latin1.json", '[{"name": "caf\xe9", "frame": 1001, "x": 3, "y": 4}]'.encode("latin-1"),
     "latin1.json: not UTF-8 JSON text: byte 0xe9 at line 1"),
    ("nameobj.json", json.dumps([{"name": {"first": "a"}, "frame": 1001, "x": 3, "y": 4}]).encode(),
     "nameobj.json: queries[0]: field 'name' must be text, got dict"),
    ("groupnum.json", json.dumps([{"group": 7, "frame": 1001, "x": 3, "y": 4}]).encode(),
     "groupnum.json: queries[0]: field 'group' must be text, got int"),
    ("boolx.json", json.dumps([{"frame": 1001, "x": True, "y": 4}]).encode(),
     "boolx.json: queries[0]: field 'x'=True is not a number"),
    ("boolframe.json", json.dumps({"queries": [{"frame": 1001, "x": 3, "y": 4}, {"t": False, "x": 3, "y": 4}]}).encode(),
     "boolframe.json: queries[1]: field 't'=False is not a number"),
])
def test_query_files_that_are_not_utf8_or_have_wrong_types(tmp_path, capsys, name, body, needle):
    shot = write_shot(tmp_path / "shot")
    q = tmp_path / name
    q.write_bytes(body)
    rc = main(["track", str(shot), "--queries", str(q), "--preset", "cpu-preview", "--out", str(tmp_path / "t.json")])
    assert rc == 2
    _one_line_error(capsys, needle)


def test_palette_png_with_more_than_256_entries_is_a_one_line_error(tmp_path, capsys):
    shot = write_shot(tmp_path / "shot")
    q = write_queries(tmp_path / "q.csv", [("a", 0, 20, 20, "")])
    mask = _pal_png_with_300_entries(tmp_path / "m.1001.png")
    rc = main(["track", str(shot), "--queries", str(q), "--masks", str(mask), "--out", str(tmp_path / "t.json")])
    assert rc == 2
    _one_line_error(capsys, "m.1001.png: cannot read mask")


def test_status_of_a_file_is_a_one_line_error(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("hello\n")
    assert main(["status", str(f)]) == 2
    _one_line_error(capsys, "notes.txt: a file, not a job directory")


# --------------------------------------------------------------------------- presets
def test_binary_preset_file_is_a_one_line_error(tmp_path, capsys):
    p = tmp_path / "p.yaml"
    p.write_bytes(bytes(range(256)) * 4)
    assert main(["track", "no-such-shot.mov", "--queries", "q.csv", "--preset", str(p)]) == 2
    _one_line_error(capsys, "p.yaml: a binary file, not YAML text")
    p.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert main(["track", "no-such-shot.mov", "--queries", "q.csv", "--preset", str(p)]) == 2
    _one_line_error(capsys, "p.yaml: not UTF-8 YAML text: byte 0xe9 at line 1")


@pytest.mark.parametrize("params, needle", [
    ({"finest_scale": "x"}, "flow.params.finest_scale: must be an integer in 0..10, got 'x'"),
    ({"patch_size": 0}, "flow.params.patch_size: must be an integer in 1..128, got 0"),
    ({"var_alpha": True}, "flow.params.var_alpha: must be a number in 0..1e+06, got True"),
    ({"spatial_propagation": "yes"}, "flow.params.spatial_propagation: must be true or false, got 'yes'"),
    ({"preset": "slow"}, "flow.params.preset: must be one of ultrafast, fast, medium, got 'slow'"),
    ({"iters": 12}, "flow.params.iters: unknown dis setting"),
])
def test_bad_flow_params_fail_when_the_preset_is_loaded(tmp_path, capsys, params, needle):
    """Found when the preset is read, before the shot is opened (the shot here does not even exist)."""
    p = tmp_path / "p.yaml"
    p.write_text(json.dumps({"base": "cpu-preview", "flow": {"params": params}}))
    assert main(["track", str(tmp_path / "missing.####.png"), "--queries", "q.csv", "--preset", str(p)]) == 2
    _one_line_error(capsys, f"p.yaml: {needle}")


def test_raft_flow_params_are_checked_too():
    from dino_tracker_vfx.errors import ConfigError
    from dino_tracker_vfx.tracker.presets import load_preset

    assert load_preset({"base": "paper", "flow": {"params": {"iters": 20}}})["flow.params"] == {"iters": 20}
    with pytest.raises(ConfigError, match=r"flow\.params\.iters: must be an integer in 1\.\.1000, got 0"):
        load_preset({"base": "paper", "flow": {"params": {"iters": 0}}})
    with pytest.raises(ConfigError, match=r"flow\.params\.finest_scale: unknown raft_large setting"):
        load_preset({"base": "paper", "flow": {"params": {"finest_scale": 0}}})


def test_preset_base_path_is_relative_to_the_preset_file(tmp_path, monkeypatch, capsys):
    from dino_tracker_vfx.tracker.presets import load_preset

    d = tmp_path / "presets"
    (d / "sub").mkdir(parents=True)
    (d / "parent.yaml").write_text("base: cpu-preview\ntrain: {iterations: 7}\n")
    (d / "sub" / "child.yaml").write_text("base: ../parent.yaml\ntrain: {lr: 0.02}\n")
    (d / "sub" / "orphan.yaml").write_text("base: nowhere.yaml\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "parent.yaml").write_text("base: cpu-preview\ntrain: {iterations: 99}\n")  # must NOT be used
    monkeypatch.chdir(elsewhere)
    cfg = load_preset(str(d / "sub" / "child.yaml"))
    assert cfg["train.iterations"] == 7 and cfg["train.lr"] == 0.02
    monkeypatch.chdir(d / "sub")
    assert load_preset("child.yaml")["train.iterations"] == 7  # a relative preset path itself: from the cwd
    assert main(["track", "x.mov", "--queries", "q.csv", "--preset", str(d / "sub" / "orphan.yaml")]) == 2
    _one_line_error(capsys, "orphan.yaml: base: unknown preset 'nowhere.yaml'", str(d / "sub" / "nowhere.yaml"))


# --------------------------------------------------------------------------- sizes that would exhaust memory or time
@pytest.mark.parametrize("how", ["pattern", "flag"])
@pytest.mark.parametrize("frames, count", [("1-99999999", 99999999), ("1001-1500000", 1499000),
                                           ("1-10,1-200000x2", 100010)])
def test_huge_frame_ranges_are_refused_at_once(png_sequence, capsys, how, frames, count):
    import time

    pat = png_sequence(first=1001, n=3)
    args = ["info", f"{pat} {frames}"] if how == "pattern" else ["info", pat, "--range", frames]
    t0 = time.perf_counter()
    assert main(args) == 2
    assert time.perf_counter() - t0 < 1.0
    _one_line_error(capsys, f"frame range '{frames}' names {count} frames; a shot has at most 100000")


def test_a_long_range_of_missing_frames_is_reported_quickly(png_sequence, capsys):
    import time

    pat = png_sequence(first=1001, n=3)
    t0 = time.perf_counter()
    assert main(["info", pat, "--range", "1001-100000"]) == 2
    assert time.perf_counter() - t0 < 1.0
    _one_line_error(capsys, "plate.1004.png: frame 1004 is missing from range 1001-100000 (98997 missing in all)")


def test_huge_exr_display_window_is_refused_before_allocating(tmp_path, capsys):
    from conftest import write_exr
    from dino_tracker_vfx.errors import ShotError
    from dino_tracker_vfx.inputs import read_mask

    exr = tmp_path / "big.1001.exr"
    write_exr(exr, np.ones((16, 16, 3), np.float32), data_window=(0, 0), display_size=(60000, 60000))
    assert main(["info", str(exr)]) == 2
    _one_line_error(capsys, "big.1001.exr: display window 60000x60000 is too large or empty "
                            "(at most 32768 px a side and 268 Mpx)")
    with pytest.raises(ShotError, match=r"big\.1001\.exr: display window 60000x60000 is too large"):
        read_mask(exr)  # masks read id EXRs through the same check
    ok = tmp_path / "ok.1001.exr"
    write_exr(ok, np.ones((16, 16, 3), np.float32), data_window=(0, 0), display_size=(4096, 2160))
    assert main(["info", str(ok)]) == 0


# --------------------------------------------------------------------------- gaps
def test_a_sequence_with_gaps_and_no_range_warns_once_naming_the_frames(png_sequence, caplog):
    import logging

    from dino_tracker_vfx.shots import open_shot

    pat = png_sequence(first=1001, n=12, gaps=(1003, 1004, 1008))
    with caplog.at_level(logging.WARNING, logger="dino_tracker_vfx"):
        shot = open_shot(pat)
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert msgs == [f"{pat}: missing frames 1003-1004, 1008; using the 9 frames on disk (1001-1012). "
                    "Give a range to say which frames you mean"]
    assert shot.n_images == 9
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dino_tracker_vfx"):
        open_shot(pat + " 1005-1007")  # a range: the user said which frames
        open_shot(png_sequence(first=1, n=4, name="whole"))  # no gaps
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --------------------------------------------------------------------------- movies: damage and ranges
def _movie(path: Path, n: int = 24, codec: str = "libx264") -> Path:
    """A movie of ``n`` frames of smooth texture sliding 1 px per frame (P-frames between keyframes every 6)."""
    from fractions import Fraction

    import av

    from conftest import textured_frame

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.time_base = Fraction(1, 24)
        s.options = {"crf": "10", "g": "6", "bf": "0"} if codec == "libx264" else {"g": "6"}
        for k in range(n):
            fr = av.VideoFrame.from_ndarray(textured_frame(k), format="rgb24")
            fr.pts, fr.time_base = k, Fraction(1, 24)
            for pkt in s.encode(fr):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


@pytest.mark.parametrize("name, codec", [("clip.mp4", "libx264"), ("clip.avi", "mpeg4")])
def test_movie_with_bytes_overwritten_mid_stream_names_the_corrupt_frame(tmp_path, capsys, name, codec):
    from dino_tracker_vfx.errors import ShotError
    from dino_tracker_vfx.shots import open_shot

    import av

    good = _movie(tmp_path / name, codec=codec)
    with av.open(str(good)) as c:  # where image 12 (frame 13, a keyframe) lies in the file
        pkt = [p for p in c.demux(c.streams.video[0]) if p.pts is not None][12]
        pos, size = pkt.pos, pkt.size
    data = bytearray(good.read_bytes())
    n = min(200, size - 24)
    data[pos + 16:pos + 16 + n] = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()
    bad = tmp_path / f"bad_{name}"
    bad.write_bytes(bytes(data))

    ref = open_shot(str(good))
    ref.load()  # the intact movie decodes cleanly
    shot = open_shot(str(bad))
    assert len(shot) == 24  # the index (timestamps) is intact; the pixels are not
    first_bad = None
    for t in range(len(shot)):
        try:
            img = shot.read(t)
        except ShotError as e:
            first_bad = t
            f = shot.frame_of(t)
            assert re.fullmatch(rf".*bad_{re.escape(name)}: (frame {f} (is corrupt|is predicted from corrupt frame 1\d) "
                                rf"\(damaged data; the decoder would hide it\)|decode error at frame {f} \(.*\))",
                                str(e)), str(e)  # h264 conceals the damage (flagged corrupt); mpeg4 refuses it
            break
        np.testing.assert_allclose(img, ref.read(t), atol=1e-6)  # frames before the damage are exact
    assert first_bad == 12, first_bad
    with pytest.raises(ShotError, match=rf"bad_{re.escape(name)}: .*frame {shot.frame_of(first_bad)} "):
        open_shot(str(bad)).load()
    rc = main(["track", str(bad), "--queries", str(write_queries(tmp_path / "q.csv", [("a", 0, 20, 20, "")])),
               "--preset", "cpu-preview", "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "t.json")])
    assert rc == 2
    _one_line_error(capsys, f"bad_{name}: ", f"frame {shot.frame_of(first_bad)} ")
    assert not (tmp_path / "t.json").exists()


def test_movie_cut_in_half_reports_header_and_file_counts(tmp_path, capsys):
    import av

    avi = _movie(tmp_path / "clip.avi", codec="mpeg4")
    with av.open(str(avi)) as c:  # cut in the middle of the frame data (the first half is mostly header)
        cut = [p for p in c.demux(c.streams.video[0]) if p.pts is not None][12].pos
    (tmp_path / "half.avi").write_bytes(avi.read_bytes()[:cut])
    assert main(["info", str(tmp_path / "half.avi")]) == 2
    _one_line_error(capsys, "half.avi: truncated: the header counts 24 frames, the file holds 12 "
                            "(frames 13-24 are missing)")
    mp4 = _movie(tmp_path / "clip.mp4")  # an .mp4 cut short loses its index (moov): it cannot be opened at all
    data = mp4.read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    assert main(["info", str(tmp_path / "half.mp4")]) == 2
    _one_line_error(capsys, "half.mp4: cannot open movie")


def test_movie_frame_range(tmp_path, capsys):
    from dino_tracker_vfx.shots import open_shot

    mv = _movie(tmp_path / "vtest.avi", codec="mpeg4")
    whole = open_shot(str(mv))
    assert list(whole.frame_numbers) == list(range(1, 25))  # movie frames are numbered from 1, as info shows
    for spec, kw in ((f"{mv} 11-20", {}), (f"{mv}:11-20", {}), (str(mv), {"frame_range": "11-20"})):
        part = open_shot(spec, **kw)
        assert list(part.frame_numbers) == list(range(11, 21)) and part.source == str(mv), spec
        for t in (9, 0, 4, 5):  # backwards and forwards
            np.testing.assert_array_equal(part.read(t), whole.read(t + 10))
    steps = open_shot(f"{mv} 2-24x11")
    assert list(steps.frame_numbers) == [2, 13, 24]
    np.testing.assert_array_equal(steps.read(2), whole.read(23))
    assert main(["info", f"{mv} 21-24", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frame_range"] == [21, 24] and info["images"] == 4
    assert info["movie_frames"] == {"range": [1, 24], "images": 24}
    assert main(["info", str(mv), "--range", "21-60"]) == 2
    _one_line_error(capsys, "vtest.avi: frame 25 of range 21-60 is not in the movie (frames 1-24); 36 missing in all")
    assert main(["info", f"{tmp_path / 'nothere.avi'} 21-60"]) == 2
    _one_line_error(capsys, "nothere.avi: no such file")
