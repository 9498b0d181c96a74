"""Named presets: YAML files in the top-level ``presets/`` folder (``paper``, ``balanced``, ``fast``,
``cpu-preview``) or any YAML path, or a dict. A preset may start from another with ``base: NAME`` (a
preset name, or a YAML path; a relative path is relative to the folder of the file that names it);
what it does not set comes from :data:`config.DEFAULTS` (the paper's values). Each file is validated by the
:class:`~.config.TrackerConfig` model as it is merged, so an error names the file that set the field.

``load_preset("cpu-preview")``, ``load_preset("my.yaml")``, ``load_preset({"base": "fast", "train":
{"iterations": 500}})`` -> :class:`TrackerConfig`; problems raise :class:`ConfigError` naming the file and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..textfiles import read_user_text
from .config import DEFAULTS, TrackerConfig

_HERE = Path(__file__).resolve()
PRESET_DIRS = (_HERE.parents[2] / "presets", _HERE.parents[1] / "presets")
DEFAULT_PRESET = "cpu-preview"


def preset_dirs() -> list[Path]:
    return [d for d in PRESET_DIRS if d.is_dir()]


def preset_names() -> list[str]:
    names: set[str] = set()
    for d in preset_dirs():
        names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def preset_path(name: str) -> Path | None:
    for d in preset_dirs():
        p = d / f"{name}.yaml"
        if p.is_file():
            return p
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("preset file not found", where=str(path))
    try:
        d = yaml.safe_load(read_user_text(path, ConfigError, "YAML text"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"invalid YAML{line}: {getattr(e, 'problem', e)}", where=str(path)) from None
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"a preset must be a mapping of settings, got {type(d).__name__}", where=str(path))
    return d


def _resolve(spec: Any, seen: tuple[str, ...] = (), folder: Path | None = None) -> tuple[dict[str, Any], str]:
    """-> (merged raw dict incl. defaults, where). ``folder``: where a relative ``base:`` path is looked up
    (the folder of the preset file that names it; the working directory for the preset given directly)."""
    if isinstance(spec, dict):
        d, where = dict(spec), "<settings>"
    else:
        s = str(spec)
        p = preset_path(s) if "/" not in s and not s.endswith((".yaml", ".yml")) else None
        if p is None:
            p = Path(s).expanduser()
            if folder is not None and not p.is_absolute():
                p = folder / p
            if not p.is_file():
                known = ", ".join(preset_names()) or "none found"
                what = f"base: unknown preset {s!r} (looked for {p}" if seen else f"unknown preset {s!r} ("
                raise ConfigError(f"{what}known: {known}; or give a YAML file)" if not seen else
                                  f"{what}; known: {known})", where=seen[-1] if seen else "preset")
        where = p.name if p.parent in PRESET_DIRS else str(p)
        if where in seen:
            raise ConfigError(f"base presets form a loop: {' -> '.join(seen + (where,))}", where=where)
        d = _read_yaml(p)
        d.setdefault("name", p.stem)
    base = d.pop("base", None)
    if base is not None:
        raw, _ = _resolve(base, seen + (where,), None if isinstance(spec, dict) else p.parent)
        d.setdefault("name", raw.get("name"))
        return TrackerConfig.from_dict(d, where, base=raw).to_dict(), where
    return TrackerConfig.from_dict(d, where, base=DEFAULTS).to_dict(), where


def load_preset(spec: str | Path | dict[str, Any] | TrackerConfig | None = None) -> TrackerConfig:
    if isinstance(spec, TrackerConfig):
        return spec
    data, where = _resolve(DEFAULT_PRESET if spec is None else spec)
    return TrackerConfig.from_dict({}, where, base=data)
