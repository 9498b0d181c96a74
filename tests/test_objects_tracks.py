"""Object tracks: point sampling, robust centroid (offset to the mask centroid, outliers, similarity),
visibility rule, smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from dino_tracker_vfx.errors import ConfigError
from dino_tracker_vfx.objects.centroids import CentroidParams, mask_box, object_track_from_points
from dino_tracker_vfx.objects.sampling import sample_points
from dino_tracker_vfx.objects.smoothing import parse_smooth, savgol, smooth_series


# ------------------------------------------------------------------------------------------- sampling
def test_sampling_spreads_points_inside_the_eroded_mask_and_prefers_texture():
    H, W = 80, 120
    mask = np.zeros((H, W), bool)
    mask[10:70, 10:110] = True
    img = np.full((H, W, 3), 0.5, np.float32)
    rng = np.random.default_rng(0)
    img[:, 60:] = rng.random((H, 60, 3)).astype(np.float32)  # right half textured, left half flat
    pts = sample_points(mask, img, 24)
    assert pts.shape == (24, 2)
    x, y = pts[:, 0].astype(int), pts[:, 1].astype(int)
    assert mask[y, x].all()
    e = 3  # default erosion: clip(0.05 * sqrt(6000), 1, 8) = 4 -> at least 3 px from the border
    assert (x >= 10 + e).all() and (x <= 109 - e).all() and (y >= 10 + e).all() and (y <= 69 - e).all()
    assert len({(a, b) for a, b in zip(x, y)}) == 24
    d = np.linalg.norm(pts[:, None] - pts[None], axis=2) + np.eye(24) * 1e9
    assert d.min() >= 8  # spread out, not clumped
    assert (x >= 60).sum() > (x < 60).sum()  # more where it is textured
    assert (x < 60).sum() >= 5  # but flat areas are still covered
    np.testing.assert_array_equal(pts, sample_points(mask, img, 24))  # deterministic


def test_sampling_small_objects():
    m = np.zeros((20, 20), bool)
    m[5, 5] = m[5, 6] = m[6, 5] = True
    pts = sample_points(m, None, 10)
    assert len(pts) == 3 and {tuple(p) for p in pts} == {(5.0, 5.0), (6.0, 5.0), (5.0, 6.0)}
    assert sample_points(np.zeros((4, 4), bool), None, 5).shape == (0, 2)


# ------------------------------------------------------------------------------------------- centroids
def _points(N=20, T=6, seed=0):
    rng = np.random.default_rng(seed)
    p0 = rng.uniform([100, 50], [160, 110], size=(N, 2))
    return p0


def test_translation_follows_the_mask_centroid_not_the_points_centroid_and_rejects_outliers():
    N, T = 20, 6
    p0 = _points(N, T)
    c0 = np.array([120.0, 70.0])  # deliberately not the points' centroid
    assert np.linalg.norm(p0.mean(0) - c0) > 5
    shift = np.array([[3.0 * t, -2.0 * t] for t in range(T)])
    xy = p0[:, None, :] + shift[None]
    xy[:3, 2:] += np.array([40.0, 25.0])  # three points jump onto the background
    vis = np.ones((N, T), bool)
    conf = np.full((N, T), 0.8, np.float32)
    obj, inl = object_track_from_points(xy, vis, conf, 0, c0, [100, 50, 140, 90],
                                        CentroidParams(motion_model="translation"))
    np.testing.assert_allclose(obj.centroid, c0 + shift, atol=1e-9)
    np.testing.assert_allclose(obj.bbox[5], [115, 40, 155, 80], atol=1e-9)
    assert not inl[:3, 2:].any() and inl[3:].all()
    assert obj.visible.all()
    assert obj.confidence[3] == pytest.approx(17 * 0.8 / 20, abs=1e-6)


def test_similarity_model_recovers_scale_and_rotation():
    N, T = 16, 5
    p0 = _points(N, T, seed=1)
    c0 = np.array([125.0, 85.0])
    xy = np.zeros((N, T, 2))
    truth = np.zeros((T, 2))
    for t in range(T):
        s, a, tr = 1 + 0.1 * t, 0.05 * t, np.array([5.0 * t, 2.0 * t])
        R = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        xy[:, t] = (p0 - 130) @ R.T + 130 + tr
        truth[t] = (c0 - 130) @ R.T + 130 + tr
    xy[0, 3] += 30  # an outlier
    obj, _ = object_track_from_points(xy, np.ones((N, T), bool), np.ones((N, T)), 0, c0)
    np.testing.assert_allclose(obj.centroid, truth, atol=1e-6)
    obj_t, _ = object_track_from_points(xy, np.ones((N, T), bool), np.ones((N, T)), 0, c0,
                                        params=CentroidParams(motion_model="translation"))
    assert np.abs(obj_t.centroid[4] - truth[4]).max() > 1.0  # translation alone cannot follow a zoom


def test_visibility_keyframe_follows_the_fraction_of_visible_points():
    N, T = 10, 5
    p0 = _points(N, T)
    xy = np.repeat(p0[:, None], T, axis=1)
    vis = np.ones((N, T), bool)
    vis[:8, 2] = False  # 2 of 10 visible: below 0.3
    vis[:7, 3] = False  # 3 of 10: exactly 0.3
    vis[:, 4] = False
    obj, _ = object_track_from_points(xy, vis, vis.astype(float), 0, p0.mean(0))
    assert obj.visible.tolist() == [True, True, False, True, False]
    assert np.isfinite(obj.centroid[2]).all()  # still positioned from the visible points
    assert np.isnan(obj.centroid[4]).all() and obj.confidence[4] == 0
    with pytest.raises(ConfigError):
        CentroidParams(min_visible_fraction=0).validate()


def test_mask_box():
    m = np.zeros((10, 10), bool)
    m[2:5, 3:8] = True
    assert mask_box(m).tolist() == [3, 2, 7, 4]


# ------------------------------------------------------------------------------------------- smoothing
def test_savgol_keeps_quadratics_and_reduces_noise():
    t = np.arange(30, dtype=float)
    quad = np.stack([0.1 * t ** 2 - t, 3 * t + 1], -1)
    np.testing.assert_allclose(savgol(quad, 9, 2), quad, atol=1e-8)  # incl. the run ends
    rng = np.random.default_rng(0)
    noisy = quad + rng.normal(0, 1.0, quad.shape)
    sm = savgol(noisy, 9, 2)
    assert np.abs(sm - quad).std() < 0.7 * np.abs(noisy - quad).std()


def test_smoothing_runs_split_at_gaps_and_one_euro_reduces_jitter():
    rng = np.random.default_rng(1)
    x = np.stack([np.full(40, 50.0), np.full(40, 20.0)], -1) + rng.normal(0, 1.0, (40, 2))
    x[15:18] = np.nan
    for spec in ("savgol", "one-euro", "savgol:window=5,order=1", "one-euro:min_cutoff=0.5,beta=0"):
        s = smooth_series(x, parse_smooth(spec), fps=24)
        assert np.isnan(s[15:18]).all() and np.isfinite(s[:15]).all() and np.isfinite(s[18:]).all()
        assert np.nanstd(s[20:] - [50, 20]) < 0.8 * np.nanstd(x[20:] - [50, 20])
    assert parse_smooth("none").method == "none"
    for bad in ("gauss", "savgol:window=4", "one-euro:speed=2", "savgol:window=x"):
        with pytest.raises(ConfigError):
            parse_smooth(bad)
