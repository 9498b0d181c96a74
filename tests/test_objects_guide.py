"""Mask-guided object tracks (objects.guide): points that end up on another object do not drag the box,
an object whose points are lost behind an occluder keeps / recovers its track, visibility follows the
propagated presence."""

from __future__ import annotations

import numpy as np
import pytest

from dino_tracker_vfx.errors import ConfigError, InputError
from dino_tracker_vfx.objects.centroids import mask_box, object_track_from_points
from dino_tracker_vfx.objects.guide import GuideParams, guided_object_track, point_support
from dino_tracker_vfx.objects.metrics import mask_centroid

H, W, T = 120, 200, 10
A, B = 1, 2


def _rect(lab, x0, y0, w, h, v):
    lab[max(0, y0):max(0, y0 + h), max(0, x0):max(0, x0 + w)] = v


def _grid_points(x0, y0, w, h, n=5):
    xs = np.linspace(x0 + 3, x0 + w - 4, n)
    ys = np.linspace(y0 + 3, y0 + h - 4, n)
    return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)  # [n*n, 2]


def crossing_scene(T=12):
    """A (30x40) moves right 10 px/frame in front of B (50x40, standing at x = 80..129); from frame 5 on the
    15 points of A's three right columns stay on B (a point tracker that slid onto the neighbour: the
    majority), the other 10 ride with A. From frame 9 on A has passed them and B's label shows there."""
    labels = np.zeros((T, H, W), np.int32)
    ax = [20 + 10 * t for t in range(T)]
    for t in range(T):
        _rect(labels[t], 80, 40, 50, 40, B)
        _rect(labels[t], ax[t], 40, 30, 40, A)  # A drawn last: it is in front
    p0 = _grid_points(ax[0], 40, 30, 40)
    xy = p0[:, None] + np.array([[10.0 * t, 0.0] for t in range(T)])[None]
    right = p0[:, 0] > ax[0] + 10  # 15 points
    xy[right, 5:] = xy[right, 5:6]  # held on B, which stands still
    return labels, xy, right


def test_points_on_another_object_do_not_drag_the_box():
    T = 12
    labels, xy, right = crossing_scene(T)
    N = len(xy)
    vis = np.ones((N, T), bool)
    conf = np.ones((N, T))
    m0 = labels[0] == A
    c0 = mask_centroid(m0)[0]
    truth = np.stack([mask_centroid(labels[t] == A)[0] for t in range(T)])
    old, _ = object_track_from_points(xy, vis, conf, 0, c0, mask_box(m0))
    assert np.linalg.norm(old.centroid - truth, axis=1)[9:].min() > 15  # the old rule stays on B
    new, support, _ = guided_object_track(xy, vis, conf, 0, c0, mask_box(m0), labels, A,
                                          guide=GuideParams(mask_weight=0.0))  # the points alone
    assert not support[right, 9:].any() and support[~right].all()  # the stuck points lie on B's label
    np.testing.assert_allclose(new.centroid[9:], truth[9:], atol=1e-6)  # A's own points carry it
    np.testing.assert_allclose(new.bbox[10], mask_box(labels[10] == A), atol=1e-6)
    assert new.visible.all()
    blend, _, _ = guided_object_track(xy, vis, conf, 0, c0, mask_box(m0), labels, A)  # default mask_weight
    assert np.linalg.norm(blend.centroid - truth, axis=1)[9:].max() < 1e-6


def occlusion_scene(gone=(4, 5, 6)):
    """A (30x30) moves right 8 px/frame; B passes in front and hides A completely at ``gone``; a chained-flow
    style point tracker loses every point of A at the first hidden frame and never finds them again."""
    labels = np.zeros((T, H, W), np.int32)
    ax = [20 + 8 * t for t in range(T)]
    for t in range(T):
        _rect(labels[t], ax[t], 45, 30, 30, A)
        if t in gone:
            _rect(labels[t], ax[t] - 5, 40, 40, 40, B)
    p0 = _grid_points(ax[0], 45, 30, 30, 4)
    xy = p0[:, None] + np.array([[8.0 * t, 0.0] for t in range(T)])[None]
    vis = np.ones((len(p0), T), bool)
    if gone:
        vis[:, gone[0]:] = False
    return labels, xy, vis


def test_an_object_lost_behind_an_occluder_recovers_and_visibility_follows_presence():
    gone = (4, 5, 6)
    labels, xy, vis = occlusion_scene(gone)
    conf = vis.astype(float)
    m0 = labels[0] == A
    c0 = mask_centroid(m0)[0]
    old, _ = object_track_from_points(xy, vis, conf, 0, c0, mask_box(m0))
    new, _, stats = guided_object_track(xy, vis, conf, 0, c0, mask_box(m0), labels, A)
    present = [(labels[t] == A).any() for t in range(T)]
    assert present == [t not in gone for t in range(T)]
    assert not old.visible[7:].any() and np.isnan(old.centroid[7:]).all()  # the old rule lost it for good
    assert new.visible.tolist() == present  # keyed where the propagated mask holds it, off while hidden
    truth = np.stack([mask_centroid(labels[t] == A)[0] for t in (7, 8, 9)])
    np.testing.assert_allclose(new.centroid[7:], truth, atol=1e-6)  # recovered from the mask
    np.testing.assert_allclose(new.bbox[8], mask_box(labels[8] == A))
    assert stats["present"] == present and stats["supported"][8] == 0
    assert (new.confidence[7:] >= 0.5).all()


def test_points_on_the_occluder_do_not_keep_a_hidden_object_visible():
    gone = (4, 5)
    labels, xy, _ = occlusion_scene(gone)
    vis = np.ones(xy.shape[:2], bool)  # a tracker that keeps reporting A's points... now on B
    m0 = labels[0] == A
    old, _ = object_track_from_points(xy, vis, vis.astype(float), 0, mask_centroid(m0)[0], mask_box(m0))
    new, _, _ = guided_object_track(xy, vis, vis.astype(float), 0, mask_centroid(m0)[0], mask_box(m0), labels, A)
    assert old.visible[4] and old.visible[5]
    assert not new.visible[4] and not new.visible[5] and new.visible[6]


def test_point_support_tolerance_and_bounds():
    lab = np.zeros((20, 30), np.int32)
    lab[5:15, 5:15] = A
    lab[5:15, 20:25] = B
    xy = np.array([[10.0, 10.0], [16.0, 10.0], [19.0, 10.0], [21.0, 10.0], [-3.0, 10.0], [np.nan, 1.0],
                   [10.0, 10.0]])
    vis = np.array([True, True, True, True, True, True, False])
    s = point_support(xy, vis, lab, A, tol_px=3.0)
    assert s.tolist() == [True, True, False, False, False, False, False]
    assert point_support(xy, vis, lab, A, tol_px=0.0).tolist() == [True] + [False] * 6


def test_guide_settings_and_labels_are_checked():
    with pytest.raises(ConfigError, match="mask_weight"):
        GuideParams(mask_weight=1.5).validate()
    from dino_tracker_vfx.objects.api import track_objects
    from _objects_helpers import ArrayShot, make_scene, truth_tracker

    scene = make_scene(T=4)
    shot = ArrayShot(scene.frames)
    with pytest.raises(InputError, match="guide labels are"):
        track_objects(shot, {0: scene.masks[0]}, point_tracker=truth_tracker(scene), guide_labels=scene.masks[:3])
    with pytest.raises(ConfigError, match="guide 'masks' is not one of"):
        track_objects(shot, {0: scene.masks[0]}, point_tracker=truth_tracker(scene), guide="masks")


def test_track_objects_recovers_an_object_whose_points_were_lost_with_real_propagation():
    """End to end (colour-texture propagation of the given mask): the disc leaves the picture for two
    frames and a chained-flow style tracker never finds its points again."""
    from dino_tracker_vfx.objects.api import track_objects
    from _objects_helpers import DISC, SQUARE, ArrayShot, make_scene, truth_tracker

    gone = (3, 4)
    sc = make_scene(T=8, disc_gone=gone)
    truth = truth_tracker(sc)

    def lossy(shot, queries, masks):  # disc points lost for good at the first frame without the disc
        ts = truth(shot, queries, masks)
        for n, q in enumerate(queries):
            if q.group == "obj7":
                ts.visible[n, gone[0]:] = False
        return ts

    shot = ArrayShot(sc.frames)
    old = track_objects(shot, {0: sc.masks[0]}, points_per_object=12, point_tracker=lossy, guide="none")
    new = track_objects(shot, {0: sc.masks[0]}, points_per_object=12, point_tracker=lossy)
    there = [t not in gone for t in range(8)]
    assert old.groups["obj7"].visible.tolist() == [True] * 3 + [False] * 5
    assert new.groups["obj7"].visible.tolist() == there
    err = np.linalg.norm(new.groups["obj7"].centroid[5:] - sc.centroids[DISC][5:], axis=1)
    assert (err < 3.0).all(), err
    assert new.groups[f"obj{SQUARE}"].visible.all()
    np.testing.assert_allclose(new.groups[f"obj{SQUARE}"].centroid, sc.centroids[SQUARE], atol=3.0)
    info = new.meta["objects"]["objects"]["obj7"]
    assert info["propagated_area_px"][3] == 0 and info["supported_points"][6] == 0
    assert new.meta["objects"]["guide"]["method"] == "propagate"


def test_a_leaked_propagated_mask_is_ignored():
    """The propagated mask of A bleeds over the background (area > max_area_growth x its first area) from
    frame 5: there the points alone place A, as without the guide."""
    labels, xy, vis = occlusion_scene(gone=())
    for t in range(5, T):
        labels[t, :, :100] = np.where(labels[t, :, :100] == 0, A, labels[t, :, :100])  # the left half is "A"
    m0 = labels[0] == A
    c0 = mask_centroid(m0)[0]
    vis = np.ones(vis.shape, bool)
    new, _, stats = guided_object_track(xy, vis, vis.astype(float), 0, c0, mask_box(m0), labels, A)
    old, _ = object_track_from_points(xy, vis, vis.astype(float), 0, c0, mask_box(m0))
    assert stats["leaked"] == [False] * 5 + [True] * 5
    np.testing.assert_allclose(new.centroid[5:], old.centroid[5:])
    assert np.linalg.norm(mask_centroid(labels[7] == A)[0] - old.centroid[7]) > 20  # the mask was far off
    assert new.visible.all()
