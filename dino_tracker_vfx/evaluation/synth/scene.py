"""Synthetic plate scenes: a pinhole camera moving through textured planar cards, made from a seed.

Geometry and conventions (all exact; the renderer and the ground truth share these functions)
---------------------------------------------------------------------------------------------
* World and camera axes: x right, y down, z forward (OpenCV). A pose is world-to-camera ``[R | t]``:
  ``X_cam = R @ X_world + t``; the camera centre is ``C = -R.T @ t``.
* ``K = [[f, 0, cx], [0, f, cy], [0, 0, 1]]`` maps straight to **plate px of our convention** (origin
  top-left, y down, first pixel *centre* at (0, 0)): ``x = f X / Z + cx``. No 0.5 enters the projection;
  the image centre is ``cx = (W - 1) / 2``, ``cy = (H - 1) / 2``. (COLMAP's pixel-corner convention
  would be ``cx + 0.5``; OpenCV's ``projectPoints`` uses ours.)
* A plane (card) is ``P(a, b) = O + a U + b V`` for ``a, b`` in ``[0, 1]``; a moving card adds its
  offset ``o(tau)``. Its texture of ``Tw x Th`` texels covers the unit square with texel *centres* at
  ``a = (i + 0.5) / Tw`` (texel px ``= a * Tw - 0.5``, the same centre convention).
* Plane -> image homography ``H(tau) = K [R U | R V | R (O + o(tau)) + t]``: ``H @ (a, b, 1) = lambda (x, y, 1)``
  with ``lambda`` the camera depth, so ``inv(H) @ (x, y, 1) = (a, b, 1) / depth``: the depth of every
  plane along any ray is ``1 / w``, exact, with no rasterisation.
* Time ``tau`` is in frames (0-based image index, fractional inside the shutter). Frame ``t`` integrates
  ``tau`` in ``[t - s/2, t + s/2]`` (``s`` = shutter as a fraction of the frame interval, 0.5 = 180 deg).
  The ground-truth position of a blurred frame is the projection at the shutter centre ``tau = t``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import InputError


def _rot(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation: yaw about y, then pitch about x, then roll about z (radians)."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


@dataclass
class CameraPath:
    """Camera motion as a continuous function of time (frames): dolly + pan + handheld shake.

    Centre ``C(tau) = velocity * tau + sum_k shake_t[k] * sin(2 pi freq[k] tau + phase[k])`` (world units);
    angles ``(yaw, pitch, roll)(tau) = pan_rate * tau + sum_k shake_r[k] * sin(...)`` (radians).
    ``shake_*``: ``[k, 3]`` amplitudes; ``shake_freq`` ``[k]`` cycles per frame; ``shake_phase`` ``[k, 6]``.
    """

    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    pan_rate: np.ndarray = field(default_factory=lambda: np.zeros(3))
    shake_t: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    shake_r: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    shake_freq: np.ndarray = field(default_factory=lambda: np.zeros(0))
    shake_phase: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))

    def pose(self, tau: float) -> tuple[np.ndarray, np.ndarray]:
        """World-to-camera ``(R [3, 3], t [3])`` at time ``tau``."""
        s = np.sin(2 * np.pi * self.shake_freq[:, None] * tau + self.shake_phase)  # [k, 6]
        c = np.asarray(self.velocity, float) * tau + np.sum(self.shake_t * s[:, :3], axis=0)
        ang = np.asarray(self.pan_rate, float) * tau + np.sum(self.shake_r * s[:, 3:], axis=0)
        r_cw = _rot(*ang)
        R = r_cw.T
        return R, -R @ c


@dataclass
class Plane:
    """A textured card ``O + a U + b V`` (``a, b`` in 0..1), optionally moving by ``velocity * tau``.

    texture: float32 ``[Th, Tw, 3]`` scene-linear RGB.
    """

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    texture: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    name: str = ""

    def offset(self, tau: float) -> np.ndarray:
        return np.asarray(self.velocity, float) * tau

    def point(self, ab: np.ndarray, tau: float) -> np.ndarray:
        """World points ``[N, 3]`` of plane coordinates ``ab`` ``[N, 2]`` at time ``tau``."""
        ab = np.asarray(ab, float)
        return self.origin + self.offset(tau) + ab[:, :1] * self.u + ab[:, 1:2] * self.v

    @property
    def moving(self) -> bool:
        return bool(np.any(np.asarray(self.velocity) != 0))

    def rgba(self) -> np.ndarray:
        """float32 ``[Th, Tw, 4]``: the texture with an alpha of 1 (the warp's alpha is the card's coverage)."""
        if getattr(self, "_rgba", None) is None:
            self._rgba = np.dstack([self.texture, np.ones(self.texture.shape[:2], np.float32)]).astype(np.float32)
        return self._rgba


@dataclass
class Scene:
    """Everything needed to render a plate and its ground truth.

    size ``(W, H)``; K ``[3, 3]`` (plate px, our convention); ``shutter`` fraction of a frame interval
    (0 = no motion blur); ``noise_sigma``: std of additive Gaussian sensor noise in linear units;
    ``flicker``: per-frame exposure gain ``1 + flicker * u_t`` with ``u_t`` uniform in -1..1.
    """

    size: tuple[int, int]
    n_frames: int
    K: np.ndarray
    camera: CameraPath
    planes: list[Plane]
    fps: float = 24.0
    shutter: float = 0.5
    noise_sigma: float = 0.003
    flicker: float = 0.02
    seed: int = 0
    first_frame: int = 1001

    def pose(self, tau: float) -> tuple[np.ndarray, np.ndarray]:
        return self.camera.pose(tau)

    def poses(self) -> np.ndarray:
        """float64 ``[T, 3, 4]`` world-to-camera ``[R | t]`` of each frame (shutter centre)."""
        out = np.zeros((self.n_frames, 3, 4))
        for t in range(self.n_frames):
            R, tr = self.pose(float(t))
            out[t, :, :3], out[t, :, 3] = R, tr
        return out

    def homography(self, i: int, tau: float) -> np.ndarray:
        """Plane ``i`` -> image homography ``K [R U | R V | R (O + o) + t]`` at ``tau`` (unnormalised:
        its third output is the camera depth)."""
        p = self.planes[i]
        R, t = self.pose(tau)
        M = np.stack([R @ p.u, R @ p.v, R @ (p.origin + p.offset(tau)) + t], axis=1)
        return self.K @ M

    def gains(self) -> np.ndarray:
        """float64 ``[T]`` per-frame exposure gains (flicker), fixed by the seed."""
        rng = np.random.default_rng([self.seed, 7])
        return 1.0 + self.flicker * rng.uniform(-1.0, 1.0, self.n_frames)

    def shutter_times(self, t: int, samples: int) -> np.ndarray:
        """The sub-frame times rendered and averaged for frame ``t`` (centred on ``t``)."""
        if samples <= 1 or self.shutter <= 0:
            return np.array([float(t)])
        return t + self.shutter * (np.arange(samples) / (samples - 1) - 0.5)


def intrinsics(size: tuple[int, int], hfov_deg: float) -> np.ndarray:
    """K for a plate of ``size`` with horizontal field of view ``hfov_deg``, principal point at the image centre
    ``((W - 1) / 2, (H - 1) / 2)`` in our pixel-centre convention."""
    W, H = size
    f = (W / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return np.array([[f, 0, (W - 1) / 2.0], [0, f, (H - 1) / 2.0], [0, 0, 1.0]])


# ----------------------------------------------------------------------------------------- textures


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, np.float32), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055).astype(np.float32)


def procedural_texture(rng: np.random.Generator, wh: tuple[int, int]) -> np.ndarray:
    """float32 ``[h, w, 3]`` linear texture: multi-octave coloured noise plus random discs and bars (corners
    and edges at every scale, so trackers have something to lock on)."""
    import cv2

    w, h = int(wh[0]), int(wh[1])
    img = np.zeros((h, w, 3), np.float32)
    for octave, amp in ((4, 0.5), (16, 0.3), (64, 0.2), (256, 0.12)):
        gw, gh = max(2, w * octave // 1024 + 2), max(2, h * octave // 1024 + 2)
        g = rng.uniform(-1, 1, (gh, gw, 3)).astype(np.float32)
        img += amp * cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(max(8, w * h // 6000)):
        col = tuple(float(c) for c in rng.uniform(-0.6, 0.6, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(2, max(3, min(w, h) // 12)))
        if rng.random() < 0.5:
            cv2.circle(img, (cx, cy), r, col, -1, lineType=cv2.LINE_AA)
        else:
            cv2.rectangle(img, (cx - r, cy - r // 2), (cx + r, cy + r // 2), col, -1, lineType=cv2.LINE_AA)
    img = 0.5 + 0.45 * np.tanh(img)
    return srgb_to_linear(img)


def photo_texture(path: str | Path, rng: np.random.Generator, wh: tuple[int, int]) -> np.ndarray:
    """float32 ``[h, w, 3]`` linear texture: a random crop of an sRGB photo resized to ``wh``."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError("cannot read texture image", where=str(path))
    H, W = bgr.shape[:2]
    cw, ch = int(W * rng.uniform(0.6, 1.0)), int(H * rng.uniform(0.6, 1.0))
    x0, y0 = int(rng.integers(0, W - cw + 1)), int(rng.integers(0, H - ch + 1))
    crop = bgr[y0:y0 + ch, x0:x0 + cw, ::-1]
    out = cv2.resize(crop, (int(wh[0]), int(wh[1])), interpolation=cv2.INTER_CUBIC if wh[0] > cw else cv2.INTER_AREA)
    return srgb_to_linear(out.astype(np.float32) / 255.0)


def texture_files(root: str | Path) -> list[Path]:
    """Every .jpg/.jpeg/.png under ``root`` (sorted; e.g. the DAVIS frames)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("texture folder not found", where=str(root))
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                   and "masks" not in p.parts)
    if not files:
        raise InputError("texture folder holds no .jpg/.png images", where=str(root))
    return files


# ----------------------------------------------------------------------------------------- random scenes


def make_scene(seed: int, size: tuple[int, int] = (1280, 720), n_frames: int = 40,
               textures: Sequence[str | Path] | None = None, shutter: float = 0.5, noise_sigma: float = 0.003,
               flicker: float = 0.02, fps: float = 24.0, texel_scale: float = 1.5) -> Scene:
    """A random scene from ``seed``: a far back wall, three cards at 3.5..9 units, a ground plane, and one
    card moving across the view in front of them (the occluder); the camera dollies, pans and shakes.

    ``textures``: photo files to texture the cards with (random crops); None: procedural textures.
    ``texel_scale``: texels per plate px at a card's own depth (>= 1: textures are magnified no more than
    ``1 / texel_scale``, so the plate's detail comes from the texture, not from interpolation).
    """
    W, H = size
    rng = np.random.default_rng([int(seed), 1])
    K = intrinsics(size, rng.uniform(45, 65))
    f = K[0, 0]
    T = int(n_frames)
    # camera: dolly forward/sideways, pan a few degrees over the shot, handheld shake
    cam = CameraPath(
        velocity=np.array([rng.uniform(-0.03, 0.03), rng.uniform(-0.01, 0.01), rng.uniform(0.0, 0.06)]),
        pan_rate=np.radians(np.array([rng.uniform(-0.15, 0.15), rng.uniform(-0.05, 0.05), 0.0])),
        shake_t=rng.uniform(0.0, 0.004, (3, 3)),
        shake_r=np.radians(rng.uniform(0.0, 0.06, (3, 3))),
        shake_freq=rng.uniform(0.03, 0.25, 3),
        shake_phase=rng.uniform(0, 2 * np.pi, (3, 6)))

    def tex(wh):
        if textures:
            return photo_texture(textures[int(rng.integers(len(textures)))], rng, wh)
        return procedural_texture(rng, wh)

    def card(cx, cy, z, w, h, yaw=0.0, pitch=0.0, velocity=None, name=""):
        r = _rot(yaw, pitch, 0.0)
        u, v = r @ np.array([w, 0, 0]), r @ np.array([0, h, 0])
        o = np.array([cx, cy, z]) - u / 2 - v / 2
        twh = (int(np.clip(w * f / z * texel_scale, 16, 2048)), int(np.clip(h * f / z * texel_scale, 16, 2048)))
        return Plane(o, u, v, tex(twh), np.zeros(3) if velocity is None else velocity, name)

    half_w, half_h = (W / 2) / f, (H / 2) / f  # view half-extent per unit depth
    zb = rng.uniform(14, 18)
    planes = [card(0, 0, zb, 3.2 * half_w * zb, 3.2 * half_h * zb, name="wall")]
    # ground plane below the horizon, receding from z=3 to the wall
    zg0 = 3.0
    gy = half_h * zg0 * rng.uniform(0.7, 0.95)
    gw = 3.2 * half_w * zb
    g_u, g_v = np.array([gw, 0, 0]), np.array([0, 0, zb - zg0 - 0.05])
    gtex = (int(np.clip(gw * f / zb * texel_scale * 2, 16, 2048)), 1024)
    planes.append(Plane(np.array([-gw / 2, gy, zg0]), g_u, g_v, tex(gtex), np.zeros(3), "ground"))
    for k, z in enumerate(np.sort(rng.uniform(5.0, 10.0, 3))[::-1]):
        cw = rng.uniform(0.35, 0.6) * 2 * half_w * z
        ch = rng.uniform(0.35, 0.6) * 2 * half_h * z
        cx = rng.uniform(-0.55, 0.55) * half_w * z
        cy = rng.uniform(-0.5, 0.3) * half_h * z
        planes.append(card(cx, cy, z, cw, ch, yaw=np.radians(rng.uniform(-25, 25)),
                           pitch=np.radians(rng.uniform(-10, 10)), name=f"card{k}"))
    # the occluder: crosses the whole view during the shot, in front of everything
    zo = rng.uniform(2.6, 3.4)
    ow, oh = rng.uniform(0.25, 0.35) * 2 * half_w * zo, rng.uniform(0.5, 0.8) * 2 * half_h * zo
    span = 2 * half_w * zo + ow
    side = 1.0 if rng.random() < 0.5 else -1.0
    speed = side * span / max(T - 1, 1)
    occ = card(-side * span / 2, rng.uniform(-0.2, 0.2) * half_h * zo, zo, ow, oh,
               velocity=np.array([speed, rng.uniform(-0.002, 0.002) * zo, 0.0]), name="occluder")
    planes.append(occ)
    return Scene((int(W), int(H)), T, K, cam, planes, fps=fps, shutter=shutter, noise_sigma=noise_sigma,
                 flicker=flicker, seed=int(seed))
