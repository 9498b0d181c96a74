#!/usr/bin/env python
"""Simulated artist corrections (issue 15): how much does each correction round raise AJ, and how long
does a correction run take against the first run?

The artist, per track (one GT query row): looks at the frame where the track is worst, puts the point
right there (the GT position) and re-tracks; up to ``--rounds`` times. "Worst" is the largest distance
to the GT on TAP-Vid's 256x256 raster among the frames where the GT point is visible (and evaluable, for
synthetic scenes) and not yet anchored; a frame the tracker calls occluded while the point is visible
counts as at least 16 px (wrong at every threshold). A track whose worst frame is within 1 px is left
alone. Two artists are simulated from the same first run:

* ``anchors``: the correction becomes an anchor (``Query`` with the track's name) and the shot is
  re-tracked through the product's path: a fresh ``ShotTracker`` on the same cache (every stage and the
  trained model loaded, no training), ``infer(queries + corrections)``;
* ``naive``: the baseline of editing keys by hand: the corrected frame alone is set to the GT (visible),
  nothing else moves.

Metrics (AJ, delta_avg, OA) are the harness's (``tapvid_metrics_plate``, strided queries: every frame but
the query's is evaluated, corrected frames included for both artists). Times: the first run (prepare +
train + infer) and each correction run (a new ShotTracker: cached stages + checkpoint + infer), in this
process, seconds.

Data sets:

* ``--davis``: TAP-Vid-DAVIS dev split, first 32 frames, frames at 480p (``--videos`` picks a subset);
* ``--synth ROOT``: synthetic scenes made by ``dtvfx eval synth --make`` (needs the synth evaluation);
* ``--timing PATH``: the speed target only, on the first ``--timing-frames`` (50) images of a shot:
  ``--timing-points`` (16) points on a grid at the first image, then one correction round moving each
  track 2 px at the middle image.

    OMP_NUM_THREADS=1 python benchmarks/corrections_sim.py --davis --videos 00,03,06,09,16 --out runs/corr_davis
    OMP_NUM_THREADS=1 python benchmarks/corrections_sim.py --timing shared/data/tapvid_davis/frames480/29_horsejump-high/video --out runs/corr_time

Writes ``OUT/<key>.json`` per video (resumable: a finished key is skipped) and ``OUT/summary.json``;
prints a markdown table of the means per round.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dino_tracker_vfx import atomic
from dino_tracker_vfx.coords import to_eval_raster
from dino_tracker_vfx.evaluation.metrics import EVAL_SIZE, tapvid_metrics_plate
from dino_tracker_vfx.tracker.api import ShotTracker
from dino_tracker_vfx.tracks import Query

DAVIS_GT = "tapvid_davis/gt_first32/tapvid_davis_dev_strided_32.pkl"
DAVIS_FRAMES = "tapvid_davis/frames480"
WRONG_PX = 16.0  # an occluded call on a visible point counts as at least this wrong (the largest threshold)
DONE_PX = 1.0  # a track whose worst frame is this close is left alone


def _errors(xy, vis, gt_xy, gt_vis, can_fix, wh, fixed):
    """[N, T] error on the 256 raster where the artist may correct (else -inf)."""
    p = to_eval_raster(xy, wh, EVAL_SIZE)
    g = to_eval_raster(gt_xy, wh, EVAL_SIZE)
    with np.errstate(invalid="ignore"):
        e = np.linalg.norm(p - g, axis=-1)
    e = np.where(vis, e, np.maximum(np.nan_to_num(e, nan=WRONG_PX), WRONG_PX))
    e = np.nan_to_num(e, nan=WRONG_PX)
    ok = gt_vis & can_fix & ~fixed
    return np.where(ok, e, -np.inf)


def _worst(err):
    """[(n, t)] of each track's worst frame above DONE_PX."""
    t = np.argmax(err, axis=1)
    return [(n, int(t[n])) for n in range(err.shape[0]) if err[n, t[n]] > DONE_PX]


def _metrics(query_t, gt_xy, gt_vis, wh, xy, vis):
    m = tapvid_metrics_plate(query_t, gt_xy, gt_vis, wh, xy, vis, wh, mode="strided")
    return {k: round(float(m[k]), 4) for k in ("AJ", "delta_avg", "OA")}


def _tracker(shot, preset, cache, seed=0):
    st = ShotTracker(shot, preset, cache_dir=cache, seed=seed)
    st.prepare()
    st.train()
    return st


def simulate(shot, queries, gt_xy, gt_vis, can_fix, preset, cache, rounds=3, log=print):
    """One shot: first run, then ``rounds`` rounds of both artists -> result dict (module docstring)."""
    wh = tuple(shot.size)
    query_t = np.array([q.t for q in queries])
    names = [q.name for q in queries]
    t0 = time.perf_counter()
    st = _tracker(shot, preset, cache)
    pred = st.infer(queries)
    first_s = time.perf_counter() - t0
    assert pred.names == names, "GT query names must be unique"
    res = {"n_tracks": len(queries), "n_frames": int(shot.n_images), "first_s": round(first_s, 2),
           "anchors": [_metrics(query_t, gt_xy, gt_vis, wh, pred.xy, pred.visible)], "correction_s": [],
           "n_corrected": []}
    res["naive"] = [dict(res["anchors"][0])]
    log(f"  first run {first_s:.1f} s: AJ {res['anchors'][0]['AJ']:.3f}")
    fixes: list[Query] = []
    fixed_a = np.zeros(gt_vis.shape, bool)
    fixed_a[np.arange(len(queries)), query_t] = True
    n_xy, n_vis, fixed_n = pred.xy.copy(), pred.visible.copy(), fixed_a.copy()
    for r in range(1, rounds + 1):
        todo = _worst(_errors(pred.xy, pred.visible, gt_xy, gt_vis, can_fix, wh, fixed_a))
        for n, t in todo:
            fixes.append(Query(t, float(gt_xy[n, t, 0]), float(gt_xy[n, t, 1]), names[n]))
            fixed_a[n, t] = True
        t1 = time.perf_counter()
        pred = _tracker(shot, preset, cache).infer(list(queries) + fixes)
        res["correction_s"].append(round(time.perf_counter() - t1, 2))
        res["n_corrected"].append(len(todo))
        res["anchors"].append(_metrics(query_t, gt_xy, gt_vis, wh, pred.xy, pred.visible))
        for n, t in _worst(_errors(n_xy, n_vis, gt_xy, gt_vis, can_fix, wh, fixed_n)):
            n_xy[n, t], n_vis[n, t], fixed_n[n, t] = gt_xy[n, t], True, True
        res["naive"].append(_metrics(query_t, gt_xy, gt_vis, wh, n_xy, n_vis))
        log(f"  round {r}: {len(todo)} corrections, {res['correction_s'][-1]:.1f} s: AJ anchors "
            f"{res['anchors'][-1]['AJ']:.3f} naive {res['naive'][-1]['AJ']:.3f}")
    return res


def davis_cases(data, wanted):
    from dino_tracker_vfx.evaluation.datasets import read_gt, select
    from dino_tracker_vfx.evaluation.harness import name_videos, open_frames

    frames = Path(data) / DAVIS_FRAMES
    videos = select(name_videos(read_gt(Path(data) / DAVIS_GT, "strided"), frames), wanted)
    for v in videos:
        def make(v=v):
            shot = open_frames(v, frames, Path("."))
            g = v.scaled_to(shot.size)
            return shot, g.queries, np.nan_to_num(g.xy), g.visible, np.ones(g.visible.shape, bool)
        yield v.key, make


def synth_cases(root):
    try:
        from dino_tracker_vfx.evaluation.synth.files import find_scenes, read_truth
    except ImportError as e:
        raise SystemExit(f"--synth needs the synthetic evaluation (dtvfx eval synth): {e}")
    from dino_tracker_vfx.shots import open_shot

    for d in find_scenes(root):
        def make(d=d):
            tr = read_truth(d)
            shot = open_shot(tr.pattern)
            qs = [Query(int(t), float(tr.xy[n, t, 0]), float(tr.xy[n, t, 1]), tr.names[n])
                  for n, t in enumerate(tr.query_t)]
            return shot, qs, np.nan_to_num(tr.xy), tr.visible, tr.evaluable
        yield d.name, make


def timing(path, n_frames, n_points, preset, cache, log=print):
    """The speed target: first run vs one correction round on the first ``n_frames`` images of ``path``."""
    from dino_tracker_vfx.shots import open_shot

    shot = open_shot(str(path))
    fr = [int(f) for f in shot.frame_numbers][:n_frames]
    shot = open_shot(str(path), frame_range=f"{fr[0]}-{fr[-1]}")
    W, H = shot.size
    k = int(np.ceil(np.sqrt(n_points)))
    gx, gy = np.meshgrid(np.linspace(0.2, 0.8, k) * (W - 1), np.linspace(0.2, 0.8, k) * (H - 1))
    qs = [Query(0, float(x), float(y), f"p{i}") for i, (x, y) in enumerate(zip(gx.ravel(), gy.ravel()))][:n_points]
    t0 = time.perf_counter()
    first = _tracker(shot, preset, cache).infer(qs)
    first_s = time.perf_counter() - t0
    mid = shot.n_images // 2
    fixes = [Query(mid, float(np.clip(first.xy[i, mid, 0] + 2.0, 0, W - 1)), float(first.xy[i, mid, 1]), q.name)
             for i, q in enumerate(qs)]
    t1 = time.perf_counter()
    st = _tracker(shot, preset, cache)
    trained = st.trained_iterations
    st.infer(qs + fixes)
    corr_s = time.perf_counter() - t1
    out = {"shot": str(path), "n_frames": shot.n_images, "size": [W, H], "n_points": len(qs), "preset": preset,
           "first_s": round(first_s, 2), "correction_s": round(corr_s, 2), "ratio": round(corr_s / first_s, 4),
           "iterations": trained, "timings_of_correction_run": {k: round(v, 2) for k, v in st.timings.items()}}
    log(json.dumps(out))
    return out


def _mean(rows, key, r, field):
    return float(np.mean([x[key][r][field] for x in rows]))


def table(rows, rounds):
    lines = ["| corrections | AJ anchors | AJ naive | delta_avg anchors | delta_avg naive | OA anchors | "
             "OA naive |", "|---|---|---|---|---|---|---|"]
    for r in range(rounds + 1):
        lines.append(f"| {r} | " + " | ".join(f"{_mean(rows, k, r, f):.3f}" for f in ("AJ", "delta_avg", "OA")
                                             for k in ("anchors", "naive")) + " |")
    first = float(np.mean([x["first_s"] for x in rows]))
    corr = float(np.mean([s for x in rows for s in x["correction_s"]]))
    lines.append(f"\nmean first run {first:.1f} s, mean correction run {corr:.1f} s ({corr / first:.0%})")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/work/shared/data", help="the shared data folder (TAP-Vid-DAVIS)")
    ap.add_argument("--davis", action="store_true", help="simulate on the TAP-Vid-DAVIS dev split")
    ap.add_argument("--videos", help="comma-separated DAVIS video indices or names (default: all dev videos)")
    ap.add_argument("--synth", metavar="ROOT", help="simulate on the synthetic scenes under ROOT")
    ap.add_argument("--timing", metavar="SHOT", help="time a correction run against the first run on SHOT")
    ap.add_argument("--timing-frames", type=int, default=50)
    ap.add_argument("--timing-points", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--preset", default="cpu-preview")
    ap.add_argument("--out", required=True, help="results folder (its cache/ holds the trained models)")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(a.out)
    if a.timing:
        atomic.write_json(out / "timing.json", timing(a.timing, a.timing_frames, a.timing_points, a.preset,
                                                      out / "cache" / "timing"), indent=1)
    cases = []
    if a.davis:
        cases += [("davis", k, m) for k, m in davis_cases(a.data, a.videos.split(",") if a.videos else None)]
    if a.synth:
        cases += [("synth", k, m) for k, m in synth_cases(a.synth)]
    rows: dict[str, list] = {}
    for ds, key, make in cases:
        f = out / ds / f"{key}.json"
        if f.is_file():
            res = json.loads(f.read_text())
        else:
            print(f"{ds} {key}", flush=True)
            shot, qs, gt_xy, gt_vis, can_fix = make()
            res = {"key": key, **simulate(shot, qs, gt_xy, gt_vis, can_fix, a.preset, out / "cache" / ds / key,
                                          a.rounds, log=lambda s: print(s, flush=True))}
            atomic.write_json(f, res, indent=1)
        rows.setdefault(ds, []).append(res)
    summary = {}
    for ds, rs in rows.items():
        summary[ds] = {"videos": [r["key"] for r in rs], "preset": a.preset, "rounds": a.rounds,
                       "means": {k: [{m: round(_mean(rs, k, r, m), 4) for m in ("AJ", "delta_avg", "OA")}
                                     for r in range(a.rounds + 1)] for k in ("anchors", "naive")},
                       "first_s": [r["first_s"] for r in rs], "correction_s": [r["correction_s"] for r in rs]}
        print(f"\n{ds}: {len(rs)} videos ({', '.join(summary[ds]['videos'])})\n" + table(rs, a.rounds))
    if summary:
        atomic.write_json(out / "summary.json", summary, indent=1)


if __name__ == "__main__":
    main()
