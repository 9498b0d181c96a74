"""Where the cells of a feature map sit in the working raster.

A feature map ``[C, h, w]`` has its cell ``(i, j)`` centred at working pixel
``(x, y) = (j * stride + offset, i * stride + offset)`` (pixel-centre convention: the first pixel's
centre is ``(0, 0)``). Two grids occur:

* DINOv2 with patch 14 and stride ``s``: ``offset = 6.5`` (the centre of the first 14x14 patch),
  ``h = (H - 14) // s + 1``; the working raster has ``(size - 14) % s == 0`` (:func:`dino_working_size`),
  so the last patch ends on the last pixel.
* the Delta-DINO CNN's native map (three anti-aliased stride-2 downsamples): ``stride = 8``,
  ``offset = 3.5`` (each cell is the centre of an 8x8 pixel block), ``h = ceil(H / 8)``.

This module is the one owner of that geometry (the backbone, foreground saliency, best-buddies and the
objects' DINO features all ask it). Sampling a map at sub-cell positions uses ``grid_sample(align_corners=False)`` on the continuous
cell index ``u = (x - offset) / stride`` normalised with :func:`coords.px_to_norm_t`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
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
        """The patch grid of DINOv2 on a ``work_wh`` raster (what the ViT's patch embedding produces)."""
        W, H = work_wh
        return cls.dino_map((H - patch) // stride + 1, (W - patch) // stride + 1, stride, patch)

    @classmethod
    def dino_map(cls, h: int, w: int, stride: int = 7, patch: int = DINO_PATCH) -> "FeatureGrid":
        """The grid of a DINO map already computed (``[C, h, w]`` at patch ``stride``)."""
        return cls(int(h), int(w), float(stride), (patch - 1) / 2.0)

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

    def nearest_cells(self, work_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """int64 (rows ``[H]``, columns ``[W]``): the cell whose centre is nearest to each pixel centre of
        the ``work_wh`` raster (clamped to the map); ``map[:, rows][:, :, cols]`` upsamples a map to pixels."""
        W, H = work_wh
        jj = np.clip(np.rint((np.arange(W) - self.offset) / self.stride), 0, self.w - 1).astype(np.int64)
        ii = np.clip(np.rint((np.arange(H) - self.offset) / self.stride), 0, self.h - 1).astype(np.int64)
        return ii, jj

    def to_norm(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) working px -> grid_sample coordinates (align_corners=False) on this map."""
        u = (xy - self.offset) / self.stride
        return px_to_norm_t(u, (self.w, self.h))


def dino_working_size(plate_wh: tuple[int, int], height: int = 476, stride: int = 7,
                      patch: int = DINO_PATCH) -> tuple[int, int]:
    """Working raster (W, H) for DINO, both with ``(size - 14) % stride == 0``.

    H = ``height`` snapped to the nearest valid value. W = plate width scaled by H / plate height,
    snapped to the nearest valid value (aspect kept within half a stride). A plate whose height is already
    within one stride of H (e.g. 480p for H = 476) is not rescaled horizontally: W = its width snapped
    down, as DINO-Tracker does (854x480 -> 854x476, 910x480 -> 910x476). Coordinates map exactly either
    way (``coords.Resize`` scales x and y separately).
    """
    pw, ph = int(plate_wh[0]), int(plate_wh[1])
    if pw <= 0 or ph <= 0:
        raise ValueError(f"plate size must be positive, got {plate_wh}")

    def snap(v: float, down: bool = False) -> int:
        k = math.floor((v - patch) / stride) if down else int(round((v - patch) / stride))
        return max(patch, patch + stride * k)

    H = snap(height)
    if abs(ph - H) < stride:
        return snap(pw, down=True), H
    return snap(H * pw / ph), H


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
