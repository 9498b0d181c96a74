"""DINO best-buddies: mutual nearest neighbours between the raw DINO maps of two frames.

Inputs are raw feature maps ``[T, C, h, w]`` (torch) whose patch ``(i, j)`` sits at working pixel
``(j*stride + 6.5, i*stride + 6.5)`` (``model.feature_grid.FeatureGrid.dino_map``). For a frame pair ``(s, t)``:

1. cosine similarity of every patch of ``s`` with every patch of ``t`` (row-chunked, never the whole
   matrix at once); best buddies are pairs that are each other's argmax;
2. pairs the flow already links (:meth:`.tracklets.FlowCorrespondences.covered`, either direction) are
   dropped, as in DINO-Tracker;
3. ambiguity ``r_ij = s2 / s1``: ``s1`` is the best similarity of patch i in frame t (its buddy), ``s2``
   the best one whose box (``nms_box`` px half-size, i.e. 2*nms_box wide, centred on the patch) overlaps
   the buddy's box with IoU <= ``nms_iou`` - the second peak greedy NMS would keep (negative -> 0);
   ``r = max(r_ij, r_ji)``;
4. confidence ``w = sigmoid(a * (1 - r) + b) * max(2 * s^3, 0)``, a = 27, b = -5.7 (DINO-Tracker's
   training code; ``b`` is added).

Each unordered pair is stored once (``t_i < t_j``); :meth:`BestBuddies.sample` returns it in a random
direction.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from ...checks import check_shape
from ...errors import CacheError
from ...progress import EtaClock, Progress, ProgressFn, CancelFn, check_cancel

FORMAT = "dtvfx.best_buddies.v1"
NMS_BOX = 30.0   # public config (half-size; the paper's 60 px box)
NMS_IOU = 0.2
SIG_A, SIG_B = 27.0, -5.7


def mutual_nearest(fa, fb, chunk: int = 2048):
    """Mutual nearest neighbours by cosine similarity.

    fa: float ``[N, C]``, fb: float ``[M, C]`` (torch; L2-normalised here). Returns ``ia`` int64 [K],
    ``ib`` int64 [K] (``fb[ib[k]]`` is the nearest of ``fa[ia[k]]`` and vice versa) and ``sim`` float32 [K].
    Memory: ``chunk x M`` similarities at a time.
    """
    import torch
    import torch.nn.functional as F

    d = check_shape(fa, "N C", "mutual_nearest fa")
    check_shape(fb, "M C", "mutual_nearest fb", dims={"C": d["C"]})
    fa = F.normalize(fa.float() if fa.device.type == "cpu" else fa, dim=1)
    fb = F.normalize(fb.float() if fb.device.type == "cpu" else fb, dim=1)
    N, M = fa.shape[0], fb.shape[0]
    if N == 0 or M == 0:
        e = torch.zeros(0, dtype=torch.int64)
        return e, e.clone(), torch.zeros(0)
    row_val = torch.empty(N, dtype=torch.float32, device=fa.device)
    row_arg = torch.empty(N, dtype=torch.int64, device=fa.device)
    col_val = torch.full((M,), -float("inf"), dtype=torch.float32, device=fa.device)
    col_arg = torch.zeros(M, dtype=torch.int64, device=fa.device)
    fbt = fb.t()
    for s in range(0, N, chunk):
        S = (fa[s:s + chunk] @ fbt).float()
        v, a = S.max(dim=1)
        row_val[s:s + chunk], row_arg[s:s + chunk] = v, a
        cv, ca = S.max(dim=0)
        better = cv > col_val
        col_val = torch.where(better, cv, col_val)
        col_arg = torch.where(better, ca + s, col_arg)
    ia = torch.nonzero(col_arg[row_arg] == torch.arange(N, device=fa.device)).squeeze(1)
    ib = row_arg[ia]
    return ia, ib, row_val[ia]


def nms_ratio(sims, best, centres, box: float = NMS_BOX, iou: float = NMS_IOU):
    """Second-peak ratio ``r = max(s2, 0) / s1`` of similarity rows.

    sims: float ``[K, M]`` similarities of K points to M positions ``centres`` float ``[M, 2]`` (x, y px);
    best: int64 [K] index of each row's peak. A position competes as second peak when its box
    (half-size ``box``) has IoU <= ``iou`` with the peak's box. Returns float32 [K] in [0, 1] (1 when s1 <= 0).
    """
    import torch

    side = 2.0 * box
    c = torch.as_tensor(centres, dtype=torch.float32, device=sims.device)
    peak = c[best]  # [K, 2]
    dx = (c[None, :, 0] - peak[:, None, 0]).abs()
    dy = (c[None, :, 1] - peak[:, None, 1]).abs()
    inter = (side - dx).clamp(min=0) * (side - dy).clamp(min=0)
    iou_k = inter / (2 * side * side - inter)
    s1 = sims.gather(1, best[:, None]).squeeze(1).float()
    s2 = torch.where(iou_k <= iou, sims.float(), torch.full_like(sims, -float("inf"), dtype=torch.float32))
    s2 = s2.max(dim=1).values.clamp(min=0.0)
    r = torch.where(s1 > 0, s2 / s1.clamp(min=1e-12), torch.ones_like(s1))
    return r.clamp(0.0, 1.0)


def bb_weight(r, sim, a: float = SIG_A, b: float = SIG_B):
    """Best-buddy confidence ``sigmoid(a*(1-r) + b) * max(2*sim^3, 0)`` (numpy or torch).

    ``r = max(r_ij, r_ji)`` is the NMS second/first ratio. docs/method.md writes ``- b`` with ``b = -5.7``; the
    reference code adds ``b = -5.7``: a pair with ``r = 1`` gets ``sigmoid(-5.7)`` ~ 0, an unambiguous one
    ``r -> 0`` gets ``sigmoid(21.3)`` ~ 1. We follow the code.
    """
    if isinstance(r, np.ndarray) or np.isscalar(r):
        r, sim = np.asarray(r, np.float64), np.asarray(sim, np.float64)
        return (1.0 / (1.0 + np.exp(-(a * (1.0 - r) + b))) * np.maximum(2.0 * sim ** 3, 0.0)).astype(np.float32)
    import torch

    return torch.sigmoid(a * (1.0 - r) + b) * (2.0 * sim ** 3).clamp(min=0.0)


def all_pairs(T: int, max_pairs: int | None = None, seed: int = 0) -> np.ndarray:
    """Unordered frame pairs ``[P, 2]`` (s < t): all of them, or ``max_pairs`` drawn evenly at random."""
    s, t = np.triu_indices(T, k=1)
    pairs = np.stack([s, t], 1).astype(np.int64)
    if max_pairs is not None and len(pairs) > max_pairs:
        pick = np.sort(np.random.default_rng(seed).choice(len(pairs), int(max_pairs), replace=False))
        pairs = pairs[pick]
    return pairs


class BestBuddies:
    """Best-buddy pairs of a shot (flat arrays, one entry per buddy pair, working px).

    ``t_i``/``t_j`` int64 [K] frames (``t_i < t_j``), ``xy_i``/``xy_j`` float32 [K, 2] patch centres,
    ``sim`` float32 [K] raw DINO cosine, ``r`` float32 [K] max NMS ratio, ``w`` float32 [K] confidence;
    ``pairs`` int64 [P, 2] the frame pairs that were mined.
    """

    def __init__(self, num_frames: int, pairs, t_i, xy_i, t_j, xy_j, sim, r, w, params: dict | None = None):
        self.num_frames = int(num_frames)
        self.pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
        self.t_i = np.asarray(t_i, np.int64)
        self.t_j = np.asarray(t_j, np.int64)
        self.xy_i = np.asarray(xy_i, np.float32).reshape(-1, 2)
        self.xy_j = np.asarray(xy_j, np.float32).reshape(-1, 2)
        self.sim = np.asarray(sim, np.float32)
        self.r = np.asarray(r, np.float32)
        self.w = np.asarray(w, np.float32)
        self.params = dict(params or {})
        d = check_shape(self.xy_i, "K 2", "BestBuddies.xy_i")
        check_shape(self.xy_j, "K 2", "BestBuddies.xy_j", dims=d)
        for name in ("t_i", "t_j", "sim", "r", "w"):
            check_shape(getattr(self, name), "K", f"BestBuddies.{name}", dims=d)

    def __len__(self) -> int:
        return len(self.t_i)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"format": np.array(FORMAT), "num_frames": np.array(self.num_frames, np.int64), "pairs": self.pairs,
                "t_i": self.t_i, "xy_i": self.xy_i, "t_j": self.t_j, "xy_j": self.xy_j, "sim": self.sim,
                "r": self.r, "w": self.w, "params": np.array(json.dumps(self.params, sort_keys=True))}

    @classmethod
    def from_arrays(cls, d: dict) -> "BestBuddies":
        try:
            if str(d["format"]) != FORMAT:
                raise CacheError(f"best buddies of format {str(d['format'])!r}, expected {FORMAT!r}")
            return cls(int(d["num_frames"]), d["pairs"], d["t_i"], d["xy_i"], d["t_j"], d["xy_j"], d["sim"], d["r"],
                       d["w"], json.loads(str(d["params"])))
        except KeyError as exc:
            raise CacheError(f"best buddies lack the field {exc.args[0]!r}") from None


def mine_best_buddies(features, stride: int = 7, flow_pairs=None, pairs: Sequence | np.ndarray | None = None,
                      nms_box: float = NMS_BOX, nms_iou: float = NMS_IOU, sig_a: float = SIG_A, sig_b: float = SIG_B,
                      chunk: int = 2048, progress: ProgressFn | None = None,
                      cancel: CancelFn | None = None) -> BestBuddies:
    """Mine best buddies between frame pairs of raw DINO maps.

    features: torch float ``[T, C, h, w]`` (any device/dtype). ``pairs``: int ``[P, 2]`` frame pairs
    (default :func:`all_pairs`; cost grows as T^2 - pass a subset for long shots on CPU). ``flow_pairs``:
    :class:`.tracklets.FlowCorrespondences` (anything with ``covered(t_i, xy_i, t_j)``) whose links exclude
    buddies. ``sig_a``/``sig_b``: the confidence sigmoid. Progress stage ``best_buddies``.
    """
    import torch
    import torch.nn.functional as F

    from ..model.feature_grid import FeatureGrid

    d = check_shape(features, "T C h w", "features")
    T, h, w = d["T"], d["h"], d["w"]
    pairs = all_pairs(T) if pairs is None else np.asarray(pairs, np.int64).reshape(-1, 2)
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= T or np.any(pairs[:, 0] == pairs[:, 1])):
        raise ValueError(f"mine_best_buddies: pairs must be distinct frames in 0..{T - 1}")
    pairs = np.sort(pairs, axis=1)
    centres_t = FeatureGrid.dino_map(h, w, stride).centres(device=features.device)
    centres = centres_t.cpu().numpy()
    flat = features.flatten(2).transpose(1, 2)  # [T, h*w, C]
    out = {k: [] for k in ("t_i", "xy_i", "t_j", "xy_j", "sim", "r")}
    clock = EtaClock()
    with torch.no_grad():
        for p, (s, t) in enumerate(pairs):
            check_cancel(cancel, "best-buddy mining")
            fs = F.normalize(flat[s].float(), dim=1)
            ft = F.normalize(flat[t].float(), dim=1)
            ia, ib, sim = mutual_nearest(fs, ft, chunk)
            ia_np, ib_np = ia.cpu().numpy(), ib.cpu().numpy()
            keep = np.ones(len(ia_np), bool)
            if flow_pairs is not None and len(ia_np):
                keep &= ~flow_pairs.covered(s, centres[ia_np], t)
                keep &= ~flow_pairs.covered(t, centres[ib_np], s)
            ia, ib, sim = ia[torch.from_numpy(keep).to(ia.device)], ib[torch.from_numpy(keep).to(ib.device)], \
                sim[torch.from_numpy(keep).to(sim.device)]
            r = torch.zeros(len(ia), device=features.device)
            for c0 in range(0, len(ia), 256):  # [256, h*w] similarity rows at a time
                ja, jb = ia[c0:c0 + 256], ib[c0:c0 + 256]
                r_st = nms_ratio(fs[ja] @ ft.t(), jb, centres_t, nms_box, nms_iou)
                r_ts = nms_ratio(ft[jb] @ fs.t(), ja, centres_t, nms_box, nms_iou)
                r[c0:c0 + 256] = torch.maximum(r_st, r_ts)
            out["t_i"].append(np.full(len(ia), s, np.int64))
            out["t_j"].append(np.full(len(ia), t, np.int64))
            out["xy_i"].append(centres[ia.cpu().numpy()])
            out["xy_j"].append(centres[ib.cpu().numpy()])
            out["sim"].append(sim.float().cpu().numpy())
            out["r"].append(r.float().cpu().numpy())
            if progress is not None:
                progress(Progress("best_buddies", p + 1, len(pairs), eta_s=clock.eta(p + 1, len(pairs))))
    cat = {k: (np.concatenate(v) if v else np.zeros((0, 2) if k.startswith("xy") else 0,
                                                    np.int64 if k.startswith("t_") else np.float32))
           for k, v in out.items()}
    wts = bb_weight(cat["r"], cat["sim"], sig_a, sig_b)
    params = {"stride": stride, "nms_box": nms_box, "nms_iou": nms_iou, "sig_a": sig_a, "sig_b": sig_b,
              "flow_excluded": flow_pairs is not None}
    return BestBuddies(T, pairs, cat["t_i"], cat["xy_i"], cat["t_j"], cat["xy_j"], cat["sim"], cat["r"], wts, params)


__all__ = ["mutual_nearest", "nms_ratio", "bb_weight", "all_pairs", "BestBuddies", "mine_best_buddies"]
