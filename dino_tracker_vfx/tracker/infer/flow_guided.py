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
* visibility also ends where the query's pattern is gone (``infer.gone_ncc`` / ``gone_run``,
  :func:`pattern_gone`): the grey patch at the track matches the query's patch with a mean NCC below
  ``gone_ncc`` over ``gone_run`` images in a row (a walker who left the shot leaves its points on the
  background: the chain's checks pass, the pattern is not there). Points off the flow raster (off the
  plate) are never visible, vouched or not;
* drift (``frames`` given, ``infer.drift_correct``): the chain is re-anchored on direct DIS flows from the
  query image where they match the query's patch clearly better AND lie near the chained prediction or are
  confirmed by the next images (:mod:`.drift`, :func:`.drift.accept`); ``fb`` and ``inside`` are those of the
  re-anchored chain;
* confidence (:func:`track_confidence`): a logistic model of "within 4 px of the truth" from the patch NCC,
  the step's forward-backward error and the chained steps since the last anchor, fitted on the dev videos
  (``benchmarks/drift_sweep.py``); halved where not visible; 1 at the query.

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
from .drift import DEFAULT_MARGIN, DEFAULT_RADIUS, DEFAULT_RADIUS_PER_PX
from .inference import FeatureStore
from .occlusion import trajectory_cosine

# the query's pattern is gone where the patch NCC averages below this over this many images (pattern_gone);
# -1 (a mean NCC is never below it): off, the default - on the dev videos every setting tried cost OA
# (benchmarks/drift_sweep.py, docs/results.md)
GONE_NCC = -1.0
GONE_RUN = 8
# track_confidence's logistic weights (benchmarks/drift_sweep.py, fitted on the 22 dev videos)
CONF_WEIGHTS = {"bias": 0.83, "ncc": 2.54, "log_fb": -2.21, "log_age": -0.38, "ncc_missing": 0.7}


@dataclass
class FlowGuidedSignals:
    """What the flow-guided visibility and confidence rules read, per query ``n`` and image ``t``.

    xy: float32 ``[N, T, 2]`` WORKING px (chained, drift-corrected where asked). fb: float32 ``[N, T]``
    forward-backward error of the chain's step that arrived at ``t`` (FLOW-raster px, 0 at the query).
    inside: bool ``[N, T]``: ``xy`` on the flow raster. cos: ``[N, T]`` cosine of the learned feature at
    ``xy`` with the query's. dist: ``[N, T]`` working px between ``xy`` and the learned tracker's
    prediction. ncc: float32 ``[N, T]`` NCC of the grey patch at ``xy`` with the query's patch (1 at the
    query; NaN where no frames were given). age: int ``[N, T]`` chained steps since the query or the last
    drift correction (:class:`.drift.AnchoredChain`).
    """

    xy: torch.Tensor
    fb: np.ndarray
    inside: np.ndarray
    cos: torch.Tensor
    dist: torch.Tensor
    ncc: np.ndarray
    age: np.ndarray


@torch.no_grad()
def flow_guided_signals(flow: FlowField, to_flow: Resize, store: FeatureStore, t_q: torch.Tensor,
                        xy_q: torch.Tensor, q_feat: torch.Tensor, tracker_xy: torch.Tensor,
                        frames: np.ndarray | None = None, drift_correct: bool = True,
                        drift_margin: float = DEFAULT_MARGIN, dis_params: dict | None = None,
                        progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                        drift_radius: float = DEFAULT_RADIUS, drift_radius_per_px: float = DEFAULT_RADIUS_PER_PX
                        ) -> FlowGuidedSignals:
    """Chain the queries through the flow (and correct drift), then read the patches and learned features there.

    t_q ``[N]``; xy_q ``[N, 2]`` working px; q_feat ``[N, C]``; tracker_xy ``[N, T, 2]`` working px.
    ``frames``: uint8 ``[T, H, W, 3]`` on the flow raster, for the patch NCC and, with ``drift_correct``,
    the drift correction by direct flow from the query image (:func:`.drift.correct_drift`: ``drift_margin``,
    ``drift_radius``, ``drift_radius_per_px``); None: the plain chain, no NCC.
    """
    from .drift import anchored_chain, correct_drift, gray_frames

    d = check_shape(tracker_xy, "N T 2", "tracker_xy")
    check_shape(xy_q, "N 2", "xy_q", d)
    N, T = d["N"], d["T"]
    if flow.num_frames != T:
        raise ValueError(f"flow_guided: flow has {flow.num_frames} frames, tracks {T}")
    dev = tracker_xy.device
    tq = t_q.cpu().numpy().astype(np.int64)
    q0 = to_flow.to_working(xy_q.double().cpu().numpy())  # working -> flow raster
    if frames is None:
        xy, fb, inside = chain_steps(flow, tq, q0)
        nc, age = np.full((N, T), np.nan, np.float32), np.abs(np.arange(T)[None] - tq[:, None])
    else:
        if drift_correct:
            ch = correct_drift(frames, flow, tq, q0, margin=drift_margin, radius=drift_radius,
                               radius_per_px=drift_radius_per_px, dis_params=dis_params, progress=progress,
                               cancel=cancel)
        else:  # the same chain, no candidates: its patch scores only
            ch = anchored_chain(flow, gray_frames(frames), tq, q0, np.full((N, T, 2), np.nan, np.float32))
        xy, fb, inside, nc, age = ch.xy, ch.fb, ch.inside, ch.ncc, ch.age
    xy_w = torch.as_tensor(to_flow.to_plate(np.asarray(xy, np.float64)), dtype=torch.float32, device=dev)
    cos, _ = trajectory_cosine(store, xy_w, q_feat)
    return FlowGuidedSignals(xy_w, fb, inside, cos, (xy_w - tracker_xy).norm(dim=-1), nc, age)


def pattern_gone(nc: np.ndarray, gone_ncc: float = GONE_NCC, gone_run: int = GONE_RUN) -> np.ndarray:
    """bool ``[N, T]``: the query's pattern is not at the track: the mean of its patch NCC ``nc [N, T]`` over
    ``gone_run`` consecutive images is below ``gone_ncc`` (every image of such a window is flagged; a shorter
    dip - blur, a flash, a pose - is not, nor is one image of chance correlation inside a long low run).
    NaN (no patch score) reads as 1 (never gone)."""
    v = np.nan_to_num(np.asarray(nc, np.float64), nan=1.0)
    N, T = v.shape
    out = np.zeros((N, T), bool)
    if gone_run > T:
        return out
    c = np.concatenate([np.zeros((N, 1)), np.cumsum(v, axis=1)], axis=1)
    low = (c[:, gone_run:] - c[:, :-gone_run]) / gone_run < gone_ncc  # [N, T - run + 1]: window starting at s
    for j in range(gone_run):
        out[:, j:j + low.shape[1]] |= low
    return out


def track_confidence(sig: FlowGuidedSignals) -> torch.Tensor:
    """Confidence ``[N, T]`` in (0, 1): a logistic model of "the position is within 4 px" fitted on the
    TAP-Vid-DAVIS dev videos (``benchmarks/drift_sweep.py``, ``CONF_WEIGHTS``) from the patch NCC with
    the query, the step's forward-backward error and the steps since the last anchor (query or drift
    correction). Without patch scores (no frames), NCC reads as its dev median."""
    w = CONF_WEIGHTS
    nc = np.nan_to_num(sig.ncc, nan=w["ncc_missing"]).astype(np.float64)
    z = (w["bias"] + w["ncc"] * nc + w["log_fb"] * np.log1p(np.asarray(sig.fb, np.float64))
         + w["log_age"] * np.log1p(np.asarray(sig.age, np.float64)))
    return torch.as_tensor(1.0 / (1.0 + np.exp(-z)), dtype=torch.float32, device=sig.cos.device)


def flow_guided_visibility(sig: FlowGuidedSignals, t_q: torch.Tensor, *, fb_thresh: float = 1.5,
                           agree_px: float = 6.0, visible_cos: float = 0.6, occ_fb_scale: float = 5.0,
                           fail_run: int = 2, gone_ncc: float = GONE_NCC, gone_run: int = GONE_RUN
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(visible bool ``[N, T]``, confidence ``[N, T]``) from the signals by the rule of the module docstring;
    the query's own image is visible with confidence 1."""
    dev = sig.cos.device
    alive = alive_until_failure(sig.fb, sig.inside, t_q.cpu().numpy(), occ_fb_scale * fb_thresh, fail_run)
    alive_t = torch.as_tensor(alive & sig.inside, device=dev)
    vouched = (sig.cos >= visible_cos) & (sig.dist <= agree_px)
    gone = torch.as_tensor(pattern_gone(sig.ncc, gone_ncc, gone_run), device=dev)
    visible = torch.as_tensor(sig.inside, device=dev) & (alive_t | vouched) & ~gone
    conf = track_confidence(sig)
    conf = torch.where(visible, conf, 0.5 * conf)
    rows = torch.arange(len(t_q), device=dev)
    visible[rows, t_q] = True
    conf[rows, t_q] = 1.0
    return visible, conf
