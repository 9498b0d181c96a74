"""TAP-Vid / BADJA metrics against hand-computed values and GT-as-prediction."""

from __future__ import annotations

import numpy as np
import pytest

from dino_tracker_vfx.evaluation import metrics as M
from dino_tracker_vfx.evaluation.datasets import read_gt
from dino_tracker_vfx.errors import InputError, UserError

from _eval_helpers import DEV_PKL, NPZ_DIR

NAN = np.nan


def hand_case():
    """2 queries x 4 frames on the 256 raster; expected values worked out by hand in the docstrings below."""
    qt = np.array([0, 2])
    gt = np.array([[[10, 10], [20, 20], [NAN, NAN], [30, 30]],
                   [[5, 5], [NAN, NAN], [50, 50], [60, 60]]], float)
    gv = np.array([[1, 1, 0, 1], [1, 0, 1, 1]], bool)
    pr = np.array([[[10, 10], [20.5, 20], [0, 0], [33, 34]],       # errors: -, 0.5, (occl), 5
                   [[5, 8], [7, 7], [50, 50], [60, 60]]], float)    # errors: 3, (occl), -, 0
    pv = np.array([[1, 1, 1, 1], [0, 0, 1, 1]], bool)
    return qt, gt, gv, pr, pv


def test_hand_computed_strided():
    # evaluated pairs: (0,1) (0,2) (0,3) (1,0) (1,1) (1,3); OA: ok, wrong, ok, wrong, ok, ok = 4/6
    # GT-visible pairs: errors 0.5, 5, 3, 0 -> delta_1 = delta_2 = 2/4, delta_4 = 3/4, delta_8 = delta_16 = 1
    # Jaccard (TP / (4 + FP)): d<=4: TP 2 ((0,1),(1,3)), FP 2 ((0,2) occluded, (0,3) far) -> 1/3;
    #                          d>=8: TP 3, FP 1 -> 3/5
    r = M.tapvid_metrics(*hand_case(), mode="strided")
    assert r["OA"] == pytest.approx(4 / 6, abs=1e-12)
    assert [r[f"delta_{d}"] for d in M.THRESHOLDS] == pytest.approx([0.5, 0.5, 0.75, 1, 1], abs=1e-12)
    assert [r[f"jaccard_{d}"] for d in M.THRESHOLDS] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.6, 0.6], abs=1e-12)
    assert abs(r["delta_avg"] - 0.75) < 1e-9
    assert abs(r["AJ"] - 0.44) < 1e-9
    assert r["n_eval"] == 6 and r["n_visible"] == 4


def test_hand_computed_first():
    # evaluated: (0,1) (0,2) (0,3) (1,3) -> OA 3/4; visible errors 0.5, 5, 0 -> delta 2/3,2/3,2/3,1,1 = 0.8
    # Jaccard: d<=4: TP 2, FP 2 -> 2/5; d>=8: TP 3, FP 1 -> 3/4; AJ = (1.2 + 1.5) / 5 = 0.54
    r = M.tapvid_metrics(*hand_case(), mode="first")
    assert abs(r["OA"] - 0.75) < 1e-9
    assert abs(r["delta_avg"] - 0.8) < 1e-9
    assert abs(r["AJ"] - 0.54) < 1e-9
    assert r["n_eval"] == 4


def test_per_track_and_plate_scaling():
    qt, gt, gv, pr, pv = hand_case()
    r = M.tapvid_metrics(qt, gt, gv, pr, pv, mode="strided", per_track=True)
    assert r["OA"] == pytest.approx([2 / 3, 2 / 3], abs=1e-12)
    # track 0 visible errors 0.5, 5 -> deltas 1/2,1/2,1/2,1,1
    assert r["delta_avg"][0] == pytest.approx(0.7, abs=1e-12)
    # same numbers from a 512x128 plate (x scaled by 2, y by 0.5) with predictions from a 1024x64 plate
    s_gt, s_pr = np.array([2.0, 0.5]), np.array([4.0, 0.25])
    r2 = M.tapvid_metrics_plate(qt, gt * s_gt, gv, (512, 128), pr * s_pr, pv, (1024, 64), mode="strided")
    assert abs(r2["AJ"] - 0.44) < 1e-9 and abs(r2["delta_avg"] - 0.75) < 1e-9


def test_nan_prediction_counts_as_miss_and_bad_mode():
    qt, gt, gv, pr, pv = hand_case()
    pr = pr.copy()
    pr[1, 3] = NAN  # was exact
    r = M.tapvid_metrics(qt, gt, gv, pr, pv)
    assert r["delta_1"] == pytest.approx(0.25)
    with pytest.raises(InputError, match="mode"):
        M.tapvid_metrics(qt, gt, gv, pr, pv, mode="middle")


@pytest.mark.shared_data
@pytest.mark.parametrize("mode", ["strided", "first"])
def test_ground_truth_scores_one(mode):
    for path in (DEV_PKL, NPZ_DIR):
        for v in read_gt(path, mode):
            r = M.tapvid_metrics_plate(v.query_t, v.xy, v.visible, v.plate_size, v.xy, v.visible, mode=mode)
            assert r["AJ"] == 1.0 and r["OA"] == 1.0 and r["delta_avg"] == 1.0, (path, v.key)


def test_badja_hand_computed():
    gt = np.array([[[10, 10], [20, 20], [30, 30]], [[0, 0], [40, 40], [NAN, NAN]]], float)
    vis = np.array([[1, 1, 1], [1, 1, 0]], bool)
    ev = np.array([[0, 1, 1], [0, 1, 1]], bool)  # query frame 0 not evaluated
    pr = np.array([[[10, 10], [22, 20], [30, 36]], [[0, 0], [40, 44], [0, 0]]], float)
    area = np.array([1e4, 100.0, 2500.0])  # thresholds 20, 2, 10
    r = M.badja_metrics(gt, vis, ev, pr, area)
    # evaluated: (0,1) err 2 (thr 2: no, 3px: yes), (0,2) err 6 (thr 10: yes, 3px: no), (1,1) err 4 (no, no)
    assert r["n_eval"] == 3
    assert abs(r["delta_seg"] - 1 / 3) < 1e-12
    assert abs(r["delta_3px"] - 1 / 3) < 1e-12


def test_shape_errors_are_clear():
    qt, gt, gv, pr, pv = hand_case()
    with pytest.raises(ValueError, match="pred_xy"):
        M.tapvid_metrics(qt, gt, gv, pr[:, :3], pv)
    assert issubclass(InputError, UserError)
