#!/usr/bin/env python
"""Time the tracker's stages and peak memory: our optimised path vs a plain fp32 path, in one run.

    python benchmarks/bench_tracker.py --config tiny                       # CPU, seconds (a test runs it)
    python benchmarks/bench_tracker.py --config cpu-preview                # the bundled 24-frame sample
    python benchmarks/bench_tracker.py --config gpu --device cuda          # ViT-L/14, 100 x 854x476
    python benchmarks/bench_tracker.py --config gpu --frames 300 --iters 50 --skip-infer   # 300-frame memory

Stages: ``preprocess`` (frames, flow, correspondences, DINO features, foreground, best-buddies),
``train`` (``--iters`` iterations after ``--warmup``, extrapolated to the preset's iterations) and
``infer`` (refined features + tracking + occlusion of ``--queries`` random queries).

Variants (each in its own subprocess, so peak memory is its own):

* ``optimised``: bf16 autocast for the ViT and the CNN, DINO maps stored fp16, low-precision cost volumes,
  the windowed head (refiner + soft-argmax on the window around the argmax only);
* ``plain``: fp32 everywhere (``amp: false``, fp32 DINO maps) and the whole-map head (refiner and softmax
  over every cell, as the reference implementation does).

Both use random ViT weights (``weights: random``) and DIS flow, so no weight files are needed. Peak memory
is ``torch.cuda.max_memory_allocated`` per stage on CUDA and the process's peak RSS on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIGS = {
    # tiny: a synthetic 6-frame 64x48 shot, ViT-S/14 (random) at stride 7 up to block 1, tiny Delta CNN
    "tiny": {"frames": 6, "size": (64, 48), "iters": 4, "warmup": 1, "queries": 8, "preset": {
        "base": "paper", "name": "bench-tiny", "backbone": "dinov2_vits14", "layer": 1, "weights": "random",
        "working_height": 48, "delta": {"hidden": [8, 16, 16]}, "flow": {"method": "dis"},
        "foreground": {"saliency_layer": 1},
        "train": {"iterations": 10000, "frames_per_step": 4, "flow_pairs": 64, "bb_pairs": 64,
                  "cyc_points_per_pair": 16, "rfn_after": 0.0},
        "infer": {"argmax_radius": 10.0}}},
    # cpu-preview: the weight-free preset on the bundled 24-frame 854x480 sample
    "cpu-preview": {"shot": "dino_tracker_vfx/samples/horsejump/horsejump.#####.jpg", "iters": 20, "warmup": 2,
                    "queries": 13, "preset": {"base": "cpu-preview"}},
    # gpu: the paper's model (ViT-L/14 stride 7 layer 15, random weights), DIS flow, 100 synthetic 854x476 frames
    "gpu": {"frames": 100, "size": (854, 476), "iters": 200, "warmup": 10, "queries": 256, "preset": {
        "base": "paper", "name": "bench-gpu", "weights": "random", "flow": {"method": "dis"}}},
}

VARIANTS = {
    "optimised": {"amp": True, "features_dtype": "float16", "windowed_head": True},
    "plain": {"amp": False, "features_dtype": "float32", "windowed_head": False},
}


# ---------------------------------------------------------------------------------------------- one variant
def _synthetic_shot(folder: Path, n: int, wh: tuple[int, int]):
    """A PNG sequence of a smooth random texture drifting by (2, 1) px per frame."""
    import cv2
    import numpy as np

    from dino_tracker_vfx.shots import open_shot

    W, H = wh
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.random((H + n + 8, W + 2 * n + 8, 3)).astype(np.float32), (0, 0), 3)
    big = ((big - big.min()) / (big.max() - big.min()) * 255).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(n):
        cv2.imwrite(str(folder / f"b.{t + 1:04d}.png"), big[t:t + H, 2 * t:2 * t + W])
    return open_shot(str(folder / "b.####.png"))


def _peak(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _reset(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_variant(conf: dict, variant: str, device: str | None, skip_infer: bool, threads: int) -> dict:
    import numpy as np
    import torch

    from dino_tracker_vfx.shots import open_shot
    from dino_tracker_vfx.tracker.api import ShotTracker
    from dino_tracker_vfx.tracker.presets import load_preset
    from dino_tracker_vfx.tracks import Query

    torch.set_num_threads(threads)
    preset = dict(conf["preset"])
    preset.update(VARIANTS[variant])
    cfg = load_preset(preset)
    if cfg.weight_free:  # no ViT: nothing to store in fp16
        cfg = load_preset({**preset, "features_dtype": "float32"} if variant == "plain" else preset)
    with tempfile.TemporaryDirectory() as tmp:
        if conf.get("shot"):
            shot = open_shot(str(REPO / conf["shot"]))
        else:
            shot = _synthetic_shot(Path(tmp) / "shot", conf["frames"], tuple(conf["size"]))
        st = ShotTracker(shot, cfg, device=device, seed=0)
        dev = st.device
        out: dict = {"variant": variant, "device": str(dev), "frames": shot.n_images, "plate": list(shot.size),
                     "working": list(st.work_wh), "preset": cfg.name, "iterations_preset": cfg["train.iterations"]}
        if dev.type == "cuda":
            out["gpu"] = torch.cuda.get_device_name(dev)
        _reset(dev)
        t0 = time.perf_counter()
        st.prepare()
        _sync(dev)
        out["preprocess_s"] = time.perf_counter() - t0
        out["preprocess_stages_s"] = {k: round(v, 3) for k, v in st.timings.items()}
        out["preprocess_peak_mb"] = _peak(dev)

        _reset(dev)
        warm, iters = conf["warmup"], conf["iters"]
        st.train(iterations=warm)
        _sync(dev)
        t0 = time.perf_counter()
        st.train(iterations=warm + iters)  # resumes the in-memory trainer
        _sync(dev)
        dt = time.perf_counter() - t0
        out["train_iters_measured"] = iters
        out["train_s_per_iter"] = dt / iters
        out["train_extrapolated_s"] = dt / iters * cfg["train.iterations"]
        out["train_peak_mb"] = _peak(dev)

        if not skip_infer:
            rng = np.random.default_rng(0)
            W, H = shot.size
            qs = [Query(int(rng.integers(0, shot.n_images)), float(rng.uniform(0, W - 1)),
                        float(rng.uniform(0, H - 1)), f"q{i}") for i in range(conf["queries"])]
            _reset(dev)
            t0 = time.perf_counter()
            tracks = st.infer(qs)
            _sync(dev)
            out["infer_s"] = time.perf_counter() - t0
            out["infer_stages_s"] = {k: round(st.timings[k], 3) for k in ("refine_features", "infer", "occlusion")
                                     if k in st.timings}
            out["infer_peak_mb"] = _peak(dev)
            out["queries"] = len(qs)
            out["tracks_shape"] = list(tracks.xy.shape)  # [N queries, T images, 2]
            out["visible_fraction"] = float(tracks.visible.mean())
        out["total_extrapolated_s"] = out["preprocess_s"] + out["train_extrapolated_s"] + out.get("infer_s", 0.0)
        return out


# ---------------------------------------------------------------------------------------------- driver
def _table(rows: list[dict]) -> str:
    keys = [("preprocess_s", "preprocess s"), ("train_s_per_iter", "train s/iter"),
            ("train_extrapolated_s", "train s (extrap.)"), ("infer_s", "infer+occlusion s"),
            ("total_extrapolated_s", "total s"), ("preprocess_peak_mb", "peak MB prep"),
            ("train_peak_mb", "peak MB train"), ("infer_peak_mb", "peak MB infer")]
    head = "| variant | " + " | ".join(k[1] for k in keys) + " |"
    lines = [head, "|" + "---|" * (len(keys) + 1)]
    for r in rows:
        lines.append(f"| {r['variant']} | " + " | ".join(_fmt(r.get(k[0])) for k in keys) + " |")
    if len(rows) == 2:
        a, b = rows
        lines.append("| plain / optimised | " + " | ".join(_ratio(b.get(k[0]), a.get(k[0])) for k in keys) + " |")
    return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")


def _ratio(p, o) -> str:
    return "-" if not p or not o else f"{p / o:.2f}x"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    ap.add_argument("--frames", type=int, help="synthetic shot length (gpu/tiny)")
    ap.add_argument("--size", help="synthetic plate WxH")
    ap.add_argument("--iters", type=int, help="measured training iterations")
    ap.add_argument("--queries", type=int)
    ap.add_argument("--device", choices=["cpu", "cuda"])
    ap.add_argument("--variants", default="optimised,plain")
    ap.add_argument("--skip-infer", action="store_true")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    ap.add_argument("--_one", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    a = ap.parse_args(argv)
    conf = json.loads(json.dumps(CONFIGS[a.config]))
    for k in ("frames", "iters", "queries"):
        if getattr(a, k):
            conf[k] = getattr(a, k)
    if a.size:
        conf["size"] = [int(v) for v in a.size.lower().split("x")]
    if a._one:
        print("@@" + json.dumps(run_variant(conf, a._one, a.device, a.skip_infer, a.threads)))
        return 0
    rows = []
    for v in a.variants.split(","):
        cmd = [sys.executable, __file__, "--config", a.config, "--_one", v, "--threads", str(a.threads)]
        for k in ("frames", "iters", "queries", "device", "size"):
            if getattr(a, k):
                cmd += [f"--{k}", str(getattr(a, k))]
        if a.skip_infer:
            cmd.append("--skip-infer")
        env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("@@")), None)
        if p.returncode != 0 or line is None:
            sys.stderr.write(p.stdout + p.stderr)
            print(f"variant {v} failed (exit {p.returncode})", file=sys.stderr)
            return 1
        rows.append(json.loads(line[2:]))
    print(f"config {a.config}: {rows[0]['frames']} frames, plate {rows[0]['plate']}, working {rows[0]['working']}, "
          f"device {rows[0]['device']}{' (' + rows[0]['gpu'] + ')' if 'gpu' in rows[0] else ''}, "
          f"train extrapolated to {rows[0]['iterations_preset']} iterations")
    print(_table(rows))
    if a.json:
        Path(a.json).write_text(json.dumps({"config": a.config, "args": vars(a), "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
