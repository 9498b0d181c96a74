"""Builders for evaluation / render tests: synthetic GT files in the official layouts, tiny videos."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np

from conftest import REPO, texture
from conftest import SHARED_DATA as DATA  # tests reading it carry the shared_data marker

DEV_PKL = os.path.join(DATA, "tapvid_davis", "gt_first32", "tapvid_davis_dev_strided_32.pkl")
NPZ_DIR = os.path.join(DATA, "tapvid_davis", "gt_first32", "npz")
FRAMES480 = os.path.join(DATA, "tapvid_davis", "frames480")
BADJA_DIR = os.path.join(DATA, "badja")
SAMPLE_SHOT = os.path.join(REPO, "dino_tracker_vfx", "samples", "horsejump")
SAMPLE_QUERIES = os.path.join(REPO, "dino_tracker_vfx", "samples", "horsejump_queries.csv")


def shifting_video(T: int = 8, w: int = 64, h: int = 48, dx: int = 1, seed: int = 0) -> np.ndarray:
    """uint8 [T, h, w, 3]: a texture moving right by ``dx`` px per frame (content at x in frame 0 is at
    x + t*dx in frame t)."""
    big = texture(h, w + dx * T + 8, seed)
    off = dx * T
    return np.stack([np.ascontiguousarray(big[:, off - t * dx: off - t * dx + w]) for t in range(T)])


def official_entry(T=8, w=64, h=48, n=5, seed=0, with_video=True, jpeg=False):
    """One official TAP-Vid entry: points normalised (x, y) moving +1 px/frame in x, some occluded."""
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(12, w - 12 - T, n)
    y0 = rng.uniform(8, h - 8, n)
    pts = np.stack([(x0[:, None] + np.arange(T)[None]) / w, np.repeat(y0[:, None], T, 1) / h], -1)
    occ = np.zeros((n, T), bool)
    occ[0, :3] = True      # first visible at t=3
    if n > 1:
        occ[1, 5:7] = True  # occluded in the middle
    if n > 2:
        occ[2, 0] = True
    e = {"points": pts.astype(np.float32), "occluded": occ}
    if with_video:
        v = shifting_video(T, w, h, 1, seed)
        if jpeg:
            from PIL import Image

            frames = []
            for f in v:
                b = io.BytesIO()
                Image.fromarray(f).save(b, format="JPEG", quality=95)
                frames.append(b.getvalue())
            e["video"] = frames
        else:
            e["video"] = v
    return e


def write_pickle(path, obj) -> str:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)
    return str(path)


def write_frames_root(root, key: str, video: np.ndarray) -> str:
    """Write ``root/<key>/video/00000.jpg...`` (PNG content for exactness, .png names)."""
    import cv2

    d = os.path.join(root, key, "video")
    os.makedirs(d, exist_ok=True)
    for t, f in enumerate(video):
        cv2.imwrite(os.path.join(d, f"{t:05d}.png"), np.ascontiguousarray(f[..., ::-1]))
    return str(root)
