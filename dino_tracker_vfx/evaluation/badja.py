"""BADJA (Biggs et al., ACCV 2018) animal-joint benchmark on the DAVIS 480p frames.

Input: ``badja_<name>_davis480.npz`` files (``frames`` int ``[K]`` annotated frame numbers,
``joints_xy`` float ``[K, 37, 2]`` (x, y) in 480p plate pixels, ``visible`` bool ``[K, 37]``,
``tapvid_video_idx``) and a frames root laid out ``<idx>_<name>/{video,masks}/NNNNN.{jpg,png}``.

Protocol (ours, after DINO-Tracker's ``compute_badja_metrics_for_video``; documented in
docs/evaluation.md):

* the shot is the contiguous frame range from the first to the last annotated frame;
* each joint that is visible in some annotated frame is queried once, at its **first annotated frame
  where it is visible**, at its annotated position;
* it is evaluated at every **other annotated frame where it is visible** (never at unannotated frames,
  never at the query frame); predicted visibility is ignored;
* ``delta_seg``: error < 0.2 * sqrt(area of the DAVIS foreground mask of that frame, in 480p pixels);
  ``delta_3px``: error < 3 px at 480p. Pooled over a video's evaluated pairs; the benchmark number is
  the mean over videos.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..tracks import Query
from .datasets import GTVideo, load_npz

N_JOINTS = 37


@dataclass
class BadjaVideo:
    gt: GTVideo  # queries, xy (NaN off annotated frames), visible (annotated & visible), mode "first"
    first_frame: int  # frame number of image index 0
    annotated: np.ndarray  # bool [T]
    eval_pairs: np.ndarray  # bool [N, T]: annotated, not the query frame
    masks_dir: Path | None

    def mask_area(self) -> np.ndarray:
        """float [T]: foreground pixel count at annotated frames (NaN elsewhere)."""
        from ..inputs import read_mask

        T = self.gt.n_frames
        area = np.full(T, np.nan)
        if self.masks_dir is None:
            raise InputError(f"video {self.gt.key}: no masks folder next to the frames", where=self.gt.source)
        for t in np.nonzero(self.annotated)[0]:
            f = self.first_frame + int(t)
            p = self.masks_dir / f"{f:05d}.png"
            if not p.is_file():
                raise InputError(f"mask of frame {f} is missing", where=str(p))
            area[t] = float((read_mask(p) > 0).sum())
        return area


def read_badja(data_dir, frames_root) -> list[BadjaVideo]:
    """Every ``badja_*_davis480.npz`` in ``data_dir`` (sorted), with frames/masks under ``frames_root``."""
    data_dir = Path(data_dir)
    files = sorted(data_dir.glob("badja_*_davis480.npz")) if data_dir.is_dir() else [data_dir]
    if not files or not files[0].exists():
        raise InputError("no badja_*_davis480.npz files", where=str(data_dir))
    return [read_badja_file(f, frames_root) for f in files]


def read_badja_file(path, frames_root) -> BadjaVideo:
    path = Path(path)
    d = load_npz(path, ("frames", "joints_xy", "visible"))
    frames = np.asarray(d["frames"], np.int64)
    jxy = np.asarray(d["joints_xy"], np.float64)
    jvis = np.asarray(d["visible"], bool)
    idx = int(d["tapvid_video_idx"]) if "tapvid_video_idx" in d else None
    K = len(frames)
    if jxy.shape[:1] != (K,) or jxy.shape[-1] != 2 or jvis.shape != jxy.shape[:2]:
        raise InputError(f"fields 'joints_xy' {jxy.shape} / 'visible' {jvis.shape} do not fit {K} frames",
                         where=str(path))
    if K == 0 or np.any(np.diff(frames) <= 0):
        raise InputError("field 'frames' must be increasing and non-empty", where=str(path))
    m = re.match(r"^badja_(.+)_davis480$", path.stem)
    name = m.group(1) if m else path.stem
    first = int(frames[0])
    T = int(frames[-1]) - first + 1
    J = jxy.shape[1]
    ts = frames - first
    joints = [j for j in range(J) if jvis[:, j].any()]
    xy = np.full((len(joints), T, 2), np.nan)
    vis = np.zeros((len(joints), T), bool)
    annotated = np.zeros(T, bool)
    annotated[ts] = True
    queries = []
    for n, j in enumerate(joints):
        xy[n, ts] = jxy[:, j]
        vis[n, ts] = jvis[:, j]
        k0 = int(np.nonzero(jvis[:, j])[0][0])
        queries.append(Query(int(ts[k0]), float(jxy[k0, j, 0]), float(jxy[k0, j, 1]), f"joint_{j:02d}"))
    qt = np.array([q.t for q in queries], np.int64)
    eval_pairs = annotated[None, :] & (np.arange(T)[None, :] != qt[:, None])
    size = (854, 480)
    frames_dir = masks_dir = None
    if frames_root is not None and idx is not None:
        root = Path(frames_root)
        hits = sorted(root.glob(f"{idx:02d}_*"))
        if hits:
            frames_dir, masks_dir = hits[0] / "video", hits[0] / "masks"
            jpg = frames_dir / f"{first:05d}.jpg"
            if jpg.is_file():
                from PIL import Image

                with Image.open(jpg) as im:
                    size = im.size
    gt = GTVideo(name, idx, size, queries, xy, vis, "first", None, False, None, str(path),
                 {"joints": joints, "first_frame": first})
    return BadjaVideo(gt, first, annotated, eval_pairs, masks_dir if masks_dir and masks_dir.is_dir() else None)
