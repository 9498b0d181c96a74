"""Sub-pixel refinement of tracks at plate resolution by pattern matching (``refine.*`` settings).

The network and the flow see a working raster (180 px high in ``cpu-preview``): one of its pixels is 2 to
8 plate pixels. Production trackers finish with pattern matching at full resolution; so does this stage.
Each track is a COARSE track here (the network's or the flow's): it bounds the search; the position is
then found at plate resolution against reference patterns:

* the QUERY pattern: the ``(2 r + 1)^2`` grey patch (``refine.patch_radius`` r) around the query in its
  own image, Gaussian-weighted towards its centre;
* a KEY pattern: the patch of the most recent image where the point matched the QUERY pattern with
  ``ZNCC >= refine.key_zncc``, resampled through that match's warp. Key patterns follow slow appearance
  change (lighting, blur, out-of-plane turn). A key pattern is only ever made from a match against the
  query pattern, never from a match against another key pattern, so no drift accumulates: every position
  is at most one match away from the query's pattern.

Per image and point: an exhaustive ZNCC search (``cv2.matchTemplate``) of the pattern, warped by the
point's current affine shape, within ``refine.search_radius`` plate px of the coarse position (shifted by
the previous image's refinement offset, itself clipped to that radius), then inverse-compositional
Lucas-Kanade on the patch, first in translation, then (``refine.warp: affine``) in a full affine warp,
with gain and bias normalised out at every iteration (so the residual minimised is the ZNCC's). The best
of the query and key patterns is kept. Why not ``cv2.findTransformECC``: it runs one point at a time and
needs whole images; the vectorised IC-LK here samples every point of an image at once (exact float bilinear:
``cv2.remap`` quantises positions to 1/32 px) and its Jacobian comes from the pattern, so an image costs a
few array operations whatever the number of points.

Outcome per (point, image), for images the coarse track calls visible:

* ``zncc`` (float32): the weighted ZNCC of the final match (-1..1; NaN where nothing was matched);
* a refined position where ``zncc >= refine.min_zncc`` and it lies within twice the search radius of
  the coarse track; the coarse position elsewhere;
* hidden where ``zncc < refine.hide_zncc`` (the pattern is not there: an occluder, a slip) or where the
  position lies off the plate (a point leaving the shot still matches the part of its pattern left inside);
* confidence :func:`confidence` of the ZNCC, 0 at ``refine.hide_zncc``, where the match moved or hid the
  point; the coarse track's own where its position is kept and stays visible; 1 at the query's image.

A FEATURELESS pattern (its weighted grey std below ``FLAT_STD``, or its weakest gradient direction too
weak to fix a position: :data:`MIN_EIG`) keeps the coarse track with confidence at most
``FEATURELESS_CONFIDENCE``. A query closer than ``r`` px to the plate edge is refined with the part of
its pattern inside the plate (said once in the log); below a quarter of the pattern it is featureless.

Frames: :class:`GreyFrames` reads the shot image by image at plate size (grey, lightly blurred) and keeps
them while they fit in ``budget_bytes``; beyond that they are read again when needed (a 4K shot is never
held whole). Coordinates: plate px, origin top-left, y down, first pixel's centre at (0, 0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ...checks import check_shape
from ...coords import in_plate
from ...progress import CancelFn, Progress, ProgressFn, check_cancel

log = logging.getLogger(__name__)

WARPS = ("translation", "affine")
FLAT_STD = 2e-3           # grey (0..1) std under which a pattern is flat
MIN_EIG = 0.002           # weakest eigenvalue of the normalised pattern's structure tensor (per weight unit)
MIN_VALID = 0.25          # fraction of a pattern that must lie inside the plate
FEATURELESS_CONFIDENCE = 0.2
ROBUST = True             # Lucas-Kanade down-weights outlying pixels (Cauchy weights)
ROBUST_C = 3.0            # at ROBUST_C robust sigmas a pixel counts half
BLUR_SIGMA = 0.7          # px, grey pre-blur (the same for patterns and search images: no bias)
MAX_GROW = 3              # a fast mover's pattern grows to at most this many times refine.patch_radius
DISTINCT_PX = 4.0         # :func:`search`'s distinctness: its peak against the best score this far from it


@dataclass(frozen=True)
class RefineSettings:
    """The ``refine.*`` settings a refinement run needs (plate px)."""

    patch_radius: int = 10
    warp: str = "affine"
    search_radius: float = 8.0
    min_zncc: float = 0.97
    hide_zncc: float = 0.5
    key_zncc: float = 0.9
    iterations: int = 20
    hide_run: int = 1
    shutter: float = 0.5

    @classmethod
    def from_config(cls, cfg, search_radius: float) -> "RefineSettings":
        """From a :class:`~..config.TrackerConfig`; ``search_radius``: the resolved radius (plate px)."""
        return cls(int(cfg.refine.patch_radius), str(cfg.refine.warp), float(search_radius),
                   float(cfg.refine.min_zncc), float(cfg.refine.hide_zncc), float(cfg.refine.key_zncc),
                   int(cfg.refine.iterations), int(cfg.refine.hide_run), float(cfg.refine.shutter))


def auto_search_radius(plate_per_raster_px: float) -> float:
    """The search radius (plate px) when ``refine.search_radius`` is null: 4 px of the finest raster the
    coarse track came from, at least 6 plate px."""
    return float(max(6.0, 4.0 * float(plate_per_raster_px)))


def confidence(zncc: np.ndarray, min_zncc: float) -> np.ndarray:
    """Confidence in [0, 1] from a match's ZNCC: 0 at or below ``min_zncc`` (the tracker passes
    ``refine.hide_zncc``), 1 at a perfect match, ``((z - min) / (1 - min))^2`` between. NaN -> 0."""
    z = np.nan_to_num(np.asarray(zncc, np.float64), nan=-1.0)
    c = np.clip((z - min_zncc) / max(1e-6, 1.0 - min_zncc), 0.0, 1.0) ** 2
    return c.astype(np.float32)


# ---------------------------------------------------------------------------------------------- frames
class GreyFrames:
    """Grey plate images float32 ``[H, W]`` (0..1, blurred by :data:`BLUR_SIGMA`) by image index.

    ``source``: a :class:`~dino_tracker_vfx.shots.Shot` (read through ``shot.read`` at plate size) or an
    array float32 ``[T, H, W]`` of grey images (tests). Images are kept while their total stays under
    ``budget_bytes`` and read again otherwise."""

    def __init__(self, source, budget_bytes: int = 1 << 30):
        self._src = source
        if hasattr(source, "read"):
            self.T = int(source.n_images)
            self.size = tuple(int(v) for v in source.size)
        else:
            d = check_shape(np.asarray(source), "T H W", "grey frames")
            self.T, self.size = d["T"], (d["W"], d["H"])
        self._keep: dict[int, np.ndarray] = {}
        self._budget = int(budget_bytes)
        self.reads = 0

    def __len__(self) -> int:
        return self.T

    def __getitem__(self, t: int) -> np.ndarray:
        import cv2

        t = int(t)
        g = self._keep.get(t)
        if g is not None:
            return g
        if hasattr(self._src, "read"):
            rgb = np.ascontiguousarray(self._src.read(t), np.float32)
            g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        else:
            g = np.asarray(self._src[t], np.float32)
        g = cv2.GaussianBlur(g, (0, 0), BLUR_SIGMA)
        self.reads += 1
        if (len(self._keep) + 1) * g.nbytes <= self._budget:
            self._keep[t] = g
        return g


# ---------------------------------------------------------------------------------------------- patches
def _grid(r: int) -> tuple[np.ndarray, np.ndarray]:
    o = np.arange(-r, r + 1, dtype=np.float32)
    uy, ux = np.meshgrid(o, o, indexing="ij")
    return ux.ravel(), uy.ravel()


def _window(r: int) -> np.ndarray:
    ux, uy = _grid(r)
    s = max(1.0, 0.75 * r)
    return np.exp(-(ux ** 2 + uy ** 2) / (2 * s * s)).astype(np.float32)


def _warp_coords(c: np.ndarray, A: np.ndarray, ux: np.ndarray, uy: np.ndarray):
    x = c[:, 0:1] + A[:, 0, 0:1] * ux + A[:, 0, 1:2] * uy
    y = c[:, 1:2] + A[:, 1, 0:1] * ux + A[:, 1, 1:2] * uy
    return x.astype(np.float32), y.astype(np.float32)


def _sample(gray: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of ``gray`` at ``(x, y)`` ``[n, P]`` -> (values ``[n, P]``, inside the plate).

    Exact float bilinear in numpy (border replicated): ``cv2.remap`` quantises positions to 1/32 px,
    which is the whole error budget of a sub-pixel tracker."""
    H, W = gray.shape
    xc = np.clip(x, 0.0, W - 1.0)
    yc = np.clip(y, 0.0, H - 1.0)
    x0 = np.minimum(np.floor(xc).astype(np.int64), W - 2) if W > 1 else np.zeros(x.shape, np.int64)
    y0 = np.minimum(np.floor(yc).astype(np.int64), H - 2) if H > 1 else np.zeros(y.shape, np.int64)
    fx = (xc - x0).astype(np.float32)
    fy = (yc - y0).astype(np.float32)
    flat = gray.reshape(-1)
    i = y0 * W + x0
    dx = 1 if W > 1 else 0
    dy = W if H > 1 else 0
    top = flat[i] * (1 - fx) + flat[i + dx] * fx
    bot = flat[i + dy] * (1 - fx) + flat[i + dy + dx] * fx
    out = (top * (1 - fy) + bot * fy).astype(np.float32)
    inside = (x >= -0.5) & (x <= W - 0.5) & (y >= -0.5) & (y <= H - 0.5)
    return out, inside


def _normalise(v: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted zero-mean unit-std rows of ``v`` -> (normalised, std)."""
    ws = np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    m = (w * v).sum(axis=1, keepdims=True) / ws
    d = v - m
    s = np.sqrt((w * d * d).sum(axis=1, keepdims=True) / ws)
    return d / np.maximum(s, 1e-12), s[:, 0]


def _zncc(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted ZNCC of rows ``a`` and ``b`` (both normalised under ``w`` here) -> ``[n]``; -1 where either
    is flat or nothing is weighted."""
    an, sa = _normalise(a, w)
    bn, sb = _normalise(b, w)
    ws = w.sum(axis=1)
    z = (w * an * bn).sum(axis=1) / np.maximum(ws, 1e-12)
    return np.where((sa > FLAT_STD * 0.1) & (sb > FLAT_STD * 0.1) & (ws > 0), z, -1.0).astype(np.float32)


@dataclass
class Patterns:
    """Reference patterns of ``n`` points in pattern coordinates ``u`` (``[-r, r]^2``, P = (2r+1)^2 samples).

    raw: grey ``[n, P]``; val: weighted-normalised ``[n, P]``; gx, gy: its gradients ``[n, P]`` (same
    normalisation); w: Gaussian window x inside-the-plate ``[n, P]``; flat: bool ``[n]`` (featureless:
    nothing to refine); partial: bool ``[n]`` (part of the pattern lies outside the plate)."""

    r: int
    raw: np.ndarray
    val: np.ndarray
    gx: np.ndarray
    gy: np.ndarray
    w: np.ndarray
    flat: np.ndarray
    partial: np.ndarray

    def take(self, idx) -> "Patterns":
        return Patterns(self.r, self.raw[idx], self.val[idx], self.gx[idx], self.gy[idx], self.w[idx],
                        self.flat[idx], self.partial[idx])

    def put(self, idx, other: "Patterns") -> None:
        for k in ("raw", "val", "gx", "gy", "w", "flat", "partial"):
            getattr(self, k)[idx] = getattr(other, k)

    def image(self, i: int) -> np.ndarray:
        """Point ``i``'s raw pattern as a ``[2r+1, 2r+1]`` image (pattern axes)."""
        n = 2 * self.r + 1
        return self.raw[i].reshape(n, n)


def make_patterns(gray: np.ndarray, c: np.ndarray, A: np.ndarray, r: int, min_eig: float = MIN_EIG) -> Patterns:
    """Patterns of ``gray`` sampled through the warps ``(c [n, 2], A [n, 2, 2])`` (``x = c + A u``).

    ``min_eig``: the featureless threshold (:data:`MIN_EIG`). The eigenvalue is one of the NORMALISED
    pattern's (gradient over grey std, squared): the same structure, relatively as sharp, spread over a
    pattern ``k`` times wider has gradients ``k`` times shallower, so a grown pattern (:func:`pattern_radii`)
    passes ``MIN_EIG * (r / r_grown)^2``."""
    n = len(c)
    ux, uy = _grid(r + 1)
    x, y = _warp_coords(c, A, ux, uy)
    v, inside = _sample(gray, x, y)
    m = 2 * r + 3
    v = v.reshape(n, m, m)
    ins = inside.reshape(n, m, m)
    gx = 0.5 * (v[:, 1:-1, 2:] - v[:, 1:-1, :-2])
    gy = 0.5 * (v[:, 2:, 1:-1] - v[:, :-2, 1:-1])
    core = v[:, 1:-1, 1:-1].reshape(n, -1)
    ok = (ins[:, 1:-1, 1:-1] & ins[:, 1:-1, 2:] & ins[:, 1:-1, :-2] & ins[:, 2:, 1:-1] & ins[:, :-2, 1:-1])
    ok = ok.reshape(n, -1)
    w = _window(r)[None] * ok
    val, s = _normalise(core, w)
    sden = np.maximum(s, 1e-12)[:, None]
    gx = gx.reshape(n, -1) / sden
    gy = gy.reshape(n, -1) / sden
    ws = np.maximum(w.sum(axis=1), 1e-12)
    sxx = (w * gx * gx).sum(1) / ws
    syy = (w * gy * gy).sum(1) / ws
    sxy = (w * gx * gy).sum(1) / ws
    eig_min = 0.5 * (sxx + syy) - np.sqrt(0.25 * (sxx - syy) ** 2 + sxy ** 2)
    valid_frac = ok.mean(axis=1)
    flat = (s < FLAT_STD) | (eig_min < min_eig) | (valid_frac < MIN_VALID)
    return Patterns(r, core.astype(np.float32), val.astype(np.float32), gx.astype(np.float32),
                    gy.astype(np.float32), w.astype(np.float32), flat, valid_frac < 1.0)


# ---------------------------------------------------------------------------------------------- matching
def lucas_kanade(gray: np.ndarray, pat: Patterns, c0: np.ndarray, A0: np.ndarray, affine: bool,
                 iterations: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-compositional LK with gain and bias normalised out, all points at once.

    gray: float32 ``[H, W]``; pat: ``n`` patterns; c0 ``[n, 2]`` plate px, A0 ``[n, 2, 2]`` initial warps
    (``x = c + A u``). ``affine``: 6 parameters, else translation only (A kept). Returns (c, A, zncc)."""
    n = len(c0)
    c = np.array(c0, np.float64).reshape(n, 2)
    A = np.array(A0, np.float64).reshape(n, 2, 2)
    if n == 0:
        return c, A, np.zeros(0, np.float32)
    ux, uy = _grid(pat.r)
    if affine:
        J = np.stack([pat.gx * ux, pat.gx * uy, pat.gy * ux, pat.gy * uy, pat.gx, pat.gy], axis=-1)
    else:
        J = np.stack([pat.gx, pat.gy], axis=-1)
    k = J.shape[-1]
    active = np.ones(n, bool)
    for _ in range(int(iterations)):
        ia = np.nonzero(active)[0]
        if len(ia) == 0:
            break
        x, y = _warp_coords(c[ia], A[ia], ux, uy)
        v, inside = _sample(gray, x, y)
        w = pat.w[ia] * inside
        vn, _ = _normalise(v, w)
        tn, _ = _normalise(pat.raw[ia], w)  # the pattern under the same weights (parts may leave the plate)
        e = vn - tn
        if ROBUST:  # pixels that disagree much more than the rest (an occluder's edge, another surface)
            sig = 1.4826 * np.median(np.abs(e), axis=1, keepdims=True) + 0.05
            w = w / (1.0 + (e / (ROBUST_C * sig)) ** 2)
        Ja = J[ia]
        JwT = (Ja * w[:, :, None]).transpose(0, 2, 1)  # batched BLAS products (einsum did not use BLAS: 3x slower)
        H = JwT @ Ja + 1e-6 * np.eye(k)
        b = (JwT @ e[:, :, None])[:, :, 0]
        try:
            dp = np.linalg.solve(H, b[..., None])[..., 0]
        except np.linalg.LinAlgError:  # pragma: no cover - the damping keeps H invertible
            break
        if affine:
            M = np.eye(2)[None] + dp[:, :4].reshape(-1, 2, 2)
            det = np.linalg.det(M)
            good = np.abs(det) > 1e-3
            Minv = np.where(good[:, None, None], np.linalg.inv(np.where(good[:, None, None], M, np.eye(2))),
                            np.eye(2))
            A_new = A[ia] @ Minv
            step = -np.einsum("nij,nj->ni", A_new, dp[:, 4:])
            A[ia] = A_new
        else:
            step = -np.einsum("nij,nj->ni", A[ia], dp)
        c[ia] += step
        moved = np.linalg.norm(step, axis=1)
        if affine:
            moved = np.maximum(moved, pat.r * np.abs(dp[:, :4]).max(axis=1))
        active[ia] = moved > 1e-3
    x, y = _warp_coords(c, A, ux, uy)
    v, inside = _sample(gray, x, y)
    z = _zncc(pat.raw, v, pat.w * inside)
    return c, A, z


def search(gray: np.ndarray, pat: Patterns, centre: np.ndarray, A: np.ndarray, radius
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exhaustive ZNCC search of each pattern (warped by ``A``) within ``radius`` px (a number, or one per
    point ``[n]``) of ``centre`` ``[n, 2]`` -> (best position ``[n, 2]`` with parabolic sub-pixel, its score
    ``[n]``, -1 where nothing fits; its DISTINCTNESS ``[n]``: the score minus the best score at least
    :data:`DISTINCT_PX` px from it in the searched window, 0 where nothing fits, 1 where the window holds
    nothing that far). A pattern on a straight edge scores about as well a few pixels along the edge:
    distinctness near 0 says its position is not fixed there."""
    import cv2

    H, W = gray.shape
    n = len(centre)
    out = np.array(centre, np.float64).reshape(n, 2)
    score = np.full(n, -1.0, np.float32)
    distinct = np.zeros(n, np.float32)
    r = pat.r
    radii = np.broadcast_to(np.asarray(radius, np.float64), (n,))
    for i in range(n):
        s = int(np.ceil(radii[i]))
        R = r + s
        cx, cy = out[i]
        if not (np.isfinite(cx) and np.isfinite(cy)):
            continue
        x0, y0 = int(round(cx)), int(round(cy))
        if x0 + R < 0 or y0 + R < 0 or x0 - R >= W or y0 - R >= H:
            continue
        tmpl = pat.image(i)
        if np.abs(A[i] - np.eye(2)).max() > 0.02:  # the pattern as it appears in the image
            M = np.hstack([A[i], (np.array([r, r]) - A[i] @ np.array([r, r]))[:, None]]).astype(np.float32)
            tmpl = cv2.warpAffine(tmpl, M, tmpl.shape[::-1], flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        xa, xb, ya, yb = x0 - R, x0 + R + 1, y0 - R, y0 + R + 1
        crop = gray[max(ya, 0):min(yb, H), max(xa, 0):min(xb, W)]
        crop = cv2.copyMakeBorder(crop, max(0, -ya), max(0, yb - H), max(0, -xa), max(0, xb - W),
                                  cv2.BORDER_REPLICATE)
        res = cv2.matchTemplate(crop, np.ascontiguousarray(tmpl, np.float32), cv2.TM_CCOEFF_NORMED)
        res = np.nan_to_num(res, nan=-1.0)
        iy, ix = np.unravel_index(int(np.argmax(res)), res.shape)
        dx = _parabola(res[iy, ix - 1], res[iy, ix], res[iy, ix + 1]) if 0 < ix < res.shape[1] - 1 else 0.0
        dy = _parabola(res[iy - 1, ix], res[iy, ix], res[iy + 1, ix]) if 0 < iy < res.shape[0] - 1 else 0.0
        out[i] = (x0 - s + ix + dx, y0 - s + iy + dy)
        score[i] = res[iy, ix]
        gy, gx = np.ogrid[:res.shape[0], :res.shape[1]]
        away = (gx - ix) ** 2 + (gy - iy) ** 2 >= DISTINCT_PX ** 2
        distinct[i] = res[iy, ix] - res[away].max() if away.any() else 1.0
    return out, score, distinct


def _parabola(a: float, b: float, c: float) -> float:
    den = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den < -1e-9 else 0.0


def match(gray: np.ndarray, pat: Patterns, centre: np.ndarray, A: np.ndarray, radius, warp: str,
          iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search, LK in translation (the pattern keeps the shape ``A``), then LK in a full affine warp where
    asked -> (c ``[n, 2]``, A ``[n, 2, 2]``, zncc ``[n]``).

    The ZNCC returned is the TRANSLATION stage's: it is the verification score (visibility, confidence,
    re-acquisition). Six free parameters on a small window can fit a fair match to the wrong texture (0.86 on
    a flipped picture in tests/test_refine.py, 0.64 at most with the shape held), so they only move the
    position once the pattern is known to be there; the affine result is kept where its own ZNCC is at least
    the translation's, its shape stays sane and it moves at most a pixel further, or r times the largest change
    of the warp where that is more (:func:`lk_from`)."""
    start, _, _ = search(gray, pat, centre, A, radius)
    return lk_from(gray, pat, start, A, warp, iterations)


def lk_from(gray: np.ndarray, pat: Patterns, start: np.ndarray, A: np.ndarray, warp: str, iterations: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`match` after its search (``start`` ``[n, 2]``): LK in translation, then the affine stage where
    asked and sane -> (c, A, zncc) as :func:`match`."""
    c, A1, z = lucas_kanade(gray, pat, start, A, affine=False, iterations=iterations)
    if warp == "affine" and len(c):
        c2, A2, z2 = lucas_kanade(gray, pat, c, A1, affine=True, iterations=iterations)
        dets = np.linalg.det(A2)
        # how far the position may move: a pixel, or more where the shape changed (a pattern seen 26 % larger
        # than its reference is matched 1.6 px off in translation alone: the change at the pattern's rim)
        reach = np.maximum(1.0, pat.r * np.nan_to_num(np.abs(A2 - A1).max(axis=(1, 2)), nan=0.0))
        sane = np.isfinite(c2).all(1) & (np.linalg.norm(c2 - c, axis=1) <= reach)
        sane &= (dets > 0.25) & (dets < 4.0) & (z2 >= z)
        c = np.where(sane[:, None], c2, c)
        A1 = np.where(sane[:, None, None], A2, A1)
    return c, A1, z


def long_runs(mask: np.ndarray, k: int) -> np.ndarray:
    """bool ``[N, T]``: the entries of ``mask`` ``[N, T]`` inside a run of at least ``k`` True along T."""
    mask = np.asarray(mask, bool)
    if k <= 1:
        return mask.copy()
    out = np.zeros_like(mask)
    for n in np.nonzero(mask.any(axis=1))[0]:
        row = np.concatenate([[False], mask[n], [False]])
        edges = np.flatnonzero(np.diff(row.astype(np.int8)))
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a >= k:
                out[n, a:b] = True
    return out


def query_patterns(frames: GreyFrames, t_q: np.ndarray, xy_q: np.ndarray, r: int, min_eig: float = MIN_EIG
                   ) -> Patterns:
    """Patterns of radius ``r`` at the queries (``t_q`` ``[n]``, ``xy_q`` ``[n, 2]`` plate px), image by image
    (``min_eig``: as :func:`make_patterns`)."""
    n = len(t_q)
    pat = Patterns(r, *(np.zeros((n, (2 * r + 1) ** 2), np.float32) for _ in range(5)), np.zeros(n, bool),
                   np.zeros(n, bool))
    for k in np.unique(t_q).tolist():
        idx = np.nonzero(t_q == k)[0]
        pat.put(idx, make_patterns(frames[k], xy_q[idx], np.tile(np.eye(2), (len(idx), 1, 1)), r, min_eig))
    return pat


def pattern_radii(coarse: np.ndarray, t_q: np.ndarray, r: int, shutter: float) -> np.ndarray:
    """int ``[N]``: each point's pattern radius. A point moving fast at its query image is smeared over
    ``L = shutter * speed`` plate px (speed from the coarse track ``[N, T, 2]`` around ``t_q``, px per image):
    where ``L / 2`` exceeds ``r / 2`` the pattern grows by the excess (rounded up to even), at most to
    ``MAX_GROW * r``. Why: inside a smear much longer than the pattern nothing fixes a position along the
    motion, and the blur changes with the speed from image to image; a pattern reaching past the smear
    sees the structure that does (a card crossing the view at 50-100 px per image: the share of its
    points within 0.5 px went from 0.28-0.77 to 0.47-0.83 in tests on synthetic plates). ``shutter`` 0: ``r``
    everywhere."""
    N, T = coarse.shape[:2]
    radii = np.full(N, int(r), np.int64)
    if shutter <= 0 or T < 2:
        return radii
    a = np.clip(t_q - 1, 0, T - 1)
    b = np.clip(t_q + 1, 0, T - 1)
    rows = np.arange(N)
    speed = np.linalg.norm(coarse[rows, b] - coarse[rows, a], axis=1) / np.maximum(b - a, 1)
    grow = np.nan_to_num(0.5 * shutter * speed - 0.5 * r, nan=0.0)
    grow = 2 * np.ceil(np.maximum(grow, 0.0) / 2)
    return np.minimum(r + grow.astype(np.int64), MAX_GROW * int(r))


@dataclass
class Refined:
    """Output of :func:`refine_tracks` (N points, T images, plate px).

    xy float64 ``[N, T, 2]``; visible bool ``[N, T]``; confidence float32 ``[N, T]``; zncc float32
    ``[N, T]`` (NaN where nothing was matched); refined bool ``[N, T]`` (the position came from a match);
    warp float64 ``[N, T, 2, 2]`` (the pattern's affine shape where matched, else the last one);
    patterns: the query :class:`Patterns` (for re-acquisition); flat bool ``[N]``."""

    xy: np.ndarray
    visible: np.ndarray
    confidence: np.ndarray
    zncc: np.ndarray
    refined: np.ndarray
    warp: np.ndarray
    patterns: Patterns
    flat: np.ndarray


def refine_tracks(frames: GreyFrames, xy: np.ndarray, visible: np.ndarray, confidence_in: np.ndarray,
                  t_q: np.ndarray, xy_q: np.ndarray, settings: RefineSettings,
                  progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Refined:
    """Refine coarse tracks at plate resolution (module docstring).

    frames: :class:`GreyFrames` of T images; xy float ``[N, T, 2]`` PLATE px (coarse); visible bool ``[N, T]``;
    confidence_in float ``[N, T]`` (kept for featureless patterns, capped); t_q int ``[N]``; xy_q float
    ``[N, 2]`` plate px. The query's own image keeps the query exactly (visible, confidence 1)."""
    d = check_shape(np.asarray(xy), "N T 2", "refine xy")
    check_shape(np.asarray(visible), "N T", "refine visible", d)
    check_shape(np.asarray(confidence_in), "N T", "refine confidence", d)
    check_shape(np.asarray(xy_q), "N 2", "refine xy_q", d)
    t_q = np.asarray(t_q, np.int64).reshape(-1)
    check_shape(t_q, "N", "refine t_q", d)
    N, T = d["N"], d["T"]
    if len(frames) != T:
        raise ValueError(f"refine_tracks: {len(frames)} frames, tracks have T={T}")
    if settings.warp not in WARPS:
        raise ValueError(f"refine_tracks: warp {settings.warp!r} not in {WARPS}")
    coarse = np.array(xy, np.float64)
    out = coarse.copy()
    vis = np.array(visible, bool)
    conf = np.array(confidence_in, np.float32)
    zncc = np.full((N, T), np.nan, np.float32)
    refined = np.zeros((N, T), bool)
    lowz = np.zeros((N, T), bool)
    warp = np.tile(np.eye(2), (N, T, 1, 1))
    rows = np.arange(N)
    r = int(settings.patch_radius)
    xy_q = np.asarray(xy_q, np.float64)
    qpat = query_patterns(frames, t_q, xy_q, r)  # the base radius: every point (re-acquisition matches these)
    radii = pattern_radii(coarse, t_q, r, settings.shutter)
    groups = {}  # radius -> (members [n] global ids, their query patterns, their featureless threshold)
    for rg in np.unique(radii).tolist():
        members = np.nonzero(radii == rg)[0]
        eig = MIN_EIG * (r / rg) ** 2  # a grown pattern's (make_patterns)
        groups[rg] = (members, qpat.take(members) if rg == r else query_patterns(
            frames, t_q[members], xy_q[members], rg, min_eig=eig), eig)
    loc = np.zeros(N, np.int64)  # a point's row in its group's patterns
    flat = np.zeros(N, bool)
    partial = np.zeros(N, bool)
    for members, gp, _ in groups.values():
        loc[members] = np.arange(len(members))
        flat[members], partial[members] = gp.flat, gp.partial
    if partial.any():
        log.warning("refine: %d quer%s lie within %d px of the plate edge: refined with the part of the pattern "
                    "inside the plate", int(partial.sum()), "y" if partial.sum() == 1 else "ies",
                    int(radii[partial].max()))
    if (radii > r).any():
        log.info("refine: %d fast-moving point(s) matched with patterns larger than their motion blur (radius up "
                 "to %d px)", int((radii > r).sum()), int(radii.max()))
    total, done = 2 * T, 0
    for direction in (1, -1):
        A_cur = np.tile(np.eye(2), (N, 1, 1))
        offset = np.zeros((N, 2))
        keys = {rg: gp.take(np.arange(len(members))) for rg, (members, gp, _) in groups.items()}  # key patterns
        has_key = np.zeros(N, bool)
        for t in (range(T) if direction == 1 else range(T - 1, -1, -1)):
            done += 1
            if progress is not None:
                progress(Progress("plate_refine", done, total, message="pattern matching"))
            on_side = (t > t_q) if direction == 1 else (t < t_q)
            todo = on_side & vis[:, t] & ~flat & np.isfinite(coarse[:, t]).all(1)
            if not todo.any():
                continue
            check_cancel(cancel, "plate refinement")
            gray = frames[t]
            rad = settings.search_radius
            for rg, (members, gp, eig) in groups.items():
                idx = members[todo[members]]
                if len(idx) == 0:
                    continue
                li, kpat = loc[idx], keys[rg]
                centre = coarse[idx, t] + np.clip(offset[idx], -rad, rad)
                cq, Aq, zq = match(gray, gp.take(li), centre, A_cur[idx], rad, settings.warp, settings.iterations)
                c, A, z = cq.copy(), Aq.copy(), zq.copy()
                kk = np.nonzero(has_key[idx])[0]
                if len(kk):
                    ck, Ak, zk = match(gray, kpat.take(li[kk]), centre[kk], A_cur[idx[kk]], rad, settings.warp,
                                       settings.iterations)
                    better = zk > zq[kk]
                    c[kk[better]], A[kk[better]], z[kk[better]] = ck[better], Ak[better], zk[better]
                near = np.linalg.norm(c - coarse[idx, t], axis=1) <= 2 * rad
                ok = np.isfinite(z) & (z >= settings.min_zncc) & near
                zncc[idx, t] = z
                good = idx[ok]
                out[good, t] = c[ok]
                refined[good, t] = True
                warp[good, t] = A[ok]
                A_cur[good] = A[ok]
                offset[good] = c[ok] - coarse[good, t]
                warp[idx[~ok], t] = A_cur[idx[~ok]]
                # the pattern is not there, or it is found off the plate (matched on the part left inside): hidden
                low = ~(z >= settings.hide_zncc)
                gone = low | ~in_plate(out[idx, t], frames.size)
                vis[idx[gone & ~low], t] = False  # off the plate: hidden at once
                lowz[idx[low], t] = True  # pattern not there: hidden below if it stays away (hide_run images)
                # confidence from the pattern residual (0 at hide_zncc) where the match moved the point or hid it
                # (0 off the plate); where the coarse position is kept (and stays visible), the coarse track's own
                cz = np.where(gone & (z >= settings.hide_zncc), 0.0, confidence(z, settings.hide_zncc))
                conf[idx, t] = np.where(ok | gone, cz, conf[idx, t])
                # key patterns: from a match against the QUERY pattern only (no drift)
                key = ok & (zq >= settings.key_zncc) & near
                if key.any():
                    kpat.put(li[key], make_patterns(gray, cq[key], Aq[key], rg, eig))
                    has_key[idx[key]] = ~kpat.flat[li[key]]
    hide = long_runs(lowz, settings.hide_run)
    vis[hide] = False
    brief = lowz & ~hide  # a frame or two without the pattern (blur, a turn, a deformation): kept, doubtful
    conf[brief] = np.minimum(np.asarray(confidence_in, np.float32)[brief], FEATURELESS_CONFIDENCE)
    conf[flat] = np.minimum(conf[flat], FEATURELESS_CONFIDENCE)
    out[rows, t_q] = np.asarray(xy_q, np.float64)
    vis[rows, t_q] = True
    conf[rows, t_q] = 1.0
    zncc[rows, t_q] = 1.0
    return Refined(out, vis, conf, zncc, refined, warp, qpat, flat)


__all__ = ["RefineSettings", "GreyFrames", "Patterns", "Refined", "make_patterns", "lucas_kanade", "search",
           "match", "lk_from", "refine_tracks", "confidence", "auto_search_radius", "WARPS"]
