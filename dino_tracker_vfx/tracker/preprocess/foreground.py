"""Foreground masks bool ``[T, H, W]`` at working resolution (they steer the fg/bg mix of training pairs).

Sources, in order of preference (:func:`foreground_masks`, ``source="auto"``):

1. user masks: ``{image index: bool [H_p, W_p]}`` at plate resolution, resized to working resolution
   (area coverage >= 0.5). A frame without a mask takes the mask of the nearest frame that has one (the
   earlier one on a tie), dilated by ``grow_px_per_frame * distance`` working px (at most ``grow_max_px``)
   because the object may have moved;
2. DINO saliency (DINO-Tracker's ``create_fg_mask``): L2-normalised features of all frames (public config:
   ViT-L layer 23), first principal component over all patches of the shot, min-max normalised to 0..1
   over the shot; the sign is fixed so the outermost ring of patches (mostly background) has the larger
   mean; foreground = value < ``threshold`` (0.6). Each pixel takes the value of the patch whose centre
   ``(j*stride + 6.5, i*stride + 6.5)`` is nearest;
3. neither: everything is foreground (all True).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ...checks import check_shape
from ...errors import ConfigError, InputError
from ...progress import CancelFn, Progress, ProgressFn

GROW_PX_PER_FRAME = 3.0
GROW_MAX_PX = 60.0
SALIENCY_THRESHOLD = 0.6


def _resize_mask(m: np.ndarray, work_wh: tuple[int, int]) -> np.ndarray:
    import cv2

    W, H = work_wh
    if m.shape == (H, W):
        return m.astype(bool)
    return cv2.resize(m.astype(np.float32), (W, H), interpolation=cv2.INTER_AREA) >= 0.5


def _dilate(m: np.ndarray, radius: float) -> np.ndarray:
    import cv2

    r = int(round(radius))
    if r <= 0 or not m.any():
        return m
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(m.astype(np.uint8), k).astype(bool)


def masks_from_user(masks: Mapping[int, np.ndarray], num_frames: int, plate_wh: tuple[int, int],
                    work_wh: tuple[int, int], grow_px_per_frame: float = GROW_PX_PER_FRAME,
                    grow_max_px: float = GROW_MAX_PX) -> np.ndarray:
    """User masks (plate res, any subset of frames) -> bool ``[T, H, W]`` working res; see module docstring."""
    if not masks:
        raise InputError("no masks given", where="masks")
    Wp, Hp = plate_wh
    W, H = work_wh
    given: dict[int, np.ndarray] = {}
    for t, m in masks.items():
        t = int(t)
        if not 0 <= t < num_frames:
            raise InputError(f"mask for image {t} is outside the shot (0..{num_frames - 1})", where=f"masks[{t}]")
        m = np.asarray(m)
        if m.ndim == 3 and m.shape[2] == 1:
            m = m[..., 0]
        if m.shape != (Hp, Wp):
            raise InputError(f"mask has shape {m.shape} (rows, cols), the plate is {Wp}x{Hp}", where=f"masks[{t}]")
        given[t] = _resize_mask(m > 0 if m.dtype != bool else m, (W, H))
    keys = np.array(sorted(given))
    out = np.empty((num_frames, H, W), bool)
    for t in range(num_frames):
        dist = np.abs(keys - t)
        k = int(keys[np.argmin(dist)])  # argmin takes the first (earlier) on a tie
        out[t] = given[k] if k == t else _dilate(given[k], min(grow_max_px, grow_px_per_frame * abs(k - t)))
    return out


def saliency_component(features, seed: int = 0, niter: int = 6, q: int = 8, chunk: int = 8):
    """First principal component of L2-normalised patch features over the whole shot.

    features: torch ``[T, C, h, w]`` -> float32 ``[T, h, w]`` min-max normalised to 0..1 with the sign
    chosen so the border ring of patches has the larger mean. Randomised subspace iteration (``q`` columns,
    ``niter`` rounds, fixed ``seed``; the leading direction converges fast with this oversampling), one
    frame chunk at a time, so the features are never copied whole in float32.
    """
    import torch
    import torch.nn.functional as F

    d = check_shape(features, "T C h w", "saliency features")
    T, C, h, w = d["T"], d["C"], d["h"], d["w"]
    q = min(q, C)

    def rows(t0):  # [n*h*w, C] float32, L2-normalised
        x = features[t0:t0 + chunk].float().flatten(2).transpose(1, 2).reshape(-1, C)
        return F.normalize(x, dim=1)

    with torch.no_grad():
        dev = features.device
        mean = torch.zeros(C, device=dev)
        for t0 in range(0, T, chunk):
            mean += rows(t0).sum(0)
        mean /= T * h * w
        g = torch.Generator(device="cpu").manual_seed(seed)
        Q, _ = torch.linalg.qr(torch.randn(C, q, generator=g).to(dev))
        for _ in range(niter):
            Z = torch.zeros(C, q, device=dev)
            for t0 in range(0, T, chunk):
                x = rows(t0)
                y = x @ Q - mean @ Q  # centred rows times Q
                Z += x.t() @ y - torch.outer(mean, y.sum(0))
            Q, _ = torch.linalg.qr(Z)
        G = torch.zeros(q, q, device=dev)  # Rayleigh-Ritz on the subspace: the leading direction
        for t0 in range(0, T, chunk):
            y = rows(t0) @ Q - mean @ Q
            G += y.t() @ y
        v = Q @ torch.linalg.eigh(G)[1][:, -1]
        comp = torch.cat([rows(t0) @ v - mean @ v for t0 in range(0, T, chunk)]).reshape(T, h, w)
        comp = (comp - comp.min()) / (comp.max() - comp.min()).clamp(min=1e-12)
        ring = torch.ones(h, w, dtype=torch.bool, device=comp.device)
        if h > 2 and w > 2:
            ring[1:-1, 1:-1] = False
        inner = ~ring
        if inner.any() and comp[:, ring].mean() < comp[:, inner].mean():
            comp = 1.0 - comp
    return comp.float().cpu().numpy()


def masks_from_saliency(features, work_wh: tuple[int, int], stride: int = 7,
                        threshold: float = SALIENCY_THRESHOLD, seed: int = 0) -> np.ndarray:
    """DINO saliency -> bool ``[T, H, W]`` (working res); see the module docstring."""
    from ..model.feature_grid import FeatureGrid

    comp = saliency_component(features, seed=seed)
    T, h, w = comp.shape
    ii, jj = FeatureGrid.dino_map(h, w, stride).nearest_cells(work_wh)  # the patch nearest each pixel
    fg_patch = comp < threshold
    return fg_patch[:, ii][:, :, jj]


SOURCES = ("auto", "masks", "saliency", "all")


def foreground_masks(frames: np.ndarray, source: str = "auto", masks: Mapping[int, np.ndarray] | None = None,
                     resize=None, dino=None, threshold: float = SALIENCY_THRESHOLD, layer: int | None = None,
                     stride: int | None = None, progress: ProgressFn | None = None,
                     cancel: CancelFn | None = None) -> np.ndarray:
    """bool ``[T, H, W]`` foreground at the working resolution of ``frames`` (uint8 ``[T, H, W, 3]``).

    ``source``: ``"masks"`` (user masks), ``"saliency"`` (DINO), ``"all"`` or ``"auto"`` (masks if given,
    else saliency if ``dino`` is given, else all).
    ``masks``: ``{image index: [H_p, W_p]}`` bool or instance ids (> 0 is foreground) at plate size;
    ``resize``: the :class:`coords.Resize` plate -> working (None: masks are at working size).
    ``dino``: torch DINO maps ``[T, C, h, w]`` (used as given - DINO-Tracker's saliency uses ViT-L block 23),
    or a :class:`.backbones.DinoV2`, run here over ``frames`` at block ``layer`` (default: its last block).
    ``stride``: patch stride of the maps (default: the model's, else 7). Progress stage ``foreground``.
    """
    check_shape(frames, "T H W 3", "frames")
    T, H, W, _ = frames.shape
    if source not in SOURCES:
        raise ConfigError(f"foreground source {source!r} is not one of {', '.join(SOURCES)}",
                          where="foreground.source")
    if source == "auto":
        source = "masks" if masks else ("saliency" if dino is not None else "all")
    if source == "masks":
        if not masks:
            raise InputError("foreground source 'masks' needs at least one mask", where="masks")
        plate_wh = tuple(resize.plate_wh) if resize is not None else (W, H)
        if resize is not None and tuple(resize.work_wh) != (W, H):
            raise ValueError(f"foreground_masks: resize goes to {resize.work_wh}, frames are {(W, H)}")
        out = masks_from_user(masks, T, plate_wh, (W, H))
    elif source == "saliency":
        if dino is None:
            raise ConfigError("foreground source 'saliency' needs DINO features (or use 'all' without a "
                              "backbone)", where="foreground.source")
        feats = dino
        if hasattr(dino, "blocks"):  # a backbone: run it at the saliency block
            feats = _run_backbone(dino, frames, layer, cancel)
            stride = stride or dino.stride
        check_shape(feats, "T C h w", "saliency features", dims={"T": T})
        out = masks_from_saliency(feats, (W, H), stride or 7, threshold)
    else:
        out = np.ones((T, H, W), bool)
    if progress is not None:
        progress(Progress("foreground", 1, 1, message=source))
    return out


def _run_backbone(model, frames: np.ndarray, layer: int | None, cancel: CancelFn | None):
    import torch

    from .backbones import run_frames

    dev = next(model.parameters()).device
    return run_frames(model, frames, layer=model.depth - 1 if layer is None else layer, cancel=cancel,
                      dtype=torch.float16 if dev.type == "cuda" else torch.float32, what="foreground saliency")


__all__ = ["foreground_masks", "masks_from_user", "masks_from_saliency", "saliency_component", "SOURCES"]
