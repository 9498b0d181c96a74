"""Public tracker API and ``dtvfx track`` on tiny synthetic shots (6 frames of 64x48, known motion)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from _tracker_helpers import T, TINY_WF, true_track, write_queries, write_shot
from dino_tracker_vfx.errors import CacheError, Cancelled, ConfigError, InputError, ShotError, WeightsError
from dino_tracker_vfx.shots import open_shot
from dino_tracker_vfx.tracker.api import ShotTracker, track
from dino_tracker_vfx.tracks import Query, TrackSet

torch.set_num_threads(1)

TINY_DINO = {  # the paper's pipeline with a random ViT-S/14 up to block 1 (no weight files)
    "base": "paper", "name": "test-tiny-dino", "backbone": "dinov2_vits14", "layer": 1, "weights": "random",
    "working_height": 48, "amp": False, "delta": {"hidden": [8, 16, 16]}, "flow": {"method": "dis"},
    "foreground": {"saliency_layer": 1},
    "train": {"iterations": 3, "frames_per_step": 3, "flow_pairs": 32, "bb_pairs": 32, "cyc_points_per_pair": 8,
              "rfn_after": 0.3, "checkpoint_every": 2},
    "infer": {"argmax_radius": 10.0},
}


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    return open_shot(str(write_shot(tmp_path_factory.mktemp("plates"))))


def _preset(**over):
    p = copy.deepcopy(TINY_WF)
    for k, v in over.items():
        if isinstance(v, dict):
            p.setdefault(k, {}).update(v)
        else:
            p[k] = v
    return p


def test_track_returns_plate_tracks_with_exact_query_frames(shot, tmp_path):
    qs = [Query(0, 20.0, 20.0, "a", "g"), Query(3, 40.25, 25.5, "b", "g"), Query(5, 10.0, 12.0)]
    events = []
    tr = track(shot, qs, preset=_preset(infer={"flow_guided": True}), cache_dir=tmp_path / "c",
               progress=events.append)
    assert isinstance(tr, TrackSet) and tr.xy.shape == (3, T, 2)
    assert tr.names == ["a", "b", "track_003"] and tr.groups.keys() == {"g"}
    assert list(tr.frame_numbers) == list(range(1001, 1001 + T)) and tr.plate_size == (64, 48)
    for n, q in enumerate(qs):
        assert tuple(tr.xy[n, q.t]) == (q.x, q.y)
        assert tr.visible[n, q.t] and tr.confidence[n, q.t] == 1.0
    assert np.all((tr.confidence >= 0) & (tr.confidence <= 1))
    # flow-guided positions follow the (exactly known) motion of the texture
    err = np.linalg.norm(tr.xy[0] - true_track(0, (20.0, 20.0)), axis=1)
    assert err.max() < 1.0, err
    assert {"load", "flow", "train", "infer"} <= {e.stage for e in events}
    assert [e.done for e in events if e.stage == "train"][-1] == TINY_WF["train"]["iterations"]


def test_cancel_then_resume_gives_the_uninterrupted_result(shot, tmp_path):
    qs = [Query(0, 20.0, 20.0, "a"), Query(4, 30.0, 30.0, "b")]
    ref = track(shot, qs, preset=TINY_WF, cache_dir=tmp_path / "ref", seed=3)
    seen = {"train": 0}

    def progress(p):
        if p.stage == "train":
            seen["train"] = p.done

    def cancel():  # stop once training has passed iteration 5 (checkpoints every 4)
        return seen["train"] >= 5

    st = ShotTracker(shot, TINY_WF, cache_dir=tmp_path / "c", seed=3, cancel=cancel, progress=progress)
    with pytest.raises(Cancelled):
        st.prepare()
        st.train()
    ckpts = list((tmp_path / "c").rglob("iter_*.pt"))
    assert ckpts, "a cancelled training leaves a checkpoint"
    stages = {p.name.split("-")[0] for p in (tmp_path / "c").rglob("*.npz")}
    assert {"frames", "flow", "correspondences", "foreground"} <= stages
    events = []
    st2 = ShotTracker(shot, TINY_WF, cache_dir=tmp_path / "c", seed=3, progress=events.append)
    st2.prepare()
    assert all(e.message == "cached" for e in events if e.stage in ("load", "flow", "tracklets"))
    st2.train()
    first_train = next(e for e in events if e.stage == "train")
    assert first_train.done > 0  # resumed, not restarted
    out = st2.infer(qs)
    np.testing.assert_allclose(out.xy, ref.xy, atol=1e-5)
    np.testing.assert_array_equal(out.visible, ref.visible)


def test_checkpoint_of_other_settings_is_refused(shot, tmp_path):
    st = ShotTracker(shot, TINY_WF, cache_dir=tmp_path / "c")
    st.prepare()
    st.train()
    ckpt = sorted((tmp_path / "c").rglob("iter_*.pt"))[-1]
    other = ShotTracker(shot, _preset(train={"lr": 0.02}), cache_dir=tmp_path / "c")
    with pytest.raises(CacheError, match=r"other settings .*lr: 0.01 vs 0.02"):
        other.load_checkpoint(ckpt)
    st.load_checkpoint(ckpt)  # its own checkpoint loads
    assert st.trained_iterations == TINY_WF["train"]["iterations"]


def test_bad_inputs_are_one_line_user_errors(shot, tmp_path):
    one = open_shot(str(write_shot(tmp_path / "one", n=1)))
    with pytest.raises(ShotError, match="at least 2"):
        track(one, [Query(0, 1.0, 1.0)], preset=TINY_WF)
    with pytest.raises(InputError, match=r"outside the 64x48 plate"):
        track(shot, [Query(0, 64.0, 10.0, "far")], preset=TINY_WF)
    with pytest.raises(InputError, match=r"t=9 is not an image index"):
        track(shot, [Query(9, 1.0, 1.0)], preset=TINY_WF)
    with pytest.raises(InputError, match=r"mask for frame 1003 is 32x24, the plate is 64x48"):
        ShotTracker(shot, TINY_WF, masks={2: np.ones((24, 32), np.int32)})
    with pytest.raises(ConfigError, match=r"train.iterations"):
        ShotTracker(shot, _preset(train={"iterations": 0}))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            ShotTracker(shot, TINY_WF, device="cuda")


def test_missing_weights_fail_before_any_frame_is_read(shot, tmp_path, monkeypatch):
    monkeypatch.setenv("DTVFX_OFFLINE", "1")
    events = []
    st = ShotTracker(shot, {**TINY_DINO, "weights": str(tmp_path / "nope.pth")}, progress=events.append)
    with pytest.raises(WeightsError, match="nope.pth"):
        st.prepare()
    assert not [e for e in events if e.stage == "load"]


def test_weight_check_finds_the_cache_entries_the_stages_wrote(shot, tmp_path, monkeypatch):
    """ShotTracker._key is the one maker of stage keys: after a prepare, the weight check (run before any
    frame is read) finds the features and flow entries - flow on its own raster here - and asks for no
    weights; a fresh cache asks for the DINO weights."""
    from dino_tracker_vfx.tracker.preprocess import stages as prep

    preset = {**TINY_DINO, "flow": {"method": "dis", "height": 96}}
    asked = []
    real = prep.check_weights
    monkeypatch.setattr(prep, "check_weights", lambda cfg, need_dino, need_raft, progress=None:
                        asked.append((need_dino, need_raft)) or real(cfg, need_dino, need_raft, progress))
    st = ShotTracker(shot, preset, cache_dir=tmp_path / "c")
    assert st.flow_wh != st.work_wh
    st.prepare()
    assert st.keys["frames"] == st._key("frames", [], st.work_wh)
    assert st.keys["flow"] == st._key("flow", [st._key("frames", [], st.flow_wh)])
    assert st.keys["features"] == st._key("features", [st.keys["frames"]])
    ShotTracker(shot, preset, cache_dir=tmp_path / "c").prepare()
    assert asked == [(True, True), (False, False)]


def test_masks_steer_the_foreground(shot):
    m = np.zeros((48, 64), np.int32)
    m[10:30, 20:40] = 2
    st = ShotTracker(shot, TINY_WF, masks={0: m})
    st.prepare()
    assert st.fg.shape == (T, 48, 64) and st.fg[0, 20, 30] and not st.fg[0, 40, 5]


def test_dino_pipeline_with_a_random_vit_and_features(shot, tmp_path):
    st = ShotTracker(shot, TINY_DINO, cache_dir=tmp_path / "c")
    st.prepare()
    assert st.dino.shape[:2] == (T, 384) and st.dino.dtype == torch.float16
    assert st.bb_pairs is not None
    st.train()
    tr = st.infer([Query(1, 30.0, 20.0, "p")])
    assert tr.xy.shape == (1, T, 2) and np.isfinite(tr.xy).all()
    f, centres, resize = st.features(2)
    h, w = st.grid().hw
    # stride geometry: 14 px patches every 7 px on the 63x49 working raster, centres at 6.5 + 7k working px
    assert st.work_wh == (63, 49) and (h, w) == ((49 - 14) // 7 + 1, (63 - 14) // 7 + 1)
    assert f.shape == (384, h, w) and f.dtype == np.float32 and centres.shape == (h * w, 2)
    gx, gy = np.meshgrid(6.5 + 7.0 * np.arange(w), 6.5 + 7.0 * np.arange(h))
    np.testing.assert_allclose(centres, np.stack([gx, gy], -1).reshape(-1, 2))  # working px
    assert resize.plate_wh == (64, 48) and resize.work_wh == st.work_wh
    raw = ShotTracker(shot, {"base": "raw-dino", "backbone": "dinov2_vits14", "layer": 1, "weights": "random",
                             "working_height": 48, "amp": False})
    out = raw.infer([Query(1, 30.0, 20.0)])  # no training for the baseline
    assert raw.trained_iterations == 0 and out.visible[0, 1]
    with pytest.raises(ConfigError, match="no optical flow"):
        raw.flow_signals([Query(1, 30.0, 20.0)])


def test_dino_features_move_with_the_picture(tmp_path):
    """Patch features (a random ViT, refined by the briefly trained CNN) are local: a picture moved by one
    patch step (7 px on a 63x49 plate that is its own working raster) gives the same feature one patch over,
    far closer than its neighbour's; every patch's nearest neighbour in the next image is the moved one."""
    moved = open_shot(str(write_shot(tmp_path / "plates", n=2, w=63, h=49, shift=(7.0, 0.0))))
    st = ShotTracker(moved, {**TINY_DINO, "working_height": 49})
    st.prepare()
    f0, c0, _ = st.features(0)
    f1, c1, _ = st.features(1)
    np.testing.assert_array_equal(c0, c1)
    same = np.linalg.norm(f1[:, :, :-1] - f0[:, :, 1:], axis=0)  # content at column j in 0 is at j - 1 in 1
    other = np.linalg.norm(f0[:, :, 1:] - f0[:, :, :-1], axis=0)
    assert same.max() < 0.25 * other.min()
    a = f0[:, :, 1:].reshape(384, -1)
    b = f1.reshape(384, f1.shape[1], f1.shape[2])
    d = ((a.T[:, :, None] - b.reshape(384, -1)[None]) ** 2).sum(1)  # every patch of 0 against every patch of 1
    hh, ww = np.divmod(d.argmin(1), f1.shape[2])
    want_y, want_x = np.divmod(np.arange(a.shape[1]), f0.shape[2] - 1)
    assert np.array_equal(hh, want_y) and np.array_equal(ww, want_x)  # nearest neighbour: the moved patch


def test_cli_track_writes_tracks_and_reports_bad_input(shot, tmp_path, capsys):
    from dino_tracker_vfx.cli import main

    q = write_queries(tmp_path / "q.csv", [("a", 0, 20, 20, "g"), ("b", 2, 30.5, 10, "")])
    preset = tmp_path / "tiny.yaml"
    preset.write_text(json.dumps(TINY_WF))  # JSON is YAML
    out = tmp_path / "out" / "tracks.csv"
    rc = main(["track", shot.source, "--queries", str(q), "--preset", str(preset), "--cache", str(tmp_path / "c"),
               "--out", str(out)])
    assert rc == 0 and out.is_file()
    tr = TrackSet.load(out)
    assert tr.names == ["a", "b"] and tr.xy.shape == (2, T, 2)
    assert "2 tracks x 6 images" in capsys.readouterr().out
    bad = write_queries(tmp_path / "bad.csv", [("a", 0, 200, 20)])
    rc = main(["track", shot.source, "--queries", str(bad), "--preset", str(preset), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "bad.csv" in err and "outside" in err
    rc = main(["track", shot.source, "--queries", str(q), "--preset", "nope"])
    assert rc == 2 and "unknown preset 'nope'" in capsys.readouterr().err


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_pipeline_matches_the_cpu_one(shot, monkeypatch):
    """The same pipeline on CUDA and on CPU gives the same tracks to 0.1 px. Both run in float32 (no bf16
    autocast, float32 feature maps, TF32 off), the model is initialised from one seed and the samples from one
    numpy generator, so the devices differ only by the summation order of their float32 kernels (relative
    ~1e-6): that moves a soft-argmax position by far less than 0.1 px, while any real device bug (a lost
    stride, a half-pixel offset, a wrong dtype) moves it by 0.5 px or more. bf16 autocast (amp: true) is a
    different computation, not a device difference, and is not compared here."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    qs = [Query(0, 20.0, 20.0, "a"), Query(3, 40.0, 25.0, "b")]
    p = {**TINY_DINO, "amp": False, "features_dtype": "float32"}
    a = track(shot, qs, preset=p, device="cuda")
    b = track(shot, qs, preset=p, device="cpu")
    assert np.abs(a.xy - b.xy).max() < 0.1
    np.testing.assert_array_equal(a.visible, b.visible)


@pytest.mark.slow
def test_benchmark_runs_its_tiny_config(tmp_path):
    """One variant of the tiny config in its subprocess (a few seconds: one torch import, 4 frames, one
    measured iteration): every stage timed, peak memory per stage, tracks of the asked shape."""
    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    out = tmp_path / "bench.json"
    p = subprocess.run([sys.executable, "benchmarks/bench_tracker.py", "--config", "tiny", "--variants", "optimised",
                        "--frames", "4", "--iters", "1", "--queries", "3", "--threads", "1", "--json", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=repo)
    assert p.returncode == 0, p.stderr[-2000:]
    (r,) = json.loads(out.read_text())["results"]
    assert r["variant"] == "optimised" and r["frames"] == 4 and r["train_iters_measured"] == 1
    assert set(r["preprocess_stages_s"]) == {"frames", "flow", "correspondences", "features", "foreground",
                                             "best_buddies"}
    assert set(r["infer_stages_s"]) == {"refine_features", "infer", "occlusion"}
    assert all(v >= 0 for v in [*r["preprocess_stages_s"].values(), *r["infer_stages_s"].values()])
    assert r["preprocess_s"] > 0 and r["train_s_per_iter"] > 0 and r["infer_s"] > 0
    assert r["preprocess_peak_mb"] > 0 and r["train_peak_mb"] > 0 and r["infer_peak_mb"] > 0
    assert r["train_extrapolated_s"] == pytest.approx(r["train_s_per_iter"] * 10000)
    assert r["tracks_shape"] == [3, 4, 2]
    assert "| optimised |" in p.stdout


def test_benchmark_table_compares_the_two_variants():
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_tracker import _table

    rows = [{"variant": "optimised", "preprocess_s": 2.0, "train_s_per_iter": 0.1, "infer_s": 0.5},
            {"variant": "plain", "preprocess_s": 3.0, "train_s_per_iter": 0.3, "infer_s": None}]
    last = _table(rows).splitlines()[-1].split("|")
    assert last[1].strip() == "plain / optimised"
    assert [c.strip() for c in last[2:5]] == ["1.50x", "3.00x", "-"]


def test_drift_correction_runs_with_raft_chains_on_dis_defaults(shot, tmp_path, monkeypatch):
    """The direct flows of drift correction are DIS (seeded by the chain) whatever flow.method chained the
    shot; with RAFT they take DIS's defaults, not RAFT's ``iters``."""
    from torchvision.models.optical_flow import raft_small

    from dino_tracker_vfx.tracker.infer import drift

    torch.manual_seed(0)
    w = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), w)
    seen = {}
    real = drift.correct_drift

    def spy(frames, flow, t_q, xy_q, **kw):  # the settings are keyword-only
        seen["frames"], seen["method"] = frames.shape, flow.method
        seen["dis_params"] = kw["dis_params"]
        return real(frames, flow, t_q, xy_q, **kw)

    monkeypatch.setattr(drift, "correct_drift", spy)
    cfg = {**TINY_DINO, "flow": {"method": "raft_small", "weights": str(w), "params": {"iters": 2}},
           "infer": {**TINY_DINO["infer"], "flow_guided": True, "drift_correct": True}}
    st = ShotTracker(shot, cfg)
    tr = st.infer([Query(0, 30.0, 20.0, "p")])
    fw, fh = st.flow_wh
    assert seen == {"frames": (T, fh, fw, 3), "method": "raft_small", "dis_params": None}
    assert tr.xy.shape == (1, T, 2) and np.isfinite(tr.xy).all()


def test_flow_guided_occlusion_settings_reach_the_fusion(shot, monkeypatch):
    from dino_tracker_vfx.tracker.infer import flow_guided as fusion

    seen = {}
    real = fusion.flow_guided_visibility

    def spy(sig, t_q, **kw):  # the tunables are keyword-only
        seen["fb_scale"], seen["fail_run"] = kw["occ_fb_scale"], kw["fail_run"]
        return real(sig, t_q, **kw)

    monkeypatch.setattr(fusion, "flow_guided_visibility", spy)
    cfg = _preset(infer={"flow_guided": True, "occlusion_fb_scale": 3.5, "occlusion_fail_run": 4})
    ShotTracker(shot, cfg).infer([Query(0, 20.0, 20.0)])
    assert seen == {"fb_scale": 3.5, "fail_run": 4}


def test_flow_signals_follow_the_motion_and_infer_reports_them(shot):
    """The flow signals of a texture moving (-2, -1) px per frame follow its exact motion; a point that
    leaves the frame at t = 4 is outside there, and infer reports exactly that: visible (high confidence
    along an unbroken, well-matching chain; 1 at the query) while inside, hidden (confidence at most 0.5,
    halved) once out, positions = the signals'."""
    # the flow-guided stage's own output: plate refinement (which comes after it) off
    cfg = _preset(infer={"flow_guided": True, "drift_correct": True, "occlusion_fb_scale": 1.0},
                  refine={"enabled": False})
    st = ShotTracker(shot, cfg)
    qs = [Query(0, 20.0, 20.0), Query(4, 50.0, 30.0), Query(0, 6.0, 20.0)]  # the third: x = 6, 4, 2, 0, -2, -4
    tr = st.infer(qs)
    sig = st.flow_signals(qs)
    T_ = sig.fb.shape[1]
    assert T_ == T and sig.xy.shape == (3, T, 2) and sig.cos.shape == sig.dist.shape == sig.inside.shape == (3, T)
    truth = np.stack([true_track(q.t, (q.x, q.y)) for q in qs])
    inside = (truth[..., 0] >= 0) & (truth[..., 0] <= 63) & (truth[..., 1] >= 0) & (truth[..., 1] <= 47)
    assert inside[2].tolist() == [True] * 4 + [False] * 2
    np.testing.assert_array_equal(np.asarray(sig.inside), inside)
    xy = st.resize.to_plate(sig.xy.double().numpy())
    assert np.linalg.norm(xy - truth, axis=-1)[inside].max() < 0.5
    assert float(sig.fb.max()) < 0.1 * st.cfg["flow.fb_thresh"]  # forward and backward flow agree everywhere
    np.testing.assert_array_equal(tr.visible, inside)
    assert np.all(tr.confidence[inside] > 0.8) and np.all(tr.confidence[~inside] <= 0.5)
    assert [tr.confidence[n, q.t] for n, q in enumerate(qs)] == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(tr.xy, xy, atol=1e-4)  # (at the query frames both are the query itself)
