"""Sub-pixel refinement at plate resolution and re-acquisition after occlusion (tracker/infer/refine.py,
tracker/infer/reacquire.py), on analytic textures whose every pixel is exact (no resampling in the
renderer: a sum of sinusoids evaluated at each pixel centre through the known warp)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dino_tracker_vfx.tracker.infer.reacquire import ReacquireSettings, reacquire
from dino_tracker_vfx.tracker.infer.refine import GreyFrames, RefineSettings, confidence, refine_tracks

W, H = 320, 240
_rng = np.random.default_rng(7)
_K = 40
_ang = _rng.uniform(0, 2 * np.pi, _K)
_mag = _rng.uniform(0.02, 0.12, _K)
_FREQ = np.stack([np.cos(_ang), np.sin(_ang)], 1) * _mag[:, None]
_PHASE = _rng.uniform(0, 2 * np.pi, _K)


def texture(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The plane's grey value at plane coordinates (u, v), 0..1."""
    s = sum(np.cos(2 * np.pi * (_FREQ[k, 0] * u + _FREQ[k, 1] * v) + _PHASE[k]) for k in range(_K))
    return (0.5 + 0.12 * s / np.sqrt(_K / 2)).astype(np.float32)  # std 0.12: never clipped


def render(A: np.ndarray, b: np.ndarray, gain: float = 1.0, bias: float = 0.0) -> np.ndarray:
    """Image of the plane under ``x = A u + b`` (plane -> plate px)."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    Ai = np.linalg.inv(A)
    u = Ai[0, 0] * (x - b[0]) + Ai[0, 1] * (y - b[1])
    v = Ai[1, 0] * (x - b[0]) + Ai[1, 1] * (y - b[1])
    return np.clip(texture(u, v) * gain + bias, 0, 1).astype(np.float32)


def rot_scale(deg: float, s: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def scene(T: int, motion):
    """Frames [T, H, W] and the warp (A_t, b_t) of each image; queries are plane points seen at t=0."""
    warps = [motion(t) for t in range(T)]
    return np.stack([render(A, b) for A, b in warps]), warps


def truth(warps, q0: np.ndarray) -> np.ndarray:
    """[N, T, 2] plate positions of the points that are at ``q0`` [N, 2] in image 0."""
    A0, b0 = warps[0]
    u = (np.linalg.inv(A0) @ (q0 - b0).T).T
    return np.stack([(A @ u.T).T + b for A, b in warps], 1)


def run(frames, coarse, q, settings=None, t_q=None, visible=None):
    N, T = coarse.shape[:2]
    t_q = np.zeros(N, np.int64) if t_q is None else np.asarray(t_q)
    vis = np.ones((N, T), bool) if visible is None else visible
    return refine_tracks(GreyFrames(frames), coarse, vis, np.full((N, T), 0.7, np.float32), t_q, q,
                         settings or RefineSettings())


def off_by(gt: np.ndarray, lo: float, hi: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ang = rng.uniform(0, 2 * np.pi, gt.shape[:2])
    r = rng.uniform(lo, hi, gt.shape[:2])
    c = gt + np.stack([np.cos(ang), np.sin(ang)], -1) * r[..., None]
    c[:, 0] = gt[:, 0]
    return c


Q = np.array([[100.0, 120.0], [200.3, 90.7], [160.6, 150.2], [60.25, 60.8]])


def test_subpixel_translation_is_refined_to_two_hundredths_of_a_pixel():
    frames, warps = scene(8, lambda t: (np.eye(2), np.array([0.37 * t, -0.61 * t])))
    gt = truth(warps, Q)
    coarse = off_by(gt, 1.0, 2.0)
    out = run(frames, coarse, Q)
    err = np.linalg.norm(out.xy - gt, axis=-1)
    assert np.linalg.norm(coarse - gt, axis=-1)[:, 1:].min() >= 1.0  # the coarse track is 1-2 px off
    assert err.max() < 0.02, err
    assert out.visible.all() and (out.zncc[:, 1:] > 0.99).all()
    assert (out.confidence[:, 1:] > 0.95).all()


def test_rotation_and_scale_need_the_affine_warp():
    centre = np.array([W / 2, H / 2])

    def about_centre(t):
        A = rot_scale(3.0 * t, 1.0 + 0.02 * t)
        return A, centre - A @ centre + np.array([1.3 * t, 0.4 * t])

    frames, warps = scene(10, about_centre)
    gt = truth(warps, Q)
    coarse = off_by(gt, 1.0, 2.0, seed=1)
    aff = np.linalg.norm(run(frames, coarse, Q).xy - gt, axis=-1)
    tr = np.linalg.norm(run(frames, coarse, Q, RefineSettings(warp="translation")).xy - gt, axis=-1)
    assert aff.max() < 0.05, aff  # 27 degrees and x1.18 by the last image
    assert tr[:, -1].max() > 2 * aff[:, -1].max()


def test_gain_and_bias_change_does_not_move_the_match():
    T = 6
    warps = [(np.eye(2), np.array([0.5 * t, 0.3 * t])) for t in range(T)]
    frames = np.stack([render(A, b, gain=1.0 - 0.08 * t, bias=0.04 * t) for t, (A, b) in enumerate(warps)])
    gt = truth(warps, Q)
    out = run(frames, off_by(gt, 1.0, 2.0, seed=2), Q)
    err = np.linalg.norm(out.xy - gt, axis=-1)
    assert err.max() < 0.02, err
    assert (out.zncc[:, 1:] > 0.99).all()


def test_a_featureless_pattern_keeps_the_coarse_track_with_low_confidence():
    frames, warps = scene(5, lambda t: (np.eye(2), np.array([0.5 * t, 0.0])))
    frames[:, 150:230, 230:310] = 0.4  # a flat grey card
    q = np.array([[100.0, 120.0], [270.0, 190.0]])
    gt = truth(warps, q)
    coarse = off_by(gt, 1.0, 2.0, seed=3)
    out = run(frames, coarse, q)
    assert out.flat.tolist() == [False, True]
    np.testing.assert_array_equal(out.xy[1, 1:], coarse[1, 1:])  # kept
    assert (out.confidence[1, 1:] <= 0.2).all() and (out.confidence[0, 1:] > 0.9).all()
    assert np.linalg.norm(out.xy[0] - gt[0], axis=-1).max() < 0.02


def test_a_query_near_the_plate_edge_is_refined_with_the_pattern_inside_and_said_once(caplog):
    frames, warps = scene(6, lambda t: (np.eye(2), np.array([0.45 * t, 0.2 * t])))
    q = np.array([[3.2, 120.0], [150.0, 2.5], [160.0, 100.0]])
    gt = truth(warps, q)
    with caplog.at_level(logging.WARNING):
        out = run(frames, off_by(gt, 1.0, 2.0, seed=4), q)
    said = [r.getMessage() for r in caplog.records if "plate edge" in r.getMessage()]
    assert said == ["refine: 2 queries lie within 10 px of the plate edge: refined with the part of the pattern "
                    "inside the plate"]
    assert np.linalg.norm(out.xy - gt, axis=-1).max() < 0.1  # from 1-2 px (the plate's border blurs a little)


def test_the_query_image_stays_exactly_the_query():
    frames, warps = scene(6, lambda t: (np.eye(2), np.array([0.45 * t, 0.2 * t])))
    q_at3 = truth(warps, Q)[:, 3] + 0.0
    coarse = truth(warps, Q) + 1.5  # wrong at the query's image too
    out = run(frames, coarse, q_at3, t_q=np.full(len(Q), 3))
    np.testing.assert_array_equal(out.xy[:, 3], q_at3)
    assert out.visible[:, 3].all() and (out.confidence[:, 3] == 1.0).all()
    assert np.linalg.norm(out.xy - truth(warps, Q), axis=-1).max() < 0.02  # both directions refined


def test_confidence_is_calibrated_to_the_zncc():
    c = confidence(np.array([np.nan, -1.0, 0.6, 0.8, 1.0]), 0.6)
    np.testing.assert_allclose(c, [0.0, 0.0, 0.0, 0.25, 1.0], atol=1e-6)


def _occluded_scene():
    """A plane translating; a flat square sweeps over point 0 (hidden in images 5..9, drawn in 2..12) while
    16 neighbours around it stay in view."""
    T = 16
    frames, warps = scene(T, lambda t: (np.eye(2), np.array([0.8 * t, 0.35 * t])))
    gx, gy = np.meshgrid([60.0, 120.0, 190.0, 260.0], [40.0, 70.0, 160.0, 195.0])
    q = np.vstack([[[150.3, 110.6]], np.stack([gx.ravel(), gy.ravel()], 1)])
    gt = truth(warps, q)
    sq = 30  # square side
    hidden = np.zeros((len(q), T), bool)
    touched = np.zeros(T, bool)  # the square overlaps point 0's pattern (radius 10)
    for t in range(2, 13):
        cx = gt[0, t, 0] + (t - 7) * 5.0  # passes the point at t = 7
        x0, y0 = int(round(cx - sq / 2)), int(round(gt[0, t, 1] - sq / 2))
        frames[t, y0:y0 + sq, x0:x0 + sq] = 0.3
        inside = (x0 - 0.5 <= gt[:, t, 0]) & (gt[:, t, 0] <= x0 + sq - 0.5) & \
                 (y0 - 0.5 <= gt[:, t, 1]) & (gt[:, t, 1] <= y0 + sq - 0.5)
        hidden[:, t] = inside
        touched[t] = (x0 - 11 <= gt[0, t, 0] <= x0 + sq + 10) and (y0 - 11 <= gt[0, t, 1] <= y0 + sq + 10)
    return frames, q, gt, hidden, touched


def test_an_occluded_point_is_predicted_from_its_neighbours_and_resumed_when_it_reappears():
    frames, q, gt, hidden, touched = _occluded_scene()
    T = frames.shape[0]
    assert hidden[0].any() and not hidden[0, -1] and not hidden[1:].any()
    back = np.nonzero(hidden[0])[0].max() + 1  # first image after the occlusion
    clear = np.nonzero(touched)[0].max() + 1  # first image where the square has left the point's pattern
    coarse = gt + 0.8
    coarse[:, 0] = q
    vis = ~hidden
    # the coarse track lost the point under the square: it slid off with the occluder and stayed hidden
    first = np.nonzero(hidden[0])[0].min()
    coarse[0, first:] = gt[0, first] + np.arange(T - first)[:, None] * np.array([14.0, 0.0])
    vis[0, first:] = False
    ref = run(frames, coarse, q, visible=vis)
    assert not ref.visible[0, back:].any()  # refinement alone cannot bring it back
    out, resumed = reacquire(GreyFrames(frames), ref, coarse, np.zeros(len(q), np.int64), ReacquireSettings())
    assert clear - back <= 2
    assert out.visible[0, clear:].all() and resumed[0, clear:].all()
    assert np.linalg.norm(out.xy[0, clear:] - gt[0, clear:], axis=-1).max() < 0.5
    assert not out.visible[0, hidden[0]].any()  # not while the square covers it
    # while hidden, the prediction follows the neighbours' motion (not the coarse track's slide)
    assert np.linalg.norm(out.xy[0, hidden[0]] - gt[0, hidden[0]], axis=-1).max() < 1.0
    assert out.visible[1:].all()


def test_reacquire_does_not_resume_where_the_pattern_is_gone():
    frames, q, gt, hidden, _ = _occluded_scene()
    back = np.nonzero(hidden[0])[0].max() + 1
    frames[back:, :, :] = frames[back:, ::-1, :]  # the plate after the occlusion is another picture
    vis = np.ones(hidden.shape, bool)
    vis[:, back - 3:] = False
    ref = run(frames, gt, q, visible=vis)
    out, resumed = reacquire(GreyFrames(frames), ref, gt, np.zeros(len(q), np.int64), ReacquireSettings())
    assert not resumed[:, back:].any()


def test_a_brief_dip_stays_visible_and_a_pattern_gone_for_hide_run_images_is_hidden():
    """Point 0's pattern is blotted out (flat grey) in images 3-4 (2 images) and 8-12 (5 images): with
    hide_run 3 the brief dip stays visible with a low confidence (motion blur, a turn), the long one is hidden;
    with hide_run 1 both are."""
    from dino_tracker_vfx.tracker.infer.refine import FEATURELESS_CONFIDENCE, long_runs

    T = 14
    frames, warps = scene(T, lambda t: (np.eye(2), np.array([0.6 * t, 0.3 * t])))
    gt = truth(warps, Q)
    for t in (3, 4, 8, 9, 10, 11, 12):
        x, y = np.round(gt[0, t]).astype(int)
        frames[t, y - 12:y + 13, x - 12:x + 13] = 0.45
    dips = [3, 4]
    gone = [8, 9, 10, 11, 12]
    out = run(frames, gt, Q, RefineSettings(hide_run=3))
    assert out.visible[0, dips].all() and not out.visible[0, gone].any()
    assert (out.confidence[0, dips] <= FEATURELESS_CONFIDENCE).all()
    assert out.visible[1:].all()
    every = run(frames, gt, Q, RefineSettings(hide_run=1))
    assert not every.visible[0, dips + gone].any()
    m = np.array([[0, 1, 1, 0, 1, 1, 1, 0]], bool)
    assert long_runs(m, 3).tolist() == [[False, False, False, False, True, True, True, False]]


def test_neighbours_that_move_with_the_point_are_told_from_the_occluder_over_it():
    """Point 0 moves (1, 0.5) px per image with 6 tracks on its surface far away; 6 tracks on a card sliding
    past at (30, 0) px per image are its nearest neighbours. same_surface keeps the first 6 only, and the
    prediction from them lands on the point, where the nearest-neighbour fit follows the card."""
    from dino_tracker_vfx.tracker.infer.reacquire import map_point, predict_from_neighbours, same_surface

    T = 12
    t = np.arange(T)[:, None]
    surf = np.array([[100.0, 80.0], [300.0, 90.0], [120.0, 260.0], [320.0, 250.0], [210.0, 40.0], [200.0, 300.0]])
    card = np.array([[201.0, 173.0], [215.0, 170.0], [205.0, 160.0], [205.0, 180.0], [190.0, 185.0], [220.0, 155.0]])
    p0 = np.array([205.0, 171.0])
    xy = np.concatenate([(p0 + t * [1.0, 0.5])[None], surf[:, None] + t * [1.0, 0.5], card[:, None] + (t - 6) * [30.0, 0.0]])
    trust = np.ones(xy.shape[:2], bool)
    matched = np.ones(xy.shape[:2], bool)
    keep = same_surface(xy, trust, matched, 0, 6)
    assert keep.tolist() == [False] + [True] * 6 + [False] * 6
    M = predict_from_neighbours(xy[:, 6], trust[:, 6], xy[:, 9], trust[:, 9], xy[0, 6], 6, exclude=0, allow=keep)
    assert np.abs(map_point(M, xy[0, 6]) - xy[0, 9]).max() < 1e-6
    M_near = predict_from_neighbours(xy[:, 6], trust[:, 6], xy[:, 9], trust[:, 9], xy[0, 6], 6, exclude=0)
    assert np.abs(map_point(M_near, xy[0, 6]) - xy[0, 9])[0] > 80  # dragged along by the card
    # nothing to compare (the point was never matched near t_ref): every track may serve
    assert same_surface(xy, trust, np.zeros_like(matched), 0, 6) is None


def test_prediction_on_a_plane_in_perspective_is_a_homography():
    """Tracks on a ground plane seen in perspective: a homography maps a far point exactly, an affine fit to
    the same 8 neighbours misses it by pixels."""
    import cv2

    from dino_tracker_vfx.tracker.infer.reacquire import map_jacobian, map_point, predict_from_neighbours

    H = np.array([[1.02, 0.05, 4.0], [0.01, 1.1, -3.0], [2e-4, 6e-4, 1.0]])
    src = np.array([[50.0, 300.0], [400.0, 320.0], [120.0, 420.0], [350.0, 440.0], [60.0, 200.0],
                    [420.0, 210.0], [230.0, 260.0], [240.0, 380.0]])
    dst = cv2.perspectiveTransform(src[:, None], H)[:, 0]
    p = np.array([600.0, 100.0])
    ok = np.ones(len(src), bool)
    M = predict_from_neighbours(src, ok, dst, ok, p, 8)
    want = cv2.perspectiveTransform(p[None, None], H)[0, 0]
    assert np.abs(map_point(M, p) - want).max() < 1e-3  # OpenCV's float32 arithmetic
    A, _ = cv2.estimateAffine2D(src[:, None], dst[:, None])
    assert np.abs(A[:, :2] @ p + A[:, 2] - want).max() > 3
    # the pattern's local warp is the map's derivative there (finite differences)
    e = 1e-4
    J = np.stack([(map_point(M, p + [e, 0]) - map_point(M, p - [e, 0])) / (2 * e),
                  (map_point(M, p + [0, e]) - map_point(M, p - [0, e])) / (2 * e)], 1)
    np.testing.assert_allclose(map_jacobian(M, p), J, atol=1e-6)
def test_a_point_that_left_the_plate_is_never_visible_after_refinement_or_reacquisition():
    """A plane sliding right: point 0 leaves the plate at the right edge (image 7 on). Off the plate its
    pattern still matches the part left inside the plate (ZNCC over the in-plate pixels, borders replicated
    in the search) at a position off the plate: that is never a visible point (vtest: a walker leaving the
    shot was resumed 2-9 px beyond the edge at ZNCC 0.91-0.98). Point 1 stays inside as a neighbour."""
    T = 12
    frames, warps = scene(T, lambda t: (np.eye(2), np.array([6.0 * t, 0.0])))
    q = np.array([[W - 40.3, 100.6], [60.2, 150.4], [120.7, 60.3], [90.1, 190.8], [150.5, 120.2]])
    gt = truth(warps, q)
    off = (gt[..., 0] > W - 0.5)
    assert off[0].sum() >= 4 and not off[1:].any()
    vis = ~off  # the coarse rule: off the raster, hidden
    ref = run(frames, gt, q, visible=vis)
    out, resumed = reacquire(GreyFrames(frames), ref, gt, np.zeros(len(q), np.int64), ReacquireSettings())
    x = out.xy[..., 0]
    assert not (out.visible & (x > W - 0.5)).any(), (out.xy[0, :, 0].round(1), out.visible[0])
    assert not resumed[0, off[0]].any()
    # the refinement alone keeps no match off the plate visible either (coarse visible up to the edge)
    edge = gt.copy()
    edge[0, :, 0] = np.minimum(gt[0, :, 0], W - 1.0)  # a coarse track stuck at the border
    ref2 = run(frames, edge, q)
    assert not (ref2.visible & (ref2.xy[..., 0] > W - 0.5)).any(), (ref2.xy[0, :, 0].round(1), ref2.visible[0])
    assert out.visible[1:].all() and ref2.visible[1:].all()


@pytest.mark.parametrize("bad", ["xy", "t_q"])
def test_shapes_are_checked_at_the_boundary(bad):
    from dino_tracker_vfx.errors import ShapeError

    frames = np.zeros((3, 20, 20), np.float32)
    xy = np.zeros((2, 3, 2))
    t_q = np.zeros(2, np.int64)
    if bad == "xy":
        xy = np.zeros((2, 4, 2))
    else:
        t_q = np.zeros(3, np.int64)
    with pytest.raises(ShapeError, match="refine"):
        refine_tracks(GreyFrames(frames), xy, np.ones((2, 3), bool), np.ones((2, 3), np.float32), t_q,
                      np.zeros((2, 2)), RefineSettings())


# ---------------------------------------------------------------------------------------------- the tracker
def _plate_shot(T: int = 8):
    """A 320x240 uint8 shot of the plane translating by (0.73, 0.41) px per image, and its warps."""
    from dino_tracker_vfx.shots import from_array

    warps = [(np.eye(2), np.array([0.73 * t, 0.41 * t])) for t in range(T)]
    rgb = np.stack([np.repeat(np.round(render(A, b) * 255)[..., None], 3, -1) for A, b in warps]).astype(np.uint8)
    return from_array(rgb), warps


def test_every_preset_refines_and_refine_settings_touch_no_cache_key():
    from dino_tracker_vfx.tracker.config import STAGE_FIELDS
    from dino_tracker_vfx.tracker.presets import load_preset, preset_names

    names = preset_names()
    assert {"paper", "balanced", "fast", "cpu-preview", "raw-dino"} <= set(names)
    for name in names:
        cfg = load_preset(name)
        assert cfg["refine.enabled"] and cfg["refine.reacquire"], name
    assert not any(f == "refine" or f.startswith("refine.") for fields in STAGE_FIELDS.values() for f in fields)
    a, b = load_preset("cpu-preview"), load_preset({"base": "cpu-preview", "refine": {"patch_radius": 6}})
    assert all(a.stage_settings(s) == b.stage_settings(s) for s in STAGE_FIELDS)


def test_bad_refine_settings_name_the_field():
    from dino_tracker_vfx.errors import ConfigError
    from dino_tracker_vfx.tracker.presets import load_preset

    with pytest.raises(ConfigError, match=r"refine\.warp: must be one of translation, affine, got 'perspective'"):
        load_preset({"base": "cpu-preview", "refine": {"warp": "perspective"}})
    with pytest.raises(ConfigError, match=r"refine\.search_radius: must be a number in 0\.5\.\.1000 or null"):
        load_preset({"base": "cpu-preview", "refine": {"search_radius": 0}})


@pytest.mark.parametrize("branch", ["flow_guided", "dino"])
def test_the_tracker_refines_at_plate_resolution_in_both_branches(branch):
    import copy

    from _tracker_helpers import TINY_WF
    from dino_tracker_vfx.tracker.api import ShotTracker
    from dino_tracker_vfx.tracks import Query

    shot, warps = _plate_shot()
    q = np.array([[100.3, 80.6], [180.0, 150.2], [240.7, 60.1]])
    gt = truth(warps, q)
    if branch == "flow_guided":
        p = copy.deepcopy(TINY_WF)
        p["infer"].update(flow_guided=True)
    else:  # the learned tracker's own positions and visibility (a random ViT: coarse, often wrong)
        p = {"base": "paper", "name": "tiny-dino", "backbone": "dinov2_vits14", "layer": 1, "weights": "random",
             "working_height": 48, "amp": False, "delta": {"hidden": [8, 16, 16]}, "flow": {"method": "dis"},
             "foreground": {"saliency_layer": 1}, "infer": {"argmax_radius": 10.0},
             "train": {"iterations": 2, "frames_per_step": 3, "flow_pairs": 32, "bb_pairs": 32,
                       "cyc_points_per_pair": 8, "rfn_after": 0.3, "checkpoint_every": 2}}
    qs = [Query(0, float(x), float(y), f"p{i}") for i, (x, y) in enumerate(q)]
    st = ShotTracker(shot, p, device="cpu")
    st.prepare()
    st.train()
    off = ShotTracker(shot, {**copy.deepcopy(p), "refine": {"enabled": False}}, device="cpu")
    off.frames, off.flow, off.flow_frames, off.dino, off.model = st.frames, st.flow, st.flow_frames, st.dino, st.model
    off.fg, off.store = st.fg, None
    coarse = off.infer(qs)
    tr = st.infer(qs)
    err = np.linalg.norm(tr.xy - gt, axis=-1)
    err0 = np.linalg.norm(coarse.xy - gt, axis=-1)
    assert "plate_refine" in st.timings and "plate_refine" not in off.timings
    np.testing.assert_array_equal(tr.xy[:, 0], q)  # the query image stays the query
    assert tr.visible[:, 0].all() and (tr.confidence[:, 0] == 1).all()
    if branch == "dino":  # a random ViT's coarse tracks are too far off to match: the stage must still be
        # exactly refine + reacquire applied to the DINO branch's plate tracks
        from dino_tracker_vfx.tracker.infer.reacquire import ReacquireSettings, reacquire
        from dino_tracker_vfx.tracker.infer.refine import auto_search_radius

        rad = auto_search_radius(shot.size[0] / st.work_wh[0])
        frames = GreyFrames(shot)
        t_q = np.zeros(len(q), np.int64)
        r = refine_tracks(frames, coarse.xy, coarse.visible, coarse.confidence, t_q, q,
                          RefineSettings.from_config(st.cfg, rad))
        r, _ = reacquire(frames, r, coarse.xy, t_q, ReacquireSettings.from_config(st.cfg, rad))
        assert not np.allclose(r.confidence, coarse.confidence)  # the pattern residual's confidence
        np.testing.assert_allclose(tr.xy, r.xy, atol=1e-9)
        np.testing.assert_array_equal(tr.visible, r.visible)
        np.testing.assert_allclose(tr.confidence, r.confidence, atol=1e-6)
        return
    done = st.refined.refined & (st.refined.zncc >= 0.97)  # matched clearly
    done[:, 0] = False
    assert done[:, 1:].all() and np.median(err0[:, 1:]) > 0.1
    assert err[done].max() < 0.05, err


def test_a_pattern_seen_a_quarter_larger_is_placed_by_the_affine_stage():
    """The plane seen 1.3x larger (a ground plane the camera drives towards), each point with a bright spot
    7 px to one side in its pattern: with the pattern's shape held at its reference, translation alone
    settles about a pixel towards the spot; the affine stage moves further than a pixel from there (its
    reach grows with the change of shape; a fixed 1-px reach refused it) and lands within 0.1 px."""
    from dino_tracker_vfx.tracker.infer.refine import lk_from, make_patterns

    q = np.array([[118.0, 97.0], [201.4, 143.3], [140.2, 150.6]])
    spots = q + np.array([[7.0, 0.0], [0.0, -7.0], [-5.0, 5.0]])

    def plate(A, b):
        y, x = np.mgrid[0:H, 0:W].astype(np.float64)
        Ai = np.linalg.inv(A)
        u = Ai[0, 0] * (x - b[0]) + Ai[0, 1] * (y - b[1])
        v = Ai[1, 0] * (x - b[0]) + Ai[1, 1] * (y - b[1])
        img = 0.5 * texture(u, v)
        for sx, sy in spots:
            img = img + 0.45 * np.exp(-((u - sx) ** 2 + (v - sy) ** 2) / (2 * 2.0 ** 2))
        return img.astype(np.float32)

    centre = np.array([W / 2, H / 2])
    A1 = rot_scale(0.0, 1.3)
    warps = [(np.eye(2), np.zeros(2)), (A1, centre - A1 @ centre + np.array([2.3, -1.1]))]
    g = GreyFrames(np.stack([plate(A, b) for A, b in warps]))
    gt = truth(warps, q)[:, 1]
    eye = np.tile(np.eye(2), (len(q), 1, 1))
    pat = make_patterns(g[0], q, eye, 10)
    start = gt + np.array([0.6, -0.4])
    c_tr, _, _ = lk_from(g[1], pat, start, eye, "translation", 20)
    c, A, z = lk_from(g[1], pat, start, eye, "affine", 20)
    assert np.linalg.norm(c_tr - gt, axis=1).min() > 0.8
    assert np.linalg.norm(c - gt, axis=1).max() < 0.1, np.linalg.norm(c - gt, axis=1)
    assert np.linalg.norm(c - c_tr, axis=1).min() > 1.0
    np.testing.assert_allclose(A, np.tile(A1, (len(q), 1, 1)), atol=0.02)


def test_a_pattern_on_a_straight_edge_has_no_distinct_peak_and_is_not_found_there():
    """A point on a long straight edge with faint texture matches almost as well anywhere along the edge
    (a kerb, a horizon): search's distinctness is near 0 there and re-acquisition's find reports nothing
    (NaN), where a textured point a few pixels off the edge has a clear peak and is found to 0.05 px."""
    from dino_tracker_vfx.tracker.infer.reacquire import MIN_DISTINCT, find
    from dino_tracker_vfx.tracker.infer.refine import make_patterns, search

    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    tex = render(np.eye(2), np.zeros(2))
    img = (np.where(y < 120.3, 0.75, 0.3) + 0.1 * (tex - 0.5)).astype(np.float32)
    img[:, 200:] = tex[:, 200:]  # a textured block right of x = 200
    g = GreyFrames(img[None].repeat(2, 0))
    q = np.array([[100.0, 120.3], [240.4, 80.7]])
    pat = make_patterns(g[0], q, np.tile(np.eye(2), (2, 1, 1)), 10)
    A0 = np.tile(np.eye(2), (2, 1, 1))
    _, score, distinct = search(g[1], pat, q + np.array([6.0, 0.0]), A0, 10.0)
    assert score[0] > 0.9 and distinct[0] < MIN_DISTINCT  # the edge: a ridge, not a peak
    assert distinct[1] > 0.1
    c, _, z = find(g[1], pat, q + np.array([6.0, 0.0]), A0, 10.0, ReacquireSettings())
    assert np.isnan(z[0]) and z[1] > 0.99
    assert np.linalg.norm(c[1] - q[1]) < 0.05


def test_same_surface_counts_only_the_tracks_trusted_at_the_image_to_predict():
    """Point 0's surface holds 6 tracks that move exactly with it (the tightest tolerance) and 3 more that
    drift 0.4 px per image from it (perspective across the surface); a card passes at 30 px per image. When
    the occluder hides the 6 exact ones at the image to predict, the 3 others serve (the looser tolerance),
    never the card; without ``usable`` the 6 hidden ones would be chosen and nothing would predict. With
    the whole surface hidden, no track is kept (not every track: the card would carry the prediction away)."""
    from dino_tracker_vfx.tracker.infer.reacquire import map_point, predict_from_neighbours, same_surface

    T = 12
    t = np.arange(T)[:, None]
    p0 = np.array([205.0, 171.0])
    exact = np.array([[190.0, 160.0], [220.0, 165.0], [200.0, 190.0], [160.0, 150.0], [250.0, 140.0],
                      [230.0, 200.0]])
    drift = np.array([[100.0, 80.0], [300.0, 90.0], [120.0, 260.0]])
    card = np.array([[215.0, 170.0], [205.0, 160.0], [190.0, 185.0]])
    v = np.array([1.0, 0.5])
    xy = np.concatenate([(p0 + t * v)[None], exact[:, None] + t * v, drift[:, None] + t * (v + [0.4, 0.0]),
                         card[:, None] + (t - 6) * [30.0, 0.0]])
    trust = np.ones(xy.shape[:2], bool)
    trust[1:7, 9] = False  # the exact six are hidden at image 9
    matched = np.ones(xy.shape[:2], bool)
    assert same_surface(xy, trust, matched, 0, 6).tolist() == [False] + [True] * 6 + [False] * 6
    keep = same_surface(xy, trust, matched, 0, 6, usable=trust[:, 9])
    assert keep.tolist() == [False] * 7 + [True] * 3 + [False] * 3
    M = predict_from_neighbours(xy[:, 6], trust[:, 6], xy[:, 9], trust[:, 9], xy[0, 6], 6, exclude=0, allow=keep)
    assert np.linalg.norm(map_point(M, xy[0, 6]) - xy[0, 9]) < 1.5  # within the surface's drift, not 90 px
    trust[7:10, 9] = False  # the whole surface hidden: only the card is in view
    none = same_surface(xy, trust, matched, 0, 6, usable=trust[:, 9])
    assert none is not None and not none.any()
    assert predict_from_neighbours(xy[:, 6], trust[:, 6], xy[:, 9], trust[:, 9], xy[0, 6], 6, exclude=0,
                                   allow=none) is None


def test_pattern_radii_grow_past_the_motion_blur():
    from dino_tracker_vfx.tracker.infer.refine import pattern_radii

    T = 5
    speeds = np.array([0.0, 10.0, 40.0, 80.0, 200.0])
    coarse = np.zeros((len(speeds), T, 2))
    coarse[:, :, 0] = speeds[:, None] * np.arange(T)[None]
    t_q = np.full(len(speeds), 2)
    # blur L = 0.5 * speed; growth L/2 - r/2 (r = 10) rounded up to even, at most 3 r: 40 px per image ->
    # L 20, growth 10 - 5 = 5 -> 6; 80 -> L 40, 20 - 5 = 15 -> 16; 200 -> 3 r
    assert pattern_radii(coarse, t_q, 10, 0.5).tolist() == [10, 10, 16, 26, 30]
    assert pattern_radii(coarse, t_q, 10, 0.0).tolist() == [10] * 5
    t_q[:] = 0  # one-sided speed at the first image
    assert pattern_radii(coarse, t_q, 10, 0.5).tolist() == [10, 10, 16, 26, 30]


def test_a_fast_smeared_mover_is_placed_better_with_a_pattern_grown_past_its_blur():
    """A textured plane crossing at 40-64 px per image under a 180-degree shutter (smears of 20-32 px, the
    speed changing): matched with the 21-px pattern the points drift off along the motion; with the pattern
    grown past the blur (refine.shutter 0.5) the median error is less than half (and the worst smaller)."""
    T = 6
    speeds = np.linspace(40.0, 64.0, T)
    x0 = np.concatenate([[0.0], np.cumsum(speeds[1:])]) - 150.0

    def blurred(t):
        L = 0.5 * speeds[t]
        offs = np.linspace(-L / 2, L / 2, int(np.ceil(L)) + 1)
        return np.mean([render(np.eye(2), np.array([x0[t] + o, 0.0])) for o in offs], axis=0)

    frames = np.stack([blurred(t) for t in range(T)])
    q = np.array([[60.4, 80.3], [75.8, 150.6], [52.2, 200.1]])
    gt = np.stack([q + np.array([x0[t] - x0[0], 0.0]) for t in range(T)], 1)
    coarse = gt + 0.8
    coarse[:, 0] = q
    inside = (gt[..., 0] > 40) & (gt[..., 0] < W - 40)
    err = {}
    for shutter in (0.0, 0.5):
        out = run(frames, coarse, q, RefineSettings(shutter=shutter, search_radius=6.0))
        err[shutter] = np.linalg.norm(out.xy - gt, axis=-1)[:, 1:][inside[:, 1:]]
    assert len(err[0.5]) >= 6
    assert np.median(err[0.5]) < 0.5 * np.median(err[0.0]), err  # 0.15 px against 0.44 when written
    assert err[0.5].max() < err[0.0].max(), err
