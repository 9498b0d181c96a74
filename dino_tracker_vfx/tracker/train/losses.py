"""Training losses (docs/method.md section 3). Pure functions of tensors; no sampling here.

``L = L_flow + l1 L_dino_bb + l2 L_rfn_bb + l3 L_rfn_cc + l4 L_prior`` with (paper)
``l1 = 25e-5, l2 = 5e-5, l3 = 0.5, l4 = 1e-4`` (prior split into norm and angle terms, 1e-4 each).

Coordinates: points come in WORKING px ``[B, 2]`` (x, y); the position losses compare them after
:func:`coords.px_to_norm_t` to ``[-1, 1]`` with a Huber of ``delta = 1/32`` (as the paper).
Contrastive losses are summed with their weights and divided by ``2 * divisor`` (the reference
implementation's ``cl_div``: 700 for DINO best-buddies, 900 for refined best-buddies), which keeps
the published lambdas meaningful.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...checks import check_shape
from ...coords import px_to_norm_t

HUBER_DELTA = 1.0 / 32.0
EPS = 1e-8


def position_loss(pred_px: torch.Tensor, target_px: torch.Tensor, work_wh: tuple[int, int],
                  weight: torch.Tensor | None = None, delta: float = HUBER_DELTA) -> torch.Tensor:
    """Huber between ``[B, 2]`` working-px positions in normalised ``[-1, 1]`` coordinates.

    Mean over points and both coordinates; ``weight [B]`` multiplies each point first.
    """
    d = check_shape(pred_px, "B 2", "pred_px")
    check_shape(target_px, "B 2", "target_px", d)
    if pred_px.shape[0] == 0:
        return pred_px.sum() * 0.0
    h = F.huber_loss(px_to_norm_t(pred_px.float(), work_wh), px_to_norm_t(target_px.float(), work_wh),
                     reduction="none", delta=delta)
    if weight is not None:
        h = h * weight[:, None]
    return h.mean()


def flow_loss(pred_ij: torch.Tensor, xy_j: torch.Tensor, pred_ji: torch.Tensor, xy_i: torch.Tensor,
              work_wh: tuple[int, int], delta: float = HUBER_DELTA) -> torch.Tensor:
    """L_flow: ``Pi(x_i, j)`` vs ``x_j`` and ``Pi(x_j, i)`` vs ``x_i`` (both directions), averaged."""
    return 0.5 * (position_loss(pred_ij, xy_j, work_wh, delta=delta) + position_loss(pred_ji, xy_i, work_wh,
                                                                                   delta=delta))


def info_nce(f_i: torch.Tensor, f_j: torch.Tensor, map_j_n: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """Per-pair InfoNCE of ``f_i [B, C]`` against every cell of the normalised map ``map_j_n [C, h, w]``,
    positive ``f_j [B, C]``: ``logsumexp_p(cos(f_i, Phi_j(p)) / tau) - cos(f_i, f_j) / tau`` -> ``[B]``."""
    fi = f_i / f_i.norm(dim=1, keepdim=True).clamp_min(EPS)
    fj = f_j / f_j.norm(dim=1, keepdim=True).clamp_min(EPS)
    C = map_j_n.shape[0]
    logits = fi @ map_j_n.reshape(C, -1).to(fi.dtype)  # [B, h*w]
    pos = (fi * fj).sum(dim=1)
    return torch.logsumexp(logits.float() / tau, dim=1) - pos.float() / tau


def symmetric_info_nce(f_i: torch.Tensor, f_j: torch.Tensor, maps_n: torch.Tensor, m_i: torch.Tensor,
                       m_j: torch.Tensor, weight: torch.Tensor, tau: float = 0.1, divisor: float = 700.0
                       ) -> torch.Tensor:
    """Symmetric weighted InfoNCE over best-buddy pairs.

    f_i, f_j ``[B, C]`` features of the pair ends (in maps ``m_i``, ``m_j`` ``[B]`` of ``maps_n [F, C, h, w]``,
    L2-normalised maps); weight ``[B]``. Returns ``sum_b w_b (l_ij + l_ji) / (2 * divisor)``.
    """
    B = f_i.shape[0]
    if B == 0:
        return maps_n.sum() * 0.0
    parts_ij, parts_ji, sel_ij, sel_ji = [], [], [], []
    for f in torch.unique(m_j).tolist():
        s = torch.nonzero(m_j == f).squeeze(1)
        parts_ij.append(info_nce(f_i[s], f_j[s], maps_n[f], tau))
        sel_ij.append(s)
    for f in torch.unique(m_i).tolist():
        s = torch.nonzero(m_i == f).squeeze(1)
        parts_ji.append(info_nce(f_j[s], f_i[s], maps_n[f], tau))
        sel_ji.append(s)
    l_ij = _scatter(parts_ij, sel_ij, B)
    l_ji = _scatter(parts_ji, sel_ji, B)
    return ((l_ij + l_ji) * weight.float()).sum() / (2.0 * divisor)


def _scatter(parts: list[torch.Tensor], sels: list[torch.Tensor], B: int) -> torch.Tensor:
    cat = torch.cat(parts)
    idx = torch.cat(sels)
    inv = torch.empty(B, dtype=torch.long, device=idx.device)
    inv[idx] = torch.arange(B, device=idx.device)
    return cat[inv]


def prior_loss(phi: torch.Tensor, dino: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L_prior terms over all cells: (mean ``|1 - ||Phi|| / ||Phi_DINO|| |``, mean ``|1 - cos(Phi, Phi_DINO)|``).

    phi, dino ``[F, C, h, w]``.
    """
    check_shape(dino, "F C h w", "dino", check_shape(phi, "F C h w", "phi"))
    d = dino.float()
    n_phi = phi.norm(dim=1)
    n_d = d.norm(dim=1).clamp_min(EPS)
    norm_term = (n_phi / n_d - 1.0).abs().mean()
    cos = (phi * d).sum(dim=1) / (n_phi * n_d).clamp_min(EPS)
    angle_term = (1.0 - cos).abs().mean()
    return norm_term, angle_term


def cycle_loss(pred_st: torch.Tensor, xy_t: torch.Tensor, pred_ts: torch.Tensor, xy_s: torch.Tensor,
               cyc_dist: torch.Tensor, work_wh: tuple[int, int], gamma: float = 0.8,
               delta: float = HUBER_DELTA) -> torch.Tensor:
    """L_rfn_cc: ``Pi(x_s, t)`` vs the (detached) cycle-consistent target ``x_t`` and ``Pi(x_t, s)`` vs ``x_s``,
    each point weighted ``gamma ** cyc_dist`` (px), Huber on normalised coordinates, both ways averaged."""
    w = gamma ** cyc_dist.float()
    return 0.5 * (position_loss(pred_st, xy_t, work_wh, w, delta) + position_loss(pred_ts, xy_s, work_wh, w, delta))
