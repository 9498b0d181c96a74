"""Helpers of the tracker-preprocessing tests (tests/test_tracker_prep_*.py)."""

from __future__ import annotations

import numpy as np

from conftest import texture


def sliding_frames(T: int, w: int, h: int, step=(1, 0), seed: int = 0) -> np.ndarray:
    """uint8 [T, h, w, 3]: a window moving over a bigger texture, so content moves by -step px per frame
    (a point at (x, y) in frame t is at (x - sx, y - sy) in frame t+1)."""
    sx, sy = step
    pad = 8 + int(max(abs(sx), abs(sy)) * T)
    big = texture(h + 2 * pad, w + 2 * pad, seed)
    return np.stack([big[pad + t * sy: pad + t * sy + h, pad + t * sx: pad + t * sx + w] for t in range(T)])


def constant_flow(T: int, w: int, h: int, d=(1.0, 0.0)):
    """FlowField of T frames where everything moves by ``d`` px per frame (exact backward flow)."""
    from dino_tracker_vfx.tracker.preprocess.flow import FlowField

    fwd = np.zeros((T - 1, h, w, 2), np.float32)
    fwd[..., 0], fwd[..., 1] = d
    return FlowField(fwd, -fwd.copy())
