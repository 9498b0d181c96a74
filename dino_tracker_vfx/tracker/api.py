"""Public tracker API: :func:`track` and :class:`ShotTracker`.

    tracks = track(shot, queries, preset="cpu-preview", masks=None, cache_dir=None, device=None, seed=0,
                   progress=None, cancel=None)

* ``shot``: :class:`~dino_tracker_vfx.shots.Shot` (>= 2 images). ``queries``: list of
  :class:`~dino_tracker_vfx.tracks.Query` - image index ``t`` and plate px ``(x, y)`` (core convention).
* ``preset``: a preset name (``paper``, ``balanced``, ``fast``, ``cpu-preview``), a YAML path or a dict.
* ``masks``: ``{image index: int32 [H, W] instance ids}`` at plate size (``inputs.read_masks``); their
  union is the foreground used to balance training samples.
* ``cache_dir``: per-shot cache of every stage and the training checkpoints (resume after a cancel);
  None keeps nothing on disk.
* returns a :class:`~dino_tracker_vfx.tracks.TrackSet` in PLATE pixels, ``frame_numbers`` of the shot,
  names made unique (``tracks.unique_names``), groups from the queries. Queries that share a name are ONE
  track: the first is its query, the others corrections (anchors, :mod:`.anchors`: every anchor is
  followed through the shot and the track blends them). At each anchor's own frame the position is
  exactly the anchor, visible, confidence 1 (:func:`.anchors.anchor_tracks`, the only place that pins).
* Corrections need no training: the trained model is keyed on the training settings and the shot, never
  on the queries, so a run on the same cache that only adds or moves anchors loads every stage and the
  final checkpoint and runs inference alone (the ``train`` progress says "trained model reused").

Inside, everything is in WORKING pixels (the network raster); :attr:`ShotTracker.resize` (a
:class:`coords.Resize`) is the only plate <-> working conversion.

Stages (each cached, each reporting :class:`Progress` and honouring ``cancel``; the names and their order
are :data:`dino_tracker_vfx.stages.STAGES`): ``load`` -> ``flow`` -> ``tracklets`` -> ``features`` (DINO,
skipped weight-free) -> ``foreground`` -> ``best_buddies`` -> ``train`` -> ``refine`` (refined features)
-> ``infer`` -> ``drift`` (flow-guided drift correction) -> ``occlusion`` -> ``plate_refine`` (sub-pixel
pattern refinement at plate resolution, ``refine.*``) -> ``reacquire`` (re-acquisition after occlusion).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checks import check_shape
from ..coords import Resize, in_plate
from ..errors import ConfigError, InputError, ShotError
from ..progress import CancelFn, Progress, ProgressFn, check_cancel
from ..tracks import Query, TrackSet, unique_names
from . import anchors as anchoring
from .preprocess import stages as prep
from .cache import ShotCache, read_checkpoint, shot_identity
from .config import TrackerConfig, settings_hash
from .model.delta_dino import DeltaDino
from .model.feature_grid import FeatureGrid, dino_working_size
from .infer.inference import FeatureStore, build_store, track_points
from .model.tracker_model import TrackerModel
from .infer.occlusion import occlusion
from .presets import load_preset
from .model.refiner import Refiner
from .train.sampling import PairPool, TrackletSource
from .train.trainer import TrainData, Trainer

log = logging.getLogger(__name__)
REFINED_CACHE_MAX_BYTES = 256 << 20  # refined features larger than this are recomputed, not cached
ROWS_VERSION = 3  # part of the cached tracked rows' key: bump when inference after the model changes (drift,
                  # visibility, plate refinement, re-acquisition), so tracks cached by older code are not served
# the progress stage (dino_tracker_vfx/stages.py) a cache stage is part of, where the names differ
_CACHE_STAGE_PROGRESS = {"frames": "load", "correspondences": "tracklets"}


def resolve_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = str(device)
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {d!r}: no CUDA GPU is available here (use cpu)", where="device")
    if not (d == "cpu" or d.startswith("cuda")):
        raise ConfigError(f"device {d!r}: must be cpu, cuda or cuda:N", where="device")
    return torch.device(d)


def working_size(cfg: TrackerConfig, plate_wh: tuple[int, int]) -> tuple[int, int]:
    """(W, H) of the working raster: DINO - ``feature_grid.dino_working_size``; weight-free - the preset
    height (never above the plate's), width by the plate's aspect."""
    W, H = plate_wh
    if cfg.weight_free:
        h = min(int(cfg.working_height), H)
        return max(8, int(round(W * h / H))), max(8, h)
    return tuple(int(v) for v in dino_working_size(plate_wh, height=cfg.working_height, stride=cfg.stride))


def flow_size(cfg: TrackerConfig, plate_wh: tuple[int, int], work_wh: tuple[int, int]) -> tuple[int, int]:
    """(W, H) of the flow raster: ``flow.height`` (never above the plate), else the working raster."""
    fh = cfg.flow.height
    if fh is None:
        return tuple(work_wh)
    W, H = plate_wh
    h = min(int(fh), H)
    return max(8, int(round(W * h / H))), max(8, h)


class ShotTracker:
    """Prepare, train and query a tracker for one shot (see module docstring)."""

    def __init__(self, shot, preset: str | Path | dict | TrackerConfig = "cpu-preview",
                 masks: dict[int, np.ndarray] | None = None, cache_dir: str | Path | None = None,
                 device: str | None = None, seed: int = 0, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None):
        self.shot = shot
        self.cfg = load_preset(preset)
        T = int(shot.n_images)
        if T < 2:
            raise ShotError(f"the shot has {T} image; tracking needs at least 2", where=str(shot.source))
        self.T = T
        self.device = resolve_device(device)
        self.masks = _check_masks(masks, shot)
        self.seed = int(seed)
        self.progress, self.cancel = progress, cancel
        self.work_wh = working_size(self.cfg, tuple(shot.size))
        self.resize: Resize = shot.resize(self.work_wh)
        self.flow_wh = flow_size(self.cfg, tuple(shot.size), self.work_wh)
        self.flow_to_work = Resize(self.flow_wh, self.work_wh)  # flow raster <-> working raster
        self.cache = ShotCache(cache_dir, shot_identity(shot))
        self.keys: dict[str, str] = {}
        self.frames: np.ndarray | None = None  # uint8 [T, H, W, 3] working
        self.flow_frames: np.ndarray | None = None  # uint8 [T, H, W, 3] on the flow raster
        self.flow = None  # flow.FlowField
        self.corr = None  # tracklets.FlowCorrespondences
        self.dino: torch.Tensor | None = None  # [T, C, h, w] on device
        self.fg: np.ndarray | None = None  # bool [T, H, W]
        self.bb_pairs = None  # best_buddies.BestBuddies
        self._vit = None
        self.model: TrackerModel | None = None
        self.store: FeatureStore | None = None
        self.trained_iterations = 0
        self.history: list[dict[str, float]] = []
        self._trainer: Trainer | None = None
        self.timings: dict[str, float] = {}
        self.refined = None  # infer.refine.Refined of the last infer() (refine.enabled)

    # ------------------------------------------------------------------ helpers
    def _report(self, stage: str, done: int, total: int, msg: str = "") -> None:
        if self.progress is not None:
            self.progress(Progress(stage, done, total, message=msg))

    def grid(self) -> FeatureGrid:
        if self.cfg.weight_free:
            return FeatureGrid.cnn(self.work_wh, len(self.cfg.delta.hidden))
        return FeatureGrid.dino(self.work_wh, self.cfg.stride)

    def _key(self, name: str, inputs: list[str], wh: tuple[int, int] | None = None) -> str:
        """Cache key of stage ``name`` from its input stages' keys: the one place keys are made (the weight
        check before the stages run must find the very entries :meth:`_stage` writes). The settings hashed
        are the stage's ``config.STAGE_FIELDS``, the flow engine's effective parameters for ``flow``, and
        the raster ``wh`` for ``frames``."""
        if name == "frames":
            settings: Any = {"work_wh": list(wh)}
        elif name == "flow":
            settings = prep.flow_settings(self.cfg)
        else:
            settings = self.cfg.stage_settings(name)
        return ShotCache.key(name, settings, [self.cache.shot_key, *inputs])

    def _stage(self, name: str, inputs: list[str], compute, wh: tuple[int, int] | None = None,
               label: str | None = None):
        """Load stage ``name`` from the cache or compute it -> (arrays dict, key); ``label`` names its timing."""
        key = self._key(name, inputs, wh)
        label = label or name
        self.keys[label] = key
        t0 = time.perf_counter()
        hit = self.cache.load(name, key)
        if hit is not None:
            self._report(_CACHE_STAGE_PROGRESS.get(name, name), 1, 1, "cached")
            self.timings[label] = time.perf_counter() - t0
            return hit[0], key
        arrays = compute()
        self.cache.save(name, key, arrays)
        self.timings[label] = time.perf_counter() - t0
        return arrays, key

    # ------------------------------------------------------------------ preprocessing
    def prepare(self) -> "ShotTracker":
        """Frames, flow, correspondences, DINO features, foreground and best-buddies (cached)."""
        cfg = self.cfg
        shot, wh = self.shot, self.work_wh
        self._check_weights_first()

        def load_frames():
            def cb(i, n):
                check_cancel(self.cancel, "loading frames")
                self._report("load", i, n, "frames")
            return {"frames": shot.load(wh, on_progress=cb)}

        arr, k_frames = self._stage("frames", [], load_frames, wh=wh)
        self.frames = arr["frames"]
        check_shape(self.frames, "T H W 3", "frames", {"T": self.T, "H": wh[1], "W": wh[0]})

        if cfg.raw_dino:  # the baseline needs the frames and the DINO maps only
            arr, self.keys["features"] = self._stage(
                "features", [k_frames], lambda: prep.dino_feature_arrays(self.frames, cfg, self.device, self.progress,
                                                                         self.cancel))
            self.dino = torch.from_numpy(arr["features"]).to(self.device)
            return self

        flow_frames, k_fframes = self.frames, k_frames
        if self.flow_wh != self.work_wh:  # flow on its own (finer) raster
            def load_flow_frames():
                return {"frames": shot.load(self.flow_wh, on_progress=lambda i, n: check_cancel(self.cancel))}

            arr, k_fframes = self._stage("frames", [], load_flow_frames, wh=self.flow_wh, label="flow_frames")
            flow_frames = arr["frames"]
        self.flow_frames = flow_frames
        arr, k_flow = self._stage("flow", [k_fframes], lambda: prep.flow_arrays(flow_frames, cfg, self.progress,
                                                                                self.cancel, self.device))
        self.flow = prep.flow_from_arrays(arr, cfg)

        arr, k_corr = self._stage("correspondences", [k_flow],
                                  lambda: prep.correspondence_arrays(self.flow, flow_frames, cfg, self.progress,
                                                                     self.cancel, self.device))
        self.corr = prep.correspondences_from_arrays(arr)

        k_feat = "none"
        if not cfg.weight_free:
            arr, k_feat = self._stage("features", [k_frames],
                                      lambda: {"features": prep.dino_features(
                                          self.frames, cfg, self.device, self.progress, self.cancel,
                                          model=self._backbone()).cpu().numpy()})
            self.dino = torch.from_numpy(arr["features"]).to(self.device)

        mask_key = settings_hash({int(t): settings_hash(m.tobytes()) + str(m.shape) for t, m in self.masks.items()}) \
            if self.masks else "none"
        arr, k_fg = self._stage("foreground", [k_frames, k_feat, mask_key],
                                lambda: prep.foreground_arrays(self.frames, self.masks, self.resize, self.dino,
                                                               cfg, self.device, self.progress, self.cancel,
                                                               backbone=None if cfg.weight_free else self._backbone()))
        self.fg = arr["fg"].astype(bool)
        self._vit = None  # the frozen ViT is not needed after preprocessing

        self.bb_pairs = None
        if not cfg.weight_free and cfg.best_buddies.enabled and cfg.train.lambda_dino_bb > 0:
            arr, _ = self._stage("best_buddies", [k_feat, k_corr],
                                 lambda: prep.best_buddy_arrays(
                                     self.dino, self.corr, cfg, self.progress, self.cancel,
                                     None if self.flow_wh == self.work_wh else self.flow_to_work))
            self.bb_pairs = prep.best_buddies_from_arrays(arr)
        return self

    def _check_weights_first(self) -> None:
        """Missing weight files fail here, before frames are read - unless the stages needing them are cached."""
        k_frames = self._key("frames", [], self.work_wh)
        k_feat = self._key("features", [k_frames])
        k_flow = self._key("flow", [self._key("frames", [], self.flow_wh)])

        def missing(stage, key):
            p = self.cache.entry_path(stage, key)
            return p is None or not p.is_file()

        prep.check_weights(self.cfg, need_dino=missing("features", k_feat),
                           need_raft=not self.cfg.raw_dino and missing("flow", k_flow), progress=self.progress)

    def _backbone(self):
        """The frozen DINOv2 (built once, on demand: a fully cached shot never loads it)."""
        if getattr(self, "_vit", None) is None:
            self._vit = prep.build_backbone(self.cfg, self.device, self.progress)
        return self._vit

    # ------------------------------------------------------------------ model + training
    def build_model(self) -> TrackerModel:
        cfg = self.cfg
        if cfg.raw_dino:
            return TrackerModel(self.work_wh, self.grid(), "dino", None, None, cfg.infer.argmax_radius,
                                amp=cfg.amp, windowed=cfg.windowed_head).to(self.device)
        C = cfg.feature_dim
        mode = "delta" if cfg.weight_free else "dino+delta"
        with torch.random.fork_rng(devices=[]):  # seeded init, the caller's global RNG left alone
            torch.manual_seed(self.seed)
            delta = DeltaDino(C, tuple(cfg.delta.hidden), cfg.delta.kernel, zero_init=not cfg.weight_free)
            refiner = Refiner() if cfg.refiner else None
        m = TrackerModel(self.work_wh, self.grid(), mode, delta, refiner, cfg.infer.argmax_radius, amp=cfg.amp,
                         windowed=cfg.windowed_head)
        return m.to(self.device)

    def _images(self) -> torch.Tensor:
        return torch.from_numpy(self.frames).to(self.device).permute(0, 3, 1, 2).contiguous()

    def train_settings(self) -> dict[str, Any]:
        """Everything a checkpoint depends on (compared on resume). Not ``train.iterations``: a longer
        training resumes from a shorter one's checkpoint (nor ``train.checkpoint_every``: no weight changes)."""
        train = self.cfg.stage_settings("train")
        train["train"] = {k: v for k, v in train["train"].items() if k not in ("iterations", "checkpoint_every")}
        return {"model": self.cfg.stage_settings("model"), "train": train,
                "inputs": {k: self.keys.get(k) for k in ("frames", "correspondences", "features", "foreground",
                                                         "best_buddies")},
                "work_wh": list(self.work_wh), "seed": self.seed}

    def train(self, iterations: int | None = None) -> "ShotTracker":
        """Test-time training up to ``iterations`` (default: the preset's). Resumes from the newest
        checkpoint in the cache at or below ``iterations`` (a longer training continues a shorter one; the
        iterations already trained keep their schedule: the refiner losses started at ``rfn_after`` times
        the count asked for then), or continues this object's own training when called again."""
        if self.frames is None:
            self.prepare()
        cfg = self.cfg
        self.store = None
        if cfg.raw_dino:  # nothing to train
            self.model = self.build_model().eval()
            return self
        if self._trainer is None:
            self._trainer = self._make_trainer(int(iterations or cfg.train.iterations))
        t0 = time.perf_counter()
        target = int(iterations or cfg.train.iterations)
        if self._trainer.iteration >= target:  # the final checkpoint is in the cache: nothing to train
            self._report("train", self._trainer.iteration, target, "trained model reused (cached): inference only")
            self.model.eval()
        else:
            self._trainer.run(iterations)
        self.timings["train"] = time.perf_counter() - t0
        self.trained_iterations = self._trainer.iteration
        self.history = self._trainer.history
        return self

    def _make_trainer(self, target: int) -> Trainer:
        cfg, dev = self.cfg, self.device
        self.model = self.build_model()
        images = self._images()
        fg = torch.from_numpy(self.fg).to(dev) if self.fg is not None else None
        fg_flow = self.fg
        if self.fg is not None and self.flow_wh != self.work_wh:  # tracklets sample foreground on their raster
            import cv2

            fg_flow = np.stack([cv2.resize(m.astype(np.uint8), self.flow_wh, interpolation=cv2.INTER_NEAREST)
                                for m in self.fg]).astype(bool)
        flow = TrackletSource(self.corr, fg_flow, device=dev, seed=self.seed,
                              scale=None if self.flow_wh == self.work_wh else self.flow_to_work)
        bb = None
        if self.bb_pairs is not None and len(self.bb_pairs):
            b = self.bb_pairs
            bb = PairPool(b.t_i, b.xy_i, b.t_j, b.xy_j, b.w, device=dev)
            bb.set_foreground(fg)
        if len(flow) == 0:
            raise ShotError("optical flow found no reliable correspondences to train on (static or blank shot?)",
                            where=str(self.shot.source))
        settings = self.train_settings()
        ckey = ShotCache.key("checkpoints", settings)
        self.keys["checkpoints"] = ckey

        def save(it: int, state: dict[str, Any]) -> None:
            self.cache.save_checkpoint(ckey, it, {**state, "settings": settings})

        trainer = Trainer(self.model, TrainData(images, self.dino, fg, flow, bb), cfg, seed=self.seed, save=save,
                          progress=self.progress, cancel=self.cancel)
        st = self.cache.latest_checkpoint(ckey, settings, at_most=target)
        if st is not None:
            trainer.load_state_dict(st)
            log.info("resuming training at iteration %d", trainer.iteration)
        return trainer

    def load_checkpoint(self, path: str | Path) -> "ShotTracker":
        """Use an explicit checkpoint file (CacheError when it was made with other settings)."""
        if self.frames is None:
            self.prepare()
        st = read_checkpoint(path, self.train_settings())
        self._trainer = None
        self.model = self.build_model()
        self.model.load_state_dict(st["model"])
        self.model.eval()
        self.trained_iterations = int(st["iteration"])
        self.store = None
        return self

    # ------------------------------------------------------------------ inference
    def _ensure_store(self) -> FeatureStore:
        if self.model is None:
            self.train()
        if self.store is None:
            t0 = time.perf_counter()
            key = self._rows_key("refined")
            hit = self.cache.load("refined", key) if key else None
            if hit is not None:  # the trained model's features of every frame (a correction run)
                dtype = torch.float16 if self.device.type == "cuda" else torch.float32
                self.store = FeatureStore(torch.from_numpy(hit[0]["phi"]).to(self.device, dtype),
                                          torch.from_numpy(hit[0]["inv_norm"]).to(self.device), self.grid())
                self._report("refine", 1, 1, "cached")
            else:
                self.store = build_store(self.model, self._images(), self.dino, chunk=self.cfg.infer.frame_chunk,
                                         progress=self.progress, cancel=self.cancel)
                if key and self.store.phi.numel() * self.store.phi.element_size() <= REFINED_CACHE_MAX_BYTES:
                    self.cache.save("refined", key, {"phi": self.store.phi.cpu().numpy(),  # as computed: exact
                                                     "inv_norm": self.store.inv_norm.cpu().numpy()})
            self.timings["refine_features"] = time.perf_counter() - t0
        return self.store

    def features(self, t: int) -> tuple[np.ndarray, np.ndarray, Resize]:
        """Refined feature map of image ``t``: (float32 ``[C, h, w]``, cell centres ``[h*w, 2]`` (x, y)
        WORKING px, the plate<->working :class:`Resize`). Trains first if needed."""
        if not 0 <= int(t) < self.T:
            raise InputError(f"image index {t} outside 0..{self.T - 1}", where=str(self.shot.source))
        store = self._ensure_store()
        f = store.phi[int(t)].float().cpu().numpy()
        return f, self.grid().centres().numpy().astype(np.float64), self.resize

    def _learned(self, qs: list[Query]):
        """The learned tracker on checked queries -> (store, t_q ``[N]``, xy_q ``[N, 2]`` working px,
        q_feat ``[N, C]``, xy ``[N, T, 2]`` working px)."""
        store = self._ensure_store()
        cfg, dev = self.cfg, self.device
        t_q = torch.tensor([q.t for q in qs], dtype=torch.long, device=dev)
        xy_w = self.resize.to_working(np.array([[q.x, q.y] for q in qs], dtype=np.float64))
        xy_q = torch.tensor(xy_w, dtype=torch.float32, device=dev)
        t0 = time.perf_counter()
        q_feat = store.sample(t_q, xy_q)
        xy, _ = track_points(self.model, store, t_q, xy_q, cfg.infer.query_chunk, cfg.infer.frame_chunk,
                             q_feat=q_feat, progress=self.progress, cancel=self.cancel)
        self.timings["infer"] = time.perf_counter() - t0
        return store, t_q, xy_q, q_feat, xy

    def flow_signals(self, queries: list[Query]):
        """What the flow-guided visibility rule reads for ``queries`` (plate px), drift-corrected as the
        settings say -> :class:`.infer.flow_guided.FlowGuidedSignals` (working px); for analysis and benchmarks
        (``benchmarks/occlusion_sweep.py``). Needs a flow (any preset but ``raw-dino``)."""
        if self.flow is None:
            self.prepare()
        if self.flow is None:
            raise ConfigError(f"preset {self.cfg.name!r} computes no optical flow (raw DINO baseline): no flow "
                              "signals", where="flow_signals")
        qs = _check_queries(queries, self.shot)
        return self._flow_guided_signals(*self._learned(qs))

    def _flow_guided_signals(self, store, t_q, xy_q, q_feat, xy):
        """:func:`.infer.flow_guided.flow_guided_signals` with this shot's flow and settings (``_learned``'s outputs in).
        Drift correction's direct flows are DIS whatever chained the shot (seeded by that chain), so RAFT's
        params are not passed on to them."""
        from .infer.flow_guided import flow_guided_signals

        cfg = self.cfg
        dis_params = cfg.flow.params if cfg.flow.method == "dis" else None
        return flow_guided_signals(self.flow, Resize(self.work_wh, self.flow_wh), store, t_q, xy_q, q_feat, xy,
                                   self.flow_frames, cfg.infer.drift_correct, cfg.infer.drift_margin, dis_params,
                                   self.progress, self.cancel, cfg.infer.drift_radius,
                                   cfg.infer.drift_radius_per_px)

    def refine_plate(self, qs: list[Query], xy: np.ndarray, visible: np.ndarray, conf: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sub-pixel pattern refinement at plate resolution, then re-acquisition after occlusion (the
        ``refine.*`` settings; :mod:`.infer.refine`, :mod:`.infer.reacquire`). xy float ``[N, T, 2]`` PLATE
        px, visible bool ``[N, T]``, conf ``[N, T]`` in and out; the query's own image stays the query
        (visible, confidence 1). The search radius follows the raster the coarse track came from (the
        flow's when flow-guided, else the working raster). Keeps the last result in ``self.refined``."""
        from .infer.reacquire import ReacquireSettings, reacquire
        from .infer.refine import GreyFrames, RefineSettings, auto_search_radius, refine_tracks

        cfg = self.cfg
        raster_w = self.flow_wh[0] if cfg.infer.flow_guided and self.flow is not None else self.work_wh[0]
        radius = cfg.refine.search_radius
        radius = float(radius) if radius is not None else auto_search_radius(self.shot.size[0] / raster_w)
        frames = GreyFrames(self.shot, int(cfg.refine.memory_mb) << 20)
        t_q = np.array([q.t for q in qs], np.int64)
        xy_q = np.array([[q.x, q.y] for q in qs], np.float64)
        t0 = time.perf_counter()
        r = refine_tracks(frames, xy, visible, conf, t_q, xy_q, RefineSettings.from_config(cfg, radius),
                          progress=self.progress, cancel=self.cancel)
        self.timings["plate_refine"] = time.perf_counter() - t0
        if cfg.refine.reacquire:
            t0 = time.perf_counter()
            ra = cfg.refine.reacquire_radius
            r, _ = reacquire(frames, r, xy, t_q, ReacquireSettings.from_config(cfg, radius if ra is None else ra),
                             progress=self.progress, cancel=self.cancel, coarse_visible=visible)
            self.timings["reacquire"] = time.perf_counter() - t0
        self.refined = r
        return r.xy, r.visible, r.confidence

    def _anchor_rows(self, qs: list[Query]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every anchor followed through the shot as a query of its own -> (xy ``[K, T, 2]`` PLATE px, visible
        ``[K, T]``, confidence ``[K, T]``), unpinned. Rows of this trained model already in the cache (the
        same anchor ``t, x, y``, settings and model) are read from it; only new anchors are tracked, so a
        correction run tracks just the corrections."""
        key = self._rows_key()
        got = self.cache.load("rows", key) if key else None
        have = {}
        if got is not None:
            a = got[0]
            have = {(int(t), float(x), float(y)): i for i, (t, (x, y)) in enumerate(zip(a["t"], a["xy_q"]))}
        idx = [have.get((int(q.t), float(q.x), float(q.y))) for q in qs]
        new = [q for q, i in zip(qs, idx) if i is None]
        if got is not None and len(new) < len(qs):
            self._report("infer", 0, 1, f"{len(qs) - len(new)} of {len(qs)} anchors from the cache, "
                                        f"tracking {len(new)}")
        K, T = len(qs), self.T
        xy = np.full((K, T, 2), np.nan)
        vis = np.zeros((K, T), bool)
        conf = np.zeros((K, T), np.float32)
        for k, i in enumerate(idx):
            if i is not None:
                xy[k], vis[k], conf[k] = got[0]["xy"][i], got[0]["visible"][i], got[0]["confidence"][i]
        if not new:
            return xy, vis, conf
        n_xy, n_vis, n_conf = self._track_rows(new)
        sel = [k for k, i in enumerate(idx) if i is None]
        xy[sel], vis[sel], conf[sel] = n_xy, n_vis, n_conf
        if key:  # the table grows by the new anchors
            old = got[0] if got is not None else None

            def cat(name, v):
                return v if old is None else np.concatenate([old[name], v])

            self.cache.save("rows", key, {"t": cat("t", np.array([q.t for q in new], np.int64)),
                                          "xy_q": cat("xy_q", np.array([[q.x, q.y] for q in new], np.float64)),
                                          "xy": cat("xy", n_xy), "visible": cat("visible", n_vis),
                                          "confidence": cat("confidence", n_conf)})
        return xy, vis, conf

    def _rows_key(self, stage: str = "rows") -> str | None:
        """Cache key of ``stage`` (``rows``: tracked anchors; ``refined``: the refined features) of this
        trained model and settings (None: no cache or no model trained through the cache)."""
        model = self.keys.get("features") if self.cfg.raw_dino else self.keys.get("checkpoints")
        if not self.cache.enabled or model is None or self._trainer is None and not self.cfg.raw_dino:
            return None
        config = self.cfg.to_dict()
        extra = {}
        if stage == "refined":  # the refined features do not depend on plate refinement (inference only)
            config.pop("refine", None)
        else:
            extra["rows_version"] = ROWS_VERSION
        return ShotCache.key(stage, {"config": config, "seed": self.seed,
                                      "iterations": self.trained_iterations, **extra},
                             [self.cache.shot_key, model, self.keys.get("flow", "none")])

    def _track_rows(self, qs: list[Query]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The tracker on anchor rows ``qs`` -> (xy PLATE px ``[K, T, 2]``, visible ``[K, T]``, confidence)."""
        cfg = self.cfg
        store, t_q, xy_q, q_feat, xy = self._learned(qs)
        t0 = time.perf_counter()
        if cfg.infer.flow_guided and self.flow is not None:  # (anchor frames: set by anchor_tracks)
            from .infer.flow_guided import flow_guided_visibility

            sig = self._flow_guided_signals(store, t_q, xy_q, q_feat, xy)
            xy = sig.xy
            vis, conf = flow_guided_visibility(sig, t_q, fb_thresh=cfg.flow.fb_thresh,
                                               agree_px=cfg.infer.flow_agree_px, visible_cos=cfg.infer.visible_cos,
                                               occ_fb_scale=cfg.infer.occlusion_fb_scale,
                                               fail_run=cfg.infer.occlusion_fail_run, gone_ncc=cfg.infer.gone_ncc,
                                               gone_run=cfg.infer.gone_run)
        elif cfg.infer.occlusion:
            vis, conf, _ = occlusion(self.model, store, xy, t_q, q_feat, cfg.infer.anchor_cos,
                                     cfg.infer.visible_cos, progress=self.progress, cancel=self.cancel)
        else:
            from .infer.occlusion import trajectory_cosine

            cos, _ = trajectory_cosine(store, xy, q_feat)
            vis = cos >= cfg.infer.visible_cos
            conf = cos.clamp(0, 1)
        self.timings["occlusion"] = time.perf_counter() - t0
        xy_p = self.resize.to_plate(xy.double().cpu().numpy())
        vis_p, conf_p = vis.cpu().numpy(), conf.float().cpu().numpy()
        if cfg.refine.enabled:  # sub-pixel refinement at plate resolution (each row's own frame: its anchor)
            xy_p, vis_p, conf_p = self.refine_plate(qs, xy_p, vis_p, conf_p)
        return xy_p, vis_p, conf_p

    def infer(self, queries: list[Query]) -> TrackSet:
        """Track ``queries`` (plate px) through the whole shot -> :class:`TrackSet` in plate px. Queries
        that share a name are one track with several anchors (module docstring)."""
        lay = anchoring.layout(_check_queries(queries, self.shot), self.shot.frame_of)
        fr = np.asarray(self.shot.frame_numbers)
        if not lay.rows:
            return TrackSet.empty(fr, self.shot.size)
        if lay.n_corrections:
            n_fix, n_tr = lay.n_corrections, sum(len(a) > 1 for a in lay.anchors)
            self._report("infer", 0, 1, f"{n_fix} correction{'s' * (n_fix != 1)} on {n_tr} "
                                        f"track{'s' * (n_tr != 1)}: every anchor is tracked")
        xy_p, vis_p, conf_p = anchoring.anchor_tracks(*self._anchor_rows(list(lay.rows)), lay)
        cfg = self.cfg
        names = unique_names([q.name for q in lay.queries])
        out_q = [Query(q.t, q.x, q.y, nm, q.group) for q, nm in zip(lay.queries, names)]
        out_a = [tuple(Query(a.t, a.x, a.y, nm, q.group) for a in anchors)
                 for q, nm, anchors in zip(lay.queries, names, lay.anchors)]
        meta = {"tracker": {"preset": cfg.name, "backbone": cfg.backbone, "iterations": self.trained_iterations,
                            "working_size": list(self.work_wh), "settings": settings_hash(cfg.to_dict()),
                            "seed": self.seed, "config": cfg.to_dict()}}
        return TrackSet(xy_p, vis_p, conf_p, names, out_q, fr, self.shot.size, meta=meta,
                        fps=getattr(self.shot, "fps", None), timecode=getattr(self.shot, "timecode", None),
                        anchors=out_a)


def track(shot, queries: list[Query], *, preset: str | Path | dict = "cpu-preview",
          masks: dict[int, np.ndarray] | None = None, cache_dir: Path | None = None, device: str | None = None,
          seed: int = 0, progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> TrackSet:
    """Prepare, train and track in one call (see module docstring)."""
    _check_queries(queries, shot)
    st = ShotTracker(shot, preset, masks=masks, cache_dir=cache_dir, device=device, seed=seed, progress=progress,
                     cancel=cancel)
    st.prepare()
    st.train()
    return st.infer(queries)


# ---------------------------------------------------------------------- validation
def _check_queries(queries, shot) -> list[Query]:
    out = []
    W, H = shot.size
    for i, q in enumerate(queries or []):
        if not isinstance(q, Query):
            raise InputError(f"query {i}: expected a Query(t, x, y, name, group), got {type(q).__name__}")
        label = q.name or f"query {i}"
        if not 0 <= int(q.t) < shot.n_images:
            raise InputError(f"{label}: t={q.t} is not an image index of the shot (0..{shot.n_images - 1})")
        if not (np.isfinite(q.x) and np.isfinite(q.y)) or not bool(in_plate(np.array([q.x, q.y]), (W, H))):
            raise InputError(f"{label}: point ({q.x:g}, {q.y:g}) at frame {shot.frame_of(int(q.t))} is outside the "
                             f"{W}x{H} plate")
        out.append(q)
    return out


def _check_masks(masks, shot) -> dict[int, np.ndarray]:
    if not masks:
        return {}
    W, H = shot.size
    out = {}
    for t, m in masks.items():
        if not isinstance(t, (int, np.integer)) or not 0 <= int(t) < shot.n_images:
            raise InputError(f"mask key {t!r} is not an image index of the shot (0..{shot.n_images - 1})")
        a = np.asarray(m)
        if a.shape != (H, W):
            raise InputError(f"mask for frame {shot.frame_of(int(t))} is {a.shape[1] if a.ndim > 1 else '?'}x"
                             f"{a.shape[0]}, the plate is {W}x{H}")
        out[int(t)] = a.astype(np.int32, copy=False)
    return out
