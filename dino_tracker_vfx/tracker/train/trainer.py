"""Test-time training of Delta-DINO and the refiner (docs/method.md sections 3-4).

Per iteration: draw a frame set (``frames_per_step``), compute ``Phi`` for those frames once, then

* ``L_flow``: ``flow_pairs`` flow correspondences with both ends in the set (``flow_fg_ratio`` foreground),
  tracked both ways;
* ``L_dino_bb``: ``bb_pairs`` DINO best-buddies in the set (``bb_fg_ratio`` foreground), weighted InfoNCE;
* ``L_prior``: norm and angle of ``Phi`` against ``Phi_DINO`` over the set;
* from ``rfn_after * iterations`` on: ``L_rfn_bb`` (mutual nearest neighbours of the refined maps of
  ``cyc_frame_pairs`` frame pairs, up to ``bb_pairs / cyc_frame_pairs`` each, weight ``2 s^3``) and
  ``L_rfn_cc`` (``cyc_points_per_pair`` random pixels per frame pair tracked there and back; pairs that
  return within ``cyc_thresh`` px supervise both directions with weight ``cyc_gamma ** distance``).

Adam with ``lr`` for every parameter; the refiner's lr is multiplied by ``refiner_gamma`` every
``refiner_every`` iterations. A checkpoint (model, optimiser, RNG) is written every ``checkpoint_every``
iterations, at the end, and when cancelled; :meth:`Trainer.run` resumes from the newest one.

All points are WORKING px; frames are image indices ``0..T-1`` of the shot.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ...checks import check_shape
from ...errors import Cancelled
from ...progress import CancelFn, EtaClock, Progress, ProgressFn
from . import losses
from ..config import TrackerConfig
from ..model.tracker_model import TrackerModel, l2n
from .quota import split_quota
from .sampling import PairPool, TrackletSource, draw_frame_set, sample_mask_points

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    """Everything training reads, on the training device.

    images uint8 ``[T, 3, H, W]``; dino ``[T, C, h, w]`` (fp16/bf16/fp32) or None (weight-free);
    fg bool ``[T, H, W]`` or None; flow: a pair source (:class:`PairPool` or :class:`TrackletSource`);
    bb: :class:`PairPool` of DINO best-buddies with weights, or None.
    """

    images: torch.Tensor
    dino: torch.Tensor | None
    fg: torch.Tensor | None
    flow: PairPool | TrackletSource
    bb: PairPool | None = None

    def __post_init__(self):
        d = check_shape(self.images, "T 3 H W", "TrainData.images")
        if self.dino is not None:
            check_shape(self.dino, "T C h w", "TrainData.dino", {"T": d["T"]})
        if self.fg is not None:
            check_shape(self.fg, "T H W", "TrainData.fg", d)

    @property
    def T(self) -> int:
        return int(self.images.shape[0])


def make_optimizer(model: TrackerModel, lr: float) -> torch.optim.Adam:
    groups = [{"params": list(model.delta.parameters()) if model.delta is not None else [], "lr": lr,
               "name": "delta"},
              {"params": list(model.refiner.parameters()) if model.refiner is not None else [], "lr": lr,
               "name": "refiner"}]
    return torch.optim.Adam([g for g in groups if g["params"]])


def mutual_nearest_cells(a_n: torch.Tensor, b_n: torch.Tensor, chunk: int = 8192
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mutual nearest neighbours of two normalised maps ``[C, h, w]`` -> (cells of a ``[K]``, cells of b ``[K]``,
    cosine ``[K]``); cells are flat row-major indices. The map view of :func:`best_buddies.mutual_nearest`."""
    from ..preprocess.best_buddies import mutual_nearest

    C = a_n.shape[0]
    ia, ib, sim = mutual_nearest(a_n.reshape(C, -1).t(), b_n.reshape(C, -1).t(), chunk)
    return ia.to(a_n.device), ib.to(a_n.device), sim.to(a_n.device)


class Trainer:
    def __init__(self, model: TrackerModel, data: TrainData, cfg: TrackerConfig, seed: int = 0,
                 save: Callable[[int, dict[str, Any]], None] | None = None,
                 progress: ProgressFn | None = None, cancel: CancelFn | None = None):
        self.model, self.data, self.cfg = model, data, cfg
        self.save, self.progress, self.cancel = save, progress, cancel
        dev = data.images.device
        self.device = dev
        self.gen = torch.Generator(device=dev)
        self.gen.manual_seed(int(seed))
        self.opt = make_optimizer(model, cfg.train.lr)
        self.iteration = 0
        self.work_wh = model.work_wh
        self.cost_dtype = torch.bfloat16 if (dev.type == "cuda" and model.amp) else None
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "generator": self.gen.get_state(), "history": self.history[-200:],
                "sources": {"flow": self.data.flow.state(), "bb": self.data.bb.state() if self.data.bb else {}}}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.gen.set_state(st["generator"].to(self.gen.get_state().device)
                           if hasattr(st["generator"], "to") else st["generator"])
        self.iteration = int(st["iteration"])
        self.history = list(st.get("history", []))
        src = st.get("sources", {})
        self.data.flow.load_state(src.get("flow", {}))
        if self.data.bb is not None:
            self.data.bb.load_state(src.get("bb", {}))

    def _set_lr(self, it: int) -> None:
        t = self.cfg.train
        for g in self.opt.param_groups:
            g["lr"] = t.lr * (t.refiner_gamma ** (it // t.refiner_every) if g.get("name") == "refiner"
                                 else 1.0)

    # ------------------------------------------------------------------ one step
    def step(self, it: int) -> dict[str, torch.Tensor]:
        cfg, t, m, d = self.cfg, self.cfg.train, self.model, self.data
        dev, gen = self.device, self.gen
        T = d.T
        frames = draw_frame_set(T, t.frames_per_step, gen, d.flow, device=dev)
        in_set = torch.zeros(T, dtype=torch.bool, device=dev)
        in_set[frames] = True
        loc = torch.full((T,), -1, dtype=torch.long, device=dev)
        loc[frames] = torch.arange(len(frames), device=dev)
        dino = d.dino[frames] if d.dino is not None else None
        phi = m.phi(d.images[frames], dino)
        maps_n = l2n(phi)
        terms: dict[str, torch.Tensor] = {}

        # L_flow, both directions in one batch
        gti, xi, gtj, xj, _ = d.flow.pairs(t.flow_pairs, t.flow_fg_ratio, in_set, gen)
        ti, tj = loc[gti], loc[gtj]
        n = len(ti)
        if n:
            pred, _ = m.track(phi, torch.cat([xi, xj]), torch.cat([ti, tj]), torch.cat([tj, ti]), maps_n,
                              self.cost_dtype)
            terms["flow"] = losses.flow_loss(pred[:n], xj, pred[n:], xi, self.work_wh)
        else:  # no flow pair inside this frame set
            terms["flow"] = phi.sum() * 0.0
        total = terms["flow"]

        if d.dino is not None:
            if d.bb is not None and t.lambda_dino_bb > 0:
                bti, bxi, btj, bxj, w = d.bb.pairs(t.bb_pairs, t.bb_fg_ratio, in_set, gen)
                if len(bti):
                    bi, bj = loc[bti], loc[btj]
                    fi = m.sample(phi, bxi, bi)
                    fj = m.sample(phi, bxj, bj)
                    w = w if w is not None else torch.ones(len(bti), device=dev)
                    terms["dino_bb"] = losses.symmetric_info_nce(fi, fj, maps_n, bi, bj, w, t.tau,
                                                                 t.div_dino_bb)
                    total = total + t.lambda_dino_bb * terms["dino_bb"]
            if t.lambda_norm > 0 or t.lambda_angle > 0:
                terms["prior_norm"], terms["prior_angle"] = losses.prior_loss(phi, dino)
                total = total + t.lambda_norm * terms["prior_norm"] + t.lambda_angle * terms["prior_angle"]

        if it >= cfg.rfn_start() and len(frames) >= 2 and t.cyc_frame_pairs > 0:
            K = t.cyc_frame_pairs
            a = torch.randint(len(frames), (K,), generator=gen, device=gen.device).to(dev)
            b = (a + torch.randint(1, len(frames), (K,), generator=gen, device=gen.device).to(dev)) % len(frames)
            if cfg.best_buddies.mine_refined and t.lambda_rfn_bb > 0 and t.bb_pairs > 0:
                r = self._refined_bb(phi, maps_n, frames, a, b, max(1, t.bb_pairs // K))
                if r is not None:
                    terms["rfn_bb"] = r
                    total = total + t.lambda_rfn_bb * r
            if t.lambda_cyc > 0 and t.cyc_points_per_pair > 0:
                c = self._cycle(phi, maps_n, frames, a, b)
                if c is not None:
                    terms["cyc"] = c
                    total = total + t.lambda_cyc * c
        terms["total"] = total
        return terms

    @torch.no_grad()
    def _mine(self, maps_n, frames, a, b, per_pair):
        m, dev, gen = self.model, self.device, self.gen
        centres = m.grid.centres(device=dev)
        src, dst, sims, ma, mb = [], [], [], [], []
        fg = self.data.fg
        for k in range(len(a)):
            ia, ib, s = mutual_nearest_cells(maps_n[a[k]], maps_n[b[k]])
            if len(ia) == 0:
                continue
            pa = centres[ia]
            if fg is not None:
                H, W = fg.shape[-2:]
                px = pa.round().long()
                isfg = fg[frames[a[k]], px[:, 1].clamp(0, H - 1), px[:, 0].clamp(0, W - 1)]
            else:
                isfg = torch.zeros(len(ia), dtype=torch.bool, device=dev)
            pool_idx = torch.arange(len(ia), device=dev)
            n_fg = int(isfg.sum())
            nf, nb = split_quota(per_pair, self.cfg.train.bb_fg_ratio, n_fg, len(ia) - n_fg)
            sel = torch.cat([_pick(pool_idx[isfg], nf, gen), _pick(pool_idx[~isfg], nb, gen)])
            src.append(ia[sel]), dst.append(ib[sel]), sims.append(s[sel])
            ma.append(a[k].expand(len(sel))), mb.append(b[k].expand(len(sel)))
        if not src:
            return None
        return torch.cat(src), torch.cat(dst), torch.cat(sims), torch.cat(ma), torch.cat(mb)

    def _refined_bb(self, phi, maps_n, frames, a, b, per_pair):
        mined = self._mine(maps_n.detach(), frames, a, b, per_pair)
        if mined is None:
            return None
        ia, ib, s, ma, mb = mined
        C = phi.shape[1]
        flat = phi.reshape(phi.shape[0], C, -1)
        fi = flat[ma, :, ia]
        fj = flat[mb, :, ib]
        w = torch.clamp(2.0 * s ** 3, min=0.0)
        t = self.cfg.train
        return losses.symmetric_info_nce(fi, fj, maps_n, ma, mb, w, t.tau, t.div_rfn_bb)

    def _cycle(self, phi, maps_n, frames, a, b):
        t, m, d = self.cfg.train, self.model, self.data
        rows, xy = sample_mask_points(d.fg, frames[a], t.cyc_points_per_pair, t.cyc_fg_ratio, self.gen,
                                      self.work_wh)
        sa, sb = a[rows], b[rows]
        with torch.no_grad():
            phi_d, maps_d = phi.detach(), maps_n.detach()
            xt, _ = m.track(phi_d, xy, sa, sb, maps_d, self.cost_dtype)
            xs, _ = m.track(phi_d, xt, sb, sa, maps_d, self.cost_dtype)
            dist = (xs - xy).norm(dim=1)
            keep = dist <= t.cyc_thresh
        if not bool(keep.any()):
            return None
        xy, xt, dist, sa, sb = xy[keep], xt[keep], dist[keep], sa[keep], sb[keep]
        n = len(xy)
        pred, _ = m.track(phi, torch.cat([xy, xt]), torch.cat([sa, sb]), torch.cat([sb, sa]), maps_n,
                          self.cost_dtype)
        return losses.cycle_loss(pred[:n], xt, pred[n:], xy, dist, self.work_wh, t.cyc_gamma)

    # ------------------------------------------------------------------ loop
    def run(self, iterations: int | None = None) -> None:
        """Train from :attr:`iteration` to ``iterations`` (default: the preset's); checkpoints via ``save``."""
        total = int(iterations or self.cfg.train.iterations)
        every = self.cfg.train.checkpoint_every
        self.model.train()
        clock = EtaClock()
        running: dict[str, torch.Tensor] = {}
        n_run = 0
        last_report = 0.0
        msg = ""
        if self.progress is not None:
            self.progress(Progress("train", self.iteration, total, iteration=self.iteration))
        while self.iteration < total:
            if self.cancel is not None and self.cancel():
                self._checkpoint()
                raise Cancelled(f"training cancelled at iteration {self.iteration} (checkpoint saved)")
            it = self.iteration
            self._set_lr(it)
            self.opt.zero_grad(set_to_none=True)
            terms = self.step(it)
            terms["total"].backward()
            self.opt.step()
            self.iteration = it + 1
            for k, v in terms.items():
                running[k] = running.get(k, 0.0) + v.detach()
            n_run += 1
            now = time.monotonic()
            done = self.iteration
            if done == total or done % every == 0:
                self._checkpoint()
            if now - last_report > 1.0 or done == total:  # loss averages (a device sync) about once a second
                avg = {k: float(v) / n_run for k, v in running.items()}
                self.history.append({"iteration": done, **avg})
                running, n_run, last_report = {}, 0, now
                msg = f"loss {avg['total']:.4g}"
            if self.progress is not None:
                self.progress(Progress("train", done, total, iteration=done, eta_s=clock.eta(done, total),
                                       message=msg))
        self.model.eval()

    def _checkpoint(self) -> None:
        if self.save is not None:
            self.save(self.iteration, self.state_dict())


def _pick(idx: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    if k <= 0:
        return idx[:0]
    if k >= len(idx):
        return idx
    return idx[torch.randperm(len(idx), generator=gen, device=gen.device)[:k].to(idx.device)]
