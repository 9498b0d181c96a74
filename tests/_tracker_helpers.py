"""Helpers of the tracker tests (tests/test_tracker_*.py): tiny synthetic shots with known motion."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import texture

W, H, T = 64, 48, 6
SHIFT = (2.0, 1.0)  # the texture moves by (-2, -1) px per frame: content at (x, y) in t is at (x-2, y-1) in t+1

TINY_WF = {  # weight-free, tiny: Delta CNN with two downsamples (stride 4), a few iterations
    "name": "test-tiny",
    "backbone": "none",
    "working_height": 48,
    "amp": False,
    "delta": {"hidden": [8, 16], "out_channels": 16, "kernel": 3},
    "flow": {"method": "dis"},
    "best_buddies": {"enabled": False},
    "train": {"iterations": 12, "checkpoint_every": 4, "frames_per_step": 3, "flow_pairs": 64, "rfn_after": 0.5,
              "cyc_frame_pairs": 1, "cyc_points_per_pair": 16, "bb_pairs": 32, "lambda_dino_bb": 0.0,
              "lambda_norm": 0.0, "lambda_angle": 0.0},
    "infer": {"argmax_radius": 8.0},
}


def moving_frames(n: int = T, w: int = W, h: int = H, shift=SHIFT, seed: int = 0) -> np.ndarray:
    """uint8 [n, h, w, 3]: a window sliding over a larger texture by ``shift`` px per frame."""
    sx, sy = shift
    big = texture(h + int(abs(sy) * n) + 4, w + int(abs(sx) * n) + 4, seed)
    return np.stack([big[int(sy * t):int(sy * t) + h, int(sx * t):int(sx * t) + w] for t in range(n)])


def true_track(t0: int, xy0, n: int = T, shift=SHIFT) -> np.ndarray:
    """[n, 2] positions of the texture point at ``xy0`` in frame ``t0`` under :func:`moving_frames`."""
    t = np.arange(n)[:, None]
    return np.asarray(xy0, float)[None] - np.asarray(shift, float)[None] * (t - t0)


def exact_pairs(n_pairs: int, n: int = T, w: int = W, h: int = H, shift=SHIFT, seed: int = 0):
    """Exact correspondences of :func:`moving_frames` (both ends on the raster):
    (t_i [P], xy_i [P, 2], t_j [P], xy_j [P, 2]) working px."""
    rng = np.random.default_rng(seed)
    ti = rng.integers(0, n, n_pairs)
    tj = rng.integers(0, n, n_pairs)
    xy_i = rng.uniform([0, 0], [w - 1, h - 1], (n_pairs, 2))
    xy_j = xy_i - np.asarray(shift)[None] * (tj - ti)[:, None]
    ok = (ti != tj) & (xy_j[:, 0] >= 0) & (xy_j[:, 0] <= w - 1) & (xy_j[:, 1] >= 0) & (xy_j[:, 1] <= h - 1)
    return ti[ok], xy_i[ok].astype(np.float32), tj[ok], xy_j[ok].astype(np.float32)


def write_shot(folder: Path, n: int = T, name: str = "sh", first: int = 1001, **kw) -> Path:
    """PNG sequence of :func:`moving_frames` -> the pattern ``folder/name.####.png``."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for t, f in enumerate(moving_frames(n, **kw)):
        cv2.imwrite(str(folder / f"{name}.{first + t:04d}.png"), f[..., ::-1])
    return folder / f"{name}.####.png"


def write_queries(path: Path, rows) -> Path:
    lines = ["name,t,x,y,group"] + [f"{r[0]},{r[1]},{r[2]},{r[3]},{r[4] if len(r) > 4 else ''}" for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_flow_guided(flow, to_flow, store, t_q, xy_q, q_feat, tracker_xy, *, fb_thresh: float = 1.5,
                    agree_px: float = 6.0, visible_cos: float = 0.6, occ_fb_scale: float = 5.0, fail_run: int = 2,
                    frames=None, drift_correct: bool = True, gone_ncc: float | None = None,
                    gone_run: int | None = None):
    """The flow-guided branch as ShotTracker.infer runs it: flow_guided_signals then flow_guided_visibility
    -> (xy [N, T, 2] working px, visible [N, T], confidence [N, T])."""
    from dino_tracker_vfx.tracker.infer import flow_guided as fg

    sig = fg.flow_guided_signals(flow, to_flow, store, t_q, xy_q, q_feat, tracker_xy, frames=frames,
                                 drift_correct=drift_correct)
    vis, conf = fg.flow_guided_visibility(sig, t_q, fb_thresh=fb_thresh, agree_px=agree_px, visible_cos=visible_cos,
                                          occ_fb_scale=occ_fb_scale, fail_run=fail_run,
                                          gone_ncc=fg.GONE_NCC if gone_ncc is None else gone_ncc,
                                          gone_run=fg.GONE_RUN if gone_run is None else gone_run)
    return sig.xy, vis, conf
