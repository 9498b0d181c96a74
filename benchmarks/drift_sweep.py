#!/usr/bin/env python
"""Drift correction, "pattern gone" and confidence of the weight-free preview, per video, from one set of flows.

For each TAP-Vid-DAVIS dev video (first 32 frames, strided queries, frames at 480p): DIS flow
(``flow.compute_flow``, the product's defaults) and the direct candidates of drift correction
(``drift.direct_candidates``: one seeded DIS flow per query image and other image) are computed ONCE
(kept in ``--cache`` as ``<video>.npz``, reused by later runs); then every candidate rule of the grid
(``drift.anchored_chain``: NCC margin, radius, radius per px of path, confirming images, their tolerance)
is scored, the old per-image choice ("per-image", the rule before issue 16) and the plain chain too.

Visibility here is the flow's part of the product's rule (``flow_guided.flow_guided_visibility`` without the
learned feature's vouching, which needs a trained model per video: ``benchmarks/occlusion_sweep.py``):
alive until 2 steps of forward-backward error >= 7.5 px, on the raster, and not ``flow_guided.pattern_gone``.
Per rule: AJ, delta_avg, OA (TAP-Vid, 256 x 256) and the largest step of a visible track beyond what its
plain chain ever moves in one step ("excess jump", plate px). Leave-one-video-out: the rule (among those
with 2+ confirming images: fewer far re-anchors) and the pattern-gone setting are chosen on the other
videos (most delta_avg; most AJ with OA within 0.003 of no "gone" rule) and scored on the held-out one. Confidence: the logistic
model of ``flow_guided.track_confidence`` ("within 4 px" from patch NCC, log FB error, log steps since the
anchor) is fitted on the other videos and its AUC measured on the held-out one; the fit on all videos is
printed (``flow_guided.CONF_WEIGHTS``). Writes ``OUT/drift_sweep.json``.

    OMP_NUM_THREADS=1 python benchmarks/drift_sweep.py --cache runs/drift_cache --out runs/drift_sweep
    OMP_NUM_THREADS=1 python benchmarks/drift_sweep.py --videos 03,29 --cache runs/drift_cache
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from dino_tracker_vfx.evaluation.datasets import read_gt, select
from dino_tracker_vfx.evaluation.harness import open_frames
from dino_tracker_vfx.evaluation.metrics import tapvid_metrics_plate
from dino_tracker_vfx.tracker.infer.drift import (DEFAULT_CONFIRM, DEFAULT_CONFIRM_PX, DEFAULT_MARGIN, DEFAULT_RADIUS,
                                            DEFAULT_RADIUS_PER_PX, anchored_chain, direct_candidates, gray_frames,
                                            ncc, patches)
from dino_tracker_vfx.tracker.infer.chain import alive_until_failure, chain_steps
from dino_tracker_vfx.tracker.preprocess.flow import FlowField, compute_flow
from dino_tracker_vfx.tracker.infer.flow_guided import CONF_WEIGHTS, GONE_NCC, GONE_RUN, pattern_gone

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tapvid_davis"
KEYS = ("AJ", "delta_avg", "OA")
FAIL_PX, FAIL_RUN = 7.5, 2  # cpu-preview: occlusion_fb_scale 5 x flow.fb_thresh 1.5, occlusion_fail_run 2
RULES = [(0.5, 1e9, 0.0, 0, 0.0), (0.5, 4.0, 0.1, 1, 3.0), (0.5, 4.0, 0.1, 2, 3.0), (0.5, 4.0, 0.25, 2, 3.0),
         (0.5, 4.0, 0.1, 3, 3.0), (0.5, 4.0, 0.1, 2, 5.0), (0.4, 4.0, 0.1, 2, 3.0), (0.5, 8.0, 0.1, 2, 3.0)]
GONES = [(-9.0, 1), (-0.2, 4), (-0.2, 8), (-0.2, 16), (-0.1, 4), (-0.1, 8), (-0.1, 16), (0.0, 4), (0.0, 8),
         (0.0, 16), (0.0, 24), (0.1, 6), (0.1, 12), (0.1, 16), (0.2, 4), (0.2, 12), (0.2, 16)]  # (-9, 1): none


def rule_name(r) -> str:
    return "m{:g} r{:g}+{:g}/px c{}@{:g}".format(*r)


def video_arrays(gt, a) -> dict:
    """Flows, grey images, direct candidates and ground truth of one video (cached as ``<key>.npz``)."""
    f = Path(a.cache) / f"{gt.key}.npz"
    if f.is_file():
        return dict(np.load(f))
    shot = open_frames(gt, a.frames, Path(a.out))
    g = gt.scaled_to(shot.size)
    frames = shot.load()
    t0 = time.perf_counter()
    ff = compute_flow(frames, "dis")
    t1 = time.perf_counter()
    t_q = g.query_t
    xy_q = np.array([[q.x, q.y] for q in g.queries], np.float64)
    direct = direct_candidates(frames, ff, t_q, xy_q)
    d = {"fwd": ff.fwd, "bwd": ff.bwd, "gray": gray_frames(frames), "t_q": t_q, "xy_q": xy_q, "direct": direct,
         "gt_xy": g.xy, "gt_vis": g.visible, "plate": np.array(g.plate_size),
         "secs": np.array([t1 - t0, time.perf_counter() - t1])}
    f.parent.mkdir(parents=True, exist_ok=True)
    np.savez(f, **d)
    return d


def per_image_rule(d, chain, margin=0.5):
    """The rule before issue 16: at every image independently, the direct candidate if its NCC beats the
    plain chain's by ``margin``."""
    g = d["gray"].astype(np.float32)
    N, T = chain.shape[:2]
    tmpl = np.stack([patches(g[k], d["xy_q"][n:n + 1])[0] for n, k in enumerate(d["t_q"])]) if N else None
    out = chain.copy()
    for t in range(T):
        c = d["direct"][:, t]
        has = np.isfinite(c).all(1)
        if has.any():
            take = ncc(tmpl[has], patches(g[t], c[has])) > ncc(tmpl[has], patches(g[t], chain[has, t])) + margin
            out[np.nonzero(has)[0][take], t] = c[has][take]
    return out


def visibility(d, fb, inside, nc=None, gone=None):
    vis = alive_until_failure(fb, inside, d["t_q"], FAIL_PX, FAIL_RUN) & inside
    if nc is not None and gone is not None:
        vis &= ~pattern_gone(nc, *gone)
    vis[np.arange(len(d["t_q"])), d["t_q"]] = True
    return vis


def score(d, xy, vis, chain):
    m = tapvid_metrics_plate(d["t_q"], d["gt_xy"], d["gt_vis"], tuple(d["plate"]), xy, vis)
    step = np.linalg.norm(np.diff(xy, axis=1), axis=-1)
    chain_max = np.linalg.norm(np.diff(chain, axis=1), axis=-1).max(axis=1, initial=0.0)
    excess = np.where(vis[:, 1:] & vis[:, :-1], step - chain_max[:, None], 0.0).max(initial=0.0)
    return [float(m[k]) for k in KEYS] + [float(excess)]


def conf_features(nc, fb, age) -> np.ndarray:
    return np.stack([np.ones_like(nc), nc, np.log1p(fb), np.log1p(age)], -1).astype(np.float64)


def fit_logistic(X, y, l2=1e-3, iters=30) -> np.ndarray:
    w = np.zeros(X.shape[1])
    for _ in range(iters):  # Newton steps
        p = 1.0 / (1.0 + np.exp(-X @ w))
        w -= np.linalg.solve((X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(len(w)), X.T @ (p - y) + l2 * w)
    return w


def auc(s, y) -> float:
    """Probability that a random positive scores above a random negative (ties half); NaN with one class."""
    from scipy.stats import rankdata

    if y.min() == y.max():
        return float("nan")
    r = rankdata(s)
    npos = int(y.sum())
    nneg = len(y) - npos
    return float((r[y == 1].sum() - npos * (npos + 1) / 2) / max(npos * nneg, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gt", default=str(DATA / "gt_first32" / "tapvid_davis_dev_strided_32.pkl"))
    ap.add_argument("--frames", default=str(DATA / "frames480"))
    ap.add_argument("--videos", default=None, help="comma-separated indices or names (default: all in --gt)")
    ap.add_argument("--cache", default="runs/drift_cache", help="per-video flows and candidates (<video>.npz)")
    ap.add_argument("--out", default="runs/drift_sweep")
    a = ap.parse_args()
    videos = select(read_gt(a.gt, "strided"), a.videos.split(",") if a.videos else None)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    res, conf_data, keys = {}, {}, []
    default = (DEFAULT_MARGIN, DEFAULT_RADIUS, DEFAULT_RADIUS_PER_PX, DEFAULT_CONFIRM, DEFAULT_CONFIRM_PX)  # the product's
    for gt in videos:
        d = video_arrays(gt, a)
        flow = FlowField(d["fwd"], d["bwd"])
        chain, fb, inside = chain_steps(flow, d["t_q"], d["xy_q"])
        vis0 = visibility(d, fb, inside)
        r = {"plain chain": score(d, chain, vis0, chain), "per-image": score(d, per_image_rule(d, chain), vis0, chain)}
        for rule in RULES:
            c = anchored_chain(flow, d["gray"], d["t_q"], d["xy_q"], d["direct"], *rule)
            r[rule_name(rule)] = score(d, c.xy, visibility(d, c.fb, c.inside), chain)
            if rule == default:
                for gone in GONES:
                    r[f"gone {gone[0]:g} x{gone[1]}"] = score(d, c.xy, visibility(d, c.fb, c.inside, c.ncc, gone), chain)
                T = c.ncc.shape[1]
                m = d["gt_vis"] & (np.arange(T)[None] != d["t_q"][:, None])
                err = np.linalg.norm(c.xy - d["gt_xy"], axis=-1)
                conf_data[gt.key] = (conf_features(c.ncc, c.fb, c.age)[m], (err[m] < 4.0).astype(np.float64))
        res[gt.key], _ = r, keys.append(gt.key)
        print(f"{gt.key:22s} " + "  ".join(f"{n}: {v[1]:.3f}/{v[3]:.0f}" for n, v in list(r.items())[:4]), flush=True)
    names = list(res[keys[0]])
    M = np.array([[res[k][n] for k in keys] for n in names])  # [setting, video, AJ/d_avg/OA/excess]
    summary = {}
    print(f"\n{'setting':28s} {'AJ':>6s} {'d_avg':>6s} {'OA':>6s}  max excess jump px")
    for i, n in enumerate(names):
        summary[n] = dict(zip(KEYS + ("excess_jump",), map(float, list(M[i, :, :3].mean(0)) + [M[i, :, 3].max()])))
        print(f"{n:28s} {M[i, :, 0].mean():6.3f} {M[i, :, 1].mean():6.3f} {M[i, :, 2].mean():6.3f}  {M[i, :, 3].max():8.1f}")
    rules = [names.index(rule_name(r)) for r in RULES if r[3] >= 2]  # two confirming images: fewer far re-anchors
    gones = [names.index(f"gone {g[0]:g} x{g[1]}") for g in GONES]
    none = names.index("gone -9 x1")
    held_rule, held_gone, chosen_rule, chosen_gone, held_auc = [], [], [], [], []
    for v in range(len(keys)):
        rest = np.arange(len(keys)) != v
        best = max(rules, key=lambda i: M[i, rest, 1].mean())
        ok = [i for i in gones if M[i, rest, 2].mean() >= M[none, rest, 2].mean() - 0.003]
        bg = max(ok, key=lambda i: M[i, rest, 0].mean())
        held_rule.append(M[best, v])
        held_gone.append(M[bg, v])
        chosen_rule.append(names[best])
        chosen_gone.append(names[bg])
        X = np.concatenate([conf_data[k][0] for j, k in enumerate(keys) if j != v])
        y = np.concatenate([conf_data[k][1] for j, k in enumerate(keys) if j != v])
        Xv, yv = conf_data[keys[v]]
        held_auc.append(auc(Xv @ fit_logistic(X, y), yv))
    hr, hg = np.mean(held_rule, 0), np.mean(held_gone, 0)
    print(f"\nleave-one-video-out rule: AJ {hr[0]:.3f} delta_avg {hr[1]:.3f} OA {hr[2]:.3f}; chosen: "
          + ", ".join(f"{n} x{chosen_rule.count(n)}" for n in sorted(set(chosen_rule))))
    print(f"leave-one-video-out pattern gone: AJ {hg[0]:.3f} delta_avg {hg[1]:.3f} OA {hg[2]:.3f}; chosen: "
          + ", ".join(f"{n} x{chosen_gone.count(n)}" for n in sorted(set(chosen_gone))))
    X = np.concatenate([conf_data[k][0] for k in keys])
    y = np.concatenate([conf_data[k][1] for k in keys])
    w = fit_logistic(X, y)
    prod = np.array([CONF_WEIGHTS["bias"], CONF_WEIGHTS["ncc"], CONF_WEIGHTS["log_fb"], CONF_WEIGHTS["log_age"]])
    print(f"confidence, held-out AUC for 'within 4 px' (visible points): mean {np.nanmean(held_auc):.3f}, "
          f"min {np.nanmin(held_auc):.3f} ({int(np.isnan(held_auc).sum())} videos without errors); fit on all: bias {w[0]:.2f} ncc {w[1]:.2f} log_fb {w[2]:.2f} "
          f"log_age {w[3]:.2f} (product weights: AUC {auc(X @ prod, y):.3f} pooled)")
    p = 1.0 / (1.0 + np.exp(-X @ prod))
    edges = np.quantile(p, np.linspace(0, 1, 11))
    dec = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    table = [(float(p[dec == i].mean()), float(y[dec == i].mean()), int((dec == i).sum())) for i in range(10)]
    print("confidence decile: mean confidence / fraction within 4 px: "
          + "  ".join(f"{c:.2f}/{f:.2f}" for c, f, _ in table))
    print(f"(product: infer.gone_ncc {GONE_NCC}, gone_run {GONE_RUN})")
    (Path(a.out) / "drift_sweep.json").write_text(json.dumps(
        {"videos": res, "summary": summary, "loo": {"rule": list(map(float, hr)), "chosen_rule": chosen_rule,
                                                    "gone": list(map(float, hg)), "chosen_gone": chosen_gone,
                                                    "auc": held_auc},
         "confidence_fit": list(map(float, w)), "deciles": table}, indent=1))


if __name__ == "__main__":
    main()
