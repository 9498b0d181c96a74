#!/usr/bin/env python
"""How much does drift correction (tracker/infer/drift.py) move chained DIS flow, per video and per margin?

For each TAP-Vid-DAVIS dev video (first 32 frames, strided queries, frames at 480p): DIS flow
(``flow.compute_flow``, the product's defaults), chained positions (``chain.chain_points``), then ONE
``drift.correct_drift`` pass that also returns the direct candidates and their NCC scores, so every
``--margins`` value is scored from the same flows. Positions only: every point is called visible, so
the score is ``delta_avg`` at 256x256 (TAP-Vid), the number drift correction can change.

Prints a per-video table (chain, each margin) with per-stage seconds and peak RSS, then the means and
win/loss counts against the chain measured in the same run. Writes ``OUT/drift_sweep.json``.

    OMP_NUM_THREADS=1 python benchmarks/drift_sweep.py --out /tmp/drift_sweep           # 22 videos, ~25 min
    OMP_NUM_THREADS=1 python benchmarks/drift_sweep.py --videos 03,29 --margins 0.2,0.5
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from dino_tracker_vfx.evaluation.datasets import read_gt, select
from dino_tracker_vfx.evaluation.harness import open_frames
from dino_tracker_vfx.evaluation.metrics import tapvid_metrics_plate
from dino_tracker_vfx.tracker.infer.drift import correct_drift
from dino_tracker_vfx.tracker.infer.chain import chain_points
from dino_tracker_vfx.tracker.preprocess.flow import compute_flow

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tapvid_davis"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gt", default=str(DATA / "gt_first32" / "tapvid_davis_dev_strided_32.pkl"))
    ap.add_argument("--frames", default=str(DATA / "frames480"))
    ap.add_argument("--videos", default=None, help="comma-separated indices or names (default: all in --gt)")
    ap.add_argument("--margins", default="0.1,0.2,0.3,0.4,0.5,0.6")
    ap.add_argument("--out", default="runs/drift_sweep")
    a = ap.parse_args()
    margins = [float(m) for m in a.margins.split(",")]
    videos = select(read_gt(a.gt, "strided"), a.videos.split(",") if a.videos else None)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    cols = ["chain"] + [f"m{m:g}" for m in margins]
    print(f"{'video':22s} " + " ".join(f"{c:>7s}" for c in cols) + "   flow_s  drift_s  rss_MB", flush=True)
    for gt in videos:
        shot = open_frames(gt, a.frames, out)
        g = gt.scaled_to(shot.size)
        frames = shot.load()
        t0 = time.perf_counter()
        ff = compute_flow(frames, "dis")
        t_flow = time.perf_counter() - t0
        t_q = g.query_t
        xy_q = np.array([[q.x, q.y] for q in g.queries], np.float64)
        chain, _ = chain_points(ff, t_q, xy_q)
        cand: dict = {}
        t0 = time.perf_counter()
        correct_drift(frames, ff, t_q, xy_q, chain, margin=1e9, candidates=cand)
        t_drift = time.perf_counter() - t0
        vis = np.ones(chain.shape[:2], bool)

        def score(xy):
            return float(tapvid_metrics_plate(t_q, g.xy, g.visible, g.plate_size, xy, vis)["delta_avg"])

        row = {"video": gt.key, "chain": score(chain), "flow_s": t_flow, "drift_s": t_drift}
        gain = cand["ncc_direct"] - cand["ncc_chain"]
        for m, c in zip(margins, cols[1:]):
            take = np.isfinite(cand["direct"]).all(-1) & (gain > m)
            row[c] = score(np.where(take[..., None], cand["direct"], chain))
        rows.append(row)
        print(f"{gt.key:22s} " + " ".join(f"{row[c]:7.3f}" for c in cols)
              + f"   {t_flow:6.1f}  {t_drift:7.1f}  {peak_rss_mb():6.0f}", flush=True)
    base = np.array([r["chain"] for r in rows])
    print(f"{'mean':22s} " + " ".join(f"{np.mean([r[c] for r in rows]):7.3f}" for c in cols))
    summary = {}
    for c in cols[1:]:
        d = np.array([r[c] for r in rows]) - base
        summary[c] = {"delta_avg": float(np.mean([r[c] for r in rows])), "gain": float(d.mean()),
                      "wins": int((d > 1e-9).sum()), "losses": int((d < -1e-9).sum()), "worst": float(d.min())}
        print(f"{c}: {summary[c]['gain']:+.4f} vs chain, {summary[c]['wins']} up / {summary[c]['losses']} down, "
              f"worst {summary[c]['worst']:+.3f}")
    (out / "drift_sweep.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
