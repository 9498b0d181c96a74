"""Job specs: one YAML file describing one shot to track and what to write.

::

    name: sh010                      # optional; default: the spec file's stem
    shot: plates/sh010.####.exr      # pattern / movie / folder; or a mapping:
    #  shot: {path: plates/sh010.####.exr, frames: 1001-1100, colorspace: ACEScg, display: .., view: ..}
    queries: sh010_points.csv        # one path or a list (CSV/JSON, see dino_tracker_vfx.inputs)
    corrections: sh010_fixes.csv     # optional: anchors added to the queries' tracks by name (re-running
                                     # the job with them reuses its cache: inference only)
    masks:                           # optional: PATH, "PATH@FRAME" or {path: PATH, frame: FRAME}
      - {path: sh010_matte.1001.png, frame: 1001}
    preset: balanced                 # paper | balanced | fast | cpu-preview | path/to/preset.yaml | {mapping}
                                     # (default: the tracker's default preset)
    overrides: {train: {iterations: 3000}}   # merged over the preset (as {base: PRESET, **overrides})
    seed: 0
    device: auto                     # auto | cpu | cuda | cuda:N | mps
    cache: /shared/cache/sh010       # optional; default <job dir>/cache (stages + checkpoints)
    outputs:                         # adapter name or suffix, path, options
      - {format: nuke, path: out/sh010_tracks.nk, options: {}}
      - out/sh010_tracks.csv         # short form: format from the suffix
    objects:                         # optional, needs masks: object tracks and/or mask propagation
      tracks: true                   # member points + centroid/bbox/visibility per object (default true)
      points_per_object: 24
      names: {1: horse, 2: rider}    # default obj<id>
      smooth: savgol                 # none | savgol[:window=11,order=3] | ... (see dtvfx objects)
      motion_model: similarity
      min_visible: 0.3
      segment: {out: out/sh010_masks, features: auto, mattes: hard, index_format: png, matte_format: png}
    resources: {num_cpus: 4, num_gpus: 1}    # optional; batch/Ray scheduling (default from device)
    retries: 1                       # optional; Ray: re-runs after a crash (resumes from checkpoints)

Relative paths resolve against the spec file's folder (or ``base_dir`` for a dict spec). Errors are
:class:`~dino_tracker_vfx.errors.ConfigError` naming the file and the field, e.g.
``job.yaml: outputs[1].format: unknown adapter 'nukee' (known: ...)``.

This module never imports torch: host plugins validate specs through :mod:`.client`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError

SPEC_KEYS = ("name", "shot", "frames", "colorspace", "queries", "corrections", "masks", "preset", "overrides", "seed",
             "device", "cache", "outputs", "objects", "resources", "retries")
SHOT_KEYS = ("path", "frames", "colorspace", "display", "view", "first_frame")
OUTPUT_KEYS = ("format", "path", "options")
RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class ShotSpec:
    path: str  # absolute pattern / movie / folder
    frames: str | None = None
    colorspace: str | None = None
    display: str | None = None
    view: str | None = None
    first_frame: int = 1  # movies: host frame number of the first image

    def open(self):
        from ..shots import open_shot

        return open_shot(self.path, frame_range=self.frames, colorspace=self.colorspace, display=self.display,
                         view=self.view, movie_first_frame=self.first_frame)


@dataclass(frozen=True)
class MaskSpec:
    path: str
    frame: int | None = None

    @property
    def text(self) -> str:
        """The form :func:`dino_tracker_vfx.inputs.read_masks` takes (``PATH`` or ``PATH@FRAME``)."""
        return self.path if self.frame is None else f"{self.path}@{self.frame}"


@dataclass(frozen=True)
class OutputSpec:
    format: str  # adapter name (resolved from a suffix when one was given)
    path: str | None  # absolute; None = <job dir>/outputs/<name><suffix>
    options: dict = field(default_factory=dict)


@dataclass
class JobSpec:
    name: str
    shot: ShotSpec
    queries: list[str]
    masks: list[MaskSpec]
    preset: Any  # name, absolute path or mapping
    overrides: dict
    seed: int
    device: str | None
    cache: str | None
    outputs: list[OutputSpec]
    objects: dict | None
    resources: dict
    retries: int
    corrections: str | None = None  # absolute path of a corrections file (dino_tracker_vfx.inputs)
    source: str = "job spec"  # for messages
    base_dir: str = "."

    # ----------------------------------------------------------------- forms
    def to_dict(self) -> dict:
        """Plain, fully resolved (absolute paths) form; :func:`spec_from_dict` reads it back unchanged."""
        shot = {k: v for k, v in (("path", self.shot.path), ("frames", self.shot.frames),
                                  ("colorspace", self.shot.colorspace), ("display", self.shot.display),
                                  ("view", self.shot.view)) if v is not None}
        if self.shot.first_frame != 1:
            shot["first_frame"] = self.shot.first_frame
        d: dict[str, Any] = {"name": self.name, "shot": shot}
        if self.queries:
            d["queries"] = list(self.queries)
        if self.corrections:
            d["corrections"] = self.corrections
        if self.masks:
            d["masks"] = [{"path": m.path, **({"frame": m.frame} if m.frame is not None else {})} for m in self.masks]
        if self.preset is not None:
            d["preset"] = copy.deepcopy(self.preset)
        if self.overrides:
            d["overrides"] = copy.deepcopy(self.overrides)
        d["seed"] = self.seed
        if self.device:
            d["device"] = self.device
        if self.cache:
            d["cache"] = self.cache
        d["outputs"] = [{"format": o.format, **({"path": o.path} if o.path else {}),
                         **({"options": copy.deepcopy(o.options)} if o.options else {})} for o in self.outputs]
        if self.objects is not None:
            d["objects"] = copy.deepcopy(self.objects)
        if self.resources:
            d["resources"] = dict(self.resources)
        d["retries"] = self.retries
        return d

    def tracking_key(self) -> str:
        """Hash of everything that changes the tracks (not the outputs): a saved result with another key
        is stale."""
        d = self.to_dict()
        for k in ("name", "outputs", "retries", "resources", "cache"):
            d.pop(k, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def wants_gpu(self) -> bool:
        if self.resources.get("num_gpus") is not None:
            return float(self.resources["num_gpus"]) > 0
        return bool(self.device and self.device.startswith("cuda"))


# ----------------------------------------------------------------------------- loading
def load_spec(path: str | os.PathLike) -> JobSpec:
    """Read and validate a job spec file."""
    p = Path(path)
    where = str(path)
    if not p.is_file():
        raise ConfigError("job spec not found", where=where)
    d = read_yaml(p)
    if not isinstance(d, Mapping):
        raise ConfigError("expected a mapping of job fields (shot, queries, outputs, ...)", where=where)
    return spec_from_dict(d, base_dir=p.resolve().parent, where=where, default_name=_stem(p))


def read_yaml(p: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"invalid YAML{at}: {problem}", where=str(p)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read ({e})", where=str(p)) from None


def _stem(p: Path) -> str:
    name = p.name
    for suf in (".yaml", ".yml", ".json"):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return p.stem


def spec_from_dict(d: Mapping, base_dir: str | os.PathLike = ".", where: str = "job spec",
                   default_name: str | None = None, check_files: bool = True) -> JobSpec:
    """Validate a spec mapping. ``check_files``: input files must exist (shot, queries, masks, preset path)."""
    base = Path(base_dir).resolve()

    def err(fieldname: str, msg: str) -> ConfigError:
        return ConfigError(f"{fieldname}: {msg}", where=where)

    unknown = [k for k in d if k not in SPEC_KEYS]
    if unknown:
        raise err(str(unknown[0]), f"unknown field (known: {', '.join(SPEC_KEYS)})")

    def path_of(v: Any, fieldname: str, must_exist: bool = True, pattern: bool = False) -> str:
        if not isinstance(v, (str, os.PathLike)) or not str(v).strip():
            raise err(fieldname, f"expected a path, got {v!r}")
        s = os.path.expanduser(os.path.expandvars(str(v).strip()))
        full = s if os.path.isabs(s) else str(base / s)
        if must_exist and check_files and not pattern and not os.path.exists(full):
            raise err(fieldname, f"no such file: {full}")
        return os.path.normpath(full)

    # name
    name = d.get("name", default_name or "job")
    if not isinstance(name, str) or not _NAME.match(name):
        raise err("name", f"{name!r} must be letters, digits, '_', '-' or '.'")

    # shot
    if "shot" not in d:
        raise err("shot", "missing (a plate pattern, movie or folder)")
    raw_shot = d["shot"]
    if isinstance(raw_shot, (str, os.PathLike)):
        raw_shot = {"path": str(raw_shot)}
    if not isinstance(raw_shot, Mapping):
        raise err("shot", f"expected a path or a mapping with {', '.join(SHOT_KEYS)}")
    for k in raw_shot:
        if k not in SHOT_KEYS:
            raise err(f"shot.{k}", f"unknown field (known: {', '.join(SHOT_KEYS)})")
    if "path" not in raw_shot:
        raise err("shot.path", "missing")
    from ..shots import patterns

    text = str(raw_shot["path"]).strip()
    try:
        pat_text, range_frames = patterns.split_range(text)
    except Exception as e:  # ShotError: bad range text
        raise err("shot.path", str(e)) from None
    frames = raw_shot.get("frames", d.get("frames"))
    if frames is None and range_frames is not None:
        frames = text[len(pat_text):].strip().lstrip(":")
    if frames is not None:
        frames = str(frames).strip()
        try:
            patterns.parse_frame_range(frames)
        except Exception as e:
            raise err("shot.frames", str(e)) from None
    is_pattern = patterns.parse_pattern(pat_text) is not None
    shot_path = path_of(pat_text, "shot.path", must_exist=True, pattern=is_pattern)
    if is_pattern and check_files:
        seq = patterns.parse_pattern(shot_path)
        folder = os.path.dirname(seq.head) or "."
        if not os.path.isdir(folder):
            raise err("shot.path", f"no such folder: {folder}")
        if not seq.glob():
            raise err("shot.path", f"no frames on disk match {seq.display}")
    first_frame = raw_shot.get("first_frame", 1)
    if not isinstance(first_frame, int) or isinstance(first_frame, bool):
        raise err("shot.first_frame", f"expected an integer, got {first_frame!r}")
    opt_str = {}
    for k in ("colorspace", "display", "view"):
        v = raw_shot.get(k, d.get(k) if k == "colorspace" else None)
        if v is not None and not isinstance(v, str):
            raise err(f"shot.{k}", f"expected a name, got {v!r}")
        opt_str[k] = v
    shot = ShotSpec(shot_path, frames, opt_str["colorspace"], opt_str["display"], opt_str["view"], first_frame)

    # queries / masks
    queries = _as_list(d.get("queries"))
    queries = [path_of(q, f"queries[{i}]" if isinstance(d.get("queries"), list) else "queries")
               for i, q in enumerate(queries)]
    masks: list[MaskSpec] = []
    raw_masks = _as_list(d.get("masks"))
    for i, m in enumerate(raw_masks):
        fn = f"masks[{i}]" if isinstance(d.get("masks"), list) else "masks"
        if isinstance(m, Mapping):
            bad = [k for k in m if k not in ("path", "frame")]
            if bad:
                raise err(f"{fn}.{bad[0]}", "unknown field (known: path, frame)")
            if "path" not in m:
                raise err(f"{fn}.path", "missing")
            fr = m.get("frame")
            if fr is not None and (not isinstance(fr, int) or isinstance(fr, bool)):
                raise err(f"{fn}.frame", f"expected a host frame number, got {fr!r}")
            masks.append(MaskSpec(path_of(m["path"], f"{fn}.path"), fr))
        elif isinstance(m, (str, os.PathLike)):
            s = str(m)
            mm = re.match(r"^(.*)@(-?\d+)$", s)
            if mm and not os.path.exists(str(base / s)) and not os.path.exists(s):
                masks.append(MaskSpec(path_of(mm.group(1), fn), int(mm.group(2))))
            else:
                masks.append(MaskSpec(path_of(s, fn)))
        else:
            raise err(fn, f"expected PATH, 'PATH@FRAME' or {{path, frame}}, got {m!r}")
    if not queries and not masks:
        raise err("queries", "give queries and/or masks (nothing to track)")
    corrections = None if d.get("corrections") is None else path_of(d["corrections"], "corrections")
    if corrections and not queries:
        raise err("corrections", "corrections name tracks of the queries: give queries too")

    # preset
    preset = d.get("preset")
    if preset is None:
        pass  # the tracker's default preset
    elif isinstance(preset, Mapping):
        preset = copy.deepcopy(dict(preset))
    elif isinstance(preset, str) and (preset.lower().endswith((".yaml", ".yml")) or os.sep in preset
                                      or "/" in preset):
        preset = path_of(preset, "preset")
    elif isinstance(preset, str):
        known = known_presets()
        if preset not in known:
            raise err("preset", f"unknown preset {preset!r} (known: {', '.join(known)}; or a .yaml path)")
    else:
        raise err("preset", f"expected a preset name, a .yaml path or a mapping, got {preset!r}")
    overrides = d.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        raise err("overrides", "expected a mapping of preset fields")
    _check_preset(preset, dict(overrides), err)

    seed = d.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise err("seed", f"expected an integer >= 0, got {seed!r}")
    device = d.get("device")
    if device is not None:
        if not isinstance(device, str) or not _DEVICE.match(device.strip().lower()):
            raise err("device", f"{device!r} is not one of auto, cpu, cuda, cuda:N, mps")
        device = device.strip().lower()
        if device == "auto":
            device = None
    cache = d.get("cache")
    if cache is not None:
        cache = path_of(cache, "cache", must_exist=False)

    # outputs
    raw_out = d.get("outputs")
    if raw_out is None:
        raw_out = []
    if not isinstance(raw_out, list):
        raise err("outputs", "expected a list of {format, path, options} or paths")
    outputs = [_output(o, f"outputs[{i}]", err, path_of) for i, o in enumerate(raw_out)]
    paths = [o.path for o in outputs if o.path]
    dup = sorted({p for p in paths if paths.count(p) > 1})
    if dup:
        raise err("outputs", f"two outputs write the same file {dup[0]}")

    objects = _objects(d.get("objects"), err, path_of)
    if objects is None and masks and not queries:
        objects = {"tracks": True}  # masks alone: track the objects they hold
    if objects is not None and not masks:
        raise err("objects", "object tracks and mask propagation need masks (add masks:)")

    resources = d.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise err("resources", f"expected a mapping with {', '.join(RESOURCE_KEYS)}")
    res = {}
    for k, v in resources.items():
        if k not in RESOURCE_KEYS:
            raise err(f"resources.{k}", f"unknown field (known: {', '.join(RESOURCE_KEYS)})")
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise err(f"resources.{k}", f"expected a number >= 0, got {v!r}")
        res[k] = v
    retries = d.get("retries", 1)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 20:
        raise err("retries", f"expected an integer 0..20, got {retries!r}")

    return JobSpec(name=name, shot=shot, queries=queries, masks=masks, preset=preset, overrides=dict(overrides),
                   seed=seed, device=device, cache=cache, outputs=outputs, objects=objects, resources=res,
                   retries=retries, corrections=corrections, source=where, base_dir=str(base))


OBJECT_KEYS = ("tracks", "points_per_object", "names", "smooth", "motion_model", "min_visible", "segment")
SEGMENT_KEYS = ("out", "features", "mattes", "index_format", "matte_format")


def _objects(o: Any, err, path_of) -> dict | None:
    """``objects:`` -> plain dict (types checked here; values the objects module checks at run time)."""
    if o is None:
        return None
    if o is True:
        o = {}
    if not isinstance(o, Mapping):
        raise err("objects", f"expected a mapping with {', '.join(OBJECT_KEYS)}")
    out: dict[str, Any] = {}
    for k, v in o.items():
        if k not in OBJECT_KEYS:
            raise err(f"objects.{k}", f"unknown field (known: {', '.join(OBJECT_KEYS)})")
        if k == "tracks" and not isinstance(v, bool):
            raise err("objects.tracks", f"expected true or false, got {v!r}")
        if k == "points_per_object" and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise err("objects.points_per_object", f"expected an integer >= 1, got {v!r}")
        if k == "min_visible" and (not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v <= 1):
            raise err("objects.min_visible", f"expected a fraction in (0, 1], got {v!r}")
        if k in ("smooth", "motion_model") and not isinstance(v, str):
            raise err(f"objects.{k}", f"expected a name, got {v!r}")
        if k == "names":
            if not isinstance(v, Mapping) or not all(isinstance(i, int) and i > 0 and isinstance(n, str)
                                                     for i, n in v.items()):
                raise err("objects.names", "expected {id: name} with mask ids > 0, e.g. {1: horse, 2: rider}")
            v = {int(i): n for i, n in v.items()}
        if k == "segment":
            if not isinstance(v, Mapping):
                raise err("objects.segment", f"expected a mapping with {', '.join(SEGMENT_KEYS)}")
            bad = [x for x in v if x not in SEGMENT_KEYS]
            if bad:
                raise err(f"objects.segment.{bad[0]}", f"unknown field (known: {', '.join(SEGMENT_KEYS)})")
            if "out" not in v:
                raise err("objects.segment.out", "missing (the folder for propagated masks)")
            v = {**{x: y for x, y in v.items() if x != "out"},
                 "out": path_of(v["out"], "objects.segment.out", must_exist=False)}
            for x in SEGMENT_KEYS[1:]:
                if x in v and not isinstance(v[x], str):
                    raise err(f"objects.segment.{x}", f"expected a name, got {v[x]!r}")
        out[k] = copy.deepcopy(v)
    out.setdefault("tracks", True)
    return out


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _output(o: Any, fn: str, err, path_of) -> OutputSpec:
    if isinstance(o, (str, os.PathLike)):
        o = {"path": str(o)}
    if not isinstance(o, Mapping):
        raise err(fn, f"expected a path or {{format, path, options}}, got {o!r}")
    bad = [k for k in o if k not in OUTPUT_KEYS]
    if bad:
        raise err(f"{fn}.{bad[0]}", f"unknown field (known: {', '.join(OUTPUT_KEYS)})")
    path = path_of(o["path"], f"{fn}.path", must_exist=False) if o.get("path") is not None else None
    fmt = o.get("format")
    if fmt is None:
        if path is None:
            raise err(fn, "give a format and/or a path")
        fmt = Path(path).suffix
        if not fmt:
            raise err(f"{fn}.path", f"{path} has no suffix to pick a format by; add format:")
    if not isinstance(fmt, str):
        raise err(f"{fn}.format", f"expected an adapter name or a suffix, got {fmt!r}")
    options = o.get("options") or {}
    if not isinstance(options, Mapping):
        raise err(f"{fn}.options", "expected a mapping of adapter options")
    from .outputs import resolve_format

    name = resolve_format(fmt, lambda msg: err(f"{fn}.format", msg))
    from .outputs import check_options

    options = check_options(name, dict(options), lambda msg: err(f"{fn}.options", msg))
    return OutputSpec(name, path, options)


def known_presets() -> list[str]:
    """Preset names of the built-in tracker (its preset module reads YAML only, no torch)."""
    from ..tracker import presets as P

    return sorted(P.preset_names())


def _merge(preset: Any, overrides: dict) -> Any:
    if not overrides:
        return preset
    if isinstance(preset, Mapping):
        return deep_merge(preset, overrides)
    return {"base": preset if preset is not None else _default_preset(), **copy.deepcopy(overrides)}


def _default_preset() -> str:
    from ..tracker import presets as P

    return P.DEFAULT_PRESET


def _check_preset(preset: Any, overrides: dict, err) -> None:
    """Validate preset + overrides with the tracker's own loader (YAML only, no torch) when the job uses
    the built-in tracker; only a stand-in registered by code in this process (:mod:`.tracker_entry`)
    validates its own settings. A preset module that cannot be imported is an error, never a skipped check."""
    from . import tracker_entry

    if tracker_entry.stand_in() is not None:
        return
    from ..tracker import presets as P

    try:
        P.load_preset(_merge(preset, overrides))
    except ConfigError as e:
        msg = str(e)
        for prefix in ("preset: ", "<settings>: "):
            msg = msg[len(prefix):] if msg.startswith(prefix) else msg
        raise err("overrides" if overrides else "preset", msg) from None


def merged_preset(spec: JobSpec) -> Any:
    """What the tracker's ``preset=`` gets: the preset (name/path/mapping) with ``overrides`` applied
    (a name or path becomes ``{"base": NAME, **overrides}``)."""
    return _merge(spec.preset, spec.overrides)


def deep_merge(base: Mapping, over: Mapping) -> dict:
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


__all__ = ["JobSpec", "ShotSpec", "MaskSpec", "OutputSpec", "load_spec", "spec_from_dict", "read_yaml",
           "known_presets", "merged_preset", "deep_merge"]
