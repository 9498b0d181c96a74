"""The tracker: features ``Phi``, cosine cost volume, CNN-refiner, soft-argmax (docs/method.md section 1).

Shapes and coordinates (all positions are WORKING-resolution pixels ``(x, y)``, pixel-centre convention):

* ``images``: float ``[F, 3, H, W]`` in 0..1 (or uint8, converted) of the frames in play.
* ``dino``: frozen DINO map ``[F, C, h, w]`` on ``grid`` (cell centres ``grid.centres()``), or None.
* :meth:`TrackerModel.phi` -> ``Phi [F, C, h, w]`` float32:
    - ``mode="dino+delta"``: ``Phi_DINO + Phi_delta`` (the paper's tracker),
    - ``mode="dino"``: raw DINO (baseline: no delta, no refiner),
    - ``mode="delta"``: the CNN alone (weight-free, ``backbone: none``) on its native stride-8 grid.
* :meth:`TrackerModel.predict` ``(phi_q [B, C], maps_n [F, C, h, w] L2-normalised, frame [B])`` ->
  ``xy [B, 2]`` working px and ``score [B]`` (the peak cosine similarity).

The position is the soft-argmax of ``softmax(refiner(relu(S)))`` over the cells within
``argmax_radius`` working px of the argmax of ``S``. Only the window around the argmax is refined and
normalised - the softmax denominator cancels in the soft-argmax, and :meth:`Refiner.forward_valid`
reproduces the full-map convolution exactly - so memory is ``O(B * window)`` not ``O(B * h * w)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...checks import check_shape
from .delta_dino import DeltaDino
from .feature_grid import FeatureGrid, sample_map
from .refiner import Refiner

MODES = ("dino+delta", "dino", "delta")
EPS = 1e-8


def l2n(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return x / x.norm(dim=dim, keepdim=True).clamp_min(EPS)


class TrackerModel(nn.Module):
    def __init__(self, work_wh: tuple[int, int], grid: FeatureGrid, mode: str = "dino+delta",
                 delta: DeltaDino | None = None, refiner: Refiner | None = None, argmax_radius: float = 35.0,
                 amp: bool = True, windowed: bool = True):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} not in {MODES}")
        if mode != "dino" and delta is None:
            raise ValueError(f"mode {mode!r} needs a DeltaDino")
        self.work_wh = (int(work_wh[0]), int(work_wh[1]))
        self.grid = grid
        self.mode = mode
        self.delta = delta if mode != "dino" else None
        self.refiner = refiner if mode != "dino" else None
        self.argmax_radius = float(argmax_radius)
        self.amp = amp
        self.windowed = windowed  # False: refine and normalise the whole map (the plain reference head)
        r = int(math.floor(self.argmax_radius / grid.stride))
        self.r = r
        a = torch.arange(-r, r + 1, dtype=torch.float32) * grid.stride
        disc = (a[:, None] ** 2 + a[None, :] ** 2) <= self.argmax_radius ** 2 + 1e-6
        self.register_buffer("disc", disc, persistent=False)  # [k, k]
        self.register_buffer("offs", a, persistent=False)  # [k] px offsets of window cells

    # ------------------------------------------------------------------ features
    def _autocast(self, device: torch.device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                              enabled=self.amp and device.type == "cuda")

    def phi(self, images: torch.Tensor | None, dino: torch.Tensor | None) -> torch.Tensor:
        """Features of F frames ``[F, C, h, w]`` float32 (see module docstring)."""
        if self.mode == "dino":
            check_shape(dino, "F C h w", "dino", {"h": self.grid.h, "w": self.grid.w})
            return dino.float()
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        check_shape(images, "F 3 H W", "images", {"H": self.work_wh[1], "W": self.work_wh[0]})
        with self._autocast(images.device):
            d = self.delta(images, self.grid)
        d = d.float()
        if self.mode == "delta":
            return d
        check_shape(dino, "F C h w", "dino", {"F": images.shape[0], "h": self.grid.h, "w": self.grid.w})
        return dino.float() + d

    def sample(self, fmap: torch.Tensor, xy: torch.Tensor, frame: torch.Tensor | None = None) -> torch.Tensor:
        """Bilinear features ``[B, C]`` of ``fmap [F, C, h, w]`` at working px ``xy [B, 2]`` of maps ``frame [B]``."""
        return sample_map(fmap, self.grid, xy, frame)

    # ------------------------------------------------------------------ cost volume + head
    @staticmethod
    def cost(phi_q_n: torch.Tensor, maps_n: torch.Tensor, frame: torch.Tensor,
             dtype: torch.dtype | None = None) -> torch.Tensor:
        """Cosine cost volume ``[B, h, w]`` of normalised queries ``[B, C]`` against ``maps_n[frame[b]]``."""
        Fn, C, h, w = maps_n.shape
        B = phi_q_n.shape[0]
        dt = dtype or phi_q_n.dtype
        flat = maps_n.reshape(Fn, C, h * w)
        if B == 0:
            return phi_q_n.new_zeros(0, h, w, dtype=dt)
        parts, idx = [], []
        for f in torch.unique(frame).tolist():
            sel = torch.nonzero(frame == f).squeeze(1)
            parts.append(phi_q_n[sel].to(dt) @ flat[f].to(dt))
            idx.append(sel)
        cat = torch.cat(parts)
        inv = torch.empty(B, dtype=torch.long, device=frame.device)
        inv[torch.cat(idx)] = torch.arange(B, device=frame.device)
        return cat[inv].view(B, h, w)

    def head(self, cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cost ``[B, h, w]`` -> (xy ``[B, 2]`` working px, peak cosine ``[B]``)."""
        if not self.windowed:
            return self.head_full(cost)
        B, h, w = cost.shape
        cost = cost.float()
        r, grid = self.r, self.grid
        m = Refiner.margin if self.refiner is not None else 0
        flat = cost.reshape(B, h * w)
        peak, am = flat.max(dim=1)
        ai, aj = am // w, am % w
        P = r + m
        padded = F.pad(F.relu(cost), (P, P, P, P))
        K = 2 * P + 1
        ar = torch.arange(K, device=cost.device)
        rows = (ai[:, None] + ar[None, :])  # padded row index of window row a (original i = ai - P + a)
        cols = (aj[:, None] + ar[None, :])
        crop = padded[torch.arange(B, device=cost.device)[:, None, None], rows[:, :, None], cols[:, None, :]]
        oi = rows - P  # original indices
        oj = cols - P
        inside = ((oi >= 0) & (oi < h))[:, :, None] & ((oj >= 0) & (oj < w))[:, None, :]  # [B, K, K]
        if self.refiner is not None:
            logits = self.refiner.forward_valid(crop[:, None], inside[:, None])[:, 0]  # [B, k, k]
        else:
            logits = crop
        k = 2 * r + 1
        ins = inside[:, m:m + k, m:m + k] & self.disc[None]
        logits = logits.masked_fill(~ins, float("-inf"))
        wts = torch.softmax(logits.reshape(B, k * k), dim=1).view(B, k, k)
        cx = aj.float() * grid.stride + grid.offset
        cy = ai.float() * grid.stride + grid.offset
        x = cx + (wts.sum(dim=1) * self.offs[None, :]).sum(dim=1)
        y = cy + (wts.sum(dim=2) * self.offs[None, :]).sum(dim=1)
        return torch.stack([x, y], dim=-1), peak

    def head_full(self, cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The plain head: refiner and softmax over the whole map, then the soft-argmax within the radius
        (same result as :meth:`head`, ``O(B * h * w * 16)`` memory; benchmarks compare the two)."""
        B, h, w = cost.shape
        cost = cost.float()
        hm = F.relu(cost)[:, None]
        if self.refiner is not None:
            hm = self.refiner(hm)
        c = self.grid.centres(device=cost.device).view(h, w, 2)
        peak, am = cost.reshape(B, -1).max(dim=1)
        ac = c.view(-1, 2)[am]
        mask = (c[None] - ac[:, None, None]).norm(dim=-1) <= self.argmax_radius + 1e-6
        # softmax restricted to the disc: the full-map normaliser cancels in the soft-argmax
        sm = torch.softmax(hm[:, 0].masked_fill(~mask, float("-inf")).reshape(B, -1), dim=1).view(B, h, w)
        return (sm[..., None] * c[None]).sum(dim=(1, 2)), peak

    def predict(self, phi_q: torch.Tensor, maps_n: torch.Tensor, frame: torch.Tensor,
                cost_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Track query features ``phi_q [B, C]`` (unnormalised) into ``maps_n[frame]`` -> (xy ``[B, 2]``, peak ``[B]``)."""
        check_shape(phi_q, "B C", "phi_q")
        check_shape(maps_n, "F C h w", "maps_n", {"C": phi_q.shape[1], "h": self.grid.h, "w": self.grid.w})
        return self.head(self.cost(l2n(phi_q.float()), maps_n, frame, cost_dtype))

    def track(self, phi: torch.Tensor, xy: torch.Tensor, src: torch.Tensor, tgt: torch.Tensor,
              maps_n: torch.Tensor | None = None, cost_dtype: torch.dtype | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pi(x, src -> tgt): points ``xy [B, 2]`` in maps ``src [B]`` of ``phi [F, C, h, w]`` tracked to maps ``tgt [B]``."""
        if maps_n is None:
            maps_n = l2n(phi)
        return self.predict(self.sample(phi, xy, src), maps_n, tgt, cost_dtype)
