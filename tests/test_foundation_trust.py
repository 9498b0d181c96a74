"""Bad input and a hostile environment give one line naming the file, frame or field and exit 2 (never a
traceback, never a silently wrong result): full disks, outputs that would overwrite inputs, undecodable
query/preset files, huge ranges and windows, booleans as coordinates, preset ``base:`` paths, gaps."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from _tracker_helpers import TINY_WF, write_queries, write_shot
from dino_tracker_vfx.cli import main
from dino_tracker_vfx.tracks import TrackSet


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
    from _jobs_helpers import helper_env, tiny_job

    for k, v in helper_env().items():
        monkeypatch.setenv(k, v)
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
