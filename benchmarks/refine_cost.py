#!/usr/bin/env python
"""What plate-resolution refinement costs: cpu-preview on a 1080p, 50-frame shot, per stage, with and without.

Makes a 1920x1080 PNG sequence of the 50 frames of ``horsejump-high`` (the DAVIS 480p clip upscaled, in
``--out``; reused by a rerun), tracks the 13 sample queries (scaled) plus a ``--grid`` of points with
``cpu-preview`` once (flow, tracklets, training: cached in ``--out``), then runs inference twice on the same
model: ``refine.enabled`` false, then true. Prints every stage's seconds, the refinement's share of the
whole cpu-preview time and the peak resident memory before and after refinement (``ru_maxrss``).

    OMP_NUM_THREADS=1 python benchmarks/refine_cost.py --out runs/refine_cost
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "demo_videos" / "horsejump-high_480p.mp4"
QUERIES = Path(__file__).resolve().parents[1] / "dino_tracker_vfx" / "samples" / "horsejump_queries.csv"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_plate(out: Path, clip: Path, size=(1920, 1080), frames: int = 50) -> Path:
    import cv2

    from dino_tracker_vfx.shots import open_shot

    folder = out / "plate"
    pattern = folder / "hj.####.png"
    if folder.is_dir() and len(list(folder.glob("hj.*.png"))) == frames:
        return pattern
    folder.mkdir(parents=True, exist_ok=True)
    src = open_shot(str(clip))
    for t in range(min(frames, src.n_images)):
        rgb = cv2.resize(src.read(t), size, interpolation=cv2.INTER_CUBIC)
        bgr = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)[..., ::-1]
        cv2.imwrite(str(folder / f"hj.{1001 + t:04d}.png"), bgr)
    return pattern


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--clip", default=str(CLIP))
    ap.add_argument("--grid", type=int, default=60, help="extra grid points on the first image")
    ap.add_argument("--preset", default="cpu-preview")
    a = ap.parse_args(argv)
    import torch

    from dino_tracker_vfx.shots import open_shot
    from dino_tracker_vfx.tracker.api import ShotTracker
    from dino_tracker_vfx.tracker.presets import load_preset
    from dino_tracker_vfx.tracks import Query

    torch.set_num_threads(1)
    out = Path(a.out)
    t0 = time.perf_counter()
    shot = open_shot(str(make_plate(out, Path(a.clip))))
    make_s = time.perf_counter() - t0
    W, H = shot.size
    qs = []
    for line in QUERIES.read_text().splitlines()[1:]:
        name, t, x, y, group = line.split(",")
        qs.append(Query(int(t), float(x) * W / 854, float(y) * H / 480, name, group or None))
    g = int(np.ceil(np.sqrt(a.grid * W / H)))
    xs, ys = np.linspace(0.05 * W, 0.95 * W, g), np.linspace(0.05 * H, 0.95 * H, max(1, a.grid // g))
    qs += [Query(0, float(x), float(y), f"g{i}") for i, (x, y) in enumerate((x, y) for y in ys for x in xs)]
    cfg = load_preset(a.preset).to_dict()
    cfg["refine"]["enabled"] = False
    st = ShotTracker(shot, cfg, cache_dir=out / "cache", device="cpu")
    t0 = time.perf_counter()
    st.prepare()
    st.train()
    st.infer(qs)
    whole_s = time.perf_counter() - t0
    before = dict(st.timings)
    peak_before = peak_mb()
    st.cfg = load_preset(a.preset)  # same model; refinement on
    t0 = time.perf_counter()
    st.infer(qs)
    with_s = time.perf_counter() - t0
    peak_after = peak_mb()
    ref_s = st.timings.get("plate_refine", 0.0) + st.timings.get("reacquire", 0.0)
    cached = out.joinpath("cache").is_dir() and before.get("train", 0) < 1.0
    res = {"shot": f"{W}x{H} x {shot.n_images}", "queries": len(qs), "preset": a.preset, "plate_made_s": make_s,
           "stages_without_refine_s": {k: round(v, 2) for k, v in before.items()},
           "cpu_preview_s": round(whole_s, 2), "plate_refine_s": round(st.timings.get("plate_refine", 0.0), 2),
           "reacquire_s": round(st.timings.get("reacquire", 0.0), 2), "infer_with_refine_s": round(with_s, 2),
           "refine_share_of_cpu_preview": round(ref_s / whole_s, 4), "training_from_cache": bool(cached),
           "peak_rss_mb_before_refine": round(peak_before, 1), "peak_rss_mb_after_refine": round(peak_after, 1)}
    print(json.dumps(res, indent=1))
    (out / "refine_cost.json").write_text(json.dumps(res, indent=1))
    if cached:
        print("note: training came from the cache; delete --out/cache for the share of a whole run", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
