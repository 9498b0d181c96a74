#!/usr/bin/env python
"""Plate refinement on TAP-Vid-DAVIS (dev split, strided): the same coarse tracks scored without refinement
and with refinement + re-acquisition at several ``refine.hide_zncc`` settings (the other settings, ``refine.hide_run`` included: defaults).

Reads the tracks of a no-refinement run of the harness (``--coarse``: its ``tracks/<video>.json``, e.g.
``dtvfx eval tapvid ... --preset <cpu-preview with refine.enabled false> --out runs/davis_noref``), runs
:func:`refine_tracks` and :func:`reacquire` on them exactly as ``ShotTracker.refine_plate`` does (search
radius: the preset's, 6 px at 480p) and scores every variant with the harness's TAP-Vid metrics (256x256).
``visonly`` keeps the coarse positions with the default variant's visibility (what visibility alone does).
Per-video rows go to ``--out`` (reused by a rerun); the means are printed.

    OMP_NUM_THREADS=1 python benchmarks/refine_davis.py --coarse runs/davis_noref --out runs/refine_davis
    OMP_NUM_THREADS=1 python benchmarks/refine_davis.py --coarse runs/davis_noref --out runs/guard --default-only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tapvid_davis"
HIDE = {"no hiding": -1.0, "hide 0.3": 0.3, "hide 0.5 (default)": 0.5}
KEYS = ("AJ", "delta_avg", "OA", "delta_1")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--coarse", required=True, help="output folder of a no-refinement harness run")
    ap.add_argument("--out", required=True)
    ap.add_argument("--gt", default=str(DATA / "gt_first32" / "tapvid_davis_dev_strided_32.pkl"))
    ap.add_argument("--frames", default=str(DATA / "frames480"))
    ap.add_argument("--preset", default="cpu-preview")
    ap.add_argument("--default-only", action="store_true", help="only the preset's own settings (the guard run)")
    a = ap.parse_args(argv)
    from dino_tracker_vfx.evaluation import metrics as M
    from dino_tracker_vfx.evaluation.datasets import read_gt
    from dino_tracker_vfx.evaluation.harness import _align, name_videos, open_frames
    from dino_tracker_vfx.tracker.api import flow_size, working_size
    from dino_tracker_vfx.tracker.infer.reacquire import ReacquireSettings, reacquire
    from dino_tracker_vfx.tracker.infer.refine import GreyFrames, RefineSettings, auto_search_radius, refine_tracks
    from dino_tracker_vfx.tracker.presets import load_preset
    from dino_tracker_vfx.tracks import TrackSet

    cfg = load_preset(a.preset)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for gt in name_videos(read_gt(a.gt, "strided"), a.frames):
        f = out / f"{gt.key}.json"
        if f.is_file():
            continue
        shot = open_frames(gt, a.frames, out)
        g = gt.scaled_to(shot.size)
        pred = _align(TrackSet.load_json(Path(a.coarse) / "tracks" / f"{gt.key}.json"), g)
        fw = flow_size(cfg, shot.size, working_size(cfg, shot.size))[0]
        radius = cfg.refine.search_radius or auto_search_radius(shot.size[0] / fw)
        frames = GreyFrames(shot)
        t_q = np.array([q.t for q in g.queries])
        xy_q = np.array([[q.x, q.y] for q in g.queries])

        def score(xy, vis):
            m = M.tapvid_metrics_plate(g.query_t, g.xy, g.visible, g.plate_size, xy, vis, pred.plate_size)
            return {k: float(m[k]) for k in KEYS}

        row = {"coarse": score(pred.xy, pred.visible)}
        for name, hide in HIDE.items():
            if a.default_only and hide != cfg.refine.hide_zncc:
                continue
            t0 = time.perf_counter()
            s = RefineSettings.from_config(cfg, radius)
            s = RefineSettings(**{**s.__dict__, "hide_zncc": hide})
            r = refine_tracks(frames, pred.xy, pred.visible, pred.confidence, t_q, xy_q, s)
            ra = ReacquireSettings.from_config(cfg, radius)
            ra = ReacquireSettings(**{**ra.__dict__, "min_zncc": max(hide, 0.0)})
            r, _ = reacquire(frames, r, pred.xy, t_q, ra, coarse_visible=pred.visible)
            row[name] = score(r.xy, r.visible) | {"seconds": time.perf_counter() - t0}
            if hide == cfg.refine.hide_zncc:
                row["visonly"] = score(pred.xy, r.visible)
        f.write_text(json.dumps(row))
        print(gt.key, {k: round(v["AJ"], 3) for k, v in row.items()}, file=sys.stderr, flush=True)
    rows = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
    names = list(next(iter(rows.values())))
    print(f"{len(rows)} videos")
    print("| variant | " + " | ".join(KEYS) + " |")
    print("|---|" + "---|" * len(KEYS))
    for n in names:
        print(f"| {n} | " + " | ".join(f"{np.mean([rows[v][n][k] for v in rows]):.3f}" for k in KEYS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
