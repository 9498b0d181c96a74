"""Dense flow tracklets -> training correspondences (DINO-Tracker's ``L_flow`` data).

Built by :func:`build_tracklets` from a :class:`~.flow.FlowField` (working px, pixel centres at integers):

* every seed-grid pixel of frame 0 starts a tracklet; tracklets are chained forward through ``fwd`` and end
  at the first step whose forward-backward error ``||x_t - (x_{t+1} + bwd_t(x_{t+1}))||`` reaches
  ``fb_thresh`` (1.5 px) or that leaves the raster;
* drift filter: at frame ``b`` a tracklet also ends when its position differs from the direct flow of its
  position at an earlier frame ``a`` by ``>= drift_thresh`` px while that direct flow is cycle-consistent
  (``||x_a - (x_{a->b} + f_{b->a}(x_{a->b}))|| <= direct_fb_thresh``). Which ``(a, b)`` pairs get a direct
  flow is ``drift_pairs``: ``"dyadic"`` (default; ``b - a = 2, 4, 8...`` with ``b`` a multiple of the gap,
  about T direct pairs in all, so every long span is checked on some sub-span), ``"start"`` (DINO-Tracker:
  from each tracklet's start frame to every later frame, ~T^2/2 pairs) or ``"none"``;
* new tracklets start at seed-grid pixels that no live tracklet occupies (rounded) - where the frame has no
  correspondence; tracklets shorter than ``min_length`` frames are dropped.

Storage is frame-major and compact: for frame ``t`` the entries ``ptr[t]:ptr[t+1]`` hold the live
tracklet ids (int32, ascending) and positions as uint16 fixed point (``(x + 0.5) * q``, q = 32 or less for
rasters over 2047 px: error <= 1/64 px); about 8 bytes per (tracklet, frame).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Iterable

import numpy as np

from ...checks import check_shape
from ...errors import CacheError, ConfigError
from ...progress import EtaClock, Progress, ProgressFn, CancelFn, check_cancel
from .flow import FlowField, in_raster, make_engine, sample_flow
from ..train.quota import draw_with_fg_quota

DRIFT_PAIRS = ("dyadic", "start", "none")
FORMAT = "dtvfx.flow_correspondences.v1"
# nearest-tracklet maps kept for covered() (4 bytes a pixel each: 327 frames of 854x480). Best-buddy
# mining asks about both frames of every pair, so every frame is asked for again and again.
NEAREST_CACHE_BYTES = 512 * 2**20


def _quant_scale(wh: tuple[int, int]) -> float:
    q = 32.0
    while (max(wh) + 1.0) * q > 65535:
        q /= 2
    return q


def dyadic_pairs(b: int) -> list[int]:
    """Earlier frames ``a`` checked against frame ``b`` in ``"dyadic"`` mode."""
    out, g = [], 2
    while g <= b:
        if b % g == 0:
            out.append(b - g)
        g *= 2
    return out


class FlowCorrespondences:
    """Frame-major store of flow tracklets (see module docstring); sample training pairs from it.

    Attributes: ``wh`` (W, H) working raster, ``num_frames`` T, ``ptr`` int64 [T+1], ``ids`` int32 [P],
    ``xy_q`` uint16 [P, 2], ``q`` quantisation, ``start``/``end`` int32 [K] first/last frame of tracklet k.
    """

    def __init__(self, wh, num_frames: int, ptr, ids, xy_q, q: float, start, end, params: dict | None = None):
        self.wh = (int(wh[0]), int(wh[1]))
        self.num_frames = int(num_frames)
        self.ptr = np.asarray(ptr, np.int64)
        self.ids = np.asarray(ids, np.int32)
        self.xy_q = np.asarray(xy_q, np.uint16)
        self.q = float(q)
        self.start = np.asarray(start, np.int32)
        self.end = np.asarray(end, np.int32)
        self.params = dict(params or {})
        check_shape(self.ptr, "T1", "FlowCorrespondences.ptr", dims={"T1": self.num_frames + 1})
        d = check_shape(self.xy_q, "P 2", "FlowCorrespondences.xy_q", dims={"P": int(self.ptr[-1])})
        check_shape(self.ids, "P", "FlowCorrespondences.ids", dims=d)
        check_shape(self.end, "K", "FlowCorrespondences.end", dims={"K": len(self.start)})
        self._nearest_cache: OrderedDict = OrderedDict()  # (t, max_dist) -> int32 [H, W] ids or None (LRU)
        self.nearest_builds = 0  # maps built so far (for tests and profiling)

    # ------------------------------------------------------------------------------------------ access

    @property
    def num_tracks(self) -> int:
        return len(self.start)

    @property
    def num_entries(self) -> int:
        return int(self.ptr[-1])

    def nbytes(self) -> int:
        return int(self.ptr.nbytes + self.ids.nbytes + self.xy_q.nbytes + self.start.nbytes + self.end.nbytes)

    def _dequant(self, xy_q: np.ndarray) -> np.ndarray:
        return xy_q.astype(np.float32) / np.float32(self.q) - np.float32(0.5)

    def at_frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids int32 [n], xy float32 [n, 2]) of the tracklets live at frame t."""
        s, e = self.ptr[t], self.ptr[t + 1]
        return self.ids[s:e], self._dequant(self.xy_q[s:e])

    def positions(self, ids: np.ndarray, t: np.ndarray) -> np.ndarray:
        """float32 [N, 2] position of tracklet ``ids[n]`` at frame ``t[n]`` (each must be live there)."""
        ids = np.asarray(ids, np.int64)
        t = np.broadcast_to(np.asarray(t, np.int64), ids.shape)
        if np.any((t < self.start[ids]) | (t > self.end[ids])):
            raise ValueError("positions: a tracklet is not live at the asked frame")
        out = np.empty((len(ids), 2), np.float32)
        for tt in np.unique(t):
            sel = np.nonzero(t == tt)[0]
            s, e = self.ptr[tt], self.ptr[tt + 1]
            k = s + np.searchsorted(self.ids[s:e], ids[sel])
            out[sel] = self._dequant(self.xy_q[k])
        return out

    def track(self, k: int) -> tuple[int, np.ndarray]:
        """(start frame, xy float32 [L, 2]) of tracklet k."""
        ts = np.arange(self.start[k], self.end[k] + 1)
        return int(self.start[k]), self.positions(np.full(len(ts), k), ts)

    # ------------------------------------------------------------------------------------------ sampling

    def sample(self, n: int, fg_ratio: float = 0.5, fg_masks: np.ndarray | None = None,
               rng: np.random.Generator | None = None, frames: Iterable[int] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Draw ``n`` correspondences ``(t_i, xy_i) <-> (t_j, xy_j)`` lying on one tracklet, ``t_i != t_j``.

        ``frames``: restrict both frames to this set (e.g. the frames of a training step); default all.
        ``fg_masks``: bool ``[T, H, W]`` at working resolution; ``round(fg_ratio * n)`` pairs get a source
        point on the foreground, the rest on the background (if one side has too few candidates the other
        fills in). Source entries are uniform over (tracklet, frame) entries; the partner frame is uniform
        over the tracklet's other frames in ``frames``.

        Returns ``t_i`` int64 [m], ``xy_i`` float32 [m, 2], ``t_j`` int64 [m], ``xy_j`` float32 [m, 2]
        (working px); ``m == n`` unless fewer pairs exist at all (then m may be smaller, possibly 0).
        """
        rng = rng if rng is not None else np.random.default_rng()
        F = np.arange(self.num_frames) if frames is None else np.unique(np.asarray(list(frames), np.int64))
        if len(F) and (F.min() < 0 or F.max() >= self.num_frames):
            raise ValueError(f"sample: frames must lie in 0..{self.num_frames - 1}")
        if fg_masks is not None:
            check_shape(fg_masks, "T H W", "fg_masks", dims={"T": self.num_frames, "H": self.wh[1], "W": self.wh[0]})
        n = int(n)
        counts = (self.ptr[F + 1] - self.ptr[F]).astype(np.int64)
        total = int(counts.sum())
        empty = (np.zeros(0, np.int64), np.zeros((0, 2), np.float32), np.zeros(0, np.int64), np.zeros((0, 2), np.float32))
        if n <= 0 or total == 0 or len(F) < 2:
            return empty
        cum = np.cumsum(counts)
        def draw(m: int):
            r = rng.integers(0, total, m)
            fi = np.searchsorted(cum, r, side="right")  # index into F of the source frame
            entry = self.ptr[F[fi]] + (r - (cum[fi] - counts[fi]))
            t_i = F[fi]
            k = self.ids[entry].astype(np.int64)
            # partner frame: uniform over the frames of F inside [start_k, end_k], t_i excluded
            lo = np.searchsorted(F, self.start[k], side="left")
            hi = np.searchsorted(F, self.end[k], side="right")
            n_opt = hi - lo - 1
            ok = n_opt > 0
            pick = lo + (rng.random(m) * np.maximum(n_opt, 1)).astype(np.int64)
            pick = np.where(pick >= fi, pick + 1, pick)
            t_j = F[np.minimum(pick, len(F) - 1)]
            if fg_masks is not None:
                xy = self._dequant(self.xy_q[entry])
                xi = np.clip(np.rint(xy[:, 0]).astype(np.int64), 0, self.wh[0] - 1)
                yi = np.clip(np.rint(xy[:, 1]).astype(np.int64), 0, self.wh[1] - 1)
                is_fg = np.asarray(fg_masks[t_i, yi, xi], bool)
            else:
                is_fg = np.zeros(m, bool)
            return is_fg, ok, (t_i, entry, k, t_j)

        drawn = draw_with_fg_quota(n, fg_ratio, fg_masks is not None, draw)
        if drawn is None:
            return empty
        t_i, entry, k, t_j = drawn
        xy_i = self._dequant(self.xy_q[entry])
        xy_j = self.positions(k, t_j)
        return t_i.astype(np.int64), xy_i, t_j.astype(np.int64), xy_j

    # ------------------------------------------------------------------------------------------ coverage

    def nearest_track(self, t: int, xy: np.ndarray, max_dist: float | None = 2.0) -> np.ndarray:
        """int64 [N]: id of the tracklet live at frame t nearest to each point (both rounded to pixels),
        -1 when none lies within ``max_dist`` px (None: any distance)."""
        xy = np.asarray(xy, np.float32).reshape(-1, 2)
        W, H = self.wh
        nmap = self._nearest_ids(int(t), max_dist)
        if nmap is None:
            return np.full(len(xy), -1, np.int64)
        xi = np.clip(np.rint(xy[:, 0]).astype(np.int64), 0, W - 1)
        yi = np.clip(np.rint(xy[:, 1]).astype(np.int64), 0, H - 1)
        return nmap[yi, xi].astype(np.int64)

    def _nearest_ids(self, t: int, max_dist: float | None) -> np.ndarray | None:
        """int32 ``[H, W]``: the nearest tracklet of frame t at each pixel, -1 beyond ``max_dist`` (None when the
        frame has none); kept per (frame, max_dist) in a least-recently-used cache of ``NEAREST_CACHE_BYTES``."""
        key = (t, None if max_dist is None else float(max_dist))
        if key in self._nearest_cache:
            self._nearest_cache.move_to_end(key)
            return self._nearest_cache[key]
        nmap, dist = self._nearest_map(t)
        self.nearest_builds += 1
        if nmap is not None and max_dist is not None and dist is not None:
            nmap = np.where(dist > max_dist, np.int32(-1), nmap)
        self._nearest_cache[key] = nmap
        per = 4 * self.wh[0] * self.wh[1]
        while len(self._nearest_cache) > max(2, NEAREST_CACHE_BYTES // per):
            self._nearest_cache.popitem(last=False)
        return nmap

    def _nearest_map(self, t: int):
        import cv2

        W, H = self.wh
        ids, xy = self.at_frame(t)
        if len(ids) == 0:
            return None, None
        xi = np.clip(np.rint(xy[:, 0]).astype(np.int64), 0, W - 1)
        yi = np.clip(np.rint(xy[:, 1]).astype(np.int64), 0, H - 1)
        idmap = np.full((H, W), -1, np.int32)
        idmap[yi, xi] = ids
        holes = idmap < 0
        if not holes.any():
            return idmap, None
        src = holes.astype(np.uint8)  # 0 = occupied
        dist, lab = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
        occ_flat = np.flatnonzero(~holes.ravel())  # labels number the occupied pixels in raster order from 1
        idmap = idmap.ravel()[occ_flat[lab.ravel() - 1]].reshape(H, W)
        return idmap, dist

    def covered(self, t_i, xy_i, t_j, max_dist: float | None = 2.0) -> np.ndarray:
        """bool [N]: the tracklet nearest to ``xy_i`` at frame ``t_i`` (within ``max_dist`` px) is also live
        at ``t_j`` - flow already links this point between the two frames (best-buddy exclusion)."""
        xy_i = np.asarray(xy_i, np.float32).reshape(-1, 2)
        t_i = np.broadcast_to(np.asarray(t_i, np.int64), (len(xy_i),))
        t_j = np.broadcast_to(np.asarray(t_j, np.int64), (len(xy_i),))
        out = np.zeros(len(xy_i), bool)
        for tt in np.unique(t_i):
            sel = np.nonzero(t_i == tt)[0]
            k = self.nearest_track(int(tt), xy_i[sel], max_dist)
            has = k >= 0
            kk = np.where(has, k, 0)
            out[sel] = has & (self.start[kk] <= t_j[sel]) & (self.end[kk] >= t_j[sel])
        return out

    # ------------------------------------------------------------------------------------------ caching

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"format": np.array(FORMAT), "wh": np.array(self.wh, np.int64),
                "num_frames": np.array(self.num_frames, np.int64), "ptr": self.ptr, "ids": self.ids,
                "xy_q": self.xy_q, "q": np.array(self.q, np.float64), "start": self.start, "end": self.end,
                "params": np.array(json.dumps(self.params, sort_keys=True))}

    @classmethod
    def from_arrays(cls, d: dict) -> "FlowCorrespondences":
        try:
            if str(d["format"]) != FORMAT:
                raise CacheError(f"flow correspondences of format {str(d['format'])!r}, expected {FORMAT!r}")
            return cls(tuple(int(v) for v in d["wh"]), int(d["num_frames"]), d["ptr"], d["ids"], d["xy_q"],
                       float(d["q"]), d["start"], d["end"], json.loads(str(d["params"])))
        except KeyError as exc:
            raise CacheError(f"flow correspondences lack the field {exc.args[0]!r}") from None

    def summary(self) -> str:
        L = self.end - self.start + 1
        return (f"{self.num_tracks} tracklets, {self.num_entries} entries ({self.nbytes() / 2**20:.0f} MiB), "
                f"mean length {L.mean() if len(L) else 0:.1f} of {self.num_frames} frames")


# ---------------------------------------------------------------------------------------------- building


def build_tracklets(frames: np.ndarray | None, flow: FlowField, *, fb_thresh: float = 1.5,
                    drift_thresh: float = 2.0, direct_fb_thresh: float = 1.5, drift_pairs: str = "dyadic",
                    seed_step: int = 1, min_length: int = 2, method: str | None = None, weights=None,
                    flow_params: dict | None = None, progress: ProgressFn | None = None,
                    cancel: CancelFn | None = None, device=None) -> FlowCorrespondences:
    """Chain dense tracklets through ``flow`` (see the module docstring).

    frames: uint8 ``[T, H, W, 3]`` (needed for the drift filter's direct flows; may be None when
    ``drift_pairs == "none"``). flow: FlowField of the same T, H, W. Direct flows use ``method`` /
    ``flow_params`` (default: those of ``flow``), RAFT on ``device``. Progress stage ``tracklets``.
    """
    T = flow.num_frames
    W, H = flow.size
    if drift_pairs not in DRIFT_PAIRS:
        raise ConfigError(f"drift_pairs {drift_pairs!r} is not one of {', '.join(DRIFT_PAIRS)}",
                          where="tracklets.drift_pairs")
    if drift_pairs != "none":
        if frames is None:
            raise ValueError("build_tracklets: frames are needed for the direct-flow drift filter")
        check_shape(frames, "T H W 3", "frames", dims={"T": T, "H": H, "W": W})
    step = int(seed_step)
    if step < 1:
        raise ConfigError(f"seed_step must be >= 1, got {seed_step}", where="tracklets.seed_step")
    engine = None
    if drift_pairs != "none" and T > 2:
        engine = make_engine(method or flow.method, weights, flow_params if flow_params is not None else flow.params,
                             device=device)
    q = _quant_scale((W, H))
    gy, gx = np.mgrid[0:H:step, 0:W:step]
    grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)  # seed pixels (x, y)
    gh, gw = gy.shape
    frame_ids: list[np.ndarray] = []
    frame_xy: list[np.ndarray] = []
    deaths: list[tuple[np.ndarray, int]] = []  # (ids, last frame)
    start_parts: list[np.ndarray] = []

    def quant(xy):
        return np.clip(np.rint((xy + 0.5) * q), 0, 65535).astype(np.uint16)

    # frame 0: every seed pixel
    n_ids = len(grid)
    alive_ids = np.arange(n_ids, dtype=np.int32)
    alive_start = np.zeros(n_ids, np.int32)
    alive_xy = grid.copy()
    start_parts.append(alive_start.copy())
    frame_ids.append(alive_ids)
    frame_xy.append(quant(alive_xy))
    clock = EtaClock()
    for t in range(T - 1):
        check_cancel(cancel, "flow tracklets")
        b = t + 1
        p = alive_xy
        qn = p + sample_flow(flow.fwd[t], p)
        back = qn + sample_flow(flow.bwd[t], qn)
        ok = (np.linalg.norm(back - p, axis=1) < fb_thresh) & in_raster(qn, (W, H))
        if engine is not None:
            if drift_pairs == "dyadic":
                pairs = dyadic_pairs(b)
            else:
                pairs = [int(s) for s in np.unique(alive_start) if s < b - 1]
            for a in pairs:
                sel = np.nonzero(ok & (alive_start <= a))[0]
                if len(sel) == 0:
                    continue
                fab, fba = engine.both_ways(engine.gray(frames[a]), engine.gray(frames[b]))
                # positions at frame a (ids are ascending within every frame's entries)
                ka = np.searchsorted(frame_ids[a], alive_ids[sel])
                pa = frame_xy[a][ka].astype(np.float32) / np.float32(q) - np.float32(0.5)
                pred = pa + sample_flow(fab, pa)
                cyc = pred + sample_flow(fba, pred)
                reliable = (np.linalg.norm(cyc - pa, axis=1) <= direct_fb_thresh) & in_raster(pred, (W, H))
                drift = np.linalg.norm(qn[sel] - pred, axis=1) >= drift_thresh
                ok[sel[reliable & drift]] = False
        deaths.append((alive_ids[~ok], t))
        alive_ids, alive_start, alive_xy = alive_ids[ok], alive_start[ok], qn[ok]
        # seeds where no live tracklet lands (cells of the seed grid)
        occ = np.zeros((gh, gw), bool)
        cx = np.clip(np.rint(alive_xy[:, 0]).astype(np.int64) // step, 0, gw - 1)
        cy = np.clip(np.rint(alive_xy[:, 1]).astype(np.int64) // step, 0, gh - 1)
        occ[cy, cx] = True
        new_xy = grid[~occ.ravel()]
        new_ids = np.arange(n_ids, n_ids + len(new_xy), dtype=np.int32)
        n_ids += len(new_xy)
        start_parts.append(np.full(len(new_xy), b, np.int32))
        alive_ids = np.concatenate([alive_ids, new_ids])
        alive_start = np.concatenate([alive_start, start_parts[-1]])
        alive_xy = np.concatenate([alive_xy, new_xy])
        frame_ids.append(alive_ids)
        frame_xy.append(quant(alive_xy))
        if progress is not None:
            progress(Progress("tracklets", t + 1, T - 1, eta_s=clock.eta(t + 1, T - 1),
                              message=f"{len(alive_ids)} live"))
    start = np.concatenate(start_parts)
    end = np.full(n_ids, T - 1, np.int32)
    for ids_d, t in deaths:
        end[ids_d] = t
    keep = (end - start + 1) >= int(min_length)
    remap = np.cumsum(keep, dtype=np.int64) - 1
    counts = []
    ids_parts, xy_parts = [], []
    for t in range(T):
        ids_t = frame_ids[t]
        m = keep[ids_t]
        ids_parts.append(remap[ids_t[m]].astype(np.int32))
        xy_parts.append(frame_xy[t][m])
        counts.append(int(m.sum()))
        frame_ids[t] = frame_xy[t] = None  # free as we go
    ptr = np.zeros(T + 1, np.int64)
    ptr[1:] = np.cumsum(counts)
    ids = np.concatenate(ids_parts)
    del ids_parts
    xy_q = np.concatenate(xy_parts)
    del xy_parts
    params = {"fb_thresh": fb_thresh, "drift_thresh": drift_thresh, "direct_fb_thresh": direct_fb_thresh,
              "drift_pairs": drift_pairs, "seed_step": step, "min_length": int(min_length),
              "flow_method": flow.method, "flow_params": flow.params}
    return FlowCorrespondences((W, H), T, ptr, ids, xy_q, q, start[keep], end[keep], params)


__all__ = ["FlowCorrespondences", "build_tracklets", "dyadic_pairs", "DRIFT_PAIRS"]
