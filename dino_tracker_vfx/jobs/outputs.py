"""Job outputs through the adapter registry (:mod:`dino_tracker_vfx.adapters`).

``format`` in a spec is an adapter name (``nuke``) or a suffix (``.nk`` / ``nk``). Every adapter writes
its main file atomically (temp + rename, the adapter contract), so an output file either is complete or
is not there. No torch import here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import ConfigError, UserError


def _registry():
    from ..adapters import registry

    return registry()


def resolve_format(fmt: str, fail: Callable[[str], Exception]) -> str:
    """Adapter name for ``fmt`` (a name or a suffix) that can write; ``fail(msg)`` builds the error."""
    reg = _registry()
    writers = [a.name for a in reg if a.can("write")]
    f = fmt.strip()
    if f in reg.adapters or f.lower() in reg.adapters:
        a = reg.adapters.get(f) or reg.adapters[f.lower()]
        if not a.can("write"):
            raise fail(f"adapter {a.name!r} cannot write tracks (writers: {', '.join(writers)})")
        return a.name
    suffix = f if f.startswith(".") else "." + f
    if all(c.isalnum() or c in "._-" for c in suffix[1:]) and len(suffix) > 1:
        try:
            return reg.for_path("x" + suffix.lower(), "write").name
        except ConfigError as e:
            if "ambiguous" in str(e):
                raise fail(f"suffix {suffix!r} is ambiguous ({str(e).split(': ', 1)[-1]})") from None
    raise fail(f"unknown adapter {fmt!r} (known: {', '.join(writers)})")


def check_options(name: str, options: dict, fail: Callable[[str], Exception], context: dict | None = None) -> dict:
    """Validate adapter options now (unknown / missing required ones, and the adapter's own ``check`` hook
    against ``context``: track_names, frame_numbers, plate_size) but keep the spec's own values."""
    from ..adapters import check_write_options

    try:
        check_write_options(name, options, context, reg=_registry(), where=f"adapter {name}")
    except UserError as e:
        raise fail(str(e)) from None
    return options


def default_path(name: str, job_dir: Path, stem: str) -> Path:
    a = _registry().get(name)
    suffix = a.suffixes[0] if a.suffixes else ""
    return Path(job_dir) / "outputs" / f"{stem}{suffix}"


def write_output(tracks, fmt: str, path: Path, options: dict) -> Path:
    """Write one output; the adapter writes atomically. Returns the path written."""
    from ..adapters import resolve_options
    from .preflight import writable_folder

    a = _registry().get(fmt, "write")
    path = Path(path)
    writable_folder(path.parent, lambda msg: ConfigError(msg, where=str(path)))  # e.g. a file in the way
    path.parent.mkdir(parents=True, exist_ok=True)
    a.write(tracks, path, resolve_options(a, options, where=f"output {path.name}"))
    if not path.exists():  # an adapter that broke its contract; do not report a missing file as written
        raise ConfigError(f"adapter {fmt!r} did not write the file", where=str(path))
    return path

