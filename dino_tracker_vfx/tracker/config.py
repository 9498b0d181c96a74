"""Tracker settings: one nested dict with a fixed schema, validated field by field.

``DEFAULTS`` holds the paper's values (METHOD.md); presets (``presets/*.yaml``) and user files override
any subset. Every problem is a :class:`ConfigError` naming the dotted field, e.g.
``balanced.yaml: train.iterations: must be an integer >= 1, got -5``.

Settings that change *what* a cache stage produces are hashed per stage (:meth:`TrackerConfig.stage_settings`);
purely operational ones (progress, chunk sizes, checkpoint interval) are not.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

BACKBONES = ("none", "dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14")
BACKBONE_DIMS = {"dinov2_vits14": 384, "dinov2_vitb14": 768, "dinov2_vitl14": 1024, "dinov2_vitg14": 1536}
BACKBONE_DEPTH = {"dinov2_vits14": 12, "dinov2_vitb14": 12, "dinov2_vitl14": 24, "dinov2_vitg14": 40}
FLOW_METHODS = ("dis", "raft_small", "raft_large")
FG_SOURCES = ("auto", "masks", "saliency", "all")

DEFAULTS: dict[str, Any] = {
    "name": "custom",
    "description": "",
    "backbone": "dinov2_vitl14",   # or "none": weight-free (Delta CNN alone, the paper's w/o-DINO ablation)
    "registers": False,
    "layer": 15,                   # 0-based transformer block whose tokens are the features
    "stride": 7,                   # patch-embedding stride (14 -> 7 for a denser map)
    "weights": None,               # DINOv2 checkpoint file (None: the standard search of weights.py;
                                   # "random": random weights, for benchmarks and tests only)
    "working_height": 476,         # working raster height (DINO: a multiple of 14 is used)
    "features_dtype": "float16",   # how precomputed DINO maps are stored
    "amp": True,                   # bf16 autocast for the ViT / CNN and low-precision cost volumes on CUDA
    "windowed_head": True,         # refine only the window around the argmax (false: whole map, same result)
    "delta": {
        "enabled": True,           # false: the raw-DINO baseline (Phi = Phi_DINO, no refiner, no training)
        "hidden": [64, 128, 256],  # channels of layers 1-3
        "out_channels": None,      # C; None = the DINO dimension (required when backbone is none)
        "kernel": 5,
    },
    "refiner": True,
    "flow": {
        "method": "raft_large",
        "weights": None,
        "height": None,            # flow raster height (null: the working raster; never above the plate)
        "fb_thresh": 1.5,          # px, forward-backward check of chained flow
        "drift_thresh": 2.5,       # px, direct-flow drift filter (paper 2, public config 2.5)
        "drift_pairs": "dyadic",   # which direct flows check drift (tracklets.DRIFT_PAIRS)
        "seed_step": 1,            # px between tracklet seeds (1: every pixel, as the paper)
        "params": {},              # engine settings (DIS: see flow.DIS_DEFAULTS; RAFT: iters)
    },
    "best_buddies": {
        "enabled": True,
        "nms_box": 30,             # px (paper 60, public config 30)
        "nms_iou": 0.2,
        "sig_a": 27.0,
        "sig_b": -5.7,
        "mine_refined": True,      # L_rfn_bb: mutual nearest neighbours of the refined features
        "max_pairs": None,         # frame pairs mined (null: all T(T-1)/2, as the paper)
    },
    "foreground": {
        "source": "auto",          # auto: user masks if given, else DINO saliency (weight-free: all)
        "saliency_layer": None,    # block of the saliency features (null: the backbone's last; ViT-L: 23)
        "saliency_threshold": 0.6,
    },
    "train": {
        "iterations": 10000,
        "lr": 0.01,
        "refiner_gamma": 0.999,
        "refiner_every": 40,
        "frames_per_step": 8,
        "flow_pairs": 512,
        "flow_fg_ratio": 0.5,
        "bb_pairs": 1024,
        "bb_fg_ratio": 0.7,
        "cyc_frame_pairs": 4,
        "cyc_points_per_pair": 256,
        "cyc_fg_ratio": 0.7,
        "cyc_thresh": 4.0,         # px (working)
        "cyc_gamma": 0.8,
        "tau": 0.1,
        "div_dino_bb": 700.0,
        "div_rfn_bb": 900.0,
        "rfn_after": 0.5,          # fraction of iterations after which L_rfn_bb and L_rfn_cc switch on
        "lambda_dino_bb": 25e-5,
        "lambda_rfn_bb": 5e-5,
        "lambda_cyc": 0.5,
        "lambda_norm": 1e-4,
        "lambda_angle": 1e-4,
        "checkpoint_every": 2500,
    },
    "infer": {
        "argmax_radius": 35.0,     # px of the working raster
        "occlusion": True,
        "anchor_cos": 0.7,
        "visible_cos": 0.6,
        "query_chunk": 256,
        "frame_chunk": 32,
        "flow_guided": False,      # weight-free aid: positions from chained flow, visibility helped by the
        "flow_agree_px": 6.0,      #   learned tracker (tracker/fusion.py); agreement radius, working px
        "occlusion_fb_scale": 5.0,  #  flow-guided: a step fails at FB error >= this x flow.fb_thresh (flow px)
        "occlusion_fail_run": 2,   #   and this many failed steps in a row end the chain's "alive"
        "drift_correct": False,    # needs flow_guided: direct DIS flow (any flow.method) from the query image replaces drifted
        "drift_margin": 0.5,       #   chained positions where its patch NCC is higher by this (tracker/drift.py)
        "drift_radius": 4.0,       #   and it lies within this many flow px of the chained prediction
        "drift_radius_per_px": 0.1,  # plus this fraction of the px the chain has moved since its last anchor
        "gone_ncc": -1.0,          # flow-guided: occluded where the patch NCC with the query's averages below this
        "gone_run": 8,             #   over this many images in a row (pattern gone; tracker/fusion.py); -1: off
    },
}

# field -> (kind, constraint). kind: int, float, bool, str, choice, int_list, opt_int, opt_str, dict
RULES: dict[str, tuple] = {
    "name": ("str", None), "description": ("str", None),
    "backbone": ("choice", BACKBONES), "registers": ("bool", None), "layer": ("int", (0, 39)),
    "stride": ("int", (1, 14)), "weights": ("opt_str", None), "working_height": ("int", (32, 4096)),
    "features_dtype": ("choice", ("float16", "bfloat16", "float32")), "amp": ("bool", None),
    "windowed_head": ("bool", None),
    "delta.enabled": ("bool", None), "delta.hidden": ("int_list", (1, 4096)), "delta.out_channels": ("opt_int", (1, 8192)),
    "delta.kernel": ("choice", (3, 5, 7)), "refiner": ("bool", None),
    "flow.method": ("choice", FLOW_METHODS), "flow.weights": ("opt_str", None),
    "flow.height": ("opt_int", (16, 8192)),
    "flow.fb_thresh": ("float", (0.0, 100.0)), "flow.drift_thresh": ("float", (0.0, 100.0)),
    "flow.drift_pairs": ("choice", ("dyadic", "start", "none")), "flow.seed_step": ("int", (1, 64)),
    "flow.params": ("dict", None),
    "best_buddies.enabled": ("bool", None), "best_buddies.nms_box": ("int", (1, 1000)),
    "best_buddies.nms_iou": ("float", (0.0, 1.0)), "best_buddies.sig_a": ("float", (-1e3, 1e3)),
    "best_buddies.sig_b": ("float", (-1e3, 1e3)), "best_buddies.mine_refined": ("bool", None),
    "best_buddies.max_pairs": ("opt_int", (1, 100_000_000)),
    "foreground.source": ("choice", FG_SOURCES), "foreground.saliency_layer": ("opt_int", (0, 39)),
    "foreground.saliency_threshold": ("float", (0.0, 1.0)),
    "train.iterations": ("int", (1, 10_000_000)), "train.lr": ("float", (1e-9, 10.0)),
    "train.refiner_gamma": ("float", (0.0, 1.0)), "train.refiner_every": ("int", (1, 10_000_000)),
    "train.frames_per_step": ("int", (2, 1024)), "train.flow_pairs": ("int", (1, 1_000_000)),
    "train.flow_fg_ratio": ("float", (0.0, 1.0)), "train.bb_pairs": ("int", (0, 1_000_000)),
    "train.bb_fg_ratio": ("float", (0.0, 1.0)), "train.cyc_frame_pairs": ("int", (0, 1024)),
    "train.cyc_points_per_pair": ("int", (0, 1_000_000)), "train.cyc_fg_ratio": ("float", (0.0, 1.0)),
    "train.cyc_thresh": ("float", (0.0, 1e4)), "train.cyc_gamma": ("float", (0.0, 1.0)),
    "train.tau": ("float", (1e-6, 100.0)), "train.div_dino_bb": ("float", (1e-6, 1e9)),
    "train.div_rfn_bb": ("float", (1e-6, 1e9)), "train.rfn_after": ("float", (0.0, 1.0)),
    "train.lambda_dino_bb": ("float", (0.0, 1e6)), "train.lambda_rfn_bb": ("float", (0.0, 1e6)),
    "train.lambda_cyc": ("float", (0.0, 1e6)), "train.lambda_norm": ("float", (0.0, 1e6)),
    "train.lambda_angle": ("float", (0.0, 1e6)), "train.checkpoint_every": ("int", (1, 10_000_000)),
    "infer.argmax_radius": ("float", (0.5, 1e4)), "infer.occlusion": ("bool", None),
    "infer.anchor_cos": ("float", (-1.0, 1.0)), "infer.visible_cos": ("float", (-1.0, 1.0)),
    "infer.query_chunk": ("int", (1, 1_000_000)), "infer.frame_chunk": ("int", (1, 1_000_000)),
    "infer.flow_guided": ("bool", None), "infer.flow_agree_px": ("float", (0.0, 1e4)),
    "infer.occlusion_fb_scale": ("float", (0.0, 1e4)), "infer.occlusion_fail_run": ("int", (1, 1000000)),
    "infer.drift_correct": ("bool", None), "infer.drift_margin": ("float", (-2.0, 2.0)),
    "infer.drift_radius": ("float", (0.0, 1e6)), "infer.drift_radius_per_px": ("float", (0.0, 1e6)),
    "infer.gone_ncc": ("float", (-2.0, 2.0)), "infer.gone_run": ("int", (1, 1000000)),
}

# which settings decide each cache stage's content (besides the stage's inputs)
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "frames": ("working_height", "backbone", "stride"),
    "flow": ("flow.method", "flow.weights", "flow.params", "flow.height"),
    "correspondences": ("flow.fb_thresh", "flow.drift_thresh", "flow.drift_pairs", "flow.seed_step"),
    "features": ("backbone", "registers", "layer", "stride", "weights", "features_dtype"),
    "foreground": ("foreground",),
    "best_buddies": ("best_buddies.enabled", "best_buddies.nms_box", "best_buddies.nms_iou",
                     "best_buddies.sig_a", "best_buddies.sig_b", "best_buddies.max_pairs"),
    "model": ("backbone", "registers", "layer", "stride", "delta", "refiner", "infer.argmax_radius"),
    "train": ("train", "best_buddies.mine_refined", "amp"),
}


def _get(d: dict, dotted: str) -> Any:
    for k in dotted.split("."):
        d = d[k]
    return d


def _merge(base: dict, over: dict, where: str, prefix: str = "") -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        path = f"{prefix}{k}"
        if k not in base:
            near = difflib.get_close_matches(str(k), [str(b) for b in base], n=1)
            hint = f"; did you mean {prefix}{near[0]}?" if near else ""
            raise ConfigError(f"{path}: unknown field{hint}", where=where)
        if isinstance(base[k], dict) and path != "flow.params":
            if not isinstance(v, dict):
                raise ConfigError(f"{path}: must be a mapping of settings, got {type(v).__name__}", where=where)
            out[k] = _merge(base[k], v, where, prefix=f"{path}.")
        else:
            out[k] = copy.deepcopy(v)
    return out


def _check(d: dict, where: str) -> None:
    for path, (kind, c) in RULES.items():
        v = _get(d, path)

        def bad(what: str) -> ConfigError:
            return ConfigError(f"{path}: must be {what}, got {v!r}", where=where)

        if kind in ("int", "opt_int"):
            if v is None and kind == "opt_int":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or not c[0] <= v <= c[1]:
                raise bad(f"an integer in {c[0]}..{c[1]}" + (" or null" if kind == "opt_int" else ""))
        elif kind == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not c[0] <= float(v) <= c[1]:
                raise bad(f"a number in {c[0]:g}..{c[1]:g}")
        elif kind == "bool":
            if not isinstance(v, bool):
                raise bad("true or false")
        elif kind == "str":
            if not isinstance(v, str):
                raise bad("text")
        elif kind == "opt_str":
            if v is not None and not isinstance(v, str):
                raise bad("a path (text) or null")
        elif kind == "choice":
            if v not in c:
                raise bad("one of " + ", ".join(str(x) for x in c))
        elif kind == "int_list":
            if not isinstance(v, list) or not v or not all(isinstance(x, int) and not isinstance(x, bool)
                                                           and c[0] <= x <= c[1] for x in v):
                raise bad(f"a non-empty list of integers in {c[0]}..{c[1]}")
        elif kind == "dict":
            if not isinstance(v, dict):
                raise bad("a mapping")
    # cross-field rules
    if d["infer"]["drift_correct"] and not d["infer"]["flow_guided"]:
        raise ConfigError("infer.drift_correct: corrects the flow-guided tracks; set infer.flow_guided true too",
                          where=where)
    if d["backbone"] == "none":
        if not d["delta"]["enabled"]:
            raise ConfigError("delta.enabled: weight-free mode (backbone none) needs the Delta CNN", where=where)
        if d["delta"]["out_channels"] is None:
            raise ConfigError("delta.out_channels: must be set (e.g. 64) when backbone is none", where=where)
        if d["flow"]["method"] != "dis":
            raise ConfigError("flow.method: weight-free mode (backbone none) uses dis", where=where)
    else:
        depth = BACKBONE_DEPTH[d["backbone"]]
        if d["layer"] >= depth:
            raise ConfigError(f"layer: {d['backbone']} has blocks 0..{depth - 1}, got {d['layer']}", where=where)
        if d["foreground"]["saliency_layer"] is not None and d["foreground"]["saliency_layer"] >= depth:
            raise ConfigError(f"foreground.saliency_layer: {d['backbone']} has blocks 0..{depth - 1}, got "
                              f"{d['foreground']['saliency_layer']}", where=where)
        oc = d["delta"]["out_channels"]
        if oc is not None and oc != BACKBONE_DIMS[d["backbone"]]:
            raise ConfigError(f"delta.out_channels: must equal the {d['backbone']} dimension "
                              f"{BACKBONE_DIMS[d['backbone']]} (or null), got {oc}", where=where)
        if d["working_height"] < 14:
            raise ConfigError("working_height: must be >= 14 with a DINO backbone", where=where)
        if not d["delta"]["enabled"] and d["refiner"]:
            raise ConfigError("refiner: the raw-DINO baseline (delta.enabled false) has no refiner; set it false",
                              where=where)


@dataclass
class TrackerConfig:
    data: dict[str, Any]
    source: str = "<settings>"
    _frozen: str = field(default="", repr=False)

    @classmethod
    def from_dict(cls, over: dict[str, Any] | None, where: str = "<settings>", base: dict | None = None
                  ) -> "TrackerConfig":
        if over is not None and not isinstance(over, dict):
            raise ConfigError(f"settings must be a mapping, got {type(over).__name__}", where=where)
        d = _merge(base if base is not None else DEFAULTS, over or {}, where)
        _check(d, where)
        return cls(d, where)

    def __getitem__(self, dotted: str) -> Any:
        return _get(self.data, dotted)

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def weight_free(self) -> bool:
        return self.data["backbone"] == "none"

    @property
    def raw_dino(self) -> bool:
        """The raw-DINO baseline: no Delta-DINO, no refiner, nothing to train."""
        return not self.data["delta"]["enabled"]

    @property
    def feature_dim(self) -> int:
        if self.weight_free:
            return int(self.data["delta"]["out_channels"])
        return BACKBONE_DIMS[self.data["backbone"]]

    def rfn_start(self) -> int:
        """First iteration of L_rfn_bb and L_rfn_cc (``rfn_after`` x iterations, 5k of 10k in the paper)."""
        return int(round(self["train.rfn_after"] * self["train.iterations"]))

    def stage_settings(self, stage: str) -> dict[str, Any]:
        return {f: _get(self.data, f) for f in STAGE_FIELDS[stage]}

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)


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
