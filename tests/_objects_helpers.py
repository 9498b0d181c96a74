"""Tiny synthetic shots for the objects tests: textured objects moving over a textured background.

``make_scene(T, W, H)`` -> :class:`Scene` with uint8 frames ``[T, H, W, 3]``, the true id masks
``[T, H, W]`` (ids 3 = a square, 7 = a disc; both move with their texture attached), and the exact
mask centroids per object and frame. ``write_scene`` writes ``plate.####.png`` (frames 1001...) and a
palette PNG of a mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SQUARE, DISC = 3, 7


def smooth_texture(h: int, w: int, seed: int, cell: int = 4, tint=(1.0, 1.0, 1.0), base: float = 0.0,
                   grey: bool = False) -> np.ndarray:
    """float32 [h, w, 3] in 0..1: smooth random texture (cubic upsampling of noise), tinted."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.random((h // cell + 3, w // cell + 3, 1 if grey else 3)).astype(np.float32)
    small = np.repeat(small, 3, axis=2) if grey else small
    big = cv2.resize(small, ((w // cell + 3) * cell, (h // cell + 3) * cell), interpolation=cv2.INTER_CUBIC)
    tex = np.clip(big[:h, :w], 0, 1) * np.asarray(tint, np.float32) + base
    return np.clip(tex, 0, 1)


@dataclass
class Scene:
    frames: np.ndarray  # uint8 [T, H, W, 3]
    masks: np.ndarray  # int32 [T, H, W]
    centroids: dict[int, np.ndarray]  # id -> [T, 2] (x, y) plate px

    @property
    def size(self) -> tuple[int, int]:
        return self.frames.shape[2], self.frames.shape[1]


def square_pos(t: int) -> tuple[int, int]:
    return 24 + 4 * t, 30 + 2 * t


def disc_centre(t: int) -> tuple[int, int]:
    return 118 - 3 * t, 76 + t


def make_scene(T: int = 8, W: int = 160, H: int = 120, square: int = 32, radius: int = 15,
               disc_gone: tuple[int, ...] = ()) -> Scene:
    """The square moves (+4, +2) px per frame, the disc (-3, +1); ``disc_gone``: frames without the disc."""
    bg = smooth_texture(H, W, 1, cell=6, tint=(0.45, 0.5, 0.4), base=0.2, grey=True)
    sq_tex = smooth_texture(square, square, 2, cell=4, tint=(0.6, 0.25, 0.2), base=0.35)
    dsz = 2 * radius + 1
    d_tex = smooth_texture(dsz, dsz, 3, cell=3, tint=(0.2, 0.3, 0.7), base=0.25)
    yy, xx = np.mgrid[:dsz, :dsz]
    disc = (xx - radius) ** 2 + (yy - radius) ** 2 <= radius * radius
    frames = np.empty((T, H, W, 3), np.uint8)
    masks = np.zeros((T, H, W), np.int32)
    cents = {SQUARE: np.zeros((T, 2)), DISC: np.full((T, 2), np.nan)}
    for t in range(T):
        img = bg.copy()
        x0, y0 = square_pos(t)
        img[y0:y0 + square, x0:x0 + square] = sq_tex
        masks[t, y0:y0 + square, x0:x0 + square] = SQUARE
        if t not in disc_gone:
            cx, cy = disc_centre(t)
            sl = (slice(cy - radius, cy + radius + 1), slice(cx - radius, cx + radius + 1))
            img[sl][disc] = d_tex[disc]
            masks[t][sl][disc] = DISC
        frames[t] = np.round(img * 255).astype(np.uint8)
        for i in (SQUARE, DISC):
            ys, xs = np.nonzero(masks[t] == i)
            if len(xs):
                cents[i][t] = (xs.mean(), ys.mean())
    return Scene(frames, masks, cents)


def write_scene(scene: Scene, folder, first: int = 1001, name: str = "plate") -> str:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for t, f in enumerate(scene.frames):
        cv2.imwrite(str(folder / f"{name}.{first + t:04d}.png"), f[..., ::-1])
    return str(folder / f"{name}.####.png")


def write_palette_mask(ids: np.ndarray, path) -> str:
    from PIL import Image

    from dino_tracker_vfx.objects.masks_io import DAVIS_PALETTE

    im = Image.fromarray(ids.astype(np.uint8), mode="P")
    im.putpalette(DAVIS_PALETTE)
    im.save(path)
    return str(path)


class ArrayShot:
    """A minimal in-memory Shot (frame_numbers, size, fps, n_images, read, load, resize, frame_of)."""

    def __init__(self, frames: np.ndarray, first: int = 1001):
        from dino_tracker_vfx.coords import Resize

        self._f = frames
        self.frame_numbers = np.arange(first, first + len(frames), dtype=np.int64)
        self.size = (frames.shape[2], frames.shape[1])
        self.fps = 24.0
        self.source = "array"
        self._Resize = Resize

    @property
    def n_images(self) -> int:
        return len(self._f)

    def frame_of(self, t: int) -> int:
        return int(self.frame_numbers[t])

    def read(self, t: int) -> np.ndarray:
        return self._f[t].astype(np.float32) / 255.0

    def resize(self, wh):
        return self._Resize(self.size, tuple(int(v) for v in wh))

    def load(self, wh=None, on_progress=None) -> np.ndarray:
        import cv2

        if wh is None or tuple(wh) == self.size:
            return self._f.copy()
        return np.stack([cv2.resize(f, tuple(wh), interpolation=cv2.INTER_AREA) for f in self._f])


def truth_tracker(scene: Scene):
    """A point tracker that knows the motion: square points move with the square, disc points with the
    disc (invisible where the disc is gone), confidence 0.9."""
    from dino_tracker_vfx.tracks import TrackSet

    def run(shot, queries, masks):
        T = len(scene.frames)
        N = len(queries)
        xy = np.zeros((N, T, 2))
        vis = np.ones((N, T), bool)
        for n, q in enumerate(queries):
            oid = int(scene.masks[q.t, int(round(q.y)), int(round(q.x))])
            for t in range(T):
                if oid == SQUARE:
                    (ax, ay), (bx, by) = square_pos(q.t), square_pos(t)
                else:
                    (ax, ay), (bx, by) = disc_centre(q.t), disc_centre(t)
                    vis[n, t] = not np.isnan(scene.centroids[DISC][t, 0])
                xy[n, t] = (q.x + bx - ax, q.y + by - ay)
        return TrackSet(xy, vis, np.full((N, T), 0.9, np.float32), [q.name for q in queries], list(queries),
                        shot.frame_numbers, shot.size)

    return run
