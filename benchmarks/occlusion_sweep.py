#!/usr/bin/env python
"""How do the flow-guided occlusion settings trade AJ against OA, per video? (weight-free tracker)

For each TAP-Vid-DAVIS dev video (first 32 frames, strided queries, frames at 480p): the tracker of
``--preset`` (default ``cpu-preview``) is prepared and trained through the product's cache (``--cache``:
per-video folders named like the evaluation harness's, so an earlier ``dtvfx eval tapvid --out RUN``
is reused from ``RUN/cache``), then ``ShotTracker.flow_signals`` gives ONE set of signals per video
(chained positions with drift correction, per-step forward-backward errors, learned-feature cosine and
tracker distance) and every ``(infer.occlusion_fb_scale, infer.occlusion_fail_run)`` of the grid is
scored from it with ``flow_guided.flow_guided_visibility``, the rule the product runs. Two baselines in the
same run: "always visible" (same positions) and chained DIS with the 1.5 px check (``chain.chain_points``
on the same flow, the ``flow`` method of ``dtvfx eval``).

Prints per-video AJ / OA for the preset's own setting, the means of every grid point with its OA wins
and losses against "always visible" and its AJ wins against chained DIS, and a leave-one-video-out
check of choosing the setting on the other videos (most OA with AJ at least chained DIS's). Per-stage
seconds and peak RSS per video. Writes ``OUT/occlusion_sweep.json``.

    OMP_NUM_THREADS=2 python benchmarks/occlusion_sweep.py --cache runs/tracker_cpu_preview_v4/cache
    OMP_NUM_THREADS=1 python benchmarks/occlusion_sweep.py --videos 03,29 --scales 2,5 --runs 2
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from dino_tracker_vfx.evaluation.datasets import read_gt, select
from dino_tracker_vfx.evaluation.harness import name_videos, open_frames
from dino_tracker_vfx.evaluation.metrics import tapvid_metrics_plate
from dino_tracker_vfx.tracker.api import ShotTracker
from dino_tracker_vfx.tracker.infer.chain import chain_points
from dino_tracker_vfx.tracker.infer.flow_guided import flow_guided_visibility

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tapvid_davis"
KEYS = ("AJ", "delta_avg", "OA")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def video_rows(gt, a, grid):
    """Metrics of one video: {name: (AJ, delta_avg, OA)} for both baselines and every grid point."""
    shot = open_frames(gt, a.frames, Path(a.out))
    g = gt.scaled_to(shot.size)
    t0 = time.perf_counter()
    st = ShotTracker(shot, a.preset, cache_dir=Path(a.cache) / gt.key, device="cpu", seed=0)
    st.prepare()
    st.train()
    t_prep = time.perf_counter() - t0
    t0 = time.perf_counter()
    sig = st.flow_signals(list(g.queries))
    t_sig = time.perf_counter() - t0
    t_q = torch.as_tensor(g.query_t, dtype=torch.long)
    rows = np.arange(len(g.queries))
    xy = st.resize.to_plate(sig.xy.double().numpy())
    xy[rows, g.query_t] = [[q.x, q.y] for q in g.queries]

    def score(pred_xy, vis):
        m = tapvid_metrics_plate(g.query_t, g.xy, g.visible, g.plate_size, pred_xy, vis)
        return [float(m[k]) for k in KEYS]

    out = {"always visible": score(xy, np.ones(xy.shape[:2], bool))}
    q_flow = st.flow_to_work.to_plate(st.resize.to_working(np.array([[q.x, q.y] for q in g.queries])))
    c_xy, c_valid = chain_points(st.flow, g.query_t, q_flow, st.cfg["flow.fb_thresh"])
    c_xy = st.resize.to_plate(st.flow_to_work.to_working(c_xy.astype(np.float64)))
    c_valid[rows, g.query_t] = True
    out["chained DIS"] = score(c_xy, c_valid)
    cfg = st.cfg
    for scale, run in grid:
        vis, _ = flow_guided_visibility(sig, t_q, fb_thresh=cfg["flow.fb_thresh"], agree_px=cfg["infer.flow_agree_px"],
                                        visible_cos=cfg["infer.visible_cos"], occ_fb_scale=scale, fail_run=run)
        out[f"x{scale:g} run{run}"] = score(xy, vis.numpy())
    return out, {"prepare_train_s": t_prep, "signals_s": t_sig, "rss_mb": peak_rss_mb()}, cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gt", default=str(DATA / "gt_first32" / "tapvid_davis_dev_strided_32.pkl"))
    ap.add_argument("--frames", default=str(DATA / "frames480"))
    ap.add_argument("--videos", default=None, help="comma-separated indices or names (default: all in --gt)")
    ap.add_argument("--preset", default="cpu-preview")
    ap.add_argument("--scales", default="2,3,4,5,6,8,10", help="infer.occlusion_fb_scale values")
    ap.add_argument("--runs", default="2,3", help="infer.occlusion_fail_run values")
    ap.add_argument("--cache", default="runs/occlusion_sweep/cache", help="tracker cache, per-video folders")
    ap.add_argument("--out", default="runs/occlusion_sweep")
    a = ap.parse_args()
    grid = [(float(s), int(r)) for r in a.runs.split(",") for s in a.scales.split(",")]
    videos = select(name_videos(read_gt(a.gt, "strided"), a.frames), a.videos.split(",") if a.videos else None)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    per_video, cfg = {}, None
    print(f"{'video':22s} {'static OA':>9s} {'DIS AJ':>7s} {'AJ':>6s} {'OA':>6s}   prep_s  signals_s  rss_MB",
          flush=True)
    for gt in videos:
        res, secs, cfg = video_rows(gt, a, grid)
        per_video[gt.key] = {"metrics": res, **secs}
        own = res[f"x{cfg['infer.occlusion_fb_scale']:g} run{cfg['infer.occlusion_fail_run']}"] \
            if (cfg["infer.occlusion_fb_scale"], cfg["infer.occlusion_fail_run"]) in grid else [np.nan] * 3
        print(f"{gt.key:22s} {res['always visible'][2]:9.3f} {res['chained DIS'][0]:7.3f} {own[0]:6.3f} "
              f"{own[2]:6.3f}   {secs['prepare_train_s']:6.1f}  {secs['signals_s']:9.1f}  {secs['rss_mb']:6.0f}",
              flush=True)
    keys = list(per_video)
    names = list(per_video[keys[0]]["metrics"])
    M = np.array([[per_video[k]["metrics"][n] for k in keys] for n in names])  # [method, video, metric]
    static_oa, dis_aj = M[names.index("always visible"), :, 2], M[names.index("chained DIS"), :, 0]
    summary = {}
    print(f"\n{'setting':16s} {'AJ':>6s} {'d_avg':>6s} {'OA':>6s}  OA vs static (w/l)  AJ > DIS (videos)")
    for i, n in enumerate(names):
        m = M[i].mean(0)
        wins, losses = int((M[i, :, 2] > static_oa + 1e-9).sum()), int((M[i, :, 2] < static_oa - 1e-9).sum())
        aj_wins = int((M[i, :, 0] > dis_aj + 1e-9).sum())
        summary[n] = {**dict(zip(KEYS, map(float, m))), "oa_wins": wins, "oa_losses": losses, "aj_wins": aj_wins}
        print(f"{n:16s} {m[0]:6.3f} {m[1]:6.3f} {m[2]:6.3f}  {wins:7d}/{losses:<7d}  {aj_wins:9d}")
    # leave one video out: on the others, the most OA among settings whose AJ is at least chained DIS's
    settings = [i for i, n in enumerate(names) if n not in ("always visible", "chained DIS")]
    held, chosen = [], []
    for v in range(len(keys)):
        rest = np.arange(len(keys)) != v
        ok = [i for i in settings if M[i, rest, 0].mean() >= dis_aj[rest].mean()] or settings
        best = max(ok, key=lambda i: M[i, rest, 2].mean())
        held.append(M[best, v])
        chosen.append(names[best])
    h = np.mean(held, axis=0)
    print(f"\nleave-one-video-out choice: AJ {h[0]:.3f} delta_avg {h[1]:.3f} OA {h[2]:.3f} on the held-out videos "
          f"(chained DIS AJ {dis_aj.mean():.3f}, always-visible OA {static_oa.mean():.3f}); chosen: "
          + ", ".join(f"{n} x{chosen.count(n)}" for n in sorted(set(chosen))))
    (Path(a.out) / "occlusion_sweep.json").write_text(json.dumps(
        {"preset": a.preset, "videos": per_video, "summary": summary,
         "loo": {"AJ": h[0], "delta_avg": h[1], "OA": h[2], "chosen": chosen}}, indent=1))


if __name__ == "__main__":
    main()
