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

The fields are a pydantic model (:class:`JobSpec` with :class:`ShotSpec`, :class:`MaskSpec`, :class:`OutputSpec`,
:class:`ObjectsSpec`, :class:`SegmentSpec`, :class:`Resources`): types, bounds, defaults and unknown fields are
declared there once; validators turn short forms into the long ones and resolve paths. Relative paths
resolve against the spec file's folder (or ``base_dir`` for a dict spec). Errors are
:class:`~dino_tracker_vfx.errors.ConfigError` naming the file and the field, e.g.
``job.yaml: outputs[1].format: unknown adapter 'nukee' (known: ...)``.

A new field is one line in its model (plus its resolution in a validator when it holds a path).

This module never imports torch: host plugins validate specs through :mod:`.client`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Mapping, Optional

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from ..errors import ConfigError
from ..typed import FieldError, Number, one_line

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_A_NAME = "a name"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _ctx(info: ValidationInfo) -> tuple[Path, bool]:
    """(the folder relative paths resolve against, whether input files must exist) from the validation context."""
    c = info.context or {}
    return c.get("base") or Path(".").resolve(), c.get("check_files", True)


def _path(v: Any, field: str, info: ValidationInfo, must_exist: bool = True, pattern: bool = False) -> str:
    """An absolute, normalised path (``~`` and ``$VARS`` expanded; relative to the spec's folder)."""
    base, check = _ctx(info)
    if not isinstance(v, (str, os.PathLike)) or not str(v).strip():
        raise FieldError(field, f"expected a path, got {v!r}")
    s = os.path.expanduser(os.path.expandvars(str(v).strip()))
    full = s if os.path.isabs(s) else str(base / s)
    if must_exist and check and not pattern and not os.path.exists(full):
        raise FieldError(field, f"no such file: {full}")
    return os.path.normpath(full)


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _text(v: Any) -> Any:
    return str(v) if isinstance(v, os.PathLike) else v


def _sub(model: type[BaseModel], v: Any, field: str, info: ValidationInfo) -> BaseModel:
    """``v`` validated as ``model``; its first problem named ``field.sub`` (for dict-valued spec fields)."""
    try:
        return model.model_validate(v, context=info.context)
    except ValidationError as e:
        name, _, msg = one_line(e, model, v, verb="expected", prefix=field).partition(": ")
        raise FieldError(name, msg) from None


class ShotSpec(_Part):
    path: str  # absolute pattern / movie / folder (a range after it moves to frames)
    frames: Optional[str] = None
    colorspace: Optional[str] = Field(None, description=_A_NAME)
    display: Optional[str] = Field(None, description=_A_NAME)
    view: Optional[str] = Field(None, description=_A_NAME)
    first_frame: int = Field(1, description="an integer")  # movies: host frame number of the first image

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        if isinstance(v, (str, os.PathLike)):
            return {"path": str(v)}
        if not isinstance(v, Mapping):
            raise FieldError("shot", f"expected a path or a mapping with {', '.join(cls.model_fields)}")
        v = dict(v)
        if v.get("frames") is not None:
            v["frames"] = str(v["frames"]).strip()
        if "path" in v:
            v["path"] = _text(v["path"])
        return v

    def open(self):
        from ..shots import open_shot

        return open_shot(self.path, frame_range=self.frames, colorspace=self.colorspace, display=self.display,
                         view=self.view, movie_first_frame=self.first_frame)


class MaskSpec(_Part):
    path: str
    frame: Optional[int] = Field(None, description="a host frame number")

    @property
    def text(self) -> str:
        """The form :func:`dino_tracker_vfx.inputs.read_masks` takes (``PATH`` or ``PATH@FRAME``)."""
        return self.path if self.frame is None else f"{self.path}@{self.frame}"


class OutputSpec(_Part):
    format: Optional[str] = Field(None, description="an adapter name or a suffix")  # adapter name once resolved
    path: Optional[str] = None  # absolute; None = <job dir>/outputs/<name><suffix>
    options: dict = Field(default_factory=dict, description="a mapping of adapter options")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        if isinstance(v, (str, os.PathLike)):
            return {"path": str(v)}
        if isinstance(v, Mapping):
            v = dict(v)
            v["path"] = _text(v.get("path"))
            v["options"] = v.get("options") or {}
        return v


class SegmentSpec(_Part):
    out: str = Field(description="the folder for propagated masks")
    features: Optional[str] = Field(None, description=_A_NAME)
    mattes: Optional[str] = Field(None, description=_A_NAME)
    index_format: Optional[str] = Field(None, description=_A_NAME)
    matte_format: Optional[str] = Field(None, description=_A_NAME)


class ObjectsSpec(_Part):
    """``objects:`` (types checked here; values the objects module checks at run time)."""

    tracks: bool = True
    points_per_object: Optional[int] = Field(None, ge=1)
    names: Optional[dict[Annotated[int, Field(gt=0)], str]] = Field(
        None, description="{id: name} with mask ids > 0, e.g. {1: horse, 2: rider}")
    smooth: Optional[str] = Field(None, description=_A_NAME)
    motion_model: Optional[str] = Field(None, description=_A_NAME)
    min_visible: Optional[Number] = Field(None, gt=0, le=1, description="a fraction in (0, 1]")
    segment: Optional[SegmentSpec] = None


class Resources(_Part):
    num_cpus: Optional[Number] = Field(None, ge=0)
    num_gpus: Optional[Number] = Field(None, ge=0)
    memory: Optional[Number] = Field(None, ge=0)


class JobSpec(_Part):
    """One job, fully resolved (absolute paths, adapter names). ``source``: the spec file, for messages."""

    name: Optional[str] = Field(None, description="text")  # default: the spec file's stem
    shot: ShotSpec = Field(description="a plate pattern, movie or folder")
    queries: list[str] = Field(default_factory=list)
    corrections: Optional[str] = None  # a corrections file (dino_tracker_vfx.inputs.add_corrections)
    masks: list[MaskSpec] = Field(default_factory=list)
    preset: Any = None  # name, absolute path or mapping
    overrides: dict = Field(default_factory=dict, description="a mapping of preset fields")
    seed: int = Field(0, ge=0)
    device: Optional[str] = None
    cache: Optional[str] = None
    outputs: list[OutputSpec] = Field(default_factory=list, description="a list of {format, path, options} or paths")
    objects: Optional[dict] = None  # an ObjectsSpec as a plain dict (tracks always present)
    resources: dict = Field(default_factory=dict)  # a Resources as a plain dict (the given fields)
    retries: int = Field(1, ge=0, le=20)

    _source: str = PrivateAttr(default="job spec")
    _base_dir: str = PrivateAttr(default=".")

    @property
    def source(self) -> str:
        return self._source

    @property
    def base_dir(self) -> str:
        return self._base_dir

    # ------------------------------------------------------------ short forms and paths
    @model_validator(mode="before")
    @classmethod
    def _top_level(cls, d: Any, info: ValidationInfo) -> Any:
        """Defaults that depend on the caller; ``frames`` / ``colorspace`` at the top level belong to the shot."""
        d = dict(d)
        if d.get("name") is None:
            d["name"] = (info.context or {}).get("default_name") or "job"
        moved = {k: d.pop(k) for k in ("frames", "colorspace") if k in d}
        if "shot" in d and moved:
            shot = d["shot"]
            shot = {"path": str(shot)} if isinstance(shot, (str, os.PathLike)) else shot
            if isinstance(shot, Mapping):
                d["shot"] = {**{k: v for k, v in moved.items() if v is not None}, **shot}
        for k in ("overrides", "resources"):
            if d.get(k) is None:
                d.pop(k, None)
        if "outputs" in d and d["outputs"] is None:
            d["outputs"] = []
        return d

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise FieldError("name", f"{v!r} must be letters, digits, '_', '-' or '.'")
        return v

    @field_validator("shot")
    @classmethod
    def _shot(cls, shot: ShotSpec, info: ValidationInfo) -> ShotSpec:
        from ..errors import ShotError
        from ..shots import patterns

        text = shot.path.strip()
        try:
            pat_text, range_frames = patterns.split_range(text)
        except ShotError as e:  # bad range text
            raise FieldError("shot.path", str(e)) from None
        frames = shot.frames
        if frames is None and range_frames is not None:
            frames = text[len(pat_text):].strip().lstrip(":")
        if frames is not None:
            try:
                patterns.parse_frame_range(frames)
            except ShotError as e:
                raise FieldError("shot.frames", str(e)) from None
        is_pattern = patterns.parse_pattern(pat_text) is not None
        path = _path(pat_text, "shot.path", info, must_exist=True, pattern=is_pattern)
        if is_pattern and _ctx(info)[1]:
            seq = patterns.parse_pattern(path)
            folder = os.path.dirname(seq.head) or "."
            if not os.path.isdir(folder):
                raise FieldError("shot.path", f"no such folder: {folder}")
            if not seq.glob():
                raise FieldError("shot.path", f"no frames on disk match {seq.display}")
        return shot.model_copy(update={"path": path, "frames": frames})

    @field_validator("queries", mode="before")
    @classmethod
    def _queries(cls, v: Any, info: ValidationInfo) -> list[str]:
        one = not isinstance(v, list)
        return [_path(q, "queries" if one else f"queries[{i}]", info) for i, q in enumerate(_as_list(v))]

    @field_validator("corrections", mode="before")
    @classmethod
    def _corrections(cls, v: Any, info: ValidationInfo) -> str | None:
        return None if v is None else _path(v, "corrections", info)

    @field_validator("masks", mode="before")
    @classmethod
    def _masks(cls, v: Any, info: ValidationInfo) -> list[dict]:
        base, _ = _ctx(info)
        out = []
        for i, m in enumerate(_as_list(v)):
            fn = f"masks[{i}]" if isinstance(v, list) else "masks"
            if isinstance(m, Mapping):
                m = dict(m)
                if "path" in m:
                    m["path"] = _path(m["path"], f"{fn}.path", info)
            elif isinstance(m, (str, os.PathLike)):
                from ..inputs import split_mask_spec

                path, frame = split_mask_spec(m, lambda s: os.path.exists(str(base / s)) or os.path.exists(s))
                m = {"path": _path(path, fn, info)} if frame is None else {"path": _path(path, fn, info),
                                                                           "frame": frame}
            else:
                raise FieldError(fn, f"expected PATH, 'PATH@FRAME' or {{path, frame}}, got {m!r}")
            out.append(m)
        return out

    @field_validator("preset")
    @classmethod
    def _preset(cls, preset: Any, info: ValidationInfo) -> Any:
        if preset is None:
            return None  # the tracker's default preset
        if isinstance(preset, Mapping):
            return copy.deepcopy(dict(preset))
        if isinstance(preset, str) and (preset.lower().endswith((".yaml", ".yml")) or os.sep in preset
                                        or "/" in preset):
            return _path(preset, "preset", info)
        if isinstance(preset, str):
            known = known_presets()
            if preset not in known:
                raise FieldError("preset", f"unknown preset {preset!r} (known: {', '.join(known)}; or a .yaml path)")
            return preset
        raise FieldError("preset", f"expected a preset name, a .yaml path or a mapping, got {preset!r}")

    @field_validator("device")
    @classmethod
    def _device(cls, device: Optional[str]) -> Optional[str]:
        if device is None:
            return None
        if not _DEVICE.match(device.strip().lower()):
            raise FieldError("device", f"{device!r} is not one of auto, cpu, cuda, cuda:N, mps")
        device = device.strip().lower()
        return None if device == "auto" else device

    @field_validator("cache", mode="before")
    @classmethod
    def _cache(cls, v: Any, info: ValidationInfo) -> Optional[str]:
        return None if v is None else _path(v, "cache", info, must_exist=False)

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, outputs: list[OutputSpec], info: ValidationInfo) -> list[OutputSpec]:
        from .outputs import check_options, resolve_format

        out = []
        for i, o in enumerate(outputs):
            fn = f"outputs[{i}]"
            path = _path(o.path, f"{fn}.path", info, must_exist=False) if o.path is not None else None
            fmt = o.format
            if fmt is None:
                if path is None:
                    raise FieldError(fn, "give a format and/or a path")
                fmt = Path(path).suffix
                if not fmt:
                    raise FieldError(f"{fn}.path", f"{path} has no suffix to pick a format by; add format:")
            name = resolve_format(fmt, lambda msg: FieldError(f"{fn}.format", msg))
            options = check_options(name, dict(o.options), lambda msg: FieldError(f"{fn}.options", msg))
            out.append(OutputSpec(format=name, path=path, options=options))
        paths = [o.path for o in out if o.path]
        dup = sorted({p for p in paths if paths.count(p) > 1})
        if dup:
            raise FieldError("outputs", f"two outputs write the same file {dup[0]}")
        return out

    @field_validator("objects", mode="before")
    @classmethod
    def _objects(cls, v: Any, info: ValidationInfo) -> Optional[dict]:
        if v is None:
            return None
        o = _sub(ObjectsSpec, {} if v is True else v, "objects", info)
        out = o.model_dump(exclude_unset=True)
        out.setdefault("tracks", True)
        if o.segment is not None:
            out["segment"] = {**o.segment.model_dump(exclude_unset=True),
                              "out": _path(o.segment.out, "objects.segment.out", info, must_exist=False)}
        return out

    @field_validator("resources", mode="before")
    @classmethod
    def _resources(cls, v: Any, info: ValidationInfo) -> dict:
        return _sub(Resources, v, "resources", info).model_dump(exclude_unset=True)

    @model_validator(mode="after")
    def _together(self) -> "JobSpec":
        """Rules between fields."""
        if not self.queries and not self.masks:
            raise FieldError("queries", "give queries and/or masks (nothing to track)")
        if self.corrections and not self.queries:
            raise FieldError("corrections", "corrections name tracks of the queries: give queries too")
        if self.objects is None and self.masks and not self.queries:
            self.objects = {"tracks": True}  # masks alone: track the objects they hold
        if self.objects is not None and not self.masks:
            raise FieldError("objects", "object tracks and mask propagation need masks (add masks:)")
        _check_preset(self.preset, dict(self.overrides))
        return self

    # ----------------------------------------------------------------- forms
    def to_dict(self) -> dict:
        """Plain, fully resolved (absolute paths) form; :func:`spec_from_dict` reads it back unchanged. Unset
        optional fields and empty lists/mappings are left out (``outputs``, ``seed`` and ``retries`` always
        written), so a field added to the model joins this form, and :meth:`tracking_key`, only when set."""
        d = {k: v for k, v in self.model_dump(exclude_none=True).items() if v not in ([], {}) or k == "outputs"}
        d["shot"] = self.shot.model_dump(exclude_none=True, exclude_defaults=True)
        d["outputs"] = [o.model_dump(exclude_none=True, exclude_defaults=True) for o in self.outputs]
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
    if not isinstance(d, Mapping):
        raise ConfigError("expected a mapping of job fields (shot, queries, outputs, ...)", where=where)
    try:
        spec = JobSpec.model_validate(dict(d), context={"base": base, "check_files": check_files,
                                                        "default_name": default_name})
    except ValidationError as e:
        raise ConfigError(one_line(e, JobSpec, dict(d), verb="expected"), where=where) from None
    spec._source, spec._base_dir = where, str(base)
    return spec


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


def _check_preset(preset: Any, overrides: dict) -> None:
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
        raise FieldError("overrides" if overrides else "preset", msg) from None


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


__all__ = ["JobSpec", "ShotSpec", "MaskSpec", "OutputSpec", "ObjectsSpec", "SegmentSpec", "Resources", "load_spec",
           "spec_from_dict", "read_yaml", "known_presets", "merged_preset", "deep_merge"]
