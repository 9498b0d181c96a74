"""Re-acquisition after occlusion: predict a hidden point from its neighbours, resume it when its pattern
matches again (``refine.reacquire*`` settings; after :mod:`.refine`, weight-free mode included).

Candidates, per image going away from the query image: HIDDEN points (an occluder passes, the coarse track
lost it or slid onto the occluder) and VISIBLE points whose position no clear match confirms (their pattern
scores below ``reacquire_zncc`` there: often a track that slid off).

Prediction, from the motion of tracked neighbours ON THE SAME SURFACE (:func:`same_surface`): among the
tracks trusted (visible with a clear match, ZNCC >= ``reacquire_zncc``) both at the point's last MATCHED
image ``t_ref`` and at ``t``, only those whose displacement over the images around ``t_ref`` where the point
itself was matched agrees with the point's (within 0.25, else 0.5, 1, 3, 10 px per image: the tightest that
admits 6 tracks trusted at ``t``, else 3; none beyond 10). The ``neighbours`` nearest of them give a robust
map from ``t_ref`` to ``t`` (:func:`predict_from_neighbours`: a homography with 6 or more, RANSAC 2 px, exact
for a planar surface in perspective; else an affine map with 3 or more; a median translation with 1-2; the
coarse position with none); the
point's position at ``t_ref`` mapped through it is the prediction. Why the motion test: the nearest tracks
of a point that has just been hidden are often on the occluder that hides it, and a fit to them carries
the prediction away with the occluder.

Matching: there, and at the coarse position when that lies farther than the radius (the coarse track may
have kept the point where the neighbours mislead), the query pattern is searched (``reacquire_radius``
plate px, the pattern warped by its last shape times the map's derivative) and refined as in
:mod:`.refine`; where its ZNCC reaches ``reacquire_zncc`` (and, for a visible point, beats its current
match, lies on the plate, and its search peak is DISTINCT: :data:`MIN_DISTINCT`) the point is visible at the
match (confidence from the ZNCC); a hidden point stays hidden at the prediction otherwise, a visible one as
it was. A resumed image is the next ``t_ref``: predictions are never
chained through hidden images.

Coordinates: plate px, origin top-left, y down, first pixel's centre at (0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...checks import check_shape
from ...coords import in_plate
from ...progress import CancelFn, Progress, ProgressFn, check_cancel
from .refine import GreyFrames, Patterns, Refined, confidence, lk_from, search


SURFACE_WINDOW = 15  # images around the last match over which a neighbour must have moved with the point
SURFACE_TOLS = (0.25, 0.5, 1.0, 3.0, 10.0)  # px per image of motion difference allowed, tried in turn (parallax, shake)
SURFACE_MIN = 3      # tracks a tolerance must admit
SEARCH_SLACK = 0.2   # Lucas-Kanade only after a search scoring at least reacquire_zncc minus this (it adds
                     # hundredths, not tenths, to a whole-pixel match)
MAX_WIDEN = 4.0      # the widened search radius stays within this many radii
HOMOGRAPHY_MIN = 6   # neighbours for a homography prediction (fewer: affine, then translation)
AFFINE_MIN = 3       # neighbours for an affine prediction (3 on one surface fix it exactly; fewer: translation)
MIN_DISTINCT = 0.03  # a resume's search peak must beat every score DISTINCT_PX (refine.py) or more from it by
                     # this: a pattern on a straight edge (a kerb, a horizon) matches about as well anywhere
                     # along it, and a search centred on a coarse track that slid along the edge "finds" it there


@dataclass(frozen=True)
class ReacquireSettings:
    radius: float = 8.0       # plate px searched around the prediction
    zncc: float = 0.9         # a hidden point resumes at or above this
    neighbours: int = 12
    min_zncc: float = 0.5     # refine.hide_zncc: where the confidence is 0
    warp: str = "affine"
    iterations: int = 20
    unconfirmed: bool = True    # also look again for visible points whose position no match confirms
    widen: float = 0.1          # search radius grows by this fraction per image since the last match (old
                                # procedural scenes 100-104: re-acquisition 0.538 -> 0.569; 0.25: 0.562)

    @classmethod
    def from_config(cls, cfg, radius: float) -> "ReacquireSettings":
        return cls(float(radius), float(cfg.refine.reacquire_zncc), int(cfg.refine.neighbours),
                   float(cfg.refine.hide_zncc), str(cfg.refine.warp), int(cfg.refine.iterations))


def same_surface(xy: np.ndarray, trust: np.ndarray, matched: np.ndarray, n: int, t_ref: int,
                 window: int = SURFACE_WINDOW, tols: tuple[float, ...] = SURFACE_TOLS,
                 usable: np.ndarray | None = None) -> np.ndarray | None:
    """bool ``[N]``: the tracks that moved with point ``n`` around ``t_ref`` (its last matched image).

    Over every image ``s`` within ``window`` of ``t_ref`` where ``n`` was matched (``matched [N, T]``) and a
    track is trusted (``trust [N, T]``) at ``s`` and ``t_ref``, the track's displacement ``x(t_ref) - x(s)``
    differs from ``n``'s by its largest deviation per image of ``|t_ref - s|``. Kept: the tracks within the
    first tolerance of ``tols`` (px per image) that admits ``HOMOGRAPHY_MIN`` tracks (enough for a homography:
    a ground plane in perspective moves differently across its width, and 3 near-identical tracks fit it worse
    than 6 a little looser); failing that, the first that admits ``SURFACE_MIN``; failing that, whatever the
    loosest admits (perhaps nothing: tracks moving more than 10 px per image differently are on another
    surface, and a fit to them is worse than no prediction). ``usable`` (bool ``[N]``, optional): only these
    count (the tracks trusted at the image to predict: when the occluder hides the nearest tracks of the
    surface too, a looser tolerance reaches ones it left in view). None where nothing can be compared (the
    point was not matched near ``t_ref``: every track may serve then).

    Why: the nearest tracks of a point that has just been hidden are often on the occluder that hides it;
    an affine fit to them carries the prediction away with the occluder."""
    T = xy.shape[1]
    ss = [s for s in range(max(0, t_ref - window), min(T, t_ref + window + 1))
          if s != t_ref and matched[n, s]]
    if not ss:
        return None
    dev = np.zeros(len(xy))
    seen = np.zeros(len(xy), bool)
    for s in ss:
        both = trust[:, s] & trust[:, t_ref]
        dn = xy[n, t_ref] - xy[n, s]
        d = np.linalg.norm((xy[:, t_ref] - xy[:, s]) - dn[None], axis=1) / abs(t_ref - s)
        dev = np.where(both, np.fmax(dev, np.nan_to_num(d, nan=np.inf)), dev)
        seen |= both
    seen[n] = False
    if usable is not None:
        seen &= np.asarray(usable, bool)
    for need in (HOMOGRAPHY_MIN, SURFACE_MIN):
        for tol in tols:
            ok = seen & (dev <= tol)
            if ok.sum() >= need:
                return ok
    return seen & (dev <= tols[-1])


def predict_from_neighbours(xy_ref: np.ndarray, ok_ref: np.ndarray, xy_t: np.ndarray, ok_t: np.ndarray,
                            p_ref: np.ndarray, k: int, exclude: int | None = None,
                            allow: np.ndarray | None = None) -> np.ndarray | None:
    """The 3x3 map (``x_t ~ H @ [x_ref, 1]``) of the ``k`` tracks nearest ``p_ref`` that are trusted
    (``ok``) at both images (and ``allow``-ed, bool ``[N]``, where given: :func:`same_surface`); ``xy_*``
    ``[N, 2]``, ``ok_*`` ``[N]``. A homography with ``HOMOGRAPHY_MIN`` or more (RANSAC, 2 px: exact for a
    planar surface, which a wide neighbourhood in perspective is not affine), an affine map with 3 or more,
    their median translation with fewer. None without any neighbour."""
    import cv2

    use = ok_ref & ok_t & np.isfinite(xy_ref).all(1) & np.isfinite(xy_t).all(1)
    if allow is not None:
        use &= allow
    if exclude is not None:
        use[exclude] = False
    idx = np.nonzero(use)[0]
    if len(idx) == 0:
        return None
    dist = np.linalg.norm(xy_ref[idx] - p_ref, axis=1)
    idx = idx[np.argsort(dist, kind="stable")[:k]]
    src, dst = xy_ref[idx].astype(np.float64), xy_t[idx].astype(np.float64)
    if len(idx) >= HOMOGRAPHY_MIN:
        H, inl = cv2.findHomography(src.reshape(-1, 1, 2), dst.reshape(-1, 1, 2), cv2.RANSAC, 2.0,
                                    maxIters=500, confidence=0.99)
        if H is not None and np.isfinite(H).all() and inl is not None and inl.sum() >= HOMOGRAPHY_MIN:
            w = H[2] @ np.array([p_ref[0], p_ref[1], 1.0])
            if w > 1e-6 and np.linalg.det(map_jacobian(H, p_ref)) > 0.25:
                return H
    if len(idx) >= AFFINE_MIN:
        M, _ = cv2.estimateAffine2D(src.reshape(-1, 1, 2), dst.reshape(-1, 1, 2), method=cv2.RANSAC,
                                    ransacReprojThreshold=2.0, maxIters=500, confidence=0.99)
        if M is not None and np.isfinite(M).all():
            return np.vstack([M, [0.0, 0.0, 1.0]])
    H = np.eye(3)
    H[:2, 2] = np.median(dst - src, axis=0)
    return H


def map_point(H: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``p`` ``[2]`` through the 3x3 map ``H``."""
    v = H @ np.array([p[0], p[1], 1.0])
    return v[:2] / v[2]


def map_jacobian(H: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The 2x2 linear part of the 3x3 map ``H`` at ``p`` (how a small pattern around ``p`` is warped)."""
    v = H @ np.array([p[0], p[1], 1.0])
    return (H[:2, :2] * v[2] - np.outer(v[:2], H[2, :2])) / v[2] ** 2


def find(gray: np.ndarray, pats: Patterns, centre: np.ndarray, A0: np.ndarray, radius, settings: "ReacquireSettings"
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search each pattern within ``radius`` of ``centre`` ``[n, 2]`` (shape ``A0`` ``[n, 2, 2]``), refine by
    Lucas-Kanade where the search scores at least ``settings.zncc - SEARCH_SLACK`` with a distinct peak
    (:data:`MIN_DISTINCT`) -> (c ``[n, 2]``, A ``[n, 2, 2]``, zncc ``[n]``): the zncc of a peak that is not
    distinct is NaN (nothing was found: the pattern fits a whole stretch there)."""
    start, score, distinct = search(gray, pats, centre, A0, radius)
    c, A, z = np.array(start), np.array(A0, np.float64).reshape(-1, 2, 2), score.astype(np.float32)
    z[distinct < MIN_DISTINCT] = np.nan
    go = np.nonzero(np.nan_to_num(z, nan=-2.0) >= settings.zncc - SEARCH_SLACK)[0]
    if len(go):
        c[go], A[go], z[go] = lk_from(gray, pats.take(go), start[go], A[go], settings.warp, settings.iterations)
    return c, A, z


def reacquire(frames: GreyFrames, ref: Refined, coarse: np.ndarray, t_q: np.ndarray, settings: ReacquireSettings,
              progress: ProgressFn | None = None, cancel: CancelFn | None = None,
              coarse_visible: np.ndarray | None = None) -> tuple[Refined, np.ndarray]:
    """Predict hidden points from their neighbours and resume those whose pattern matches again.

    ref: :func:`.refine.refine_tracks`'s output (``N`` points, ``T`` images, plate px); coarse float
    ``[N, T, 2]`` plate px (used where no neighbour predicts); t_q int ``[N]``; coarse_visible bool ``[N, T]``
    (optional): the coarse track's own visibility. A hidden point that is not found again is placed at the
    prediction, except where the coarse track called it visible: there the coarse position stays (a deforming
    or turning subject: the pattern is not matched, but the coarse tracker followed it, and the prediction of
    a rigid neighbourhood is the worse guess; on TAP-Vid-DAVIS the predictions there cost delta_avg 0.013).
    Returns (the updated :class:`Refined`, resumed bool ``[N, T]``: where a hidden point was found again)."""
    d = check_shape(ref.xy, "N T 2", "reacquire xy")
    check_shape(np.asarray(coarse), "N T 2", "reacquire coarse", d)
    if coarse_visible is not None:
        coarse_visible = np.asarray(coarse_visible, bool)
        check_shape(coarse_visible, "N T", "reacquire coarse_visible", d)
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
            # hidden points, and (settings.unconfirmed) visible ones whose position no clear match confirms (a
            # coarse track kept where its pattern scores below reacquire_zncc: often one that slid off its point)
            lost = ~vis[:, t]
            if settings.unconfirmed:
                lost |= ~(np.nan_to_num(zncc[:, t], nan=-1.0) >= settings.zncc)
            hidden = np.nonzero(on_side & lost & ~ref.flat)[0]
            if len(hidden):
                check_cancel(cancel, "re-acquisition")
                pred = np.array(coarse[hidden, t], np.float64)
                A0 = np.tile(np.eye(2), (len(hidden), 1, 1))
                # trusted neighbours: visible with a clear match (not a track that slid onto the occluder)
                trust = vis & (np.nan_to_num(zncc, nan=-1.0) >= settings.zncc)
                trust[np.arange(N), t_q] = True
                matched = ref.refined | resumed
                matched[np.arange(N), t_q] = True
                for j, n in enumerate(hidden):
                    tr = int(last[n])
                    allow = same_surface(xy, trust, matched, int(n), tr, usable=trust[:, t])
                    M = predict_from_neighbours(xy[:, tr], trust[:, tr], xy[:, t], trust[:, t], xy[n, tr],
                                                settings.neighbours, exclude=int(n), allow=allow)
                    A0[j] = warp[n, tr]
                    if M is not None:
                        pred[j] = map_point(M, xy[n, tr])
                        A0[j] = map_jacobian(M, xy[n, tr]) @ warp[n, tr]
                ok_pred = np.isfinite(pred).all(1)
                hidden, pred, A0 = hidden[ok_pred], pred[ok_pred], A0[ok_pred]
                gray = frames[t]
                pats = ref.patterns.take(hidden)
                # the longer since the last match, the less exact the prediction: the search widens with the gap
                gap = np.abs(t - last[hidden]).astype(np.float64)
                rad = np.minimum(np.ceil(settings.radius * (1.0 + settings.widen * np.maximum(gap - 1.0, 0.0))),
                                 MAX_WIDEN * settings.radius)
                c, A, z = find(gray, pats, pred, A0, rad, settings)
                # the coarse track too: it may have kept the point where the neighbours mislead
                cc = np.array(coarse[hidden, t], np.float64)
                far = np.isfinite(cc).all(1) & (np.linalg.norm(cc - pred, axis=1) > settings.radius)
                if far.any():
                    c2, A2, z2 = find(gray, pats.take(np.nonzero(far)[0]), cc[far], A0[far], settings.radius,
                                      settings)
                    fi = np.nonzero(far)[0]
                    better = (np.nan_to_num(z2, nan=-2.0) > np.nan_to_num(z[fi], nan=-2.0)) & (z2 >= settings.zncc)
                    c[fi[better]], A[fi[better]], z[fi[better]] = c2[better], A2[better], z2[better]
                    pred[fi[better]] = cc[far][better]
                back = np.isfinite(z) & (z >= settings.zncc) & (np.linalg.norm(c - pred, axis=1) <= 2 * rad)
                back &= in_plate(c, frames.size)  # never resumed off the plate (a match on the part left inside)
                was_vis = vis[hidden, t]
                back &= ~was_vis | (z > np.nan_to_num(zncc[hidden, t], nan=-1.0))
                keep = was_vis & ~back  # a visible point no better match was found for: left as it is
                hidden, c, z, A, back, pred, cc = (hidden[~keep], c[~keep], z[~keep], A[~keep], back[~keep],
                                                   pred[~keep], cc[~keep])
                stay = np.zeros(len(hidden), bool)
                if coarse_visible is not None:  # the coarse tracker says it follows the point: keep its position
                    stay = ~back & coarse_visible[hidden, t] & np.isfinite(cc).all(1)
                xy[hidden, t] = np.where(back[:, None], c, np.where(stay[:, None], xy[hidden, t], pred))
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


__all__ = ["ReacquireSettings", "reacquire", "find", "predict_from_neighbours", "same_surface", "map_point",
           "map_jacobian"]
