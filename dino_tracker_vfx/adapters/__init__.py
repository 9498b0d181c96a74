"""Host adapters: a pluggy plugin system (see ``docs/adapters.md``).

* :mod:`.hookspecs` - ``hookspec`` / ``hookimpl`` markers and the one hook ``dtvfx_adapters()``.
* :mod:`.records` - :class:`Adapter`, :class:`OptionSpec`, :class:`ReadResult`, :class:`HostQuery`.
* :mod:`.manager` - loads built-ins (``dtvfx_plugins``) and entry points, selects by name / suffix.

Typical use::

    from dino_tracker_vfx.adapters import registry, write_tracks
    write_tracks(tracks, "out.nk")                       # suffix picks the Nuke adapter
    write_tracks(tracks, "out.nk", "nuke", {"cornerpin": "a,b,c,d"})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .hookspecs import ENTRY_POINT_GROUP, hookimpl, hookspec
from .manager import Registry, load_registry, registry
from .records import (CAPABILITIES, CONTEXT_KEYS, Adapter, HostQuery, OptionSpec, ReadResult, parse_option_pairs,
                      resolve_options)


def write_tracks(tracks, path: str | Path, name: str | None = None, options: Mapping[str, Any] | None = None,
                 reg: Registry | None = None) -> Adapter:
    """Write ``tracks`` with the adapter ``name`` (or the one the suffix of ``path`` picks)."""
    reg = reg or registry()
    a = reg.select(name, path, "write")
    a.write(tracks, Path(path), resolve_options(a, options))
    return a


def check_write_options(name: str, options: Mapping[str, Any] | None, context: Mapping[str, Any] | None = None,
                        reg: Registry | None = None, where: str | None = None) -> dict:
    """Validate write options of adapter ``name`` without writing anything: :func:`resolve_options`, then the
    adapter's ``check`` hook with ``context`` (``track_names``, ``frame_numbers``, ``plate_size``; a missing
    key is unknown). Returns the resolved options; raises ConfigError/InputError."""
    a = (reg or registry()).get(name, "write")
    opts = resolve_options(a, options, where=where or f"adapter {name}")
    if a.check is not None:
        a.check(opts, dict(context or {}))
    return opts


def read_queries(path: str | Path, shot=None, name: str | None = None,
                 options: Mapping[str, Any] | None = None, reg: Registry | None = None):
    """Read queries from a host file. With ``shot`` (Shot/TrackSet) returns ``list[Query]`` mapped to
    image indices (context keys plate_size/frame_numbers filled from it); without, the ReadResult."""
    reg = reg or registry()
    a = reg.select(name, path, "read_queries")
    opts = dict(options or {})
    if shot is not None:
        size = getattr(shot, "size", None) or getattr(shot, "plate_size", None)
        if size is not None:
            opts.setdefault("plate_size", tuple(size))
        opts.setdefault("frame_numbers", [int(f) for f in shot.frame_numbers])
    res = a.read_queries(Path(path), resolve_options(a, opts))
    return res.to_queries(shot) if shot is not None else res


__all__ = ["hookimpl", "hookspec", "ENTRY_POINT_GROUP", "Adapter", "OptionSpec", "ReadResult", "HostQuery",
           "CAPABILITIES", "CONTEXT_KEYS", "resolve_options", "parse_option_pairs", "Registry", "load_registry",
           "registry", "write_tracks", "read_queries", "check_write_options"]
