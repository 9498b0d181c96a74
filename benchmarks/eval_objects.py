#!/usr/bin/env python
"""Evaluate mask propagation (J, F) and object centroids on DAVIS multi-instance masks.

For each video (default: the **dev** multi-instance videos of ``tapvid_davis/index.json``; held-out
videos are refused - only their first mask exists and it must not be used for tuning), on the first
``--frames`` images, with the mask of image 0 as the only input:

Masks (J = IoU, F = DAVIS boundary F-measure with bound_th 0.008; frames 1..N-1, every GT object):
* ``propagate``  - ``objects.propagate`` label propagation with the ``--features`` source
  (default weight-free ``colour-texture``; ``tracker`` trains the shot's DINO-Tracker first, with the
  image-0 mask as foreground; the same training serves ``--trackers dino``).
* ``static``     - the image-0 mask held still (trivial baseline).
* ``flow-warp``  - the mask carried frame to frame by backward DIS optical flow (A1's ``compute_flow``),
  nearest-neighbour pull ``L_t(x) = L_{t-1}(x + bwd_{t-1}(x))``.

Centroids (error to the GT mask centroid in px and divided by sqrt(GT area); frames 1..N-1 where the
GT object exists):
* ``objects-flow`` - ``objects.api.track_objects`` (24 points per object, robust similarity centroid)
  with the chained-flow point tracker; ``objects-dino`` the same with DINO-Tracker (``--tracker-preset``).
* ``mask-propagate`` / ``mask-flow-warp`` - centroid of the propagated / warped mask.
* ``static`` - the image-0 mask centroid.

A frame where a method has no centroid (e.g. the propagated mask lost the object) is left out of its
error and counted in its coverage (``cov``, shown when below 100%).

Aggregation: per object the mean over frames; per video the mean over its objects; "mean" rows are
the mean over videos and (DAVIS style) over all objects. Writes ``OUT/results.json`` and
``OUT/table.md``; prints the table.

    OMP_NUM_THREADS=1 python benchmarks/eval_objects.py --data /work/shared/data/tapvid_davis \\
        --frames 32 --out /tmp/eval_objects
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dino_tracker_vfx import atomic  # noqa: E402
from dino_tracker_vfx.inputs import read_mask  # noqa: E402
from dino_tracker_vfx.objects.metrics import centroid_error, f_measure, jaccard, mask_centroid  # noqa: E402

MASK_METHODS = ("propagate", "static", "flow-warp")


def dev_multi_instance(index: list[dict]) -> list[dict]:
    return [v for v in index if v["mask_mode"] == "P" and "held out" not in v["gt"]]


def open_video(root: Path, v: dict, n: int):
    from dino_tracker_vfx.shots import open_shot

    vdir = root / v["frames_dir"]
    shot = open_shot(str(vdir / "#####.jpg"), frame_range=f"0-{n - 1}")
    mdir = root / v["masks_dir"]
    gts = np.stack([read_mask(mdir / f"{t:05d}.png") for t in range(n)])
    return shot, gts


def flow_warp(frames_u8: np.ndarray, mask0: np.ndarray, flow=None):
    import cv2

    from dino_tracker_vfx.tracker.preprocess.flow import compute_flow

    fl = flow or compute_flow(frames_u8)
    H, W = mask0.shape
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    out = [mask0]
    for t in range(1, len(frames_u8)):
        b = fl.bwd[t - 1]
        out.append(cv2.remap(out[-1].astype(np.float32), gx + b[..., 0], gy + b[..., 1], cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(np.int32))
    return np.stack(out), fl


def score_masks(pred: np.ndarray, gts: np.ndarray, ids: list[int]) -> dict[int, dict[str, float]]:
    res = {}
    for i in ids:
        J = [jaccard(pred[t] == i, gts[t] == i) for t in range(1, len(gts))]
        F = [f_measure(pred[t] == i, gts[t] == i) for t in range(1, len(gts))]
        res[i] = {"J": float(np.mean(J)), "F": float(np.mean(F))}
    return res


def score_centroids(cent: np.ndarray, gts: np.ndarray, i: int, visible: np.ndarray | None = None) -> dict[str, float]:
    """cent: [T, 2] predicted centroid of object i (NaN = no prediction). Frames 1..N-1 where the GT object
    exists; ``coverage`` = share of them with a prediction (errors average over those only); ``med``,
    ``p90``, ``max`` of the per-frame error (px). ``visible`` [T] (an object track's visibility keys):
    ``presence`` = share of frames 1..N-1 where visible == (the GT object exists), ``visible_frames`` /
    ``gt_frames`` = counts of frames 1..N-1 with each."""
    e, en, n_gt = [], [], 0
    for t in range(1, len(gts)):
        m = gts[t] == i
        if not m.any():
            continue
        n_gt += 1
        if not np.isfinite(cent[t]).all():
            continue
        a, b = centroid_error(cent[t], m)
        e.append(a)
        en.append(b)
    nan = float("nan")
    out = {"px": float(np.mean(e)) if e else nan, "norm": float(np.mean(en)) if en else nan,
           "med": float(np.median(e)) if e else nan, "p90": float(np.percentile(e, 90)) if e else nan,
           "max": float(np.max(e)) if e else nan, "frames": len(e), "coverage": len(e) / n_gt if n_gt else nan,
           "gt_frames": n_gt, "errors": [round(x, 2) for x in e]}
    if visible is not None:
        gt_there = np.array([(gts[t] == i).any() for t in range(1, len(gts))])
        vis = np.asarray(visible, bool)[1:]
        out["presence"] = float(np.mean(gt_there == vis))
        out["visible_frames"] = int(vis.sum())
    return out


def mask_centroids(pred: np.ndarray, i: int) -> np.ndarray:
    return np.stack([mask_centroid(p == i)[0] for p in pred])


def run_video(root: Path, v: dict, n: int, features: str, trackers: list[str], preset: str, log,
              guides: tuple[str, ...] = ("none", "propagate")) -> dict:
    from dino_tracker_vfx.objects.api import flow_point_tracker, segment, track_objects
    from dino_tracker_vfx.objects.propagate import PropagationParams

    n = n or v["num_frames_full"]
    shot, gts = open_video(root, v, n)
    ids = sorted(int(i) for i in np.unique(gts[0]) if i)
    out: dict = {"video": f"{v['video_idx']:02d}_{v['name']}", "frames": n, "objects": ids,
                 "areas0": {i: int((gts[0] == i).sum()) for i in ids}, "seconds": {}}
    st = None
    if features == "tracker" or "dino" in trackers:  # one training per video, shared by both uses
        from dino_tracker_vfx.tracker.api import ShotTracker

        t0 = time.perf_counter()
        st = ShotTracker(shot, preset, masks={0: gts[0]})
        st.prepare()
        st.train()
        out["seconds"]["tracker-prepare-train"] = time.perf_counter() - t0
        out["tracker"] = {"preset": preset, "iterations": int(st.trained_iterations),
                          "working_size": list(st.work_wh)}
    t0 = time.perf_counter()
    feat_arg = features
    if features == "tracker":
        from dino_tracker_vfx.objects.features import TrackerFeatures

        feat_arg = TrackerFeatures(st, label=preset)
    src, it = segment(shot, {0: gts[0]}, features=feat_arg, params=PropagationParams(radius=None))
    pred = np.zeros_like(gts)
    for fp in it:
        pred[fp.t] = fp.labels
    out["seconds"]["propagate"] = time.perf_counter() - t0
    out["features"] = src.describe()
    out["radius"] = PropagationParams(radius=None).resolved(src).radius
    t0 = time.perf_counter()
    frames_u8 = shot.load()
    warped, fl = flow_warp(frames_u8, gts[0])
    out["seconds"]["flow"] = time.perf_counter() - t0
    static = np.repeat(gts[:1], n, axis=0)
    out["masks"] = {"propagate": score_masks(pred, gts, ids), "static": score_masks(static, gts, ids),
                    "flow-warp": score_masks(warped, gts, ids)}
    cents = {"static": {i: score_centroids(mask_centroids(static, i), gts, i) for i in ids},
             "mask-propagate": {i: score_centroids(mask_centroids(pred, i), gts, i) for i in ids},
             "mask-flow-warp": {i: score_centroids(mask_centroids(warped, i), gts, i) for i in ids}}
    for m, lab in (("mask-propagate", pred), ("mask-flow-warp", warped)):
        for i in ids:
            cents[m][i].update(score_centroids(mask_centroids(lab, i), gts, i, (lab == i).any((1, 2))))
    for tr in trackers:
        t0 = time.perf_counter()
        cache: dict = {}

        def points(s, q, m, tr=tr):  # one point tracking per tracker, shared by the guide rules
            if "ts" not in cache:
                cache["ts"] = flow_point_tracker(s, q, m, flow=fl) if tr == "flow" else st.infer(q)
            return cache["ts"]

        for g in guides:
            ts = track_objects(shot, {0: gts[0]}, point_tracker=points, guide=g, guide_labels=pred,
                               guide_features=src)
            name = f"objects-{tr}" + ("" if g == "none" else "+guide")
            cents[name] = {i: score_centroids(ts.groups[f"obj{i}"].centroid, gts, i, ts.groups[f"obj{i}"].visible)
                           for i in ids}
        out["seconds"][f"objects-{tr}"] = time.perf_counter() - t0
    out["centroids"] = cents
    log(f"{out['video']}: " + ", ".join(
        f"{m} J {np.mean([r['J'] for r in out['masks'][m].values()]):.3f}" for m in MASK_METHODS) + "; " + ", ".join(
        f"{m} {np.nanmean([r['px'] for r in c.values()]):.1f}px" for m, c in cents.items())
        + f" ({sum(out['seconds'].values()):.0f} s)")
    return out


def _mean(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else float("nan")


def table(results: list[dict]) -> str:
    cmeth = list(results[0]["centroids"]) if results else []
    head = ["video", "objects"] + [f"{m} J&F (J / F)" for m in MASK_METHODS] + [f"{m} px (/sqrt A)" for m in cmeth]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cells(rows_masks, rows_cent):
        c = []
        for m in MASK_METHODS:
            J, F = _mean([r["J"] for r in rows_masks[m]]), _mean([r["F"] for r in rows_masks[m]])
            c.append(f"{(J + F) / 2:.3f} ({J:.3f} / {F:.3f})")
        for m in cmeth:
            cov = _mean([r.get("coverage", 1.0) for r in rows_cent[m]])
            c.append(f"{_mean([r['px'] for r in rows_cent[m]]):.1f} ({_mean([r['norm'] for r in rows_cent[m]]):.3f})"
                     + (f" cov {100 * cov:.0f}%" if cov < 0.995 else ""))
        return c

    per_video = []
    for r in results:
        rm = {m: list(r["masks"][m].values()) for m in MASK_METHODS}
        rc = {m: list(r["centroids"][m].values()) for m in cmeth}
        per_video.append((rm, rc))
        lines.append("| " + " | ".join([r["video"], str(len(r["objects"]))] + cells(rm, rc)) + " |")
    if results:
        vm = {m: [{"J": _mean([x["J"] for x in rm[m]]), "F": _mean([x["F"] for x in rm[m]])} for rm, _ in per_video]
              for m in MASK_METHODS}
        vc = {m: [{"px": _mean([x["px"] for x in rc[m]]), "norm": _mean([x["norm"] for x in rc[m]]),
                   "coverage": _mean([x.get("coverage", 1.0) for x in rc[m]])} for _, rc in per_video] for m in cmeth}
        lines.append("| **mean over videos** | " + str(sum(len(r["objects"]) for r in results)) + " | "
                     + " | ".join(cells(vm, vc)) + " |")
        om = {m: [x for rm, _ in per_video for x in rm[m]] for m in MASK_METHODS}
        oc = {m: [x for _, rc in per_video for x in rc[m]] for m in cmeth}
        lines.append("| **mean over objects** | | " + " | ".join(cells(om, oc)) + " |")
    return "\n".join(lines)


def detail_table(results: list[dict]) -> str:
    """Per object: error median / p90 / max (px) and presence accuracy for the object-track methods and the
    propagated-mask centroid; last row: the same over all objects' frames pooled (presence: mean)."""
    meth = [m for m in (list(results[0]["centroids"]) if results else []) if m.startswith(("objects", "mask-prop"))]
    head = ["video", "object", "GT frames"] + [f"{m} med / p90 / max px, presence" for m in meth]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(r):
        if not r.get("frames"):
            return "-" + (f", {100 * r['presence']:.0f}%" if "presence" in r else "")
        return (f"{r['med']:.1f} / {r['p90']:.1f} / {r['max']:.0f}"
                + (f", {100 * r['presence']:.0f}% ({r['visible_frames']} vis)" if "presence" in r else ""))

    for res in results:
        for i in res["objects"]:
            k = str(i) if str(i) in res["centroids"][meth[0]] else i
            r0 = res["centroids"][meth[0]][k]
            lines.append("| " + " | ".join([res["video"], f"obj{i}", str(r0.get("gt_frames", ""))]
                                           + [cell(res["centroids"][m][k]) for m in meth]) + " |")
    pooled = []
    for m in meth:
        e = [x for res in results for r in res["centroids"][m].values() for x in r.get("errors", [])]
        pr = _mean([r.get("presence") for res in results for r in res["centroids"][m].values()])
        pooled.append(f"{np.median(e):.1f} / {np.percentile(e, 90):.1f} / {np.max(e):.0f}, {100 * pr:.1f}%"
                      if e else "-")
    lines.append("| **all frames pooled** | | | " + " | ".join(pooled) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/work/shared/data/tapvid_davis", help="tapvid_davis folder (index.json)")
    ap.add_argument("--frames", type=int, default=32, help="first N images of each video (32; 0 = all)")
    ap.add_argument("--videos", nargs="*", help="names or idx_name (default: dev multi-instance videos)")
    ap.add_argument("--features", default="colour-texture", help="propagation features (colour-texture)")
    ap.add_argument("--trackers", default="flow", help="comma list of point trackers for centroids: flow,dino")
    ap.add_argument("--tracker-preset", default="cpu-preview")
    ap.add_argument("--guides", default="none,propagate",
                    help="object-track rules to compare on the same points: none (points only), propagate "
                         "(points checked against the propagated masks, objects.guide)")
    ap.add_argument("--out", help="output folder (results.json, table.md)")
    ap.add_argument("--time-dino", metavar="MODEL:STRIDE,...",
                    help="only time the DINO feature path with RANDOM weights on judo (e.g. vits14:14,vitl14:7)")
    args = ap.parse_args(argv)
    if args.time_dino:
        return time_dino(Path(args.data), args.time_dino)
    if not args.out:
        ap.error("--out is required")
    root = Path(args.data)
    index = json.loads((root / "index.json").read_text())
    vids = dev_multi_instance(index)
    if args.videos:
        want = set(args.videos)
        held = [v["name"] for v in index if "held out" in v["gt"] and (v["name"] in want
                                                                     or f"{v['video_idx']:02d}_{v['name']}" in want)]
        if held:
            ap.error(f"held-out videos may not be evaluated here: {', '.join(held)}")
        vids = [v for v in vids if v["name"] in want or f"{v['video_idx']:02d}_{v['name']}" in want]
    trackers = [t for t in args.trackers.split(",") if t]
    guides = tuple(g for g in args.guides.split(",") if g)
    bad = [g for g in guides if g not in ("none", "propagate")]
    if bad:
        ap.error(f"--guides: {', '.join(bad)} is not one of none, propagate")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    done_path = out / "results.json"
    prev = json.loads(done_path.read_text()) if done_path.is_file() else {}
    settings = {"frames": args.frames, "features": args.features, "trackers": trackers,
                "tracker_preset": args.tracker_preset, "guides": list(guides)}
    if prev.get("settings") != settings:
        prev = {}
    by_name = {r["video"]: r for r in prev.get("videos", [])}
    t_all = time.perf_counter()
    for v in vids:
        key = f"{v['video_idx']:02d}_{v['name']}"
        if key in by_name:  # resume: keep finished videos
            results.append(by_name[key])
            continue
        results.append(run_video(root, v, args.frames, args.features, trackers, args.tracker_preset,
                                 lambda s: print(s, flush=True), guides))
        atomic.write_json(done_path, {"settings": settings, "machine": machine(), "videos": results})
    md = table(results) + "\n\n" + detail_table(results)
    atomic.write_text(out / "table.md", md + "\n")
    atomic.write_json(done_path, {"settings": settings, "machine": machine(), "videos": results,
                                  "seconds_this_run": time.perf_counter() - t_all})
    print(md)
    return 0


def time_dino(root: Path, spec: str, video: str = "frames480/06_judo", n: int = 3) -> int:
    """Seconds per frame of ``DinoFeatures`` (random weights) and of features + propagation step."""
    import torch

    from dino_tracker_vfx.objects.features import DinoFeatures
    from dino_tracker_vfx.objects.propagate import PropagationParams, propagate_masks
    from dino_tracker_vfx.shots import open_shot

    shot = open_shot(str(root / video / "video" / "#####.jpg"), frame_range=f"0-{n - 1}")
    mask0 = read_mask(root / video / "masks" / "00000.png")
    frames = [shot.read(t) for t in range(n)]
    print(f"machine: {machine()}")
    for item in spec.split(","):
        model, stride = item.split(":")
        src = DinoFeatures.build(lambda t: frames[t], shot.size, model=model, stride=int(stride), random_weights=True,
                                 device="cuda" if torch.cuda.is_available() else "cpu")
        t0 = time.perf_counter()
        f = src(1)
        tf = time.perf_counter() - t0
        t0 = time.perf_counter()
        list(propagate_masks(src, n, {0: mask0}, shot.size, PropagationParams()))
        tp = (time.perf_counter() - t0) / (n - 1)
        print(f"{model} stride {stride}: grid {src.grid.h}x{src.grid.w} C {f.shape[0]}: features {tf:.1f} s/frame, "
              f"features + propagation {tp:.1f} s/frame", flush=True)
    return 0


def machine() -> dict:
    import torch

    return {"cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.cuda.is_available(), "platform": platform.platform()}


if __name__ == "__main__":
    sys.exit(main())
