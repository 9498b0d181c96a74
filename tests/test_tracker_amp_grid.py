"""Delta-DINO's resampling onto the DINO grid keeps float32 coordinates under bf16 autocast."""

from __future__ import annotations

import torch

from dino_tracker_vfx.tracker.model.delta_dino import DeltaDino
from dino_tracker_vfx.tracker.model.feature_grid import FeatureGrid


def test_delta_resampling_positions_stay_exact_under_bf16_autocast():
    wh = (854, 476)  # the paper's working raster
    m = DeltaDino(2, (4, 4, 4), 3, zero_init=False)
    native = m.native_grid(wh)
    jj, ii = torch.meshgrid(torch.arange(native.w, dtype=torch.float32),
                            torch.arange(native.h, dtype=torch.float32), indexing="xy")
    # a native map whose two channels are its own cell indices (exact in bf16), as autocast's conv gives it
    ramp = torch.stack([jj, ii])[None].to(torch.bfloat16)
    m.forward_native = lambda images: ramp
    grid = FeatureGrid.dino(wh, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(torch.zeros(1, 3, wh[1], wh[0]), grid)
    assert out.shape == (1, 2, grid.h, grid.w)
    u = (grid.centres() - native.offset) / native.stride  # where each DINO cell centre lies on the native map
    u = torch.stack([u[:, 0].clamp(0, native.w - 1), u[:, 1].clamp(0, native.h - 1)], 1)
    sampled = out[0].float().reshape(2, -1).t()
    err_px = ((sampled - u).abs().max() * native.stride).item()
    assert err_px < 1e-3, f"samples misplaced by up to {err_px:.3f} px"
