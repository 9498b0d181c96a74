"""Does visibility drop where the query's pattern is gone? The issue-16 clips, with and without plate refinement.

* vtest.avi (OpenCV's pedestrian clip, static camera; ``--range``): points on three walkers and on the static
  background at the first image. A track "sits on background" at an image where the 9x9 px around it differ
  from the clip's median image (the empty scene) in under 10% of the pixels (difference > 40 of 255).
* the bundled sample (horsejump, 24 images): two front hooves, the withers and the sand queried at the last
  image; a track is "off the horse" where it lies more than 30 px from the horse's DAVIS mask
  (../shared/data tapvid_davis/frames480/29_horsejump-high/masks: the sample's frames are that video's).

Prints, per variant (``cpu-preview`` as shipped, and with ``refine: {enabled: false}``, the coarse rule of the
issue), how many of those images are visible, and how many off-plate positions are visible.

    OMP_NUM_THREADS=1 python benchmarks/pattern_gone.py --range 1-80     # about 3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dino_tracker_vfx.coords import in_plate
from dino_tracker_vfx.shots import open_shot
from dino_tracker_vfx.tracker.api import ShotTracker
from dino_tracker_vfx.tracks import Query

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
VTEST = DATA / "demo_videos" / "vtest.avi"
MASKS = DATA / "tapvid_davis" / "frames480" / "29_horsejump-high" / "masks"
VTEST_QUERIES = [("w1_torso", 265, 250), ("w1_head", 268, 228), ("w2_torso", 515, 180), ("w2_legs", 515, 215),
                 ("w3_torso", 665, 270), ("w3_head", 660, 248), ("bg_cone", 298, 197), ("bg_sign", 428, 222),
                 ("bg_rock", 178, 262), ("bg_tripod", 506, 343), ("bg_van", 680, 70)]
HORSE_QUERIES = [("hoof_l", 408, 314), ("hoof_r", 430, 316), ("withers", 410, 165), ("bg_sand", 600, 400)]
VARIANTS = {"cpu-preview": {"base": "cpu-preview"},
            "no refinement": {"base": "cpu-preview", "refine": {"enabled": False}}}


def vtest_foreground(first: int, T: int) -> list[np.ndarray]:
    """bool [H, W] per image of the range: differs from the clip's median image (every 4th frame)."""
    import cv2

    cap = cv2.VideoCapture(str(VTEST))
    all_frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        all_frames.append(f)
    median = np.median(np.stack(all_frames[::4]), axis=0).astype(np.int16)
    return [np.abs(f.astype(np.int16) - median).max(-1) > 40 for f in all_frames[first - 1:first - 1 + T]]


def share(mask: np.ndarray, xy, r: int = 4) -> float:
    x, y = int(round(float(xy[0]))), int(round(float(xy[1])))
    H, W = mask.shape
    if not (0 <= x < W and 0 <= y < H):
        return float("nan")
    return float(mask[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1].mean())


def report(name: str, tracks, shot, gone: np.ndarray, groups: dict[str, list[int]]) -> None:
    """gone bool [N, T]: the track is where its pattern is not (the query image excluded)."""
    off = ~in_plate(tracks.xy, shot.size) & tracks.visible
    parts = []
    for g, rows in groups.items():
        n, v = int(gone[rows].sum()), int((gone[rows] & tracks.visible[rows]).sum())
        parts.append(f"{g}: {v}/{n} visible ({100 * v / max(n, 1):.1f}%)")
    print(f"  {name:14s} " + " | ".join(parts) + f" | visible off the plate: {int(off.sum())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--range", default="1-80", help="vtest frames (movie numbers, 1 = first)")
    args = ap.parse_args()
    import cv2

    shot = open_shot(str(VTEST), frame_range=args.range)
    first = int(args.range.split("-")[0])
    fg = vtest_foreground(first, shot.n_images)
    qs = [Query(0, float(x), float(y), n) for n, x, y in VTEST_QUERIES]
    walkers = [i for i, q in enumerate(qs) if q.name.startswith("w")]
    static = [i for i, q in enumerate(qs) if not q.name.startswith("w")]
    print(f"vtest {args.range}: tracks sitting on background (walker points; background points)")
    for name, preset in VARIANTS.items():
        tr = ShotTracker(shot, preset, device="cpu").infer(qs)
        on_bg = np.array([[share(fg[t], tr.xy[i, t]) < 0.1 for t in range(shot.n_images)] for i in range(len(qs))])
        on_bg[:, 0] = False
        report(name, tr, shot, on_bg, {"walkers on background": walkers, "background points": static})

    shot = open_shot(str(ROOT / "dino_tracker_vfx" / "samples" / "horsejump"))
    T = shot.n_images
    horse = []
    for t in range(T):
        m = cv2.imread(str(MASKS / f"{t:05d}.png"), cv2.IMREAD_GRAYSCALE) > 0
        horse.append(cv2.distanceTransform((~m).astype(np.uint8), cv2.DIST_L2, 5))
    qs = [Query(T - 1, float(x), float(y), n) for n, x, y in HORSE_QUERIES]
    print(f"horsejump sample, queried at image {T - 1}: tracks more than 30 px off the horse")
    for name, preset in VARIANTS.items():
        tr = ShotTracker(shot, preset, device="cpu").infer(qs)
        far = np.zeros((len(qs), T), bool)
        for i in range(2):  # the hooves
            for t in range(T - 1):
                x, y = int(round(tr.xy[i, t, 0])), int(round(tr.xy[i, t, 1]))
                far[i, t] = not (0 <= x < horse[t].shape[1] and 0 <= y < horse[t].shape[0]) or horse[t][y, x] > 30
        report(name, tr, shot, far, {"hooves off the horse": [0, 1]})


if __name__ == "__main__":
    main()
