"""Tracker settings: one typed pydantic model (sections :class:`Delta`, :class:`Flow`, :class:`BestBuddies`,
:class:`Foreground`, :class:`Train`, :class:`Infer`, :class:`Refine`), validated field by field.

The field defaults are the paper's values (docs/method.md; :data:`DEFAULTS` is their dict form); presets
(``presets/*.yaml``) and user files override any subset. Every problem is a :class:`ConfigError` naming the
dotted field, e.g. ``balanced.yaml: train.iterations: must be an integer in 1..10000000, got -5``.

Access: ``cfg.train.iterations`` (typed) or ``cfg["train.iterations"]`` (the dotted name; same value).

Settings that change *what* a cache stage produces are hashed per stage (:meth:`TrackerConfig.stage_settings`):
a field joins a stage's key with ``stages=(...)`` in its declaration (:func:`_f`); a whole section joins with
``stages`` on the section's field in :class:`TrackerConfig`. Purely operational settings (progress, chunk
sizes, checkpoint interval) name no stage.

Adding a setting is one line in its section class: ``new_field: int = _f(3, ge=1, le=9)`` (plus
``stages=("model",)`` when it changes a cache stage's content; a field of a section that is hashed whole
- ``train``, ``delta``, ``foreground`` - is in that stage's key already, which invalidates those caches).
A new section is a class here and one field of :class:`TrackerConfig`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Annotated, Any, Literal, Optional, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ..errors import ConfigError
from ..typed import Number, model_of, one_line

BACKBONE_DIMS = {"dinov2_vits14": 384, "dinov2_vitb14": 768, "dinov2_vitl14": 1024, "dinov2_vitg14": 1536}
BACKBONE_DEPTH = {"dinov2_vits14": 12, "dinov2_vitb14": 12, "dinov2_vitl14": 24, "dinov2_vitg14": 40}
STAGES = ("flow", "correspondences", "features", "foreground", "best_buddies", "model", "train")

_PATH = "a path (text) or null"
Backbone = Literal["none", "dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14"]
FlowMethod = Literal["dis", "raft_small", "raft_large"]
FgSource = Literal["auto", "masks", "saliency", "all"]
BACKBONES, FLOW_METHODS, FG_SOURCES = get_args(Backbone), get_args(FlowMethod), get_args(FgSource)


def _f(default: Any = ..., *, stages: tuple[str, ...] = (), **constraints: Any) -> Any:
    """A settings field: ``default``, pydantic ``constraints`` (ge, le, min_length, default_factory) and the
    cache ``stages`` whose content it decides."""
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise ValueError(f"unknown cache stage {bad[0]!r} (known: {', '.join(STAGES)})")
    extra = {"stages": list(stages)} if stages else None
    if "default_factory" in constraints:
        return Field(json_schema_extra=extra, **constraints)
    return Field(default, json_schema_extra=extra, **constraints)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, validate_default=False)

    def __getitem__(self, dotted: str) -> Any:
        """``cfg["train.iterations"]`` == ``cfg.train.iterations`` (``cfg.train["iterations"]`` too); a
        section comes back as a dict."""
        v: Any = self
        for k in dotted.split("."):
            if not isinstance(v, BaseModel) or k not in type(v).model_fields:
                raise KeyError(dotted)
            v = getattr(v, k)
        return v.model_dump() if isinstance(v, BaseModel) else copy.deepcopy(v)


class Delta(_Section):
    enabled: bool = _f(True)  # false: the raw-DINO baseline (Phi = Phi_DINO, no refiner, no training)
    hidden: Annotated[list[Annotated[int, Field(ge=1, le=4096)]], Field(min_length=1)] = _f(
        default_factory=lambda: [64, 128, 256])    # channels of layers 1-3
    out_channels: Optional[int] = _f(None, ge=1, le=8192)  # C; None = the DINO dimension (required when
                                                           # backbone is none)
    kernel: Literal[3, 5, 7] = _f(5)


class Flow(_Section):
    method: FlowMethod = _f("raft_large", stages=("flow",))
    weights: Optional[str] = _f(None, stages=("flow",), description=_PATH)
    height: Optional[int] = _f(None, ge=16, le=8192, stages=("flow",))  # flow raster height (null: the working
                                                                        # raster; never above the plate)
    fb_thresh: Number = _f(1.5, ge=0.0, le=100.0, stages=("correspondences",))  # px, forward-backward check
                                                                                # of chained flow
    drift_thresh: Number = _f(2.5, ge=0.0, le=100.0, stages=("correspondences",))  # px, direct-flow drift filter
                                                                                   # (paper 2, public config 2.5)
    drift_pairs: Literal["dyadic", "start", "none"] = _f("dyadic", stages=("correspondences",))  # which direct flows
                                                                                   # check drift (tracklets.DRIFT_PAIRS)
    seed_step: int = _f(1, ge=1, le=64, stages=("correspondences",))  # px between tracklet seeds (1: every pixel)
    params: dict[Any, Any] = _f(default_factory=dict, stages=("flow",))  # engine settings (DIS: see
                                                                         # flow.DIS_DEFAULTS; RAFT: iters)


class BestBuddies(_Section):
    enabled: bool = _f(True, stages=("best_buddies",))
    nms_box: int = _f(30, ge=1, le=1000, stages=("best_buddies",))  # px (paper 60, public config 30)
    nms_iou: Number = _f(0.2, ge=0.0, le=1.0, stages=("best_buddies",))
    sig_a: Number = _f(27.0, ge=-1e3, le=1e3, stages=("best_buddies",))
    sig_b: Number = _f(-5.7, ge=-1e3, le=1e3, stages=("best_buddies",))
    mine_refined: bool = _f(True, stages=("train",))  # L_rfn_bb: mutual nearest neighbours of the refined features
    max_pairs: Optional[int] = _f(None, ge=1, le=100_000_000, stages=("best_buddies",))  # frame pairs mined
                                                                                # (null: all T(T-1)/2, as the paper)


class Foreground(_Section):
    source: FgSource = _f("auto")                 # auto: user masks if given, else DINO saliency (weight-free: all)
    saliency_layer: Optional[int] = _f(None, ge=0, le=39)  # block of the saliency features (null: the backbone's
                                                           # last; ViT-L: 23)
    saliency_threshold: Number = _f(0.6, ge=0.0, le=1.0)


class Train(_Section):
    iterations: int = _f(10000, ge=1, le=10_000_000)
    lr: Number = _f(0.01, ge=1e-9, le=10.0)
    refiner_gamma: Number = _f(0.999, ge=0.0, le=1.0)
    refiner_every: int = _f(40, ge=1, le=10_000_000)
    frames_per_step: int = _f(8, ge=2, le=1024)
    flow_pairs: int = _f(512, ge=1, le=1_000_000)
    flow_fg_ratio: Number = _f(0.5, ge=0.0, le=1.0)
    bb_pairs: int = _f(1024, ge=0, le=1_000_000)
    bb_fg_ratio: Number = _f(0.7, ge=0.0, le=1.0)
    cyc_frame_pairs: int = _f(4, ge=0, le=1024)
    cyc_points_per_pair: int = _f(256, ge=0, le=1_000_000)
    cyc_fg_ratio: Number = _f(0.7, ge=0.0, le=1.0)
    cyc_thresh: Number = _f(4.0, ge=0.0, le=1e4)  # px (working)
    cyc_gamma: Number = _f(0.8, ge=0.0, le=1.0)
    tau: Number = _f(0.1, ge=1e-6, le=100.0)
    div_dino_bb: Number = _f(700.0, ge=1e-6, le=1e9)
    div_rfn_bb: Number = _f(900.0, ge=1e-6, le=1e9)
    rfn_after: Number = _f(0.5, ge=0.0, le=1.0)  # fraction of iterations after which L_rfn_bb and L_rfn_cc switch on
    lambda_dino_bb: Number = _f(25e-5, ge=0.0, le=1e6)
    lambda_rfn_bb: Number = _f(5e-5, ge=0.0, le=1e6)
    lambda_cyc: Number = _f(0.5, ge=0.0, le=1e6)
    lambda_norm: Number = _f(1e-4, ge=0.0, le=1e6)
    lambda_angle: Number = _f(1e-4, ge=0.0, le=1e6)
    checkpoint_every: int = _f(2500, ge=1, le=10_000_000)


class Infer(_Section):
    argmax_radius: Number = _f(35.0, ge=0.5, le=1e4, stages=("model",))  # px of the working raster
    occlusion: bool = _f(True)
    anchor_cos: Number = _f(0.7, ge=-1.0, le=1.0)
    visible_cos: Number = _f(0.6, ge=-1.0, le=1.0)
    query_chunk: int = _f(256, ge=1, le=1_000_000)
    frame_chunk: int = _f(32, ge=1, le=1_000_000)
    flow_guided: bool = _f(False)       # weight-free aid: positions from chained flow, visibility helped by the
    flow_agree_px: Number = _f(6.0, ge=0.0, le=1e4)  # learned tracker (tracker/infer/flow_guided.py); agreement
                                                     # radius, working px
    occlusion_fb_scale: Number = _f(5.0, ge=0.0, le=1e4)  # flow-guided: a step fails at FB error >= this x
                                                          # flow.fb_thresh (flow px)
    occlusion_fail_run: int = _f(2, ge=1, le=1_000_000)   # and this many failed steps in a row end the chain's "alive"
    drift_correct: bool = _f(False)     # needs flow_guided: direct DIS flow (any flow.method) from the query image
    drift_margin: Number = _f(0.5, ge=-2.0, le=2.0)  # replaces drifted chained positions where its patch NCC is
                                                     # higher by this (tracker/infer/drift.py)
    drift_radius: Number = _f(4.0, ge=0.0, le=1e6)   # and it lies within this many flow px of the chained prediction
    drift_radius_per_px: Number = _f(0.1, ge=0.0, le=1e6)  # plus this fraction of the px the chain has moved since
                                                           # its last anchor
    gone_ncc: Number = _f(-1.0, ge=-2.0, le=2.0)     # flow-guided: occluded where the patch NCC with the query's
                                                     # averages below this (-1: never, the default)
    gone_run: int = _f(8, ge=1, le=1_000_000)        # over this many images in a row (pattern gone; flow_guided.py)


class Refine(_Section):
    """Sub-pixel pattern refinement at plate resolution and re-acquisition (tracker/infer/refine.py,
    reacquire.py); inference only: no cache stage's key."""

    enabled: bool = _f(True)
    patch_radius: int = _f(10, ge=2, le=64)          # plate px: the pattern is (2 r + 1)^2 plate pixels
    shutter: Number = _f(0.5, ge=0.0, le=1.0)        # exposure / frame interval (0.5: 180 deg): a fast mover's
                                                     # pattern grows past its motion blur (0: never)
    warp: Literal["translation", "affine"] = _f("affine")
    search_radius: Optional[Number] = _f(None, ge=0.5, le=1000.0)  # plate px around the coarse track (null: 4 px
                                                     # of the coarse track's raster, at least 6)
    iterations: int = _f(20, ge=1, le=200)           # Lucas-Kanade iterations (each stage: translation, affine)
    min_zncc: Number = _f(0.97, ge=-1.0, le=1.0)     # a match below this keeps the coarse position (min_zncc,
                                                     # reacquire_zncc: leave-one-out on synthetic scenes,
                                                     # benchmarks/refine_sweep.py)
    hide_zncc: Number = _f(0.5, ge=-1.0, le=1.0)     # a visible point whose best match stays below this for
    hide_run: int = _f(3, ge=1, le=1_000_000)        # hide_run images in a row becomes hidden there (shorter
                                                     # dips: kept, confidence low; benchmarks/refine_davis.py)
    key_zncc: Number = _f(0.9, ge=-1.0, le=1.0)      # a match of the query pattern at or above this makes the
                                                     # next key pattern
    reacquire: bool = _f(True)                       # predict hidden points from neighbours, resume them
    reacquire_radius: Optional[Number] = _f(None, ge=0.5, le=1000.0)  # plate px (null: the search radius)
    reacquire_zncc: Number = _f(0.9, ge=-1.0, le=1.0)  # a hidden point resumes where its pattern matches this
    neighbours: int = _f(12, ge=1, le=1000)          # tracks in the neighbour fit
    memory_mb: int = _f(1024, ge=0, le=1_000_000)    # grey plate images kept in memory (beyond: read again)


class TrackerConfig(_Section):
    """All tracker settings. ``source``: the file (or ``<settings>``) they came from, for messages."""

    name: str = _f("custom")
    description: str = _f("")
    backbone: Backbone = _f("dinov2_vitl14", stages=("features", "model"))  # or "none": weight-free
                                        # (Delta CNN alone, the paper's w/o-DINO ablation)
    registers: bool = _f(False, stages=("features", "model"))
    layer: int = _f(15, ge=0, le=39, stages=("features", "model"))  # 0-based transformer block of the features
    stride: int = _f(7, ge=1, le=14, stages=("features", "model"))  # patch-embedding stride (14 -> 7)
    weights: Optional[str] = _f(None, stages=("features",), description=_PATH)  # DINOv2 checkpoint file (None:
                                        # the standard search of weights.py; "random": random weights, for
                                        # benchmarks and tests only)
    working_height: int = _f(476, ge=32, le=4096)  # working raster height (DINO: a multiple
                                                                        # of 14 is used)
    features_dtype: Literal["float16", "bfloat16", "float32"] = _f("float16", stages=("features",))  # how
                                        # precomputed DINO maps are stored
    amp: bool = _f(True, stages=("train",))  # bf16 autocast for the ViT / CNN and low-precision cost volumes on CUDA
    windowed_head: bool = _f(True)      # refine only the window around the argmax (false: whole map, same result)
    delta: Delta = _f(default_factory=Delta, stages=("model",))
    refiner: bool = _f(True, stages=("model",))
    flow: Flow = _f(default_factory=Flow)
    best_buddies: BestBuddies = _f(default_factory=BestBuddies)
    foreground: Foreground = _f(default_factory=Foreground, stages=("foreground",))
    train: Train = _f(default_factory=Train, stages=("train",))
    infer: Infer = _f(default_factory=Infer)
    refine: Refine = _f(default_factory=Refine)

    _source: str = PrivateAttr(default="<settings>")

    @model_validator(mode="after")
    def _cross_field(self) -> "TrackerConfig":
        """Rules between fields (a ValueError here becomes ``where: field: message``)."""
        from .preprocess.flow import check_params  # the flow engines own their settings

        try:
            check_params(self.flow.method, self.flow.params, where=None)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        if self.infer.drift_correct and not self.infer.flow_guided:
            raise ValueError("infer.drift_correct: corrects the flow-guided tracks; set infer.flow_guided true too")
        if self.backbone == "none":
            if not self.delta.enabled:
                raise ValueError("delta.enabled: weight-free mode (backbone none) needs the Delta CNN")
            if self.delta.out_channels is None:
                raise ValueError("delta.out_channels: must be set (e.g. 64) when backbone is none")
            if self.flow.method != "dis":
                raise ValueError("flow.method: weight-free mode (backbone none) uses dis")
            return self
        depth = BACKBONE_DEPTH[self.backbone]
        if self.layer >= depth:
            raise ValueError(f"layer: {self.backbone} has blocks 0..{depth - 1}, got {self.layer}")
        sl = self.foreground.saliency_layer
        if sl is not None and sl >= depth:
            raise ValueError(f"foreground.saliency_layer: {self.backbone} has blocks 0..{depth - 1}, got {sl}")
        oc = self.delta.out_channels
        if oc is not None and oc != BACKBONE_DIMS[self.backbone]:
            raise ValueError(f"delta.out_channels: must equal the {self.backbone} dimension "
                             f"{BACKBONE_DIMS[self.backbone]} (or null), got {oc}")
        if self.working_height < 14:
            raise ValueError("working_height: must be >= 14 with a DINO backbone")
        if not self.delta.enabled and self.refiner:
            raise ValueError("refiner: the raw-DINO baseline (delta.enabled false) has no refiner; set it false")
        return self

    @classmethod
    def from_dict(cls, over: dict[str, Any] | None, where: str = "<settings>", base: dict | None = None
                  ) -> "TrackerConfig":
        """``over`` merged over ``base`` (default: :data:`DEFAULTS`; sections merge field by field, a
        mapping-valued field such as ``flow.params`` is replaced whole), validated."""
        if over is not None and not isinstance(over, dict):
            raise ConfigError(f"settings must be a mapping, got {type(over).__name__}", where=where)
        d = _merged(cls, base if base is not None else DEFAULTS, over or {})
        try:
            cfg = cls.model_validate(d)
        except ValidationError as e:
            raise ConfigError(one_line(e, cls, d), where=where) from None
        cfg._source = where
        return cfg

    @property
    def source(self) -> str:
        return self._source

    @property
    def data(self) -> dict[str, Any]:
        """The settings as a plain nested dict (a copy)."""
        return self.model_dump()

    @property
    def weight_free(self) -> bool:
        return self.backbone == "none"

    @property
    def raw_dino(self) -> bool:
        """The raw-DINO baseline: no Delta-DINO, no refiner, nothing to train."""
        return not self.delta.enabled

    @property
    def feature_dim(self) -> int:
        if self.weight_free:
            return int(self.delta.out_channels)
        return BACKBONE_DIMS[self.backbone]

    def rfn_start(self) -> int:
        """First iteration of L_rfn_bb and L_rfn_cc (``rfn_after`` x iterations, 5k of 10k in the paper)."""
        return int(round(self.train.rfn_after * self.train.iterations))

    def stage_settings(self, stage: str) -> dict[str, Any]:
        """The settings that decide ``stage``'s cache content, by dotted name (:data:`STAGE_FIELDS`)."""
        return {f: self[f] for f in STAGE_FIELDS[stage]}

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


# ----------------------------------------------------------------------------- helpers
def _stages_of(fi: Any) -> list[str]:
    return list((fi.json_schema_extra or {}).get("stages", ())) if isinstance(fi.json_schema_extra, dict) else []


def _stage_fields() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {s: [] for s in STAGES}
    for name, fi in TrackerConfig.model_fields.items():
        for s in _stages_of(fi):
            out[s].append(name)
        sec = model_of(fi.annotation)
        for sub, sfi in (sec.model_fields.items() if sec else ()):
            for s in _stages_of(sfi):
                out[s].append(f"{name}.{sub}")
    return {s: tuple(v) for s, v in out.items()}


def _merged(model: type[BaseModel], base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        fi = model.model_fields.get(k) if isinstance(k, str) else None
        sec = model_of(fi.annotation) if fi is not None else None
        if sec is not None and isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merged(sec, out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


DEFAULTS: dict[str, Any] = TrackerConfig.model_construct().model_dump()  # the paper's values
# which settings decide each cache stage's content (besides the stage's inputs), from the stages= marks
STAGE_FIELDS: dict[str, tuple[str, ...]] = _stage_fields()


def settings_hash(obj: Any, n: int = 16) -> str:
    """Stable short hash of JSON-able settings (sorted keys)."""
    txt = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(txt.encode()).hexdigest()[:n]


def diff_settings(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted fields that differ between two settings dicts (for cache error messages)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += diff_settings(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {a!r} vs {b!r}"]
