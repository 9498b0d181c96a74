"""Preprocessing stages of :class:`~.api.ShotTracker`, as arrays for the cache.

Each function returns ``{name: np.ndarray}`` (what :class:`~.cache.ShotCache` stores) and calls the
preprocessing modules (``flow``, ``tracklets``, ``backbones``, ``foreground``, ``best_buddies``); this
file is the only place the tracker core depends on their signatures. Everything is WORKING px,
frames uint8 ``[T, H, W, 3]``.
"""

from __future__ import annotations

import numpy as np
import torch

from ...checks import check_shape
from ...progress import CancelFn, EtaClock, Progress, ProgressFn
from ..config import TrackerConfig


# ---------------------------------------------------------------------- flow
def flow_settings(cfg: TrackerConfig) -> dict:
    """What the flow stage's content depends on (its cache key): the ``flow`` settings with the engine's
    defaults filled in (a changed RAFT default is another flow)."""
    from .flow import effective_params

    s = cfg.stage_settings("flow")
    if cfg.flow.method != "dis":
        s["flow.params"] = effective_params(cfg.flow.method, cfg.flow.params)
    return s


def flow_arrays(frames: np.ndarray, cfg: TrackerConfig, progress: ProgressFn | None, cancel: CancelFn | None,
                device=None) -> dict[str, np.ndarray]:
    """Consecutive flows (RAFT on ``device``, batched: ``flow.raft_batch``)."""
    from .flow import compute_flow

    ff = compute_flow(frames, method=cfg.flow.method, weights=cfg.flow.weights, progress=progress,
                      cancel=cancel, params=cfg.flow.params or None, device=device)
    return {"fwd": ff.fwd, "bwd": ff.bwd}


def flow_from_arrays(arr: dict[str, np.ndarray], cfg: TrackerConfig):
    from .flow import FlowField

    return FlowField(arr["fwd"], arr["bwd"], cfg.flow.method, dict(cfg.flow.params))


# ---------------------------------------------------------------------- correspondences
def correspondence_arrays(flow, frames: np.ndarray, cfg: TrackerConfig, progress: ProgressFn | None,
                          cancel: CancelFn | None, device=None) -> dict[str, np.ndarray]:
    """Chained flow tracklets (``tracklets.FlowCorrespondences.to_arrays``), working px."""
    from .tracklets import build_tracklets

    corr = build_tracklets(frames, flow, fb_thresh=cfg.flow.fb_thresh, drift_thresh=cfg.flow.drift_thresh,
                           drift_pairs=cfg.flow.drift_pairs, seed_step=cfg.flow.seed_step,
                           weights=cfg.flow.weights, progress=progress, cancel=cancel, device=device)
    return corr.to_arrays()


def correspondences_from_arrays(arr: dict[str, np.ndarray]):
    from .tracklets import FlowCorrespondences

    return FlowCorrespondences.from_arrays(arr)


# ---------------------------------------------------------------------- weights
def check_weights(cfg: TrackerConfig, need_dino: bool, need_raft: bool, progress: ProgressFn | None = None) -> None:
    """Resolve the weight files a run will need before any frame is read (WeightsError, one line)."""
    from . import weights
    from .backbones import parse_name

    if need_dino and not cfg.weight_free and cfg.weights != "random":
        arch, reg = parse_name(cfg.backbone + ("_reg4" if cfg.registers else ""))
        weights.resolve_dinov2(arch, reg, cfg.weights, progress=progress)
    if need_raft and cfg.flow.method in weights.RAFT_FILES:
        f = weights.RAFT_FILES[cfg.flow.method]
        weights.resolve(f, weights.RAFT_URL.format(file=f), explicit=cfg.flow.weights, progress=progress)


# ---------------------------------------------------------------------- DINO features
def build_backbone(cfg: TrackerConfig, device: torch.device, progress: ProgressFn | None = None):
    from .backbones import build_dinov2

    name = cfg.backbone + ("_reg4" if cfg.registers else "")
    random = cfg.weights == "random"
    m = build_dinov2(name, stride=cfg.stride, layer=cfg.layer, weights=None if random else cfg.weights,
                     pretrained=not random, progress=progress)
    if random:
        m.reset_parameters(seed=0)
    return m.to(device).eval().requires_grad_(False)


@torch.no_grad()
def dino_features(frames: np.ndarray, cfg: TrackerConfig, device: torch.device, progress: ProgressFn | None,
                  cancel: CancelFn | None, chunk: int = 2, model=None) -> torch.Tensor:
    """Frozen DINO maps ``[T, C, h, w]`` (``features_dtype``) on ``device``; bf16 autocast on CUDA."""
    from .backbones import run_frames

    check_shape(frames, "T H W 3", "frames")  # before a backbone is built
    m = model if model is not None else build_backbone(cfg, device, progress)
    clock = EtaClock()

    def report(e: int, T: int) -> None:
        if progress is not None:
            progress(Progress("features", e, T, eta_s=clock.eta(e, T), message=f"DINO {cfg['backbone']}"))

    return run_frames(m, frames, chunk=chunk, dtype=getattr(torch, cfg.features_dtype), amp=cfg.amp,
                      cancel=cancel, on_chunk=report)


def dino_feature_arrays(frames, cfg, device, progress, cancel) -> dict[str, np.ndarray]:
    f = dino_features(frames, cfg, device, progress, cancel)
    return {"features": f.cpu().numpy()}


# ---------------------------------------------------------------------- foreground
def foreground_arrays(frames: np.ndarray, masks: dict[int, np.ndarray], resize, dino: torch.Tensor | None,
                      cfg: TrackerConfig, device: torch.device, progress: ProgressFn | None, cancel: CancelFn | None,
                      backbone=None) -> dict[str, np.ndarray]:
    """bool ``[T, H, W]`` working-res foreground: user masks (propagated to every frame), else DINO saliency
    (block ``foreground.saliency_layer``: the backbone is run there unless it is the feature block), else all."""
    from . import foreground

    T, H, W, _ = frames.shape
    src = cfg.foreground.source
    if src == "auto":
        src = "masks" if masks else ("all" if cfg.weight_free else "saliency")
    if src == "saliency" and cfg.weight_free:
        from ...errors import ConfigError

        raise ConfigError("foreground.source: saliency needs a DINO backbone (weight-free mode: masks or all)",
                          where=cfg.source)
    sal = None
    sal_layer = cfg.foreground.saliency_layer
    if src == "saliency":
        if sal_layer == cfg.layer or backbone is None:
            sal = dino
        else:
            sal = backbone
    fg = foreground.foreground_masks(frames, source=src, masks=masks or None, resize=resize, dino=sal,
                                     threshold=cfg.foreground.saliency_threshold,
                                     layer=sal_layer, stride=cfg.stride,
                                     progress=progress, cancel=cancel)
    fg = np.asarray(fg, bool)
    check_shape(fg, "T H W", "foreground", {"T": T, "H": H, "W": W})
    return {"fg": fg}


# ---------------------------------------------------------------------- best buddies
class _CoveredOnRaster:
    """``covered()`` of tracklets on another raster, asked in working px (via a :class:`coords.Resize`)."""

    def __init__(self, corr, flow_to_work):
        self.corr, self.r = corr, flow_to_work

    def covered(self, t_i, xy_i, t_j):
        return self.corr.covered(t_i, self.r.to_plate(np.asarray(xy_i, np.float64)).astype(np.float32), t_j)


def best_buddy_arrays(dino: torch.Tensor, corr, cfg: TrackerConfig, progress: ProgressFn | None,
                      cancel: CancelFn | None, flow_to_work=None) -> dict[str, np.ndarray]:
    """DINO best-buddies (``best_buddies.BestBuddies.to_arrays``), cell centres in working px; pairs the
    flow tracklets already link are left out."""
    from . import best_buddies

    pairs = None
    if cfg.best_buddies.max_pairs is not None:
        pairs = best_buddies.all_pairs(dino.shape[0], cfg.best_buddies.max_pairs, seed=0)
    cov = corr if flow_to_work is None else _CoveredOnRaster(corr, flow_to_work)
    bb = best_buddies.mine_best_buddies(dino, stride=cfg.stride, flow_pairs=cov, pairs=pairs,
                                        nms_box=cfg.best_buddies.nms_box, nms_iou=cfg.best_buddies.nms_iou,
                                        sig_a=cfg.best_buddies.sig_a, sig_b=cfg.best_buddies.sig_b,
                                        progress=progress, cancel=cancel)
    return bb.to_arrays()


def best_buddies_from_arrays(arr: dict[str, np.ndarray]):
    from .best_buddies import BestBuddies

    return BestBuddies.from_arrays(arr)
