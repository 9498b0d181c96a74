"""Flow-guided inference (``infer.flow_guided``), the weight-free preview's aid.

Without DINO, a Delta CNN trained from scratch for a few minutes on a CPU is a much coarser tracker than
chained optical flow (the paper's "w/o DINO" ablation); so the preview follows the flow and uses the
learned tracker where flow has no answer:

* position: each query is chained through the consecutive flows from its frame outward (forward and
  backward), with the forward-backward check of ``chain.chain_points``; the chain continues after a
  failed check (as the flow baseline does);
* visibility: inside the flow raster AND (``alive`` OR (the learned feature at the chained position
  matches the query, ``cos >= visible_cos``, AND the tracker's own prediction agrees with the chain
  within ``agree_px``)). ``alive`` ends only on a PERSISTENT, GROSS failure of the chain: ``fail_run``
  (``infer.occlusion_fail_run``, 2) consecutive steps whose forward-backward error is
  ``>= occ_fb_scale * fb_thresh`` (``infer.occlusion_fb_scale`` 5 x 1.5 = 7.5 px on the flow raster)
  or that leave the raster. A single failed check (motion blur, a fast limb, a flow glitch) or a
  few px of disagreement is not an occlusion: flagged as one, it costs a visible point more often than
  it catches an occluded one (with "occluded after the first failed 1.5 px check", OA 0.79 against
  0.96 for "always visible" on horsejump-high; the scale trades AJ for OA on the dev videos, 2 -> 5:
  AJ 0.689 -> 0.673, OA 0.868 -> 0.879, see docs/results.md). Points outside the raster are occluded
  (they left the plate);
* drift (``drift_frames`` given, ``infer.drift_correct``): where a direct DIS flow from the query image
  matches the query's patch better than the chain does, its position replaces the chained one
  (:mod:`.drift`); visibility still comes from the chain's checks;
* confidence: 1 while alive, else ``clip(cos, 0, 1)`` where visible and half that where not.

Coordinates: the flow may live on its own raster (``flow.height``); ``to_flow`` (a :class:`coords.Resize`
from the working raster to the flow raster) is the only conversion. Inputs and outputs are WORKING px.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...checks import check_shape
from ...coords import Resize
from ...progress import CancelFn, ProgressFn
from ..preprocess.flow import FlowField
from .chain import alive_until_failure, chain_steps
from .inference import FeatureStore
from ..model.tracker_model import EPS


@dataclass
class FlowGuidedSignals:
    """What the flow-guided visibility rule reads, per query ``n`` and image ``t``.

    xy: float32 ``[N, T, 2]`` WORKING px (chained, drift-corrected where asked). fb: float32 ``[N, T]``
    forward-backward error of the chain's step that arrived at ``t`` (FLOW-raster px, 0 at the query).
    inside: bool ``[N, T]`` on the flow raster. cos: ``[N, T]`` cosine of the learned feature at ``xy``
    with the query's. dist: ``[N, T]`` working px between ``xy`` and the learned tracker's prediction.
    """

    xy: torch.Tensor
    fb: np.ndarray
    inside: np.ndarray
    cos: torch.Tensor
    dist: torch.Tensor


@torch.no_grad()
def flow_guided_signals(flow: FlowField, to_flow: Resize, store: FeatureStore, t_q: torch.Tensor,
                        xy_q: torch.Tensor, q_feat: torch.Tensor, tracker_xy: torch.Tensor,
                        drift_frames: np.ndarray | None = None, drift_margin: float = 0.5,
                        dis_params: dict | None = None, progress: ProgressFn | None = None,
                        cancel: CancelFn | None = None) -> FlowGuidedSignals:
    """Chain the queries through the flow (and correct drift), then read the learned features there.

    t_q ``[N]``; xy_q ``[N, 2]`` working px; q_feat ``[N, C]``; tracker_xy ``[N, T, 2]`` working px.
    ``drift_frames``: uint8 ``[T, H, W, 3]`` on the flow raster to correct the chain's drift by direct
    flow from the query image (:func:`.drift.correct_drift`, ``drift_margin``); None keeps the chain.
    """
    d = check_shape(tracker_xy, "N T 2", "tracker_xy")
    check_shape(xy_q, "N 2", "xy_q", d)
    N, T = d["N"], d["T"]
    if flow.num_frames != T:
        raise ValueError(f"flow_guided: flow has {flow.num_frames} frames, tracks {T}")
    dev = tracker_xy.device
    tq = t_q.cpu().numpy().astype(np.int64)
    q0 = to_flow.to_working(xy_q.double().cpu().numpy())  # working -> flow raster
    xy, fb, inside = chain_steps(flow, tq, q0)
    if drift_frames is not None:
        from .drift import correct_drift

        xy, _ = correct_drift(drift_frames, flow, tq, q0, xy, margin=drift_margin, dis_params=dis_params,
                              progress=progress, cancel=cancel)
    xy_w = torch.as_tensor(to_flow.to_plate(np.asarray(xy, np.float64)), dtype=torch.float32, device=dev)
    t_all = torch.arange(T, device=dev).repeat(N)
    f = store.sample(t_all, xy_w.reshape(-1, 2)).view(N, T, -1)
    q = q_feat / q_feat.norm(dim=1, keepdim=True).clamp_min(EPS)
    cos = (f / f.norm(dim=-1, keepdim=True).clamp_min(EPS) * q[:, None]).sum(-1)
    return FlowGuidedSignals(xy_w, fb, inside, cos, (xy_w - tracker_xy).norm(dim=-1))


def flow_guided_visibility(sig: FlowGuidedSignals, t_q: torch.Tensor, *, fb_thresh: float = 1.5,
                           agree_px: float = 6.0, visible_cos: float = 0.6, occ_fb_scale: float = 5.0,
                           fail_run: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """(visible bool ``[N, T]``, confidence ``[N, T]``) from the signals by the rule of the module docstring;
    the query's own image is visible with confidence 1."""
    dev = sig.cos.device
    alive = alive_until_failure(sig.fb, sig.inside, t_q.cpu().numpy(), occ_fb_scale * fb_thresh, fail_run)
    alive_t = torch.as_tensor(alive & sig.inside, device=dev)
    vouched = (sig.cos >= visible_cos) & (sig.dist <= agree_px)
    visible = torch.as_tensor(sig.inside, device=dev) & (alive_t | vouched)
    cos = sig.cos.clamp(0, 1)
    conf = torch.where(alive_t, torch.ones_like(cos), torch.where(visible, cos, 0.5 * cos))
    rows = torch.arange(len(t_q), device=dev)
    visible[rows, t_q] = True
    conf[rows, t_q] = 1.0
    return visible, conf


def flow_guided(flow: FlowField, to_flow: Resize, store: FeatureStore, t_q: torch.Tensor, xy_q: torch.Tensor,
                q_feat: torch.Tensor, tracker_xy: torch.Tensor, fb_thresh: float = 1.5, agree_px: float = 6.0,
                visible_cos: float = 0.6, occ_fb_scale: float = 5.0, fail_run: int = 2,
                drift_frames: np.ndarray | None = None, drift_margin: float = 0.5, dis_params: dict | None = None,
                progress: ProgressFn | None = None, cancel: CancelFn | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(xy ``[N, T, 2]`` working px, visible ``[N, T]``, confidence ``[N, T]``) - see the module docstring:
    :func:`flow_guided_signals` then :func:`flow_guided_visibility`; at the query's own image the track is
    exactly ``xy_q``."""
    sig = flow_guided_signals(flow, to_flow, store, t_q, xy_q, q_feat, tracker_xy, drift_frames, drift_margin,
                              dis_params, progress, cancel)
    visible, conf = flow_guided_visibility(sig, t_q, fb_thresh=fb_thresh, agree_px=agree_px, visible_cos=visible_cos,
                                           occ_fb_scale=occ_fb_scale, fail_run=fail_run)
    xy_w = sig.xy.clone()
    xy_w[torch.arange(len(t_q), device=xy_w.device), t_q] = xy_q.float()
    return xy_w, visible, conf
