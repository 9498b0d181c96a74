"""Flow-guided inference (``infer.flow_guided``), the weight-free preview's aid.

Without DINO, a Delta CNN trained from scratch for a few minutes on a CPU is a much coarser tracker than
chained optical flow (the paper's "w/o DINO" ablation); so the preview follows the flow and uses the
learned tracker where flow has no answer:

* position: each query is chained through the consecutive flows from its frame outward (forward and
  backward), with the forward-backward check of ``flow.chain_points``; the chain continues after a
  failed check (as the flow baseline does);
* visibility: inside the flow raster AND (``alive`` OR (the learned feature at the chained position
  matches the query, ``cos >= visible_cos``, AND the tracker's own prediction agrees with the chain
  within ``agree_px``)). ``alive`` ends only on a PERSISTENT failure of the chain: ``fail_run``
  (2) consecutive steps whose forward-backward error is ``>= occ_fb_scale * fb_thresh`` (2 x 1.5 =
  3 px on the flow raster) or that leave the raster. A single failed check (motion blur, a fast
  limb, a flow glitch) is not an occlusion: with "occluded after the first failed 1.5 px check" the
  dev videos lost far more visible points than they gained occluded ones (OA 0.79 against 0.96 for
  "always visible" on horsejump-high). Points outside the raster are occluded (they left the plate);
* drift (``drift_frames`` given, ``infer.drift_correct``): where a direct DIS flow from the query image
  matches the query's patch better than the chain does, its position replaces the chained one
  (:mod:`.drift`); visibility still comes from the chain's checks;
* confidence: 1 while alive, else ``clip(cos, 0, 1)`` where visible and half that where not.

Coordinates: the flow may live on its own raster (``flow.height``); ``to_flow`` (a :class:`coords.Resize`
from the working raster to the flow raster) is the only conversion. Inputs and outputs are WORKING px.
"""

from __future__ import annotations

import numpy as np
import torch

from ..checks import check_shape
from ..coords import Resize
from ..progress import CancelFn, ProgressFn
from .flow import FlowField, in_raster, sample_flow
from .infer import FeatureStore
from .model import EPS


@torch.no_grad()
def flow_guided(flow: FlowField, to_flow: Resize, store: FeatureStore, t_q: torch.Tensor, xy_q: torch.Tensor,
                q_feat: torch.Tensor, tracker_xy: torch.Tensor, fb_thresh: float = 1.5, agree_px: float = 6.0,
                visible_cos: float = 0.6, occ_fb_scale: float = 2.0, fail_run: int = 2,
                drift_frames: np.ndarray | None = None, drift_margin: float = 0.5, dis_params: dict | None = None,
                progress: ProgressFn | None = None, cancel: CancelFn | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(xy ``[N, T, 2]`` working px, visible ``[N, T]``, confidence ``[N, T]``) - see the module docstring.

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
    q = q_feat / q_feat.norm(dim=1, keepdim=True).clamp_min(EPS)
    wh = flow.size
    xy = np.zeros((N, T, 2), np.float64)
    xy[np.arange(N), tq] = to_flow.to_working(xy_q.double().cpu().numpy())  # working -> flow raster
    alive = np.zeros((N, T), bool)
    alive[np.arange(N), tq] = True
    inside = np.ones((N, T), bool)
    run = np.zeros((N, T), np.int64)  # consecutive failed steps ending at each frame (away from the query)
    for direction in (1, -1):
        steps = range(T - 1) if direction == 1 else range(T - 1, 0, -1)
        for t in steps:
            idx = np.nonzero(tq <= t)[0] if direction == 1 else np.nonzero(tq >= t)[0]
            if len(idx) == 0:
                continue
            nt = t + direction
            fw, bw = (flow.fwd[t], flow.bwd[t]) if direction == 1 else (flow.bwd[t - 1], flow.fwd[t - 1])
            p = xy[idx, t].astype(np.float32)
            c = p + sample_flow(fw, p)
            back = c + sample_flow(bw, c)
            inside[idx, nt] = in_raster(c, wh)
            ok = (np.linalg.norm(back - p, axis=1) < occ_fb_scale * fb_thresh) & inside[idx, nt]
            xy[idx, nt] = c
            run[idx, nt] = np.where(ok, 0, run[idx, t] + 1)
            alive[idx, nt] = alive[idx, t] & (run[idx, nt] < fail_run)
    if drift_frames is not None:
        from .drift import correct_drift

        xy, _ = correct_drift(drift_frames, flow, tq, xy[np.arange(N), tq], xy, drift_margin, dis_params,
                              progress=progress, cancel=cancel)
    xy_w = torch.as_tensor(to_flow.to_plate(xy), dtype=torch.float32, device=dev)  # flow raster -> working
    t_all = torch.arange(T, device=dev).repeat(N)
    f = store.sample(t_all, xy_w.reshape(-1, 2)).view(N, T, -1)
    cos = (f / f.norm(dim=-1, keepdim=True).clamp_min(EPS) * q[:, None]).sum(-1)
    agree = (xy_w - tracker_xy).norm(dim=-1) <= agree_px
    alive_t = torch.as_tensor(alive, device=dev)
    visible = torch.as_tensor(inside, device=dev) & (alive_t | ((cos >= visible_cos) & agree))
    conf = torch.where(alive_t, torch.ones_like(cos), torch.where(visible, cos.clamp(0, 1), 0.5 * cos.clamp(0, 1)))
    rows = torch.arange(N, device=dev)
    xy_w[rows, t_q] = xy_q.float()
    visible[rows, t_q] = True
    conf[rows, t_q] = 1.0
    return xy_w, visible, conf
