"""Instance-mask propagation by space-time label propagation (DINOv3 notebook / Jabri et al. 2020).

Algorithm (docs/method.md section 8), for every frame ``t`` after (and before) the first given mask:

1. ``f_t = source(t)``: L2-normalised patch features ``[C, h, w]`` (see :mod:`.features`).
2. Context = the **anchor** frames (the first given mask is always kept, plus the latest other given
   mask passed so far) + the last ``n_recent`` predicted frames (a queue).
3. For each patch ``p`` of ``t``: cosine similarity ``s = <f_t(p), f_c(q)>`` to every context patch
   ``q`` within a **circular neighbourhood of ``radius`` patches** around ``p`` (in every context frame),
   keep the ``topk`` largest, weights ``w = softmax(s_topk / temperature)`` (temperature 0.2 = the
   notebook's; lower is sharper), patch label probabilities ``P_t(p) = sum_k w_k P_c(q_k)``.
4. ``P_t`` (``[M+1, h, w]``, channel 0 = background, channel ``k`` = the k-th object id in ascending
   order) is upsampled bilinearly from the patch centres to every plate pixel; ``argmax`` -> channel
   -> the object's **input id**; ``P_t`` joins the context queue.

Frames with a given mask output that mask unchanged (their patch probabilities are the area-averaged
one-hot of the mask). Propagation runs forward from the first given frame to the end, then backward
from it to image 0 (anchor = the first given frame only). Output frames come in that order.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterator

import numpy as np

from ..checks import check_shape
from ..errors import ConfigError, InputError
from ..progress import CancelFn, EtaClock, Progress, ProgressFn, check_cancel
from ..inputs import object_ids
from .features import FeatureSource, PatchGrid

log = logging.getLogger("dino_tracker_vfx.objects")

DEFAULT_RADIUS = 12  # patches, the DINOv3 notebook's neighbourhood


@dataclass(frozen=True)
class PropagationParams:
    """Label-propagation settings (the DINOv3 segmentation-tracking notebook's, except the radius).

    ``radius=None`` takes the feature source's ``default_radius`` (12 patches for DINO / tracker
    features as in the notebook; 6 for the weight-free colour-texture features, which are less
    discriminative - chosen on the dev videos judo, loading and bike-packing).
    """

    radius: int | None = None  # neighbourhood radius in patches (circle)
    topk: int = 5  # context patches averaged per patch
    temperature: float = 0.2  # softmax temperature over the top-k cosine similarities
    n_recent: int = 6  # recent predicted frames in the context queue (plus the anchor frames)

    def resolved(self, source) -> "PropagationParams":
        if self.radius is not None:
            return self
        return replace(self, radius=int(getattr(source, "default_radius", DEFAULT_RADIUS)))

    def validate(self) -> "PropagationParams":
        if (self.radius is not None and self.radius < 0) or self.topk < 1 or self.temperature <= 0 \
                or self.n_recent < 0:
            raise ConfigError(f"bad propagation settings {asdict(self)} (need radius >= 0, topk >= 1, "
                              f"temperature > 0, n_recent >= 0)")
        return self


@dataclass
class FramePrediction:
    """One propagated frame. ``labels``: int32 ``[H, W]`` input object ids (0 = background).

    ``patch_probs``: float32 torch ``[M+1, h, w]`` (channel order = ``[0] + ids``). ``given``: the frame's
    mask was an input.
    """

    t: int
    labels: np.ndarray
    patch_probs: Any
    given: bool
    areas: dict[int, int] = field(default_factory=dict)


class Upsampler:
    """Bilinear upsampling of patch-grid maps ``[M, h, w]`` to plate pixels ``[M, H, W]``.

    Plate pixel ``(x, y)`` reads the grid at its fractional patch coordinate
    (:meth:`PatchGrid.plate_to_grid`); outside the outermost patch centres the border value is used.
    """

    def __init__(self, grid: PatchGrid, plate_wh: tuple[int, int]):
        import torch

        W, H = plate_wh
        self.grid, self.plate_wh = grid, (int(W), int(H))
        xs = grid.plate_to_grid(np.stack([np.arange(W, dtype=np.float64), np.zeros(W)], -1))[:, 0]
        ys = grid.plate_to_grid(np.stack([np.zeros(H), np.arange(H, dtype=np.float64)], -1))[:, 1]
        u = 2.0 * xs / max(grid.w - 1, 1) - 1.0 if grid.w > 1 else np.zeros(W)
        v = 2.0 * ys / max(grid.h - 1, 1) - 1.0 if grid.h > 1 else np.zeros(H)
        uu = np.broadcast_to(u[None, :], (H, W))
        vv = np.broadcast_to(v[:, None], (H, W))
        self._g = torch.from_numpy(np.stack([uu, vv], -1).astype(np.float32))[None]  # [1, H, W, 2]

    def __call__(self, maps, rows: slice | None = None):
        """``[M, h, w]`` torch -> ``[M, H, W]`` (or the given plate rows)."""
        import torch.nn.functional as F

        g = self._g if rows is None else self._g[:, rows]
        return F.grid_sample(maps[None].float(), g, mode="bilinear", padding_mode="border",
                             align_corners=True)[0]

    def argmax(self, maps, max_values: int = 32_000_000) -> np.ndarray:
        """Channel index of the maximum after upsampling: int64 ``[H, W]`` (in row chunks of at most
        ``max_values`` upsampled floats, so hundreds of objects on a 4K plate stay within memory)."""
        H, W = self.plate_wh[1], self.plate_wh[0]
        chunk_rows = max(1, min(H, max_values // max(1, int(maps.shape[0]) * W)))
        out = np.empty((H, W), np.int64)
        for r0 in range(0, H, chunk_rows):
            sl = slice(r0, min(H, r0 + chunk_rows))
            out[sl] = self(maps, sl).argmax(0).numpy()
        return out


def mask_to_patch_probs(mask: np.ndarray, ids: list[int], grid: PatchGrid):
    """Area-averaged one-hot of an id mask ``[H, W]`` at the patch centres -> torch ``[M+1, h, w]``.

    Each channel is box-filtered over one patch spacing (plate px) and read bilinearly at the patch
    centres (exact cell averages when patches tile the plate); channel 0 is the background (id 0), channel ``k`` the id ``ids[k-1]``. Columns sum to 1.
    """
    import cv2
    import torch

    H, W = mask.shape
    sx, sy = grid.step_plate()
    k = (max(1, int(round(sx))), max(1, int(round(sy))))
    # a box of even size k has its centre half a pixel right/below the pixel it is stored at
    # (anchor (k-1)//2); read it there so cell-centred grids get their exact cell averages
    c = grid.centres_plate() - np.array([0.5 if k[0] % 2 == 0 else 0.0, 0.5 if k[1] % 2 == 0 else 0.0])
    mapx = c[:, 0].reshape(grid.h, grid.w).astype(np.float32)
    mapy = c[:, 1].reshape(grid.h, grid.w).astype(np.float32)
    anchor = ((k[0] - 1) // 2, (k[1] - 1) // 2)
    out = np.empty((len(ids) + 1, grid.h, grid.w), np.float32)
    for ch, v in enumerate([0] + list(ids)):
        one = (mask == v).astype(np.float32)
        box = cv2.blur(one, k, anchor=anchor, borderType=cv2.BORDER_REFLECT) if k != (1, 1) else one
        out[ch] = cv2.remap(box, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out /= np.maximum(out.sum(0, keepdims=True), 1e-6)
    return torch.from_numpy(out)


def propagate_step(cur, ctx_feats, ctx_probs, radius: int, topk: int, temperature: float, tile: int = 10):
    """One frame of label propagation (exact; computed in tiles of ``tile x tile`` patches).

    cur: ``[C, h, w]``; ctx_feats: ``[K, C, h, w]``; ctx_probs: ``[K, M, h, w]`` (torch float32, features
    L2-normalised). For each patch the candidates are the context patches ``q`` of every context frame
    with ``|q - p|^2 <= radius^2`` (patch units). Returns ``[M, h, w]``.
    """
    import torch

    d = check_shape(cur, "C h w", "current features")
    check_shape(ctx_feats, "K C h w", "context features", d)
    d2 = check_shape(ctx_probs, "K M h w", "context probs", {"h": d["h"], "w": d["w"]})
    K, M, C, h, w = d2["K"], d2["M"], d["C"], d["h"], d["w"]
    r = int(radius)
    out = torch.empty(M, h, w)
    for i0 in range(0, h, tile):
        i1 = min(h, i0 + tile)
        a0, a1 = max(0, i0 - r), min(h, i1 + r)
        for j0 in range(0, w, tile):
            j1 = min(w, j0 + tile)
            b0, b1 = max(0, j0 - r), min(w, j1 + r)
            q = cur[:, i0:i1, j0:j1].reshape(C, -1)  # [C, n]
            ctx = ctx_feats[:, :, a0:a1, b0:b1].reshape(K, C, -1)  # [K, C, m]
            sims = torch.einsum("cn,kcm->nkm", q, ctx)  # [n, K, m]
            qi, qj = torch.meshgrid(torch.arange(i0, i1), torch.arange(j0, j1), indexing="ij")
            ci, cj = torch.meshgrid(torch.arange(a0, a1), torch.arange(b0, b1), indexing="ij")
            d2m = (qi.reshape(-1, 1) - ci.reshape(1, -1)) ** 2 + (qj.reshape(-1, 1) - cj.reshape(1, -1)) ** 2
            sims.masked_fill_((d2m > r * r)[:, None, :], float("-inf"))
            n, m = sims.shape[0], sims.shape[2]
            k = min(topk, K * m)
            vals, idx = sims.reshape(n, K * m).topk(k, dim=1)  # [n, k]
            wts = torch.softmax(vals / temperature, dim=1)
            src = ctx_probs[:, :, a0:a1, b0:b1].reshape(K, M, m).permute(0, 2, 1).reshape(K * m, M)
            res = (wts[..., None] * src[idx]).sum(1)  # [n, M]
            out[:, i0:i1, j0:j1] = res.T.reshape(M, i1 - i0, j1 - j0)
    return out


def _conform(mask: np.ndarray, plate_wh: tuple[int, int], t: int) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InputError(f"mask for image {t} must be a 2-D id image, got shape {m.shape}")
    if (m.shape[1], m.shape[0]) != tuple(plate_wh):
        raise InputError(f"mask for image {t} is {m.shape[1]}x{m.shape[0]}, the plate is "
                         f"{plate_wh[0]}x{plate_wh[1]} (inputs.read_masks resizes masks to the plate)")
    return m.astype(np.int32, copy=False)


def propagate_masks(source: FeatureSource, n_frames: int, masks: dict[int, np.ndarray], plate_wh: tuple[int, int],
                    params: PropagationParams = PropagationParams(), ids: list[int] | None = None,
                    progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                    frames: list[int] | None = None) -> Iterator[FramePrediction]:
    """Propagate id masks ``{t: int [H, W]}`` through ``n_frames`` images; yields :class:`FramePrediction`.

    ``frames``: restrict the output to these image indices (propagation still passes through the frames
    in between: ``range(min, max+1)`` around the given masks). Order: forward from the first given frame,
    then backward.
    """
    import torch

    params = params.validate().resolved(source)
    if not masks:
        raise InputError("no mask given")
    masks = {int(t): _conform(m, plate_wh, int(t)) for t, m in sorted(masks.items())}
    for t in masks:
        if not 0 <= t < n_frames:
            raise InputError(f"mask image index {t} outside the shot (0..{n_frames - 1})")
    ids = object_ids(masks) if ids is None else list(ids)
    if not ids:
        raise InputError("the masks hold no object (every pixel is 0)")
    grid = source.grid
    given_probs = {t: mask_to_patch_probs(m, ids, grid) for t, m in masks.items()}
    up = Upsampler(grid, plate_wh)
    lut = np.array([0] + ids, np.int64)
    k0 = min(masks)
    lo, hi = 0, n_frames - 1
    if frames is not None:
        fr = sorted(int(f) for f in frames)
        lo, hi = min(fr[0], k0), max(fr[-1], k0)
    want = None if frames is None else set(int(f) for f in frames)
    order = list(range(k0, hi + 1)) + list(range(k0 - 1, lo - 1, -1))
    total = len(order)
    clock = EtaClock()
    feats: dict[int, Any] = {}

    def feat(t):
        if t not in feats:
            feats[t] = source(t)
        return feats[t]

    def run(direction: int, ts: list[int]):
        recent: deque = deque(maxlen=params.n_recent)
        anchors = [k0]
        last_given = k0
        for t in ts:
            check_cancel(cancel, "mask propagation")
            if t in masks and t != k0 and direction > 0:
                last_given = t
            if t in masks and (direction > 0 or t == k0):
                probs = given_probs[t]
                labels = masks[t]
                given = True
            else:
                ctx_t = list(dict.fromkeys(anchors + ([last_given] if last_given != k0 else []) + list(recent)))
                ctx_f = torch.stack([feat(c) for c in ctx_t])
                ctx_p = torch.stack([probs_of[c] for c in ctx_t])
                probs = propagate_step(feat(t), ctx_f, ctx_p, params.radius, params.topk, params.temperature)
                labels = lut[up.argmax(probs)].astype(np.int32)
                given = False
            probs_of[t] = probs
            if t != k0:
                recent.append(t)
            # forget what no context can use any more
            keep = set(anchors) | {last_given} | set(recent)
            for old in [c for c in probs_of if c not in keep]:
                probs_of.pop(old)
            for old in [c for c in feats if c not in keep and c != t]:
                feats.pop(old)
            yield t, labels, probs, given

    probs_of: dict[int, Any] = {}
    done = 0
    for direction, ts in ((1, order[:hi - k0 + 1]), (-1, [k0] + order[hi - k0 + 1:])):
        for t, labels, probs, given in run(direction, ts):
            if direction < 0 and t == k0:
                continue  # k0 already output by the forward pass; only re-seeds the backward context
            done += 1
            if progress is not None:
                progress(Progress("propagate", done, total, eta_s=clock.eta(done, total)))
            if want is not None and t not in want:
                continue
            areas = {i: int(a) for i, a in zip(*np.unique(labels, return_counts=True)) if i != 0}
            yield FramePrediction(t, labels, probs, given, {i: areas.get(i, 0) for i in ids})
        probs_of.clear()
        feats.clear()


__all__ = ["PropagationParams", "FramePrediction", "Upsampler", "propagate_masks", "propagate_step",
           "mask_to_patch_probs"]
