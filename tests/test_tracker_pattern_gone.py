"""Visibility drops where the query's pattern is gone, on real frames (issue 16 item 2, the issue's two examples).

* the bundled sample (horsejump, 24 images): a front hoof queried at the last image. Its track slides onto
  the sand by the jump's standard and stays there, 100-350 px from the horse at t0 (the coarse flow-guided
  rule calls it visible all shot); where the track lies off the horse (its DAVIS mask for every image, from
  the shared data: the sample's frames are those of TAP-Vid-DAVIS 29_horsejump-high) it must be hidden;
* vtest.avi (the OpenCV pedestrian clip, static camera), frames 1-40: points on three walkers and on the
  static background at the first image. Where a walker's track sits on background (the pixels around it
  match the clip's median image: nobody there) it must not be visible, except for a small share (a legs
  pattern next to other walkers' legs can match at ZNCC 0.5-0.8); background points stay visible.

Both pass because plate refinement hides a visible point whose best pattern match has ZNCC below
``refine.hide_zncc`` (tracker/infer/refine.py); with ``refine.enabled: false`` (the code of the issue) the
hoof is visible at all 21 of its off-horse images and the walkers at 100% of their background images
(docs/results.md, "Pattern gone on the issue's two clips"). The model is trained for 2 iterations only:
positions come from the flow chain, which the model does not change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from dino_tracker_vfx.shots.shot import open_shot
from dino_tracker_vfx.tracker.api import ShotTracker
from dino_tracker_vfx.tracks import Query

SAMPLES = Path(__file__).resolve().parents[1] / "dino_tracker_vfx" / "samples"
HORSE_MASKS = Path(SHARED_DATA) / "tapvid_davis" / "frames480" / "29_horsejump-high" / "masks"
VTEST = Path(SHARED_DATA) / "demo_videos" / "vtest.avi"
QUICK = {"base": "cpu-preview", "train": {"iterations": 2, "checkpoint_every": 2}}
FAR_PX = 30


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k) > 0


def _at(mask: np.ndarray, xy: np.ndarray) -> bool:
    """mask value at plate px ``xy`` (False off the plate)."""
    x, y = int(round(float(xy[0]))), int(round(float(xy[1])))
    H, W = mask.shape
    return bool(0 <= x < W and 0 <= y < H and mask[y, x])


@pytest.mark.shared_data
def test_a_hoof_track_that_slid_off_the_horse_is_hidden():
    from dino_tracker_vfx.inputs import read_mask

    shot = open_shot(str(SAMPLES / "horsejump"))
    T = shot.n_images
    qs = [Query(T - 1, 430.0, 316.0, "hoof"), Query(T - 1, 410.0, 165.0, "withers")]
    tracks = ShotTracker(shot, QUICK, device="cpu", seed=0).infer(qs)
    # off the horse: farther than FAR_PX from its mask (the image where the track slides off, next to the
    # hoof, is left out: there the hoof pattern can still half-match its surroundings)
    horse = [_dilate(read_mask(HORSE_MASKS / f"{t:05d}.png") > 0, FAR_PX) for t in range(T)]
    off = {q.name: [t for t in range(T - 1) if not _at(horse[t], tracks.xy[i, t])] for i, q in enumerate(qs)}
    assert len(off["hoof"]) >= 10, f"the hoof's track stays on the horse here: {off['hoof']}"  # the issue's case
    shown = [t for t in off["hoof"] if tracks.visible[0, t]]
    assert not shown, f"hoof visible off the horse at images {shown} (off the horse at {off['hoof']})"
    # not by hiding everything: the withers' track stays on the horse and visible
    on = [t for t in range(T - 1) if t not in off["withers"]]
    assert len(on) >= 20 and tracks.visible[1, on].mean() >= 0.9, (on, tracks.visible[1])


def _vtest_median(every: int = 8) -> np.ndarray:
    """The clip's median image (BGR uint8): the empty scene, walkers never stand long enough to stay in it."""
    import cv2

    cap = cv2.VideoCapture(str(VTEST))
    frames, i = [], 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        if i % every == 0:
            frames.append(f)
        i += 1
    cap.release()
    assert len(frames) >= 50, f"read {len(frames)} frames of {VTEST}"
    return np.median(np.stack(frames), axis=0).astype(np.int16)


def _on_background(frame: np.ndarray, median: np.ndarray, xy: np.ndarray, r: int = 4) -> bool | None:
    """True where the (2r+1)^2 px around ``xy`` differ from the median image in under 10% of the pixels
    (nobody there), False where in 30% or more (a person), None in between or off the plate."""
    x, y = int(round(float(xy[0]))), int(round(float(xy[1])))
    H, W = median.shape[:2]
    if not (0 <= x < W and 0 <= y < H):
        return None
    diff = np.abs(frame.astype(np.int16) - median).max(-1) > 40
    share = diff[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1].mean()
    return True if share < 0.1 else False if share >= 0.3 else None


@pytest.mark.shared_data
def test_walker_tracks_left_on_the_background_are_hidden():
    import cv2

    shot = open_shot(str(VTEST), frame_range="1-40")
    walkers = [Query(0, 265.0, 250.0, "w1_torso"), Query(0, 515.0, 180.0, "w2_torso"),
               Query(0, 515.0, 215.0, "w2_legs"), Query(0, 665.0, 270.0, "w3_torso"),
               Query(0, 660.0, 248.0, "w3_head")]
    static = [Query(0, 298.0, 197.0, "bg_cone"), Query(0, 428.0, 222.0, "bg_sign"),
              Query(0, 178.0, 262.0, "bg_rock"), Query(0, 506.0, 343.0, "bg_tripod")]
    qs = walkers + static
    tracks = ShotTracker(shot, QUICK, device="cpu", seed=0).infer(qs)
    median = _vtest_median()
    cap = cv2.VideoCapture(str(VTEST))
    frames = [cap.read()[1] for _ in range(shot.n_images)]
    cap.release()
    on_bg = np.array([[_on_background(frames[t], median, tracks.xy[i, t]) is True for t in range(shot.n_images)]
                      for i in range(len(qs))])
    on_bg[:, 0] = False  # the query image
    nw = len(walkers)
    left = on_bg[:nw]
    assert left.sum() >= 40, f"walker tracks on background at only {left.sum()} images: not the issue's case"
    shown = tracks.visible[:nw][left]
    per = {q.name: f"{int((tracks.visible[i] & left[i]).sum())}/{int(left[i].sum())}" for i, q in enumerate(walkers)}
    assert shown.mean() <= 0.2, f"walker points visible on background: {per}"
    stay = tracks.visible[nw:][on_bg[nw:]]
    assert on_bg[nw:].sum() >= 0.9 * len(static) * (shot.n_images - 1) and stay.mean() >= 0.95, \
        f"background points hidden on background: {stay.mean():.2f}"


@pytest.mark.shared_data
def test_a_walker_leaving_the_shot_is_not_resumed_off_the_plate():
    """vtest frames 201-216: a point on the walker who leaves at the right edge (frame 210). Off the plate its
    pattern still matches the part left inside (re-acquisition resumed it 2-9 px beyond the edge at ZNCC
    0.91-0.98 before the fix): no position off the plate may be visible."""
    shot = open_shot(str(VTEST), frame_range="201-216")
    W, H = shot.size
    tracks = ShotTracker(shot, QUICK, device="cpu", seed=0).infer([Query(0, 720.0, 296.4, "w3_torso")])
    x, y = tracks.xy[0, :, 0], tracks.xy[0, :, 1]
    off = (x < -0.5) | (x > W - 0.5) | (y < -0.5) | (y > H - 0.5)
    assert off.sum() >= 3, f"the track does not leave the plate here: x = {x.round(1)}"
    assert not (off & tracks.visible[0]).any(), f"visible off the plate: x = {x.round(1)}, {tracks.visible[0]}"
    assert tracks.visible[0, :5].all()  # on the walker, in the plate, before it leaves
