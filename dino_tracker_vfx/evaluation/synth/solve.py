"""A camera solve as the judge of 2D tracks: known intrinsics, COLMAP bundle adjustment (``pycolmap``, the
``solve`` extra: ``pip install dino-tracker-vfx[solve]``).

:func:`solve_tracks` builds an initial reconstruction from the tracks alone (OpenCV: essential matrix between
two frames with much parallax and many shared tracks, then PnP for every other frame and multi-view linear
triangulation of every point seen, while visible, in two or more registered frames; up to 5 starting pairs
are tried and the one registering the most frames kept), refines cameras and points with COLMAP's
bundle adjustment (intrinsics held fixed) and reports, in our plate-pixel convention:

* ``reproj_mean`` / ``reproj_median`` / ``reproj_p90`` (px): residuals of every observation used;
* ``path_rmse``: RMS distance between solved and true camera centres after the similarity (Umeyama: scale,
  rotation, translation) that best aligns them (GT world units), ``path_rmse_rel`` the same divided by the RMS
  distance of the true centres from their mean, and ``rot_err_deg``: mean angle between solved and true camera
  orientations after the rotation that best aligns the orientations (chordal mean).

COLMAP's pixel convention puts the first pixel's *corner* at (0, 0): keypoints and the principal point are
handed over with ``+ 0.5`` and read back with ``- 0.5`` (docs/evaluation.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError

EXTRA_HINT = "the camera solve needs pycolmap: pip install 'dino-tracker-vfx[solve]' (or pip install pycolmap)"


def require_pycolmap():
    """Import pycolmap or raise a one-line ConfigError naming the extra."""
    try:
        import pycolmap
    except ImportError:
        raise ConfigError(EXTRA_HINT, where="--solve") from None
    return pycolmap


@dataclass
class SolveResult:
    poses: np.ndarray  # [T, 3, 4] world-to-camera of the solve's own frame (NaN: not registered)
    points: np.ndarray  # [N, 3] (NaN: not triangulated)
    registered: np.ndarray  # bool [T]
    stats: dict


def _triangulate(P: list[np.ndarray], x: list[np.ndarray]) -> np.ndarray:
    """Linear (DLT) triangulation of one point from 3x4 projection matrices and pixel observations."""
    A = []
    for Pi, (u, v) in zip(P, x):
        A.append(u * Pi[2] - Pi[0])
        A.append(v * Pi[2] - Pi[1])
    _, _, vt = np.linalg.svd(np.array(A))
    X = vt[-1]
    return X[:3] / X[3]


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity ``(s, R, t)`` minimising ``sum ||dst - (s R src + t)||^2`` (Umeyama 1991); ``[M, 3]`` each."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    var = (a ** 2).sum() / len(src)
    s = float(np.trace(np.diag(D) @ S) / var) if var > 0 else 1.0
    return s, R, mu_d - s * R @ mu_s


def _project(K, pose, X):
    Xc = X @ pose[:, :3].T + pose[:, 3]
    uv = Xc @ K.T
    return uv[:, :2] / uv[:, 2:3], Xc[:, 2]


def _pairs(obs, xy, min_shared: int) -> list[tuple[int, int]]:
    """Candidate initial pairs, best first: among the frame pairs sharing at least ``min_shared`` tracks and
    at least half the most any pair shares, by decreasing median parallax (the pair with the most parallax
    alone may share only a handful of tracks: an unstable start that registers nothing else)."""
    T = obs.shape[1]
    shared = {}
    for a in range(T):
        for b in range(a + 1, T):
            n = int((obs[:, a] & obs[:, b]).sum())
            if n >= min_shared:
                shared[(a, b)] = n
    if not shared:
        raise ValueError(f"no two frames share {min_shared} tracked points")
    floor = max(min_shared, 0.5 * max(shared.values()))
    par = {}
    for (a, b), n in shared.items():
        if n >= floor:
            sh = obs[:, a] & obs[:, b]
            par[(a, b)] = float(np.median(np.linalg.norm(xy[sh, a] - xy[sh, b], axis=1)))
    return sorted(par, key=lambda ab: -par[ab])


def _initial(xy, obs, K, a: int, b: int):
    import cv2

    T = obs.shape[1]
    sh = np.nonzero(obs[:, a] & obs[:, b])[0]
    pa, pb = xy[sh, a].astype(np.float64), xy[sh, b].astype(np.float64)
    E, inl = cv2.findEssentialMat(pa, pb, K, cv2.RANSAC, 0.999, 1.0)
    if E is None:
        return None
    _, R, t, inl2 = cv2.recoverPose(E[:3], pa, pb, K, mask=inl)
    poses = np.full((T, 3, 4), np.nan)
    poses[a] = np.hstack([np.eye(3), np.zeros((3, 1))])
    poses[b] = np.hstack([R, t.reshape(3, 1)])
    return poses


def _register(xy, obs, K, poses):
    """Grow a solve from its initial pair: triangulate, then PnP the frame seeing the most known points, in
    turn. ``obs`` is updated where a frame cannot be registered; returns (poses, X)."""
    import cv2

    N, T = obs.shape
    X = np.full((N, 3), np.nan)

    def triangulate_all():
        reg = ~np.isnan(poses[:, 0, 0])
        for n in range(N):
            fr = np.nonzero(obs[n] & reg)[0]
            if len(fr) >= 2 and np.isnan(X[n, 0]):
                Xn = _triangulate([K @ poses[f] for f in fr], [xy[n, f] for f in fr])
                depths = np.array([(poses[f][:, :3] @ Xn + poses[f][:, 3])[2] for f in fr])
                if np.all(depths > 0):
                    X[n] = Xn

    triangulate_all()
    while True:
        reg = ~np.isnan(poses[:, 0, 0])
        known = ~np.isnan(X[:, 0])
        cand = [(int((obs[:, f] & known).sum()), f) for f in range(T) if not reg[f]]
        cand = [c for c in cand if c[0] >= 6]
        if not cand:
            break
        _, f = max(cand)
        sel = obs[:, f] & known
        ok, rvec, tvec, inl = cv2.solvePnPRansac(X[sel], xy[sel, f], K, None, reprojectionError=2.0,
                                                 flags=cv2.SOLVEPNP_ITERATIVE)
        if not ok or inl is None or len(inl) < 6:
            obs[:, f] = False  # cannot register this frame
            continue
        poses[f] = np.hstack([cv2.Rodrigues(rvec)[0], tvec.reshape(3, 1)])
        triangulate_all()
    return poses, X


def solve_tracks(xy: np.ndarray, valid: np.ndarray, K: np.ndarray, size: tuple[int, int],
                 max_reproj_px: float = 4.0, min_shared: int = 8, tries: int = 5) -> SolveResult:
    """Solve cameras and points from tracks ``xy [N, T, 2]`` (plate px) observed where ``valid [N, T]``, with
    intrinsics ``K`` fixed (module docstring). Up to ``tries`` initial pairs (:func:`_pairs`) are grown and
    the one registering the most frames is kept. Observations whose initial residual exceeds
    ``max_reproj_px`` are dropped before bundle adjustment."""
    pycolmap = require_pycolmap()
    xy = np.asarray(xy, np.float64)
    obs0 = np.asarray(valid, bool) & np.all(np.isfinite(xy), axis=-1)
    N, T = obs0.shape
    best = None
    for a, b in _pairs(obs0, xy, min_shared)[:tries]:
        start = _initial(xy, obs0, K, a, b)
        if start is None:
            continue
        obs_ab = obs0.copy()
        poses_ab, X_ab = _register(xy, obs_ab, K, start)
        n_reg = int((~np.isnan(poses_ab[:, 0, 0])).sum())
        if best is None or n_reg > best[0]:
            best = (n_reg, poses_ab, X_ab, obs_ab, a, b)
        if n_reg >= 0.9 * int((obs0.sum(0) >= 6).sum()):
            break
    if best is None:
        raise ValueError("no essential matrix between the candidate initial frames")
    _, poses, X, obs, a, b = best
    reg = ~np.isnan(poses[:, 0, 0])
    known = ~np.isnan(X[:, 0])
    use = obs & reg[None, :] & known[:, None]
    for f in np.nonzero(reg)[0]:  # drop gross outliers before BA
        n = np.nonzero(use[:, f])[0]
        if len(n):
            p, z = _project(K, poses[f], X[n])
            bad = (np.linalg.norm(p - xy[n, f], axis=1) > max_reproj_px) | (z <= 0)
            use[n[bad], f] = False

    # --- COLMAP bundle adjustment (pixel-corner convention: + 0.5)
    rec = pycolmap.Reconstruction()
    cam = pycolmap.Camera(model="PINHOLE", width=int(size[0]), height=int(size[1]),
                          params=[K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5], camera_id=1)
    rec.add_camera_with_trivial_rig(cam)
    point_ids = {}
    kp_index = {}
    for f in np.nonzero(reg)[0]:
        n = np.nonzero(use[:, f])[0]
        img = pycolmap.Image(name=f"{f:05d}", keypoints=xy[n, f] + 0.5, camera_id=1, image_id=int(f) + 1)
        rec.add_image_with_trivial_frame(img, pycolmap.Rigid3d(poses[f]))
        for k, nn in enumerate(n):
            kp_index[(int(nn), int(f))] = k
    for n in np.nonzero(known)[0]:
        fr = [f for f in np.nonzero(use[n])[0]]
        if len(fr) < 2:
            continue
        tr = pycolmap.Track()
        for f in fr:
            tr.add_element(int(f) + 1, kp_index[(int(n), int(f))])
        point_ids[int(n)] = rec.add_point3D(X[n], tr)
    pycolmap.logging.minloglevel = 2  # warnings and errors only (no per-run BA report)
    opts = pycolmap.BundleAdjustmentOptions()
    opts.print_summary = False
    opts.refine_focal_length = False
    opts.refine_principal_point = False
    opts.refine_extra_params = False
    pycolmap.bundle_adjustment(rec, opts)

    def residuals(P, Xs):
        r = []
        for n in point_ids:
            for f in np.nonzero(use[n])[0]:
                p, _ = _project(K, P[f], Xs[n][None])
                r.append(float(np.linalg.norm(p[0] - xy[n, f])))
        return np.array(r)

    before = residuals(poses, X)
    out_poses = np.full((T, 3, 4), np.nan)
    for f in np.nonzero(reg)[0]:
        out_poses[f] = rec.image(int(f) + 1).cam_from_world().matrix()
    out_X = np.full((N, 3), np.nan)
    for n, pid in point_ids.items():
        out_X[n] = rec.point3D(pid).xyz
    res = residuals(out_poses, out_X)
    ba = "ok"
    if len(res) and not (np.all(np.isfinite(res)) and res.mean() <= before.mean() + 1e-9):
        # Ceres can stop on a failed linear solve with a worse state: keep the initial solve then
        out_poses, out_X, res, ba = np.where(reg[:, None, None], poses, np.nan), X, before, "failed: kept the initial solve"
    stats = {"n_frames_registered": int(reg.sum()), "n_points": len(point_ids), "n_observations": int(len(res)),
             "init_pair": [int(a), int(b)], "bundle_adjustment": ba,
             "reproj_mean": float(res.mean()) if len(res) else float("nan"),
             "reproj_median": float(np.median(res)) if len(res) else float("nan"),
             "reproj_p90": float(np.percentile(res, 90)) if len(res) else float("nan")}
    return SolveResult(out_poses, out_X, reg, stats)


def judge(gt, pred_xy: np.ndarray, pred_visible: np.ndarray) -> dict:
    """Solve the static-scene tracks of a method (``gt.static`` points where the method says visible) with the
    true K and score it against ``gt.poses``: the ``solve_*`` numbers of a scene row (NaN where the solve fails,
    with ``solve_error`` saying why)."""
    import time

    t0 = time.perf_counter()
    keys = ("reproj_mean", "reproj_median", "reproj_p90", "path_rmse", "path_rmse_rel", "rot_err_deg")
    try:
        r = solve_tracks(pred_xy, np.asarray(pred_visible, bool) & gt.static[:, None], gt.K, gt.size)
        out = {**r.stats, **path_error(r.poses, gt.poses)}
        err = None
    except ValueError as e:  # too few shared tracks to start: a failed solve is a result, not a crash
        out, err = {"n_frames_registered": 0}, str(e)
    row = {f"solve_{k}": float(out.get(k, float("nan"))) for k in keys}
    row["solve_frames"] = int(out.get("n_frames_registered", 0))
    row["solve_s"] = round(time.perf_counter() - t0, 3)
    if err:
        row["solve_error"] = err
    return row


def path_error(poses: np.ndarray, gt_poses: np.ndarray) -> dict:
    """Camera-path error of a solve against the truth after the best similarity alignment (module docstring)."""
    reg = ~np.isnan(poses[:, 0, 0])
    if reg.sum() < 3:
        return {"path_rmse": float("nan"), "path_rmse_rel": float("nan"), "rot_err_deg": float("nan")}
    C = np.stack([-p[:, :3].T @ p[:, 3] for p in poses[reg]])
    G = np.stack([-p[:, :3].T @ p[:, 3] for p in gt_poses[reg]])
    s, R, t = umeyama(C, G)
    aligned = (s * (R @ C.T)).T + t
    rmse = float(np.sqrt(np.mean(np.sum((aligned - G) ** 2, axis=1))))
    spread = float(np.sqrt(np.mean(np.sum((G - G.mean(0)) ** 2, axis=1))))
    # orientations: camera-to-world rotations, compared after the one rotation that best aligns them all
    # (the centres alone leave the roll about a straight dolly path free)
    r_est = np.stack([p[:, :3].T for p in poses[reg]])
    r_gt = np.stack([g[:, :3].T for g in gt_poses[reg]])
    U, _, Vt = np.linalg.svd(np.einsum("kij,klj->il", r_gt, r_est))
    Ra = U @ np.diag([1, 1, np.linalg.det(U @ Vt)]) @ Vt
    ang = [np.degrees(np.arccos(np.clip((np.trace(g.T @ Ra @ e) - 1) / 2, -1, 1))) for g, e in zip(r_gt, r_est)]
    return {"path_rmse": rmse, "path_rmse_rel": rmse / spread if spread > 0 else float("nan"),
            "rot_err_deg": float(np.mean(ang))}
