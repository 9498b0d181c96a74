"""Minibatch sampling for training, on the training device (no Python loop per point).

A :class:`PairPool` holds correspondences ``(t_i, x_i) <-> (t_j, x_j)`` (flow pairs or best-buddies) as
device tensors: ``t`` long ``[P]``, ``xy`` float32 ``[P, 2]`` WORKING px, optional weight ``[P]`` and
a foreground flag ``[P]`` (the ``i`` end in the foreground mask). Each step draws a frame set
(docs/method.md: 8 frames per step) and then pairs whose two ends both lie in the set, with a
foreground ratio (50% flow, 70% best-buddies / cycle points).
"""

from __future__ import annotations

import numpy as np
import torch

from ...checks import check_shape
from .quota import fg_share, split_quota


class PairPool:
    def __init__(self, t_i, xy_i, t_j, xy_j, w=None, device="cpu"):
        dev = torch.device(device)
        self.t_i = torch.as_tensor(np.asarray(t_i), dtype=torch.long).to(dev)
        d = check_shape(self.t_i, "P", "PairPool t_i")
        self.xy_i = torch.as_tensor(np.asarray(xy_i, np.float32)).to(dev)
        check_shape(self.xy_i, "P 2", "PairPool xy_i", d)
        self.t_j = torch.as_tensor(np.asarray(t_j), dtype=torch.long).to(dev)
        check_shape(self.t_j, "P", "PairPool t_j", d)
        self.xy_j = torch.as_tensor(np.asarray(xy_j, np.float32)).to(dev)
        check_shape(self.xy_j, "P 2", "PairPool xy_j", d)
        self.w = None if w is None else torch.as_tensor(np.asarray(w, np.float32)).to(dev)
        if self.w is not None:
            check_shape(self.w, "P", "PairPool w", d)
        self.fg = torch.zeros(len(self), dtype=torch.bool, device=dev)
        self.device = dev

    def __len__(self) -> int:
        return int(self.t_i.shape[0])

    def set_foreground(self, fg_masks: torch.Tensor | None) -> None:
        """Flag pairs whose ``i`` end lies in ``fg_masks`` bool ``[T, H, W]`` (nearest pixel)."""
        if fg_masks is None or len(self) == 0:
            self.fg = torch.zeros(len(self), dtype=torch.bool, device=self.device)
            return
        T, H, W = fg_masks.shape
        x = self.xy_i[:, 0].round().long().clamp(0, W - 1)
        y = self.xy_i[:, 1].round().long().clamp(0, H - 1)
        self.fg = fg_masks.to(self.device)[self.t_i, y, x]

    def draw(self, n: int, fg_ratio: float, in_set: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
        """Indices ``[m <= n]`` of pairs with both ends in ``in_set`` (bool ``[T]``; None = all), about
        ``fg_ratio`` of them foreground (the other group fills up when one runs short)."""
        if len(self) == 0 or n <= 0:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        ok = torch.ones(len(self), dtype=torch.bool, device=self.device) if in_set is None else \
            in_set[self.t_i] & in_set[self.t_j]
        fg_idx = torch.nonzero(ok & self.fg).squeeze(1)
        bg_idx = torch.nonzero(ok & ~self.fg).squeeze(1)
        n_fg, n_bg = split_quota(n, fg_ratio, len(fg_idx), len(bg_idx))
        return torch.cat([_choose(fg_idx, n_fg, gen), _choose(bg_idx, n_bg, gen)])

    def pairs(self, n: int, fg_ratio: float, in_set: torch.Tensor | None, gen: torch.Generator):
        """(t_i [m], xy_i [m, 2], t_j [m], xy_j [m, 2], w [m] or None) device tensors, see :meth:`draw`."""
        idx = self.draw(n, fg_ratio, in_set, gen)
        return (self.t_i[idx], self.xy_i[idx], self.t_j[idx], self.xy_j[idx],
                None if self.w is None else self.w[idx])

    def state(self) -> dict:
        return {}

    def load_state(self, st: dict) -> None:
        pass

    def frames_of_random_pairs(self, k: int, gen: torch.Generator) -> torch.Tensor:
        if len(self) == 0:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        idx = torch.randint(len(self), (k,), generator=gen, device=gen.device).to(self.device)
        return torch.cat([self.t_i[idx], self.t_j[idx]])



class TrackletSource:
    """Flow pairs drawn each step from :class:`tracklets.FlowCorrespondences` (numpy, on the CPU: a few
    hundred pairs per step cost well under a millisecond) and handed over as device tensors.

    ``scale``: optional :class:`coords.Resize` from the tracklets' raster to the working raster.
    The numpy generator's state is part of the trainer's checkpoint (deterministic resume).
    """

    def __init__(self, corr, fg_masks: np.ndarray | None, device="cpu", seed: int = 0, scale=None):
        self.corr = corr
        self.fg = None if fg_masks is None else np.asarray(fg_masks, bool)
        self.device = torch.device(device)
        self.rng = np.random.default_rng(int(seed))
        self.scale = scale

    def __len__(self) -> int:
        return int(self.corr.num_entries)

    def _out(self, t_i, xy_i, t_j, xy_j):
        if self.scale is not None:
            xy_i = self.scale.to_working(xy_i).astype(np.float32)
            xy_j = self.scale.to_working(xy_j).astype(np.float32)
        dev = self.device
        return (torch.from_numpy(t_i).to(dev), torch.from_numpy(np.ascontiguousarray(xy_i)).to(dev),
                torch.from_numpy(t_j).to(dev), torch.from_numpy(np.ascontiguousarray(xy_j)).to(dev))

    def pairs(self, n: int, fg_ratio: float, in_set: torch.Tensor | None, gen: torch.Generator):
        frames = None if in_set is None else torch.nonzero(in_set).squeeze(1).cpu().numpy()
        fg = self.fg if fg_ratio > 0 else None
        return self._out(*self.corr.sample(n, fg_ratio, fg, rng=self.rng, frames=frames)) + (None,)

    def frames_of_random_pairs(self, k: int, gen: torch.Generator) -> torch.Tensor:
        t_i, _, t_j, _ = self.corr.sample(k, 0.0, None, rng=self.rng)
        return torch.from_numpy(np.concatenate([t_i, t_j])).to(self.device)

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, st: dict) -> None:
        if st.get("rng"):
            self.rng.bit_generator.state = st["rng"]


def _choose(idx: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    if k <= 0:
        return idx[:0]
    if k >= len(idx):
        return idx
    perm = torch.randperm(len(idx), generator=gen, device=gen.device)[:k].to(idx.device)
    return idx[perm]


def draw_frame_set(T: int, n_frames: int, gen: torch.Generator, pool: PairPool | None = None,
                   device="cpu") -> torch.Tensor:
    """A sorted long ``[<= n_frames]`` set of frame indices for one step.

    Half the slots come from the two ends of random pool pairs (so the set always holds usable pairs,
    whatever their temporal spread), the rest are uniform random frames.
    """
    n_frames = max(2, min(int(n_frames), T))
    chosen = torch.zeros(T, dtype=torch.bool, device=device)
    if pool is not None and len(pool):
        fr = pool.frames_of_random_pairs(max(1, n_frames // 4), gen).to(device)
        chosen[fr[:n_frames]] = True
    need = n_frames - int(chosen.sum())
    if need > 0:
        order = torch.randperm(T, generator=gen, device=gen.device).to(device)
        free = order[~chosen[order]][:need]
        chosen[free] = True
    return torch.nonzero(chosen).squeeze(1)


def sample_mask_points(masks: torch.Tensor | None, frames: torch.Tensor, n: int, fg_ratio: float,
                       gen: torch.Generator, wh: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random integer pixel positions in frames ``frames [K]``: ``n`` per frame, ``fg_ratio`` of them in
    ``masks`` bool ``[T, H, W]`` (None = uniform). Returns (frame row ``[M]`` long index into ``frames``,
    xy ``[M, 2]`` float32 working px)."""
    W, H = wh
    dev = frames.device
    K = len(frames)
    if masks is None or fg_ratio <= 0:
        flat = torch.randint(W * H, (K, n), generator=gen, device=gen.device).to(dev)
    else:
        m = masks[frames].reshape(K, -1).float().to(dev)
        has_fg = m.sum(1) > 0
        has_bg = (1 - m).sum(1) > 0
        n_fg = fg_share(n, fg_ratio)
        pf = torch.where(has_fg[:, None], m, torch.ones_like(m))
        pb = torch.where(has_bg[:, None], 1 - m, torch.ones_like(m))
        g_dev = gen.device
        a = torch.multinomial(pf.to(g_dev), n_fg, replacement=True, generator=gen).to(dev) if n_fg else \
            torch.zeros(K, 0, dtype=torch.long, device=dev)
        b = torch.multinomial(pb.to(g_dev), n - n_fg, replacement=True, generator=gen).to(dev) if n > n_fg else \
            torch.zeros(K, 0, dtype=torch.long, device=dev)
        flat = torch.cat([a, b], dim=1)
    rows = torch.arange(K, device=dev)[:, None].expand(K, n).reshape(-1)
    flat = flat.reshape(-1)
    xy = torch.stack([(flat % W).float(), (flat // W).float()], dim=-1)
    return rows, xy
