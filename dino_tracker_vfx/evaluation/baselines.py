"""Tracking methods the evaluation harness runs, all behind one call:

    method.run(shot, queries, progress=None, cancel=None, cache_dir=None) -> TrackSet

``queries`` are named :class:`~dino_tracker_vfx.tracks.Query` records ``(t, x, y)`` in plate pixels;
the returned :class:`~dino_tracker_vfx.tracks.TrackSet` has one track per query, same names and order.

* ``static``  - the query never moves and is always visible (the zero-motion floor; needs no frames).
* ``flow``    - optical flow chained from the query frame forward and backward with a forward-backward
  check (``tracker.infer.chain.chain_points``; DIS by default, RAFT with local weights). A point stays where
  the flow takes it after it fails the check, and is marked occluded from there on.
* ``klt``     - chained pyramidal Lucas-Kanade at plate resolution with a forward-backward check
  (:mod:`.klt`; the classic matchmove 2D tracker).
* ``dino``    - raw DINOv2 feature matching (the tracker without Delta-DINO or refiner; needs DINOv2 weights).
* ``tracker`` - the full DINO-Tracker (``tracker.api.track``), trained per video, with any preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from ..progress import CancelFn, ProgressFn, check_cancel
from ..tracks import Query, TrackSet

METHOD_NAMES = ("static", "flow", "klt", "dino", "tracker")
# the preset the raw-DINO baseline asks the tracker API for
RAW_DINO_PRESET = "raw-dino"


def trackset_for(queries: Sequence[Query], xy, visible, frame_numbers, plate_size, confidence=None,
                 meta: dict | None = None) -> TrackSet:
    """A TrackSet with one track per query (names from the queries)."""
    xy = np.asarray(xy, np.float64)
    vis = np.asarray(visible, bool)
    conf = vis.astype(np.float32) if confidence is None else confidence
    return TrackSet(xy, vis, conf, [q.name for q in queries], list(queries), frame_numbers, plate_size,
                    meta=dict(meta or {}))


@dataclass
class Method:
    """Base: ``name``, ``needs_frames`` and the settings that make a result reusable."""

    name: str = ""
    needs_frames: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        return {"method": self.name, **self.options}

    def check(self) -> None:
        """Fail fast (before any video) on settings or files the method cannot run with."""

    def run(self, shot, queries: Sequence[Query], *, progress: ProgressFn | None = None,
            cancel: CancelFn | None = None, cache_dir: str | Path | None = None,
            n_frames: int | None = None, plate_size=None, frame_numbers=None) -> TrackSet:
        raise NotImplementedError


class Static(Method):
    def __init__(self):
        super().__init__("static", needs_frames=False)

    def run(self, shot, queries, *, progress=None, cancel=None, cache_dir=None, n_frames=None, plate_size=None,
            frame_numbers=None):
        T = n_frames if n_frames is not None else shot.n_images
        wh = plate_size if plate_size is not None else shot.size
        fn = frame_numbers if frame_numbers is not None else (shot.frame_numbers if shot is not None
                                                              else np.arange(T))
        xy0 = np.array([[q.x, q.y] for q in queries], np.float64).reshape(-1, 2)
        xy = np.repeat(xy0[:, None, :], T, axis=1)
        return trackset_for(queries, xy, np.ones((len(queries), T), bool), fn, wh, meta={"method": "static"})


class Flow(Method):
    def __init__(self, flow: str = "dis", fb_thresh: float = 1.5, weights: str | None = None):
        from ..tracker.preprocess.flow import METHODS

        if flow not in METHODS:
            raise ConfigError(f"flow method {flow!r} is not one of {', '.join(METHODS)}", where="--flow")
        opts: dict[str, Any] = {"flow": flow, "fb_thresh": float(fb_thresh)}
        if flow == "dis":  # recorded so results made with other DIS defaults are not reused
            from ..tracker.preprocess.flow import DIS_DEFAULTS

            opts["dis"] = dict(DIS_DEFAULTS)
        super().__init__("flow", True, opts)
        self.weights = weights

    def run(self, shot, queries, *, progress=None, cancel=None, cache_dir=None, n_frames=None, plate_size=None,
            frame_numbers=None):
        from ..tracker.infer.chain import chain_on_shot

        check_cancel(cancel, "flow baseline")
        t0 = np.array([q.t for q in queries], np.int64)
        xy0 = np.array([[q.x, q.y] for q in queries], np.float64).reshape(-1, 2)
        # flow on the plate itself (no wh): flow px == plate px
        xy, valid, _ = chain_on_shot(shot, t0, xy0, self.options["fb_thresh"], method=self.options["flow"],
                                     weights=self.weights, progress=progress, cancel=cancel)
        return trackset_for(queries, xy, valid, shot.frame_numbers, shot.size,
                            meta={"method": "flow", **self.options})


class KLT(Method):
    """Chained pyramidal Lucas-Kanade at plate resolution with a forward-backward check (:mod:`.klt`)."""

    def __init__(self, fb_thresh: float | None = None, **params):
        from .klt import KLT_DEFAULTS

        opts = {**KLT_DEFAULTS, **params}
        if fb_thresh is not None:
            opts["fb_thresh"] = float(fb_thresh)
        super().__init__("klt", True, opts)

    def run(self, shot, queries, *, progress=None, cancel=None, cache_dir=None, n_frames=None, plate_size=None,
            frame_numbers=None):
        from .klt import klt_chain

        check_cancel(cancel, "klt baseline")
        frames = shot.load()  # uint8 [T, H, W, 3] at plate resolution
        t0 = np.array([q.t for q in queries], np.int64)
        xy0 = np.array([[q.x, q.y] for q in queries], np.float64).reshape(-1, 2)
        xy, valid = klt_chain(frames, t0, xy0, **self.options)
        return trackset_for(queries, xy, valid, shot.frame_numbers, shot.size, meta={"method": "klt", **self.options})


def first_frame_mask(shot) -> dict[int, np.ndarray]:
    """``{0: ids}`` from the DAVIS-style ``<video>/../masks/<name of image 0>.png`` next to the frames."""
    from ..errors import InputError
    from ..inputs import read_mask

    if not getattr(shot, "paths", None):
        raise InputError("--masks first needs an image sequence with a masks/ folder beside video/",
                         where=str(shot.source))
    first = Path(shot.paths[0])
    p = first.parent.parent / "masks" / (first.stem + ".png")
    if not p.is_file():
        raise InputError("first-frame mask not found (expected <video>/../masks/<frame>.png)", where=str(p))
    return {0: read_mask(p)}


class Tracker(Method):
    """DINO-Tracker through the tracker API (``preset``; ``raw-dino`` for the ``dino`` baseline).

    ``masks="first"`` gives the tracker the DAVIS mask of the first image (the only mask the held-out
    videos keep) as its foreground; ``"none"`` lets it find the foreground itself."""

    def __init__(self, name: str, preset: str, device: str | None = None, seed: int = 0, masks: str = "none"):
        if masks not in ("none", "first"):
            raise ConfigError(f"masks {masks!r} is not one of none, first", where="--masks")
        super().__init__(name, True, {"preset": preset, "seed": int(seed), "masks": masks})
        self.device = device

    def check(self) -> None:
        """Unknown preset -> ConfigError; DINO presets without their DINOv2 checkpoint -> WeightsError."""
        try:
            from ..tracker.presets import load_preset
            from ..tracker.preprocess.weights import resolve_dinov2
        except ImportError as e:
            raise ConfigError(f"method {self.name!r} needs the tracker, which cannot be imported ({e})",
                              where="--method") from None
        cfg = load_preset(self.options["preset"])
        if not cfg.weight_free:
            arch = str(cfg.backbone).replace("dinov2_", "")
            resolve_dinov2(arch, bool(cfg.registers), weights=cfg.weights)

    def run(self, shot, queries, *, progress=None, cancel=None, cache_dir=None, n_frames=None, plate_size=None,
            frame_numbers=None):
        try:
            from ..tracker import api
        except ImportError as e:
            raise ConfigError(f"method {self.name!r} needs the tracker API, which cannot be imported ({e})",
                              where="--method") from None
        masks = first_frame_mask(shot) if self.options["masks"] == "first" else None
        return api.track(shot, list(queries), preset=self.options["preset"], masks=masks, cache_dir=cache_dir,
                         device=self.device, seed=self.options["seed"], progress=progress, cancel=cancel)


def make_method(name: str, *, preset: str | None = None, flow: str = "dis", fb_thresh: float | None = None,
                weights: str | None = None, device: str | None = None, seed: int = 0, masks: str = "none") -> Method:
    """Build a method by name (see module docstring)."""
    if name == "static":
        return Static()
    if name == "flow":
        return Flow(flow, 1.5 if fb_thresh is None else fb_thresh, weights)
    if name == "klt":
        return KLT(fb_thresh)
    if name == "dino":
        return Tracker("dino", preset or RAW_DINO_PRESET, device, seed, masks)
    if name == "tracker":
        return Tracker("tracker", preset or "cpu-preview", device, seed, masks)
    raise ConfigError(f"method {name!r} is not one of {', '.join(METHOD_NAMES)}", where="--method")


def method_label(name: str, method: Method) -> str:
    """The folder name of a method's results: ``name`` or ``name-<preset>``; a preset given as a settings file
    contributes its file stem (``tracker-my_preset`` for ``--preset runs/my_preset.yaml``), never a path."""
    preset = method.options.get("preset")
    if not preset:
        return name
    p = str(preset)
    if "/" in p or "\\" in p or p.lower().endswith((".yaml", ".yml", ".json")):
        p = Path(p).stem
    return f"{name}-{p}"
