"""Where the cells of a feature map sit in the working raster.

A feature map ``[C, h, w]`` has its cell ``(i, j)`` centred at working pixel
``(x, y) = (j * stride + offset, i * stride + offset)`` (pixel-centre convention: the first pixel's
centre is ``(0, 0)``). Two grids occur:

* DINOv2 with patch 14 and stride ``s``: ``offset = 6.5`` (the centre of the first 14x14 patch),
  ``h = (H - 14) // s + 1`` - the same centres as ``backbones.patch_centres``.
* the Delta-DINO CNN's native map (three anti-aliased stride-2 downsamples): ``stride = 8``,
  ``offset = 3.5`` (each cell is the centre of an 8x8 pixel block), ``h = ceil(H / 8)``.

Sampling a map at sub-cell positions uses ``grid_sample(align_corners=False)`` on the continuous
cell index ``u = (x - offset) / stride`` normalised with :func:`coords.px_to_norm_t`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...checks import check_shape
from ...coords import px_to_norm_t

DINO_PATCH = 14


@dataclass(frozen=True)
class FeatureGrid:
    h: int
    w: int
    stride: float
    offset: float

    @classmethod
    def dino(cls, work_wh: tuple[int, int], stride: int = 7, patch: int = DINO_PATCH) -> "FeatureGrid":
        W, H = work_wh
        return cls((H - patch) // stride + 1, (W - patch) // stride + 1, float(stride), (patch - 1) / 2.0)

    @classmethod
    def cnn(cls, work_wh: tuple[int, int], n_down: int = 3) -> "FeatureGrid":
        W, H = work_wh
        s = 2 ** n_down
        return cls(-(-H // s), -(-W // s), float(s), (s - 1) / 2.0)

    @property
    def hw(self) -> tuple[int, int]:
        return self.h, self.w

    def centres(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """``[h*w, 2]`` (x, y) working px of every cell, row-major (i then j)."""
        ys = torch.arange(self.h, device=device, dtype=dtype) * self.stride + self.offset
        xs = torch.arange(self.w, device=device, dtype=dtype) * self.stride + self.offset
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)

    def to_norm(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) working px -> grid_sample coordinates (align_corners=False) on this map."""
        u = (xy - self.offset) / self.stride
        return px_to_norm_t(u, (self.w, self.h))


def sample_map(fmap: torch.Tensor, grid: FeatureGrid, xy: torch.Tensor, frame: torch.Tensor | None = None
               ) -> torch.Tensor:
    """Bilinear features at points.

    fmap ``[F, C, h, w]``; xy ``[B, 2]`` working px; frame ``[B]`` long index into F (None: F must be 1
    or equal B with one point per map) -> ``[B, C]`` (border-clamped outside the map).
    """
    Fn, C, h, w = fmap.shape
    check_shape(xy, "B 2", "sample_map xy")
    if (h, w) != grid.hw:
        raise ValueError(f"sample_map: map is {h}x{w}, grid is {grid.h}x{grid.w}")
    B = xy.shape[0]
    if frame is None:
        frame = torch.zeros(B, dtype=torch.long, device=xy.device) if Fn == 1 else torch.arange(B, device=xy.device)
    g = grid.to_norm(xy.to(torch.float32))
    if B == 0:
        return fmap.new_zeros(0, C)
    # group points by map so each map is read once: one grid_sample over [F, C, h, w] with [F, 1, K, 2]
    order = torch.argsort(frame)
    fs = frame[order]
    counts = torch.bincount(fs, minlength=Fn)
    K = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(B, device=xy.device) - starts[fs]
    pts = torch.zeros(Fn, K, 2, dtype=g.dtype, device=g.device)
    pts[fs, slot] = g[order]
    used = torch.nonzero(counts).squeeze(1)
    s = F.grid_sample(fmap[used], pts[used].unsqueeze(1).to(fmap.dtype), mode="bilinear",
                      padding_mode="border", align_corners=False)  # [U, C, 1, K]
    remap = torch.full((Fn,), -1, dtype=torch.long, device=xy.device)
    remap[used] = torch.arange(len(used), device=xy.device)
    inv = torch.empty_like(order)
    inv[order] = torch.arange(B, device=xy.device)
    return s[remap[fs], :, 0, slot][inv]
