"""Re-acquisition after occlusion: predict a hidden point from its neighbours, resume it when its pattern
matches again (``refine.reacquire*`` settings; after :mod:`.refine`, weight-free mode included).

While a point is hidden (an occluder passes, the coarse track lost it or slipped onto the occluder), its
position is PREDICTED from the motion of tracked neighbours on the same surface: the ``neighbours``
nearest tracks that are visible both at the point's last MATCHED image ``t_ref`` (refined or resumed,
going away from its query image) and at the hidden image ``t`` give a robust affine fit (``cv2.estimateAffine2D``, RANSAC,
2 px) from ``t_ref`` to ``t``; the point's position at ``t_ref`` mapped through it is the prediction (a
median translation with 1-3 neighbours; the coarse position with none). Neighbours count only where they
are visible with a clear match (ZNCC >= ``reacquire_zncc``), so a track that slid onto the occluder does
not drag the prediction along. There, and at the coarse position when that lies farther than the radius
(the coarse track may have kept the point where the neighbours mislead), the query pattern is
searched (``reacquire_radius`` plate px, the pattern warped by its last shape times the fit's linear
part) and refined as in :mod:`.refine`; where its ZNCC reaches ``reacquire_zncc`` and the match lies on the
plate the point is visible again at the match (confidence from the ZNCC), else it stays hidden at the
prediction. Going away from the query image in both directions, a resumed image is the next ``t_ref``:
predictions are never chained through hidden images.

Coordinates: plate px, origin top-left, y down, first pixel's centre at (0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...checks import check_shape
from ...coords import in_plate
from ...progress import CancelFn, Progress, ProgressFn, check_cancel
from .refine import GreyFrames, Refined, confidence, match


@dataclass(frozen=True)
class ReacquireSettings:
    radius: float = 8.0       # plate px searched around the prediction
    zncc: float = 0.9         # a hidden point resumes at or above this
    neighbours: int = 12
    min_zncc: float = 0.5     # refine.hide_zncc: where the confidence is 0
    warp: str = "affine"
    iterations: int = 20

    @classmethod
    def from_config(cls, cfg, radius: float) -> "ReacquireSettings":
        return cls(float(radius), float(cfg.refine.reacquire_zncc), int(cfg.refine.neighbours),
                   float(cfg.refine.hide_zncc), str(cfg.refine.warp), int(cfg.refine.iterations))


def predict_from_neighbours(xy_ref: np.ndarray, ok_ref: np.ndarray, xy_t: np.ndarray, ok_t: np.ndarray,
                            p_ref: np.ndarray, k: int, exclude: int | None = None) -> np.ndarray | None:
    """The 2x3 affine map (``x_t = M @ [x_ref, 1]``) of the ``k`` tracks nearest ``p_ref`` that are
    trusted (``ok``) at both images; ``xy_*`` ``[N, 2]``, ``ok_*`` ``[N]``. None without any neighbour."""
    import cv2

    use = ok_ref & ok_t & np.isfinite(xy_ref).all(1) & np.isfinite(xy_t).all(1)
    if exclude is not None:
        use[exclude] = False
    idx = np.nonzero(use)[0]
    if len(idx) == 0:
        return None
    dist = np.linalg.norm(xy_ref[idx] - p_ref, axis=1)
    idx = idx[np.argsort(dist, kind="stable")[:k]]
    src, dst = xy_ref[idx].astype(np.float64), xy_t[idx].astype(np.float64)
    if len(idx) >= 4:
        M, _ = cv2.estimateAffine2D(src.reshape(-1, 1, 2), dst.reshape(-1, 1, 2), method=cv2.RANSAC,
                                    ransacReprojThreshold=2.0, maxIters=500, confidence=0.99)
        if M is not None and np.isfinite(M).all():
            return M
    M = np.hstack([np.eye(2), np.median(dst - src, axis=0)[:, None]])
    return M


def reacquire(frames: GreyFrames, ref: Refined, coarse: np.ndarray, t_q: np.ndarray, settings: ReacquireSettings,
              progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> tuple[Refined, np.ndarray]:
    """Predict hidden points from their neighbours and resume those whose pattern matches again.

    ref: :func:`.refine.refine_tracks`'s output (``N`` points, ``T`` images, plate px); coarse float
    ``[N, T, 2]`` plate px (used where no neighbour predicts); t_q int ``[N]``. Returns (the updated
    :class:`Refined`, resumed bool ``[N, T]``: where a hidden point was found again)."""
    d = check_shape(ref.xy, "N T 2", "reacquire xy")
    check_shape(np.asarray(coarse), "N T 2", "reacquire coarse", d)
    t_q = np.asarray(t_q, np.int64).reshape(-1)
    check_shape(t_q, "N", "reacquire t_q", d)
    N, T = d["N"], d["T"]
    xy, vis, conf = ref.xy.copy(), ref.visible.copy(), ref.confidence.copy()
    zncc, warp = ref.zncc.copy(), ref.warp.copy()
    resumed = np.zeros((N, T), bool)
    total, done = 2 * T, 0
    for direction in (1, -1):
        last = t_q.copy()  # each point's last matched image on this side of its query
        for t in (range(T) if direction == 1 else range(T - 1, -1, -1)):
            done += 1
            if progress is not None:
                progress(Progress("reacquire", done, total, message="neighbour prediction"))
            on_side = (t > t_q) if direction == 1 else (t < t_q)
            hidden = np.nonzero(on_side & ~vis[:, t] & ~ref.flat)[0]
            if len(hidden):
                check_cancel(cancel, "re-acquisition")
                pred = np.array(coarse[hidden, t], np.float64)
                A0 = np.tile(np.eye(2), (len(hidden), 1, 1))
                # trusted neighbours: visible with a clear match (not a track that slid onto the occluder)
                trust = vis & (np.nan_to_num(zncc, nan=-1.0) >= settings.zncc)
                trust[np.arange(N), t_q] = True
                for j, n in enumerate(hidden):
                    tr = int(last[n])
                    M = predict_from_neighbours(xy[:, tr], trust[:, tr], xy[:, t], trust[:, t], xy[n, tr],
                                                settings.neighbours, exclude=int(n))
                    A0[j] = warp[n, tr]
                    if M is not None:
                        pred[j] = M[:, :2] @ xy[n, tr] + M[:, 2]
                        A0[j] = M[:, :2] @ warp[n, tr]
                ok_pred = np.isfinite(pred).all(1)
                hidden, pred, A0 = hidden[ok_pred], pred[ok_pred], A0[ok_pred]
                gray = frames[t]
                pats = ref.patterns.take(hidden)
                c, A, z = match(gray, pats, pred, A0, settings.radius, settings.warp, settings.iterations)
                # the coarse track too: it may have kept the point where the neighbours mislead
                cc = np.array(coarse[hidden, t], np.float64)
                far = np.isfinite(cc).all(1) & (np.linalg.norm(cc - pred, axis=1) > settings.radius)
                if far.any():
                    c2, A2, z2 = match(gray, pats.take(np.nonzero(far)[0]), cc[far], A0[far], settings.radius,
                                       settings.warp, settings.iterations)
                    fi = np.nonzero(far)[0]
                    better = (np.nan_to_num(z2, nan=-2.0) > np.nan_to_num(z[fi], nan=-2.0)) & (z2 >= settings.zncc)
                    c[fi[better]], A[fi[better]], z[fi[better]] = c2[better], A2[better], z2[better]
                    pred[fi[better]] = cc[far][better]
                back = np.isfinite(z) & (z >= settings.zncc) & (np.linalg.norm(c - pred, axis=1) <= 2 * settings.radius)
                back &= in_plate(c, frames.size)  # never resumed off the plate (a match on the part left inside)
                xy[hidden, t] = np.where(back[:, None], c, pred)
                zncc[hidden, t] = z
                vis[hidden[back], t] = True
                resumed[hidden[back], t] = True
                warp[hidden[back], t] = A[back]
                conf[hidden, t] = np.where(back, confidence(z, settings.min_zncc), 0.0)  # min_zncc: hide_zncc
            # the next prediction starts from the last image whose position came from a match (refined or
            # resumed), not from a coarse position kept visible
            last[on_side & vis[:, t] & (ref.refined[:, t] | resumed[:, t])] = t
    rows = np.arange(N)
    vis[rows, t_q] = True
    out = Refined(xy, vis, conf, zncc, ref.refined | resumed, warp, ref.patterns, ref.flat)
    return out, resumed


__all__ = ["ReacquireSettings", "reacquire", "predict_from_neighbours"]
