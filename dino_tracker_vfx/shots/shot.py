"""The :class:`Shot`: one API over image sequences and movies.

Contract
--------
* ``shot.frame_numbers``: int64 ``[T]``, host frame number of each 0-based image index ``t``.
* ``shot.size``: ``(W, H)`` of the display window in plate pixels; ``shot.pixel_aspect``.
* ``shot.fps``: frames per second - a movie's nominal rate, a sequence's from its first file's
  metadata (EXR ``FramesPerSecond``, DPX frame rate), ``open_shot(fps=...)`` (``--fps``) overrides;
  ``None`` when unknown (exporters then use ``tracks.DEFAULT_FPS`` = 24). ``shot.timecode``: SMPTE
  timecode of the first image (EXR ``smpte:TimeCode``, DPX time code, a movie's ``timecode`` tag) or None.
* ``shot.read(t)``: float32 ``[H, W, 3]`` display-referred RGB in 0..1 (after the shot's one fixed
  display transform), display window, plate resolution. Checked: readable, same size as the shot,
  finite (NaN/Inf -> :class:`ShotError` naming file and frame).
* ``shot.read_working(t, (w, h))``: the same resized to a working raster (``cv2.INTER_AREA``);
  :meth:`resize` gives the exact :class:`~dino_tracker_vfx.coords.Resize` back to plate pixels.
* ``shot.load(wh)``: uint8 ``[T, h, w, 3]`` of every image (progress via ``on_progress``).

Shots come from files (:func:`open_shot`) or from memory (:func:`from_array`: display-referred RGB
frames, for the array API and the evaluation harness).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..coords import Resize
from ..errors import ShotError
from . import colour, images, patterns
from .movie import MOVIE_SUFFIXES, Movie

log = logging.getLogger("dino_tracker_vfx")

IMAGE_SUFFIXES = {".exr", ".dpx", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".cin", ".hdr", ".tga", ".bmp",
                  ".sgi", ".rgb", ".webp", ".jp2"}


@dataclass
class Shot:
    source: str
    kind: str  # "sequence" | "movie"
    frame_numbers: np.ndarray
    size: tuple[int, int]
    pixel_aspect: float
    transform: colour.DisplayTransform
    paths: list[str] = field(default_factory=list)  # sequence: one per image
    display_window: tuple[int, int, int, int] = (0, 0, 0, 0)
    data_window: tuple[int, int, int, int] = (0, 0, 0, 0)
    channels: tuple[str, ...] = ()
    file_format: str = ""
    fps: float | None = None
    timecode: str | None = None  # SMPTE timecode of the first image, when the plate carries one
    seconds: np.ndarray | None = None  # movie: timestamp of each image
    _movie: Movie | None = None
    _array: np.ndarray | None = None  # from_array: uint8 [T, H, W, 3] display-referred RGB
    content_hash: str | None = None  # from_array: sha256 of the pixels (the cache's identity of the shot)

    # ----------------------------------------------------------------- basics
    def __len__(self) -> int:
        return len(self.frame_numbers)

    @property
    def n_images(self) -> int:
        return len(self.frame_numbers)

    def frame_of(self, t: int) -> int:
        return int(self.frame_numbers[t])

    def index_of_frame(self, frame: int, where: str | None = None) -> int:
        hits = np.nonzero(self.frame_numbers == int(frame))[0]
        if len(hits) == 0:
            raise ShotError(f"frame {frame} is not in the shot ({self.range_text()})", where=where or self.source)
        return int(hits[0])

    def range_text(self) -> str:
        return f"{self.frame_numbers[0]}-{self.frame_numbers[-1]}"

    def gaps(self) -> list[tuple[int, int]]:
        """Missing frame-number runs ``(first, last)`` inside the shot's range."""
        f = self.frame_numbers
        return [(int(a) + 1, int(b) - 1) for a, b in zip(f[:-1], f[1:]) if b - a > 1]

    def gaps_text(self, limit: int = 8) -> str:
        """The gaps compactly, ``"1004-1005, 1010"`` (the first ``limit`` runs, then a count); ``"none"``."""
        g = self.gaps()
        runs = [f"{a}" if a == b else f"{a}-{b}" for a, b in g[:limit]]
        more = f" and {len(g) - limit} more runs" if len(g) > limit else ""
        return ", ".join(runs) + more if runs else "none"

    def label(self, t: int) -> str:
        return self.paths[t] if self.paths else f"{self.source} frame {self.frame_of(t)}"

    # ----------------------------------------------------------------- pixels
    def read(self, t: int) -> np.ndarray:
        if not 0 <= t < self.n_images:
            raise ShotError(f"image index {t} outside 0..{self.n_images - 1}", where=self.source)
        if self._array is not None:
            return self._array[t].astype(np.float32) / 255.0  # display-referred already
        if self._movie is not None:
            rgb = self._movie.read(t)
        else:
            rgb, info = images.read_rgb(self.paths[t])
            if info.size != self.size:
                raise ShotError(f"frame {self.frame_of(t)} is {info.size[0]}x{info.size[1]}, the shot is "
                                f"{self.size[0]}x{self.size[1]} (mixed resolutions)", where=self.paths[t])
        if not np.isfinite(rgb).all():
            n = int((~np.isfinite(rgb)).sum())
            raise ShotError(f"frame {self.frame_of(t)} has {n} NaN/Inf pixel values", where=self.label(t))
        return self.transform.apply(rgb)

    def resize(self, work_wh: tuple[int, int]) -> Resize:
        return Resize(self.size, (int(work_wh[0]), int(work_wh[1])))

    def read_working(self, t: int, work_wh: tuple[int, int]) -> np.ndarray:
        import cv2

        rgb = self.read(t)
        if tuple(work_wh) == self.size:
            return rgb
        interp = cv2.INTER_AREA if work_wh[0] < self.size[0] else cv2.INTER_LINEAR
        return cv2.resize(rgb, tuple(int(v) for v in work_wh), interpolation=interp)

    def load(self, work_wh: tuple[int, int] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """uint8 [T, h, w, 3] of every image at ``work_wh`` (default plate size)."""
        wh = tuple(work_wh) if work_wh else self.size
        out = np.empty((self.n_images, wh[1], wh[0], 3), np.uint8)
        for t in range(self.n_images):
            out[t] = np.round(self.read_working(t, wh) * 255.0).astype(np.uint8)
            if on_progress:
                on_progress(t + 1, self.n_images)
        return out

    def info(self) -> dict:
        d = {
            "source": self.source, "kind": self.kind, "images": self.n_images,
            "frame_range": [int(self.frame_numbers[0]), int(self.frame_numbers[-1])],
            "gaps": [list(g) for g in self.gaps()],
            "size": list(self.size), "pixel_aspect": self.pixel_aspect,
            "display_window": list(self.display_window), "data_window": list(self.data_window),
            "colorspace": self.transform.source, "display_transform": self.transform.describe(),
            "channels": list(self.channels), "format": self.file_format,
        }
        if self.fps:
            d["fps"] = self.fps
        if self.timecode:
            d["timecode"] = self.timecode
        if self._movie is not None:  # the whole movie (frame_range is the part in use)
            d["movie_frames"] = {"range": list(self._movie.span[:2]), "images": self._movie.span[2]}
        return d


def from_array(frames, frame_numbers=None, fps: float | None = None, name: str = "array") -> Shot:
    """A shot held in memory: ``frames`` uint8 ``[T, H, W, 3]`` display-referred RGB (numpy or a CPU torch
    tensor; T >= 1). ``frame_numbers``: int ``[T]`` host frame numbers, strictly increasing (default
    ``0 .. T-1``). The pixels are copied; the shot is identified by their sha256 (so a cache keyed on it
    hits only for the same pixels)."""
    import hashlib

    from ..checks import check_shape

    a = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    d = check_shape(a, "T H W 3", "from_array frames")
    if a.dtype != np.uint8:
        raise ShotError(f"frames must be uint8 RGB (0..255), got {a.dtype}", where=name)
    if d["T"] < 1 or d["H"] < 1 or d["W"] < 1:
        raise ShotError(f"frames must hold at least one non-empty image, got shape {a.shape}", where=name)
    fr = np.arange(d["T"], dtype=np.int64) if frame_numbers is None else np.asarray(frame_numbers, np.int64)
    check_shape(fr, "T", "from_array frame_numbers", dims={"T": d["T"]})
    if len(fr) > 1 and not np.all(np.diff(fr) > 0):
        raise ShotError("frame_numbers must be strictly increasing", where=name)
    a = np.ascontiguousarray(a).copy()
    a.setflags(write=False)
    W, H = int(d["W"]), int(d["H"])
    return Shot(source=name, kind="array", frame_numbers=fr, size=(W, H), pixel_aspect=1.0,
                transform=colour.DisplayTransform("sRGB", "", ""), display_window=(0, 0, W, H),
                data_window=(0, 0, W, H), channels=("R", "G", "B"), file_format="array",
                fps=None if fps is None else float(fps), _array=a, content_hash=hashlib.sha256(a.data).hexdigest())


def open_shot(spec: str | os.PathLike, frame_range: str | None = None, colorspace: str | None = None,
              display: str | None = None, view: str | None = None, movie_first_frame: int = 1,
              fps: float | None = None) -> Shot:
    """Open a shot from a pattern (``plate.####.exr``, ``%04d``, ``@``, optional ``1001-1100`` range),
    a single frame of a sequence, a folder of images, or a movie file (optional range of its frame
    numbers, which start at ``movie_first_frame``: ``clip.mov 21-60``). ``frame_range`` overrides a range
    in ``spec``. ``fps`` overrides the frame rate the shot reports (a sequence without rate metadata, a movie
    with a wrong nominal rate); it never changes which image is which frame."""
    if fps is not None and not (np.isfinite(float(fps)) and float(fps) > 0):
        raise ShotError(f"--fps {fps!r} is not a frame rate (a number > 0)")
    shot = _open_any(str(spec), frame_range, colorspace, display, view, movie_first_frame)
    if fps is not None:
        shot.fps = float(fps)
    return shot


def _open_any(spec: str, frame_range, colorspace, display, view, movie_first_frame) -> Shot:
    spec = str(spec)
    pattern_text, frames = patterns.split_range(spec)
    if frame_range:
        frames = patterns.parse_frame_range(frame_range)
    p = Path(pattern_text)
    if p.suffix.lower() in MOVIE_SUFFIXES and p.is_file():
        return _open_movie(pattern_text, colorspace, display, view, movie_first_frame, frames)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
        if not files:
            raise ShotError("folder holds no images", where=pattern_text)
        seq = patterns.pattern_from_file(str(files[0]))
        if seq is None:
            raise ShotError(f"cannot find a frame number in {files[0].name}", where=pattern_text)
        return _open_sequence(seq, frames, colorspace, display, view, pattern_text)
    seq = patterns.parse_pattern(pattern_text)
    if seq is None and p.is_file():
        seq = patterns.pattern_from_file(pattern_text)
        if seq is None:  # a single still, no number: a one-image shot
            return _open_files([pattern_text], np.array([1]), colorspace, display, view, pattern_text)
    if seq is None:
        raise ShotError("no such file, folder or sequence pattern (use plate.####.exr, %04d or @)",
                        where=pattern_text)
    return _open_sequence(seq, frames, colorspace, display, view, pattern_text)


def _open_sequence(seq: patterns.SeqPattern, frames: list[int] | None, colorspace, display, view,
                   source: str) -> Shot:
    on_disk = seq.glob()
    given = frames
    if frames is None:
        if not on_disk:
            raise ShotError("no frames on disk match the pattern", where=seq.display)
        frames = list(on_disk)
    else:
        missing = [f for f in frames if f not in on_disk]  # glob finds every name seq.path makes
        if missing:
            raise ShotError(f"frame {missing[0]} is missing from range {frames[0]}-{frames[-1]}"
                            f"{f' ({len(missing)} missing in all)' if len(missing) > 1 else ''}",
                            where=seq.path(missing[0]))
    paths = [on_disk.get(f) or seq.path(f) for f in frames]
    shot = _open_files(paths, np.array(frames, np.int64), colorspace, display, view, seq.display)
    if given is None and shot.gaps():  # no range given: say which frames are missing (once, here)
        log.warning("%s: missing frames %s; using the %d frames on disk (%s). Give a range to say which "
                    "frames you mean", seq.display, shot.gaps_text(), shot.n_images, shot.range_text())
    return shot


def _open_files(paths: list[str], frames: np.ndarray, colorspace, display, view, source: str) -> Shot:
    first = images.probe(paths[0])
    cs = colorspace or colour.guess_colorspace(first.colorspace_tag, first.is_float)
    tr = colour.make_transform(cs, display, view)
    return Shot(source=source, kind="sequence", frame_numbers=frames, size=first.size,
                pixel_aspect=first.pixel_aspect, transform=tr, paths=paths,
                display_window=first.display_window, data_window=first.data_window,
                channels=first.channels, file_format=first.format, fps=first.fps, timecode=first.timecode)


def _open_movie(path: str, colorspace, display, view, first_frame: int, frames: list[int] | None) -> Shot:
    mv = Movie(path, first_frame=first_frame)
    if frames is not None:
        mv.select(frames)
    cs = colorspace or "sRGB"
    tr = colour.make_transform(cs, display, view)
    shot = Shot(source=path, kind="movie", frame_numbers=mv.frame_numbers, size=(mv.width, mv.height),
                pixel_aspect=mv.pixel_aspect, transform=tr, display_window=(0, 0, mv.width, mv.height),
                data_window=(0, 0, mv.width, mv.height), channels=("R", "G", "B"),
                file_format=mv._stream.codec_context.name, fps=float(mv.rate), timecode=mv.timecode,
                seconds=mv.seconds, _movie=mv)
    return shot
