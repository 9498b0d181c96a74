"""Render a :class:`~.scene.Scene` to linear images, and compute its exact ground truth.

Renderer (per frame)
--------------------
For each shutter time ``tau`` (``Scene.shutter_times``) the plate is rendered at ``ss x ss`` supersampling:
a raster ``ss`` times finer whose pixel ``X`` has its centre at plate ``x = (X + 0.5) / ss - 0.5`` (the
``ss x ss`` sub-pixel grid of each plate pixel). Every plane is warped there with the exact inverse
homography (``cv2.warpPerspective``, bilinear texture lookup; OpenCV quantises the lookup position to
1/32 texel, i.e. an error of at most 1/64 texel) and its depth along each ray is ``1 / w`` of that
same homography (exact, see :mod:`.scene`); the nearest covering plane wins (z-buffer). The fine raster is
box-averaged to plate pixels, the shutter samples are averaged (motion blur), then the sensor model is applied:
``gain_t * image + N(0, noise_sigma)`` in linear light (``gain_t``: exposure flicker).

Ground truth (per query point and frame)
----------------------------------------
* ``xy``: the projection of the point's 3D position at the shutter centre ``tau = t`` (plate px).
* ``visible``: in front of the camera, on the raster (``-0.5 .. W-0.5``) and nearest along its exact ray:
  no other plane covers the projected position at a smaller depth (exact z-test, no raster).
* ``evaluable``: False where the answer is ambiguous at the ``edge_px`` scale: at any of 5 instants over the
  shutter (start, quarter, centre, three quarters, end) the point itself or any of 16 directions at ``edge_px``
  and ``edge_px / 2`` around it sees something else in front than the point sees at the shutter centre (a
  depth edge nearby, or one sweeping over the point during the exposure: the motion-blurred occluder
  boundary), or the point is within ``edge_px`` of the plate border. Occluded frames away from edges stay evaluable (they count for OA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import Scene

RING_DIRS = 16
QUALITY_BLOCK = 9         # px: the Shi-Tomasi window of :func:`plate_trackability`
QUERY_QUALITY = 0.05      # a query's trackability relative to its frame's strongest (goodFeaturesToTrack level)


def _warp_matrix(scene: Scene, i: int, tau: float, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """(texel-from-fine-pixel 3x3 for warpPerspective, plane-from-fine-pixel 3x3 whose 3rd row gives 1/depth)."""
    p = scene.planes[i]
    Th, Tw = p.texture.shape[:2]
    hinv = np.linalg.inv(scene.homography(i, tau))
    s = 1.0 / ss
    fine_to_plate = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1.0]])
    plane_from_fine = hinv @ fine_to_plate
    texel_from_plane = np.array([[Tw, 0, -0.5], [0, Th, -0.5], [0, 0, 1.0]])
    return texel_from_plane @ plane_from_fine, plane_from_fine


def _roi(scene: Scene, i: int, tau: float, ss: int) -> tuple[int, int, int, int] | None:
    """Fine-raster box ``(x0, y0, x1, y1)`` holding plane ``i`` at ``tau`` (the whole raster when a corner is
    behind the camera), None when it is off the raster."""
    fw, fh = scene.size[0] * ss, scene.size[1] * ss
    c = scene.homography(i, tau) @ np.array([[0, 1, 0, 1], [0, 0, 1, 1], [1, 1, 1, 1]], float)
    if np.any(c[2] <= 1e-9):
        return (0, 0, fw, fh) if np.any(c[2] > 0) else None
    x, y = (c[0] / c[2] + 0.5) * ss - 0.5, (c[1] / c[2] + 0.5) * ss - 0.5  # plate px -> fine px
    x0, x1 = max(0, int(np.floor(x.min())) - 1), min(fw, int(np.ceil(x.max())) + 2)
    y0, y1 = max(0, int(np.floor(y.min())) - 1), min(fh, int(np.ceil(y.max())) + 2)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def render_linear(scene: Scene, tau: float, ss: int = 2) -> np.ndarray:
    """One sharp render at time ``tau``: float32 ``[H, W, 3]`` linear RGB (``ss x ss`` supersampled)."""
    import cv2

    W, H = scene.size
    fw, fh = W * ss, H * ss
    wbuf = np.zeros((fh, fw), np.float32)  # inverse depth of the nearest plane so far (0: nothing)
    img = np.zeros((fh, fw, 3), np.float32)
    for i, p in enumerate(scene.planes):
        box = _roi(scene, i, tau, ss)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        m, pf = _warp_matrix(scene, i, tau, ss)
        shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1.0]])  # ROI pixel -> fine pixel
        m, pf = m @ shift, pf @ shift
        xs = np.arange(x1 - x0, dtype=np.float32)[None, :]
        ys = np.arange(y1 - y0, dtype=np.float32)[:, None]
        w = np.float32(pf[2, 0]) * xs + (np.float32(pf[2, 1]) * ys + np.float32(pf[2, 2]))  # 1 / depth
        warped = cv2.warpPerspective(p.rgba(), m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        wb = wbuf[y0:y1, x0:x1]
        win = warped[..., 3] > 0.5  # covered (the card's edge: bilinear alpha at one half)
        win &= w > wb  # nearer than what is there (w > 0: in front of the camera)
        np.copyto(wb, w, where=win)
        np.copyto(img[y0:y1, x0:x1], warped[..., :3], where=win[..., None])
    if ss == 1:
        return img
    return cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA)  # exact ss x ss box average


AUTO_STEP_PX = 2.0        # auto shutter samples: the most any visible point moves from one sample to the next
AUTO_MAX_SAMPLES = 48
AUTO_GRID_PX = 8          # plate points probed for that motion (every 8th pixel: the occluder is never missed)


def auto_shutter_samples(scene: Scene, t: int, step_px: float = AUTO_STEP_PX,
                         max_samples: int = AUTO_MAX_SAMPLES) -> int:
    """Shutter samples for frame ``t`` so that no visible point moves more than ``step_px`` between two of
    them (at least 3, at most ``max_samples``): a continuous blur, not copies of a fast mover side by side.

    Probes a grid of plate points (every :data:`AUTO_GRID_PX` px): each on its front plane at ``tau = t``,
    followed through that plane's homography to the shutter's start and end."""
    if scene.shutter <= 0:
        return 1
    W, H = scene.size
    gy, gx = np.mgrid[0:H:AUTO_GRID_PX, 0:W:AUTO_GRID_PX].astype(np.float64)
    xy = np.stack([gx.ravel(), gy.ravel()], 1)
    ids, _ = front_plane(scene, xy, float(t))
    ph = np.concatenate([xy, np.ones((len(xy), 1))], axis=1)
    taus = scene.shutter_times(t, 5)
    path = 0.0
    for i in np.unique(ids[ids >= 0]).tolist():
        uv = ph[ids == i] @ np.linalg.inv(scene.homography(i, float(t))).T  # plane coordinates
        pts = []
        for tau in taus:
            v = uv @ scene.homography(i, float(tau)).T
            pts.append(v[:, :2] / v[:, 2:3])
        seg = sum(np.linalg.norm(b - a, axis=1) for a, b in zip(pts[:-1], pts[1:]))
        path = max(path, float(np.nanmax(seg)) if len(seg) else 0.0)
    return int(np.clip(np.ceil(path / float(step_px) - 1e-6) + 1, 3, max_samples))


def render_frame(scene: Scene, t: int, ss: int = 2, shutter_samples: int = 3, sensor: bool = True) -> np.ndarray:
    """float32 ``[H, W, 3]`` linear plate of frame ``t``: supersampled, motion blurred, with flicker and noise.

    ``shutter_samples``: renders averaged over the shutter; 0: :func:`auto_shutter_samples` (the blur of a
    fast mover is then continuous: a few samples show it as side-by-side copies)."""
    if shutter_samples == 0:
        shutter_samples = auto_shutter_samples(scene, t)
    times = scene.shutter_times(t, shutter_samples)
    acc = np.zeros((scene.size[1], scene.size[0], 3), np.float32)
    for tau in times:
        acc += render_linear(scene, float(tau), ss)
    img = acc / len(times)
    if sensor:
        img = img * np.float32(scene.gains()[t])
        if scene.noise_sigma > 0:
            rng = np.random.default_rng([scene.seed, 11, t])
            img = img + rng.normal(0.0, scene.noise_sigma, img.shape).astype(np.float32)
    return img


# ----------------------------------------------------------------------------------------- ground truth


def project(scene: Scene, X: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """World points ``[N, 3]`` -> (plate xy ``[N, 2]``, camera depth ``[N]``) at ``tau``."""
    R, t = scene.pose(tau)
    Xc = X @ R.T + t
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = Xc @ scene.K.T
        xy = uv[:, :2] / uv[:, 2:3]
    return xy, Xc[:, 2]


def front_plane(scene: Scene, xy: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact z-test along the rays through plate points ``xy`` ``[N, 2]`` at ``tau``: (front plane id ``[N]``,
    -1 where no plane covers; its depth ``[N]``, inf there)."""
    xy = np.asarray(xy, np.float64)
    ph = np.concatenate([xy, np.ones((len(xy), 1))], axis=1)
    best = np.full(len(xy), np.inf)
    ids = np.full(len(xy), -1, np.int64)
    for i in range(len(scene.planes)):
        abw = ph @ np.linalg.inv(scene.homography(i, tau)).T
        w = abw[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = abw[:, 0] / w, abw[:, 1] / w
            depth = 1.0 / w
        cover = (w > 0) & (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1) & (depth < best)
        best[cover] = depth[cover]
        ids[cover] = i
    return ids, best


@dataclass
class GroundTruth:
    """Per query point ``n`` and frame ``t``: ``xy`` float64 ``[N, T, 2]`` (plate px, shutter centre),
    ``visible`` / ``evaluable`` bool ``[N, T]``; the point's ``plane`` ``[N]`` and plane coordinates ``ab``
    ``[N, 2]``; ``query_t`` ``[N]`` and ``names`` ``[N]``."""

    xy: np.ndarray
    visible: np.ndarray
    evaluable: np.ndarray
    plane: np.ndarray
    ab: np.ndarray
    query_t: np.ndarray
    names: list[str]

    @property
    def query_xy(self) -> np.ndarray:
        return self.xy[np.arange(len(self.query_t)), self.query_t]


def point_truth(scene: Scene, plane: np.ndarray, ab: np.ndarray, edge_px: float = 2.0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xy ``[N, T, 2]``, visible ``[N, T]``, evaluable ``[N, T]`` of the plane points (``plane`` ``[N]``,
    ``ab`` ``[N, 2]``) for every frame (module docstring)."""
    N, T = len(plane), scene.n_frames
    W, H = scene.size
    xy = np.zeros((N, T, 2))
    vis = np.zeros((N, T), bool)
    ev = np.zeros((N, T), bool)
    ang = 2 * np.pi * np.arange(RING_DIRS) / RING_DIRS
    ring = np.concatenate([np.stack([np.cos(ang), np.sin(ang)], 1) * r for r in (edge_px, edge_px / 2)])
    half = scene.shutter / 2 if scene.shutter > 0 else 0.0
    for t in range(T):
        ok_all = np.ones(N, bool)
        who = None  # what is in front at the point at the shutter centre: its own plane or its occluder
        for tau in (t + half * np.array([0.0, -1.0, -0.5, 0.5, 1.0]) if half else (float(t),)):
            tau = float(tau)
            X = np.zeros((N, 3))
            for i in np.unique(plane):
                sel = plane == i
                X[sel] = scene.planes[i].point(ab[sel], tau)
            p, z = project(scene, X, tau)
            ids, depth = front_plane(scene, p, tau)
            inside = (p[:, 0] >= -0.5) & (p[:, 0] <= W - 0.5) & (p[:, 1] >= -0.5) & (p[:, 1] <= H - 0.5)
            front = (z > 0) & (ids == plane) & inside
            here = np.where(front, plane, ids)
            if who is None:  # the shutter centre comes first
                xy[:, t] = p
                vis[:, t] = front
                who = here
            # the same thing in front of the point and all round it, at every shutter instant: an edge that
            # sweeps over the point during the exposure (motion blur) makes the frame ambiguous
            nb, _ = front_plane(scene, (p[:, None, :] + ring[None]).reshape(-1, 2), tau)
            same = np.all(nb.reshape(N, -1) == who[:, None], axis=1) & (here == who)
            margin = ((p[:, 0] >= -0.5 - edge_px) & (p[:, 0] <= W - 0.5 + edge_px) & (p[:, 1] >= -0.5 - edge_px)
                      & (p[:, 1] <= H - 0.5 + edge_px)) & ~((p[:, 0] >= -0.5 + edge_px)
                                                            & (p[:, 0] <= W - 0.5 - edge_px)
                                                            & (p[:, 1] >= -0.5 + edge_px)
                                                            & (p[:, 1] <= H - 0.5 - edge_px))
            ok_all &= same & ~margin & (z > 0)
        ev[:, t] = ok_all
    return xy, vis, ev


def texture_strength(texture: np.ndarray) -> np.ndarray:
    """float32 ``[Th, Tw]``: the smaller eigenvalue of the structure tensor (cornerness) of a texture."""
    import cv2

    g = np.ascontiguousarray(np.sqrt(np.clip(texture, 0, None)).mean(axis=2), np.float32)
    return cv2.cornerMinEigenVal(g, 5, 3)


def plate_trackability(scene: Scene, t: int) -> np.ndarray:
    """float32 ``[H, W]``: how well a pattern around each plate pixel of frame ``t`` fixes a position, as an
    auto-tracker or a matchmove artist judges it: the Shi-Tomasi score (smaller eigenvalue of the structure
    tensor over ``QUALITY_BLOCK`` px, ``cv2.cornerMinEigenVal``) of the rendered frame (motion blur included,
    no sensor noise), display-encoded grey."""
    import cv2

    img = render_frame(scene, t, ss=1, shutter_samples=3, sensor=False)
    g = np.ascontiguousarray(np.sqrt(np.clip(img, 0, None)).mean(axis=2), np.float32)
    return cv2.cornerMinEigenVal(g, QUALITY_BLOCK, 3)


def sample_queries(scene: Scene, n_points: int, edge_px: float = 2.0, seed: int | None = None,
                   candidates: int = 8, min_quality: float = QUERY_QUALITY) -> GroundTruth:
    """``n_points`` query points on the planes, each visible and evaluable at its (random) query frame; the
    occluder gets about a sixth of them.

    Where a matchmove tracker would be placed: candidates in the better half of their texture's cornerness,
    and (``min_quality`` > 0) whose :func:`plate_trackability` on the rendered query frame is at least
    ``min_quality`` times that frame's strongest (the 99.9th percentile), as ``cv2.goodFeaturesToTrack``'s
    quality level: no point on a flat colour or along a straight edge, where no tracker can fix a position
    (the refinement's featureless rule is tested on such points apart). ``min_quality`` 0: texture rule only."""
    rng = np.random.default_rng([scene.seed if seed is None else seed, 3])
    T = scene.n_frames
    strength = [texture_strength(p.texture) for p in scene.planes]
    quality: dict[int, tuple[np.ndarray, float]] = {}
    n_moving = 0

    def plate_ok(t: int, p: np.ndarray) -> bool:
        if min_quality <= 0:
            return True
        if t not in quality:
            q = plate_trackability(scene, t)
            quality[t] = (q, float(np.percentile(q, 99.9)))
        q, top = quality[t]
        x = int(np.clip(np.round(p[0]), 0, q.shape[1] - 1))
        y = int(np.clip(np.round(p[1]), 0, q.shape[0] - 1))
        return bool(q[y, x] >= min_quality * top)
    moving = [i for i, p in enumerate(scene.planes) if p.moving]
    planes, abs_, qts = [], [], []
    tries = 0
    while len(planes) < n_points and tries < 60:
        tries += 1
        m = max(64, (n_points - len(planes)) * candidates)
        tq = rng.integers(0, T, m)
        # a random plate position at the query frame; its front plane is the point's plane
        xy = np.stack([rng.uniform(0, scene.size[0] - 1, m), rng.uniform(0, scene.size[1] - 1, m)], 1)
        if moving and tries % 2 == 1:  # aim a share of the candidates at the occluder
            for k in range(0, m, 6):
                i = moving[k % len(moving)]
                X = scene.planes[i].point(rng.uniform(0.05, 0.95, (1, 2)), float(tq[k]))
                xy[k] = project(scene, X, float(tq[k]))[0][0]
        pid = np.full(m, -1)
        ab = np.zeros((m, 2))
        for k in range(m):
            ids, _ = front_plane(scene, xy[k:k + 1], float(tq[k]))
            if ids[0] < 0:
                continue
            hinv = np.linalg.inv(scene.homography(int(ids[0]), float(tq[k])))
            v = hinv @ np.array([xy[k, 0], xy[k, 1], 1.0])
            pid[k], ab[k] = ids[0], v[:2] / v[2]
        keep = pid >= 0
        # texture score at the candidate's texel: keep the better half
        score = np.zeros(m)
        for k in np.nonzero(keep)[0]:
            s = strength[pid[k]]
            th, tw = s.shape
            score[k] = s[int(np.clip(ab[k, 1] * th - 0.5, 0, th - 1)), int(np.clip(ab[k, 0] * tw - 0.5, 0, tw - 1))]
        if keep.sum() > 1:
            keep &= score >= np.median(score[keep])
        idx = np.nonzero(keep)[0]
        if not len(idx):
            continue
        xy_all, vis, ev = point_truth(scene, pid[idx], ab[idx], edge_px)
        good = vis[np.arange(len(idx)), tq[idx]] & ev[np.arange(len(idx)), tq[idx]]
        for k in idx[good]:
            on_mover = int(pid[k]) in moving
            if on_mover and min_quality > 0 and n_moving >= max(1, n_points // 6):
                continue  # sharp candidates on the occluder pass more often: keep its share at a sixth
            if len(planes) < n_points and plate_ok(int(tq[k]), xy[k]):
                n_moving += on_mover
                planes.append(int(pid[k]))
                abs_.append(ab[k])
                qts.append(int(tq[k]))
    if not planes:
        raise ValueError("no visible textured point found in the scene")
    plane = np.array(planes)
    ab = np.array(abs_)
    xy, vis, ev = point_truth(scene, plane, ab, edge_px)
    names = [f"p{k:03d}_{scene.planes[i].name or i}" for k, i in enumerate(plane)]
    return GroundTruth(xy, vis, ev, plane, ab, np.array(qts, np.int64), names)
