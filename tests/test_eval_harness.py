"""dtvfx eval: the pinned static numbers on the dev split, outputs, resume after interruption, the flow
baseline through embedded / folder frames, BADJA."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from dino_tracker_vfx.cli import main
from dino_tracker_vfx.errors import Cancelled, ConfigError
from dino_tracker_vfx.evaluation import harness
from dino_tracker_vfx.evaluation.baselines import make_method

from _eval_helpers import BADJA_DIR, DEV_PKL, FRAMES480, official_entry, write_frames_root, write_pickle


@pytest.mark.shared_data
def test_static_dev_split_pinned(tmp_path, capsys):
    out = tmp_path / "static"
    rc = main(["eval", "tapvid", "--gt", DEV_PKL, "--frames", FRAMES480, "--method", "static", "--mode", "strided",
               "--out", str(out), "-q"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert (round(s["AJ"], 3), round(s["OA"], 3), round(s["delta_avg"], 3)) == (0.184, 0.875, 0.289)
    assert s["n_videos"] == 22 and s["n_queries"] == 2438 and s["method"] == "static" and s["mode"] == "strided"
    assert set(s["per_threshold"]) == {f"{k}_{d}" for k in ("delta", "jaccard") for d in (1, 2, 4, 8, 16)}
    assert s["per_threshold"]["delta_16"] > s["per_threshold"]["delta_1"]
    rows = list(csv.DictReader(open(out / "per_video.csv")))
    assert len(rows) == 22 and rows[-1]["video"] == "29_horsejump-high"
    assert abs(np.mean([float(r["AJ"]) for r in rows]) - s["AJ"]) < 1e-6
    for f in ("per_video.png", "occlusion.png", "tracks/29_horsejump-high.json"):
        assert (out / f).stat().st_size > 1000
    assert "AJ 0.184" in capsys.readouterr().out


@pytest.mark.shared_data
def test_resume_after_interrupt_and_settings_change(tmp_path):
    out = tmp_path / "run"
    calls = []

    def cancel_after_first():
        return len(list((out / "videos").glob("*.json"))) >= 1

    m = make_method("static")
    with pytest.raises(Cancelled):
        harness.evaluate_tapvid(DEV_PKL, FRAMES480, m, out, videos=["29", "0", "3"], cancel=cancel_after_first,
                                plots=False)
    done = list((out / "videos").glob("*.json"))
    assert [p.name for p in done] == ["29_horsejump-high.json"] and not (out / "summary.json").exists()
    mtime = done[0].stat().st_mtime_ns
    s = harness.evaluate_tapvid(DEV_PKL, FRAMES480, m, out, videos=["29", "0", "3"], plots=False, log=calls.append)
    assert s["n_videos"] == 3 and calls[0] == "29_horsejump-high: done before, reused"
    assert done[0].stat().st_mtime_ns == mtime
    # other settings (mode) -> recomputed, not reused
    calls.clear()
    harness.evaluate_tapvid(DEV_PKL, FRAMES480, m, out, mode="first", videos=["29"], plots=False, log=calls.append)
    assert "reused" not in calls[0] and done[0].stat().st_mtime_ns != mtime


def test_flow_baseline_on_embedded_and_folder_frames(tmp_path):
    e = official_entry(T=8, w=64, h=48, n=6)
    gt = write_pickle(tmp_path / "synthetic.pkl", {"slide": e})
    s = harness.evaluate_tapvid(gt, None, make_method("flow"), tmp_path / "emb", mode="first", plots=False)
    # the texture moves exactly with the GT: chained flow must follow it
    assert s["delta_avg"] > 0.9 and s["n_videos"] == 1
    assert not (tmp_path / "emb" / "frames").exists()  # embedded frames are tracked from memory, not files
    # the same frames given as a <idx>_<name>/video folder (GT rescaled from its normalised points)
    root = write_frames_root(tmp_path / "frames", "00_slide", e["video"])
    s2 = harness.evaluate_tapvid(gt, root, make_method("flow"), tmp_path / "dir", mode="first", plots=False)
    assert s2["delta_avg"] == pytest.approx(s["delta_avg"]) and s2["AJ"] == pytest.approx(s["AJ"])
    static = harness.evaluate_tapvid(gt, root, make_method("static"), tmp_path / "st", mode="first", plots=False)
    assert static["delta_avg"] < s["delta_avg"] - 0.3


@pytest.mark.shared_data
def test_cli_errors_are_one_line(tmp_path, capsys):
    rc = main(["eval", "tapvid", "--gt", str(tmp_path / "nope.pkl"), "--method", "static", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("dtvfx: error:") and "nope.pkl: file not found" in err and "\n" not in err
    rc = main(["eval", "tapvid", "--gt", DEV_PKL, "--method", "static", "--videos", "no-such-video",
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "--videos" in capsys.readouterr().err
    e = official_entry(T=6)
    e.pop("video")
    gt = write_pickle(tmp_path / "novideo.pkl", {"v": e})
    rc = main(["eval", "tapvid", "--gt", gt, "--method", "flow", "--out", str(tmp_path / "o2"), "-q"])
    assert rc == 2 and "--frames" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        make_method("magic")


@pytest.mark.shared_data
def test_badja_static(tmp_path):
    out = tmp_path / "badja"
    rc = main(["eval", "badja", "--data", BADJA_DIR, "--frames", FRAMES480, "--method", "static", "--out", str(out),
               "-q"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["n_videos"] == 4 and 0.0 < s["delta_seg"] < 0.6 and s["delta_3px"] < 0.05
    rows = {r["name"]: r for r in csv.DictReader(open(out / "per_video.csv"))}
    assert set(rows) == {"camel", "cows", "dog", "horsejump-high"}
    # dog: annotated frames 3..55 -> a 53-image shot starting at frame 3
    assert rows["dog"]["n_frames"] == "53" and rows["dog"]["first_frame"] == "3"
    # the static prediction of the first video equals its queries at every frame
    tr = json.loads((out / "tracks" / "15_camel.json").read_text())
    q = tr["tracks"][0]["query"]
    assert np.allclose(tr["tracks"][0]["xy"], [q["x"], q["y"]], atol=1e-5)
    assert os.path.getsize(out / "per_video.png") > 1000


@pytest.mark.shared_data
def test_dino_without_weights_is_a_clear_weights_error(tmp_path, monkeypatch, capsys):
    for k in ("DTVFX_WEIGHTS", "TORCH_HOME"):
        monkeypatch.setenv(k, str(tmp_path / "empty"))
    monkeypatch.setenv("DTVFX_OFFLINE", "1")
    rc = main(["eval", "tapvid", "--gt", DEV_PKL, "--frames", FRAMES480, "--method", "dino", "--videos", "29",
               "--out", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "dinov2_vitl14_pretrain.pth not found" in err and "\n" not in err
    assert not (tmp_path / "o" / "videos").exists()  # failed before any video
    rc = main(["eval", "tapvid", "--gt", DEV_PKL, "--method", "tracker", "--preset", "no-such-preset",
               "--out", str(tmp_path / "o2"), "-q"])
    assert rc == 2 and "no-such-preset" in capsys.readouterr().err


def test_normalised_gt_goes_to_the_frames_raster(tmp_path):
    e = official_entry(T=6, w=64, h=48, n=3)
    video = e.pop("video")
    big = np.repeat(np.repeat(video, 2, axis=1), 2, axis=2)  # the same frames at 128x96
    gt = write_pickle(tmp_path / "novideo.pkl", {"v": e})
    root = write_frames_root(tmp_path / "frames", "00_v", big)
    harness.evaluate_tapvid(gt, root, make_method("static"), tmp_path / "o", mode="first", plots=False)
    tr = json.loads((tmp_path / "o" / "tracks" / "00_v.json").read_text())
    assert (tr["plate"]["width"], tr["plate"]["height"]) == (128, 96)
    q = tr["tracks"][0]["query"]
    assert q["x"] == pytest.approx(e["points"][0, q["t"], 0] * 128, abs=1e-4)


@pytest.mark.shared_data
def test_tracker_method_calls_the_api_with_preset_cache_and_masks(tmp_path, monkeypatch):
    """The harness glue around tracker.api.track (the real tracker is exercised by the tracker's own tests)."""
    import sys
    import types

    import dino_tracker_vfx.tracker as tracker_pkg
    from dino_tracker_vfx.evaluation.baselines import Static

    calls = []

    def fake_track(shot, queries, *, preset, masks, cache_dir, device, seed, progress, cancel):
        calls.append({"preset": preset, "masks": masks, "cache_dir": cache_dir, "T": shot.n_images,
                      "size": shot.size, "seed": seed})
        return Static().run(shot, queries)

    fake = types.SimpleNamespace(track=fake_track)
    monkeypatch.setitem(sys.modules, "dino_tracker_vfx.tracker.api", fake)
    monkeypatch.setattr(tracker_pkg, "api", fake, raising=False)
    m = make_method("tracker", preset="fast", seed=3, masks="first")
    monkeypatch.setattr(m, "check", lambda: None)
    out = tmp_path / "tr"
    s = harness.evaluate_tapvid(DEV_PKL, FRAMES480, m, out, videos=["29"], plots=False)
    (c,) = calls
    assert c["preset"] == "fast" and c["seed"] == 3 and c["T"] == 32 and c["size"] == (854, 480)
    assert c["cache_dir"] == out / "cache" / "29_horsejump-high"
    assert set(c["masks"]) == {0} and c["masks"][0].shape == (480, 854) and c["masks"][0].max() >= 1
    static = harness.evaluate_tapvid(DEV_PKL, FRAMES480, make_method("static"), tmp_path / "st", videos=["29"],
                                     plots=False)
    assert s["AJ"] == pytest.approx(static["AJ"]) and s["preset"] == "fast"
    harness.evaluate_tapvid(DEV_PKL, FRAMES480, m, out, videos=["29"], plots=False)
    assert len(calls) == 1  # reused, not retrained
