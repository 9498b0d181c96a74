"""Inference: track query points through every frame of the shot, batched over queries and frames.

* :func:`build_store` runs the trained model once per frame (chunks of ``frame_chunk``) and keeps
  ``Phi [T, C, h, w]`` (fp16 on CUDA, fp32 on CPU) with the inverse cell norms ``[T, h, w]`` fp32, so a
  cosine cost volume is one matmul and a multiply - no second normalised copy.
* :func:`track_points` -> positions ``[N, T, 2]`` WORKING px and the peak cosine ``[N, T]``. A query at
  frame ``t_q`` is tracked to every frame (forward and backward at once; each frame is independent of
  the others), ``query_chunk`` queries x ``frame_chunk`` frames per cost-volume batch. At ``t_q`` the
  output is exactly the query position.
* occlusion, visibility and confidence: :mod:`.occlusion`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...checks import check_shape
from ...progress import CancelFn, EtaClock, Progress, ProgressFn, check_cancel
from ..model.feature_grid import FeatureGrid
from ..model.tracker_model import EPS, TrackerModel


@dataclass
class FeatureStore:
    """Refined features of every frame: phi ``[T, C, h, w]``, inv_norm ``[T, h, w]`` (1/||Phi||), on ``grid``."""

    phi: torch.Tensor
    inv_norm: torch.Tensor
    grid: FeatureGrid

    def __post_init__(self):
        d = check_shape(self.phi, "T C h w", "FeatureStore.phi", {"h": self.grid.h, "w": self.grid.w})
        check_shape(self.inv_norm, "T h w", "FeatureStore.inv_norm", d)

    @property
    def T(self) -> int:
        return int(self.phi.shape[0])

    def sample(self, t: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        """Features ``[B, C]`` float32 at working px ``xy [B, 2]`` of frames ``t [B]`` (bilinear)."""
        from ..model.feature_grid import sample_map

        out = torch.empty(len(t), self.phi.shape[1], device=self.phi.device, dtype=torch.float32)
        if len(t) == 0:
            return out
        # sample frame by frame group to keep the float32 copy small
        for f in torch.unique(t).tolist():
            sel = torch.nonzero(t == f).squeeze(1)
            out[sel] = sample_map(self.phi[f:f + 1].float(), self.grid, xy[sel]).float()
        return out

    def cost(self, q_n: torch.Tensor, frames: torch.Tensor | slice) -> torch.Tensor:
        """Cosine cost volume of normalised queries ``[n, C]`` against frames -> ``[n, F, h, w]`` float32."""
        P = self.phi[frames]
        Fn, C, h, w = P.shape
        S = torch.einsum("nc,fcp->nfp", q_n.to(P.dtype), P.reshape(Fn, C, h * w))
        return S.float().view(q_n.shape[0], Fn, h, w) * self.inv_norm[frames][None]


@torch.no_grad()
def build_store(model: TrackerModel, images: torch.Tensor, dino: torch.Tensor | None, chunk: int = 16,
                progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> FeatureStore:
    """images uint8 ``[T, 3, H, W]``, dino ``[T, C, h, w]`` or None -> :class:`FeatureStore` (model in eval mode)."""
    model.eval()
    T = images.shape[0]
    dev = images.device
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    phi = inv = None
    clock = EtaClock()
    for s in range(0, T, chunk):
        check_cancel(cancel, "feature refinement")
        e = min(T, s + chunk)
        p = model.phi(images[s:e], None if dino is None else dino[s:e])
        if phi is None:
            phi = torch.empty((T,) + tuple(p.shape[1:]), dtype=dtype, device=dev)
            inv = torch.empty((T,) + tuple(p.shape[2:]), dtype=torch.float32, device=dev)
        phi[s:e] = p.to(dtype)
        inv[s:e] = 1.0 / p.norm(dim=1).clamp_min(EPS)
        if progress is not None:
            progress(Progress("refine", e, T, eta_s=clock.eta(e, T), message="refined features"))
    return FeatureStore(phi, inv, model.grid)


@torch.no_grad()
def track_points(model: TrackerModel, store: FeatureStore, t_q: torch.Tensor, xy_q: torch.Tensor,
                 query_chunk: int = 256, frame_chunk: int = 32, q_feat: torch.Tensor | None = None,
                 progress: ProgressFn | None = None, cancel: CancelFn | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Track ``N`` queries ``(t_q [N], xy_q [N, 2] working px)`` to all ``T`` frames.

    Returns (xy ``[N, T, 2]`` float32 working px, peak cosine ``[N, T]``); row ``n`` at ``t_q[n]`` is the query.
    """
    N = check_shape(xy_q, "N 2", "xy_q")["N"]
    check_shape(t_q, "N", "t_q", {"N": N})
    T, dev = store.T, store.phi.device
    xy = torch.empty(N, T, 2, device=dev)
    peak = torch.empty(N, T, device=dev)
    if N == 0:
        return xy, peak
    q = store.sample(t_q, xy_q) if q_feat is None else q_feat
    q_n = q / q.norm(dim=1, keepdim=True).clamp_min(EPS)
    steps = ((N + query_chunk - 1) // query_chunk) * ((T + frame_chunk - 1) // frame_chunk)
    done = 0
    clock = EtaClock()
    for a in range(0, N, query_chunk):
        b = min(N, a + query_chunk)
        for f0 in range(0, T, frame_chunk):
            check_cancel(cancel, "tracking")
            f1 = min(T, f0 + frame_chunk)
            S = store.cost(q_n[a:b], slice(f0, f1))  # [n, F, h, w]
            n, Fn, h, w = S.shape
            p, pk = model.head(S.reshape(n * Fn, h, w))
            xy[a:b, f0:f1] = p.view(n, Fn, 2)
            peak[a:b, f0:f1] = pk.view(n, Fn)
            done += 1
            if progress is not None:
                progress(Progress("infer", done, steps, eta_s=clock.eta(done, steps), message=f"{N} points"))
    rows = torch.arange(N, device=dev)
    xy[rows, t_q] = xy_q.to(xy.dtype)
    peak[rows, t_q] = 1.0
    return xy, peak
