#!/usr/bin/env python
"""Plate-resolution refinement on the synthetic scenes: coarse vs refined, and its thresholds by leave-one-out.

For each scene under ``--scenes`` (``dtvfx eval synth --make`` / ``benchmarks/synth_eval.py``), the
``--preset`` tracker runs once with ``refine.enabled`` false (training cached under ``--cache``/<scene>;
point it at a ``synth_eval`` run's ``tracker-cpu-preview/cache`` to reuse its models) and gives the COARSE
plate tracks. Refinement (:func:`refine_tracks`) and re-acquisition (:func:`reacquire`) then run on them for
every combination of ``refine.min_zncc`` x ``refine.hide_zncc`` x ``refine.reacquire_zncc`` in the grid, and
each result is scored in plate pixels (``evaluation.plate_metrics``). Thresholds are chosen by leave-one-out:
for each scene, the combination with the best mean AJ on the OTHER scenes is scored on it; the table gives
coarse, the defaults, and the held-out choice per scene, plus stage seconds.

    OMP_NUM_THREADS=1 python benchmarks/refine_sweep.py --scenes runs/synth_eval/scenes \\
        --cache runs/synth_eval/tracker-cpu-preview/cache --out runs/refine_sweep
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

MIN_Z = (0.6, 0.9, 0.97)
HIDE_Z = (-1.0, 0.3, 0.5)
REACQ_Z = (0.7, 0.8, 0.9)
KEYS = ("AJ", "delta_avg", "OA", "median_err", "p90_err", "delta_0.25", "delta_0.5", "delta_1", "reacq")


def coarse_tracks(scene_dir: Path, preset: str, cache: Path):
    from dino_tracker_vfx.evaluation.synth.files import QUERIES_FILE, read_truth
    from dino_tracker_vfx.inputs import read_queries
    from dino_tracker_vfx.shots import open_shot
    from dino_tracker_vfx.tracker.api import ShotTracker
    from dino_tracker_vfx.tracker.presets import load_preset

    gt = read_truth(scene_dir)
    shot = open_shot(gt.pattern)
    qs = read_queries(scene_dir / QUERIES_FILE, shot)
    cfg = load_preset(preset).to_dict()
    cfg["refine"]["enabled"] = False
    st = ShotTracker(shot, cfg, cache_dir=cache / gt.key, device="cpu")
    t0 = time.perf_counter()
    st.prepare()
    st.train()
    tr = st.infer(qs)
    pos = {n: i for i, n in enumerate(tr.names)}
    tr = tr.subset([pos[n] for n in gt.names])
    return gt, shot, tr, time.perf_counter() - t0, dict(st.timings)


def score(gt, xy, vis) -> dict:
    from dino_tracker_vfx.evaluation.plate_metrics import plate_metrics

    m = plate_metrics(gt.query_t, gt.xy, gt.visible, xy, vis, gt.evaluable)
    return {k: float(m[k]) for k in KEYS} | {"n_reappear": int(m["n_reappear"])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="cpu-preview")
    ap.add_argument("--only", default=None, help="comma-separated scene names to compute (others: read if done)")
    ap.add_argument("--solve", action="store_true", help="also judge coarse and default by a camera solve")
    a = ap.parse_args(argv)
    import torch

    from dino_tracker_vfx.evaluation.synth.files import find_scenes
    from dino_tracker_vfx.tracker.infer.reacquire import ReacquireSettings, reacquire
    from dino_tracker_vfx.tracker.infer.refine import (GreyFrames, RefineSettings, auto_search_radius,
                                                       refine_tracks)
    from dino_tracker_vfx.tracker.presets import load_preset

    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    base = load_preset(a.preset)
    rows = {}
    only = set(a.only.split(",")) if a.only else None
    for sd in find_scenes(a.scenes):
        f = out / f"{sd.name}.json"
        if f.is_file():
            rows[sd.name] = json.loads(f.read_text())
            continue
        if only is not None and sd.name not in only:
            continue
        gt, shot, tr, coarse_s, timings = coarse_tracks(sd, a.preset, Path(a.cache))
        from dino_tracker_vfx.tracker.api import flow_size, working_size

        fw = flow_size(base, shot.size, working_size(base, shot.size))[0]
        radius = base["refine.search_radius"] or auto_search_radius(shot.size[0] / fw)
        frames = GreyFrames(shot, int(base["refine.memory_mb"]) << 20)
        xy_q = np.array([[q.x, q.y] for q in tr.queries])
        row = {"coarse": score(gt, tr.xy, tr.visible), "coarse_s": coarse_s, "stages_s": timings, "grid": {}}
        default = (base["refine.min_zncc"], base["refine.hide_zncc"], base["refine.reacquire_zncc"])
        if a.solve:
            from dino_tracker_vfx.evaluation.synth.solve import judge

            row["coarse"].update(judge(gt, tr.xy, tr.visible))
        for mz in MIN_Z:
            s = RefineSettings.from_config(base, radius)
            s = RefineSettings(s.patch_radius, s.warp, s.search_radius, mz, -1.0, s.key_zncc, s.iterations)
            t0 = time.perf_counter()
            r = refine_tracks(frames, tr.xy, tr.visible, tr.confidence, gt.query_t, xy_q, s)
            ref_s = time.perf_counter() - t0
            row["grid"][f"refine_only {mz}"] = score(gt, r.xy, r.visible) | {"seconds": ref_s}
            for hz, rz in itertools.product(HIDE_Z, REACQ_Z):
                vis = r.visible & ~(np.nan_to_num(r.zncc, nan=1.0) < hz)
                r2 = type(r)(r.xy, vis, r.confidence, r.zncc, r.refined, r.warp, r.patterns, r.flat)
                t0 = time.perf_counter()
                ra = ReacquireSettings(radius, rz, int(base["refine.neighbours"]), mz, s.warp, s.iterations)
                r3, _ = reacquire(frames, r2, tr.xy, gt.query_t, ra, coarse_visible=tr.visible)
                row["grid"][f"{mz} {hz} {rz}"] = score(gt, r3.xy, r3.visible) | {
                    "seconds": ref_s + time.perf_counter() - t0}
                if a.solve and (mz, hz, rz) == default:
                    row["grid"][f"{mz} {hz} {rz}"].update(judge(gt, r3.xy, r3.visible))
                    np.savez_compressed(out / f"{sd.name}_default.npz", xy=r3.xy, visible=r3.visible,
                                        coarse_xy=tr.xy, coarse_visible=tr.visible, zncc=r3.zncc)
            print(f"{sd.name}: min_zncc {mz} done", file=sys.stderr, flush=True)
        f.write_text(json.dumps(row, indent=1))
        rows[sd.name] = row
    names = sorted(rows)
    if not names:
        return 0
    combos = [k for k in rows[names[0]]["grid"] if not k.startswith("refine_only")]
    default = f"{base['refine.min_zncc']} {base['refine.hide_zncc']} {base['refine.reacquire_zncc']}"
    loo = {}
    for n in names:
        others = [m for m in names if m != n]
        best = max(combos, key=lambda c: np.mean([rows[m]["grid"][c]["AJ"] for m in others]))
        loo[n] = {"choice": best, **rows[n]["grid"][best]}

    keys = KEYS + (("solve_reproj_mean", "solve_reproj_median") if a.solve else ())

    def mean(get):
        return {k: float(np.nanmean([get(n).get(k, np.nan) for n in names])) for k in keys}

    table = {"coarse": mean(lambda n: rows[n]["coarse"]), "default " + default: mean(lambda n: rows[n]["grid"][default]),
             "leave-one-out": mean(lambda n: loo[n])}
    for mz in MIN_Z:
        table[f"refine only, min_zncc {mz}"] = mean(lambda n: rows[n]["grid"][f"refine_only {mz}"])
    print(f"{len(names)} scenes: {', '.join(names)}")
    print("| variant | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for k, v in table.items():
        print(f"| {k} | " + " | ".join(f"{v[c]:.3f}" for c in keys) + " |")
    print("leave-one-out choices (min_zncc hide_zncc reacquire_zncc):", {n: loo[n]["choice"] for n in names})
    print("refine seconds per scene (default):", {n: round(rows[n]["grid"][default]["seconds"], 1) for n in names})
    (out / "summary.json").write_text(json.dumps({"table": table, "loo": loo, "default": default}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
