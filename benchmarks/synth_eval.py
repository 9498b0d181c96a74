#!/usr/bin/env python
"""Matchmove-grade precision on synthetic plates: KLT, chained DIS and tracker presets in plate pixels.

Makes ``--scenes`` (default 6) scenes of ``--size`` (default 1280x720) x ``--frames`` (default 40) with
``dtvfx eval synth --make`` (cards textured with the DAVIS frames of ../shared/data when present, else
procedural textures), then evaluates every method of ``--methods`` on them through the harness
(``harness.evaluate_synth``) and prints the table (delta at 0.25/0.5/1 px, AJ over 0.25..4 px, OA, median and
p90 error, re-acquisition) with per-stage seconds (render, load, track, metrics) and the peak RSS. Scenes and
per-method results go to ``--out`` and are reused by a rerun (same seeds and settings).

    OMP_NUM_THREADS=1 python benchmarks/synth_eval.py --out runs/synth_eval
    OMP_NUM_THREADS=1 python benchmarks/synth_eval.py --out runs/synth_small --size 640x360 --frames 24 \\
        --methods klt,flow --solve
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dino_tracker_vfx.cli.eval import synth_table
from dino_tracker_vfx.evaluation import harness
from dino_tracker_vfx.evaluation.baselines import make_method, method_label
from dino_tracker_vfx.evaluation.synth.files import find_scenes, make_scenes
from dino_tracker_vfx.evaluation.synth.scene import texture_files

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tapvid_davis" / "frames480"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--points", type=int, default=64)
    ap.add_argument("--methods", default="klt,flow,tracker:cpu-preview",
                    help="comma-separated; tracker:<preset> for a tracker preset")
    ap.add_argument("--textures", default=str(DAVIS) if DAVIS.is_dir() else None)
    ap.add_argument("--solve", action="store_true", help="also judge the tracks by a camera solve (pycolmap)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    W, H = (int(v) for v in a.size.split("x"))
    scenes_dir = out / "scenes"
    t0 = time.perf_counter()
    have = {p.name for p in find_scenes(scenes_dir)} if scenes_dir.is_dir() and any(scenes_dir.iterdir()) else set()
    want = [f"scene_{a.seed + k:04d}" for k in range(a.scenes)]
    if set(want) - have:
        tex = texture_files(a.textures) if a.textures else None
        make_scenes(scenes_dir, a.seed, a.scenes, (W, H), a.frames, "png", tex, a.points,
                    log=lambda s: print(s, file=sys.stderr, flush=True))
    render_s = time.perf_counter() - t0
    table = {}
    for spec in a.methods.split(","):
        name, _, preset = spec.partition(":")
        m = make_method(name, preset=preset or None)
        label = method_label(name, m)
        table[label] = harness.evaluate_synth(scenes_dir, m, out / label, solve=a.solve,
                                              log=lambda s: print(s, file=sys.stderr, flush=True))
    print(f"{a.scenes} scenes {W}x{H} x {a.frames} frames, {a.points} points each; textures: "
          f"{'DAVIS photos' if a.textures else 'procedural'}; scenes made in {render_s:.0f} s")
    print(synth_table(table))
    for label, s in table.items():
        print(f"{label}: stage seconds {s['stage_seconds']}, peak RSS {s['peak_rss_mb']:.0f} MiB, "
              f"re-acquisition events {s['n_reappear']}")
    (out / "synth_eval.json").write_text(json.dumps(harness._clean({"render_s": render_s, **table}), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
