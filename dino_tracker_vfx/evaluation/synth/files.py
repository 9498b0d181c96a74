"""Synthetic scenes on disk: ``<root>/scene_<seed>/`` holds

    plate.1001.png ...   8-bit sRGB-encoded frames (``--format png``), or
    plate.1001.exr ...   linear half-float RGB EXR (``--format exr``; read back through the OCIO display path)
    gt.npz               xy float64 [N, T, 2] (plate px, our convention, shutter centre), visible / evaluable bool
                         [N, T], query_t int [N], names str [N], plane int [N], static bool [N] (on a card that
                         does not move: what a camera solve may use), K [3, 3], poses [T, 3, 4]
                         (world-to-camera [R | t] at each shutter centre), frame_numbers [T], size (W, H), fps,
                         shutter, seed, occluder_offset [T, 3] (the moving card's world offset per frame)
    queries.csv          name,frame,x,y: what ``dtvfx track --queries`` reads
    scene.json           the settings the scene was made with

Everything is written atomically; ``gt.npz`` is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ... import atomic
from ...errors import InputError
from .render import GroundTruth, auto_shutter_samples, render_frame, sample_queries
from .scene import Scene, linear_to_srgb, make_scene

FORMATS = ("png", "exr")
GT_FILE = "gt.npz"
QUERIES_FILE = "queries.csv"


def write_frame(path: Path, linear: np.ndarray, fmt: str) -> None:
    """Write one linear float ``[H, W, 3]`` frame: sRGB 8-bit PNG or linear half EXR (zip)."""
    if fmt == "png":
        import cv2

        enc = np.round(linear_to_srgb(linear) * 255.0).astype(np.uint8)
        with atomic.atomic_path(path, suffix=".png") as tmp:
            if not cv2.imwrite(str(tmp), np.ascontiguousarray(enc[..., ::-1])):
                raise OSError(f"cannot write {path}")
        return
    import OpenImageIO as oiio

    H, W = linear.shape[:2]
    spec = oiio.ImageSpec(W, H, 3, oiio.HALF)
    spec.attribute("compression", "zip")
    spec.attribute("oiio:ColorSpace", "lin_rec709")
    with atomic.atomic_path(path, suffix=".exr") as tmp:
        out = oiio.ImageOutput.create(str(tmp))
        if out is None or not out.open(str(tmp), spec):
            raise OSError(f"cannot write {path}: {oiio.geterror()}")
        ok = out.write_image(np.ascontiguousarray(linear.astype(np.float16)))
        out.close()
        if not ok:
            raise OSError(f"cannot write {path}: {oiio.geterror()}")


def write_truth(scene_dir: Path, scene: Scene, gt: GroundTruth) -> None:
    frames = scene.first_frame + np.arange(scene.n_frames)
    occ = [p for p in scene.planes if p.moving]
    off = np.stack([occ[0].offset(float(t)) for t in range(scene.n_frames)]) if occ else np.zeros((scene.n_frames, 3))
    static = np.array([not scene.planes[i].moving for i in gt.plane], bool)
    arrays = dict(xy=gt.xy, visible=gt.visible, evaluable=gt.evaluable, query_t=gt.query_t, static=static,
                  names=np.array(gt.names), plane=gt.plane, ab=gt.ab, K=scene.K, poses=scene.poses(),
                  frame_numbers=frames, size=np.array(scene.size), fps=np.float64(scene.fps),
                  shutter=np.float64(scene.shutter), seed=np.int64(scene.seed), occluder_offset=off)
    with atomic.atomic_path(scene_dir / GT_FILE, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    lines = ["name,frame,x,y"]
    q = gt.query_xy
    for n, t, (x, y) in zip(gt.names, gt.query_t, q):
        lines.append(f"{n},{int(frames[t])},{float(x)!r},{float(y)!r}")  # repr of a float: exact, any numpy
    atomic.write_text(scene_dir / QUERIES_FILE, "\n".join(lines) + "\n")


def write_scene(scene_dir: str | Path, scene: Scene, gt: GroundTruth, fmt: str = "png", ss: int = 2,
                shutter_samples: int = 0, settings: dict | None = None) -> dict:
    """Render every frame of ``scene`` into ``scene_dir`` with its ground truth; returns timings (s)."""
    if fmt not in FORMATS:
        raise InputError(f"format {fmt!r} is not one of {', '.join(FORMATS)}", where="--format")
    d = Path(scene_dir)
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    per_frame = []
    for t in range(scene.n_frames):
        k = shutter_samples if shutter_samples > 0 else auto_shutter_samples(scene, t)
        per_frame.append(int(k))
        img = render_frame(scene, t, ss=ss, shutter_samples=k)
        write_frame(d / f"plate.{scene.first_frame + t:04d}.{fmt}", img, fmt)
    t1 = time.perf_counter()
    write_truth(d, scene, gt)
    atomic.write_json(d / "scene.json", {**(settings or {}), "size": list(scene.size), "n_frames": scene.n_frames,
                                         "format": fmt, "supersampling": ss, "shutter_samples": shutter_samples,
                                         "shutter_samples_per_frame": per_frame,
                                         "shutter": scene.shutter, "noise_sigma": scene.noise_sigma,
                                         "flicker": scene.flicker, "seed": scene.seed, "n_points": len(gt.names),
                                         "planes": [p.name for p in scene.planes]})
    return {"render_s": t1 - t0}


def make_scenes(root: str | Path, seed: int = 0, n_scenes: int = 1, size=(1280, 720), n_frames: int = 40,
                fmt: str = "png", textures: Sequence[str | Path] | None = None, n_points: int = 64,
                ss: int = 2, shutter_samples: int = 0, shutter: float = 0.5, noise_sigma: float = 0.003,
                flicker: float = 0.02, edge_px: float = 2.0, log: Callable[[str], None] | None = None) -> list[Path]:
    """Write scenes ``scene_<seed+k>`` for k in 0..n_scenes-1 under ``root``; returns their folders."""
    if fmt not in FORMATS:
        raise InputError(f"format {fmt!r} is not one of {', '.join(FORMATS)}", where="--format")
    out = []
    for k in range(int(n_scenes)):
        s = int(seed) + k
        t0 = time.perf_counter()
        scene = make_scene(s, tuple(size), n_frames, textures=textures, shutter=shutter, noise_sigma=noise_sigma,
                           flicker=flicker)
        gt = sample_queries(scene, n_points, edge_px=edge_px)
        t1 = time.perf_counter()
        d = Path(root) / f"scene_{s:04d}"
        tm = write_scene(d, scene, gt, fmt, ss, shutter_samples,
                         settings={"textures": "photos" if textures else "procedural", "edge_px": edge_px})
        if log:
            log(f"{d}: {scene.size[0]}x{scene.size[1]} x {scene.n_frames} frames, {len(gt.names)} points, "
                f"occluded {1 - gt.visible.mean():.0%}, not evaluable {1 - gt.evaluable.mean():.0%} "
                f"(scene + GT {t1 - t0:.1f} s, render {tm['render_s']:.1f} s)")
        out.append(d)
    return out


@dataclass
class SceneTruth:
    """A scene read back from disk (see module docstring for the arrays)."""

    dir: Path
    xy: np.ndarray
    visible: np.ndarray
    evaluable: np.ndarray
    query_t: np.ndarray
    names: list[str]
    K: np.ndarray
    poses: np.ndarray
    frame_numbers: np.ndarray
    size: tuple[int, int]
    static: np.ndarray

    @property
    def pattern(self) -> str:
        fmt = "exr" if (self.dir / f"plate.{int(self.frame_numbers[0]):04d}.exr").is_file() else "png"
        return str(self.dir / f"plate.####.{fmt}")

    @property
    def key(self) -> str:
        return self.dir.name


def read_truth(scene_dir: str | Path) -> SceneTruth:
    d = Path(scene_dir)
    p = d / GT_FILE
    if not p.is_file():
        raise InputError(f"no {GT_FILE} (make scenes with dtvfx eval synth --make)", where=str(d))
    try:
        z = np.load(p, allow_pickle=False)
        need = ("xy", "visible", "evaluable", "query_t", "names", "K", "poses", "frame_numbers", "size", "static")
        missing = [k for k in need if k not in z.files]
        if missing:
            raise InputError(f"missing array {missing[0]!r}", where=str(p))
        a = {k: z[k] for k in need}
    except (ValueError, OSError) as e:
        raise InputError(f"cannot read ground truth ({e})", where=str(p)) from None
    N, T = a["visible"].shape
    if a["xy"].shape != (N, T, 2) or a["evaluable"].shape != (N, T) or a["query_t"].shape != (N,):
        raise InputError(f"inconsistent shapes: xy {a['xy'].shape}, visible {a['visible'].shape}", where=str(p))
    return SceneTruth(d, a["xy"].astype(np.float64), a["visible"].astype(bool), a["evaluable"].astype(bool),
                      a["query_t"].astype(np.int64), [str(n) for n in a["names"]], a["K"], a["poses"],
                      a["frame_numbers"].astype(np.int64), (int(a["size"][0]), int(a["size"][1])),
                      a["static"].astype(bool))


def find_scenes(root: str | Path) -> list[Path]:
    """Scene folders under ``root`` (``root`` itself when it holds a gt.npz)."""
    r = Path(root)
    if (r / GT_FILE).is_file():
        return [r]
    if not r.is_dir():
        raise InputError("scene folder not found", where=str(r))
    out = sorted(p.parent for p in r.glob(f"*/{GT_FILE}"))
    if not out:
        raise InputError(f"no scenes (folders with {GT_FILE}) found", where=str(r))
    return out
