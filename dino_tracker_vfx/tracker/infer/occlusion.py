"""Occlusion by trajectory agreement (docs/method.md section 5), batched over queries and anchor frames.

For a query ``q`` with predicted trajectory ``x_hat [T, 2]`` (WORKING px):

* ``cos_t = cos(Phi_t(x_hat_t), phi_q)``; anchor frames ``k``: ``cos_k >= anchor_cos`` (0.7).
* ``D[a, s] = ||Pi(x_hat_s, a) - x_hat_a||`` for every anchor ``a`` and frame ``s`` (track the trajectory's
  own point at ``s`` into the anchor frame).
* per anchor ``k``: ``e_k = median_a D[a, k]``; ``e_q = max_k e_k``.
* ``x_hat_t`` is visible iff ``median_a D[a, t] <= e_q`` and ``cos_t >= visible_cos`` (0.6). (The query's own
  frame is made visible with confidence 1 at the API boundary, :func:`..anchors.anchor_tracks`, not here.)
* confidence (ours, in [0, 1]): ``clip(cos_t, 0, 1) * min(1, (e_q + 1) / (median_a D[a, t] + 1))``.

Cost: one cost volume per (query, anchor, frame); grouped by anchor frame so each anchor map is read
once per query chunk.
"""

from __future__ import annotations

import torch

from ...checks import check_shape
from ...progress import CancelFn, EtaClock, Progress, ProgressFn, check_cancel
from .inference import FeatureStore
from ..model.tracker_model import EPS, TrackerModel


@torch.no_grad()
def trajectory_cosine(store: FeatureStore, xy: torch.Tensor, q_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos ``[N, T]`` of trajectory features vs the query feature, normalised trajectory features ``[N, T, C]``)."""
    N, T = xy.shape[:2]
    t = torch.arange(T, device=xy.device).repeat(N)
    f = store.sample(t, xy.reshape(N * T, 2)).view(N, T, -1)
    f = f / f.norm(dim=-1, keepdim=True).clamp_min(EPS)
    q = q_feat / q_feat.norm(dim=-1, keepdim=True).clamp_min(EPS)
    return (f * q[:, None]).sum(-1), f


@torch.no_grad()
def occlusion(model: TrackerModel, store: FeatureStore, xy: torch.Tensor, t_q: torch.Tensor, q_feat: torch.Tensor,
              anchor_cos: float = 0.7, visible_cos: float = 0.6, query_chunk: int = 64, row_chunk: int = 4096,
              progress: ProgressFn | None = None, cancel: CancelFn | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """xy ``[N, T, 2]`` working px, t_q ``[N]``, q_feat ``[N, C]`` -> (visible bool ``[N, T]``, confidence ``[N, T]``,
    extras ``{"cos", "median", "e_q"}``)."""
    d = check_shape(xy, "N T 2", "trajectories")
    check_shape(t_q, "N", "t_q", d)
    N, T = d["N"], d["T"]
    dev = xy.device
    visible = torch.zeros(N, T, dtype=torch.bool, device=dev)
    conf = torch.zeros(N, T, device=dev)
    cos_all = torch.zeros(N, T, device=dev)
    med_all = torch.zeros(N, T, device=dev)
    eq_all = torch.zeros(N, device=dev)
    clock = EtaClock()
    n_chunks = (N + query_chunk - 1) // query_chunk
    total = n_chunks * T
    done = 0
    for a0 in range(0, N, query_chunk):
        a1 = min(N, a0 + query_chunk)
        n = a1 - a0
        traj = xy[a0:a1]
        cos, f = trajectory_cosine(store, traj, q_feat[a0:a1])
        rows = torch.arange(n, device=dev)
        anchors = cos >= anchor_cos
        anchors[rows, t_q[a0:a1]] = True
        D = torch.full((n, T, T), float("nan"), device=dev)  # D[q, a, s]
        for a in range(T):
            check_cancel(cancel, "occlusion")
            sel = torch.nonzero(anchors[:, a]).squeeze(1)
            done += 1
            if len(sel):
                src = f[sel].reshape(-1, f.shape[-1])  # [M*T, C] normalised
                for r0 in range(0, src.shape[0], row_chunk):
                    r1 = min(src.shape[0], r0 + row_chunk)
                    S = store.cost(src[r0:r1], slice(a, a + 1))[:, 0]  # [R, h, w]
                    p, _ = model.head(S)
                    qi = sel[torch.arange(r0, r1, device=dev) // T]
                    si = torch.arange(r0, r1, device=dev) % T
                    D[qi, a, si] = (p - traj[qi, a]).norm(dim=-1)
            if progress is not None:
                progress(Progress("occlusion", done, total, eta_s=clock.eta(done, total)))
        med = torch.nanmedian(D, dim=1).values  # [n, T]: median over anchors a of D[a, t] (= e_t for anchors)
        e_q = torch.where(anchors, med, torch.full_like(med, -1.0)).max(dim=1).values.clamp_min(0.0)  # [n]
        vis = (med <= e_q[:, None]) & (cos >= visible_cos)
        c = cos.clamp(0, 1) * torch.clamp((e_q[:, None] + 1.0) / (med + 1.0), max=1.0)
        visible[a0:a1], conf[a0:a1] = vis, c
        cos_all[a0:a1], med_all[a0:a1], eq_all[a0:a1] = cos, med, e_q
    return visible, conf, {"cos": cos_all, "median": med_all, "e_q": eq_all}
