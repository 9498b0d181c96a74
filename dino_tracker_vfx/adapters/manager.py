"""The adapter registry: a pluggy PluginManager over built-in and third-party plugins.

Loading (:func:`load_registry`):

1. **Built-ins**: every module of the package ``dtvfx_plugins`` (folder ``plugins/`` at the repo top,
   installed under that name by setup.cfg ``package_dir``). When this package runs from a checkout
   (``plugins/`` beside it), that folder is imported as ``dtvfx_plugins``; otherwise the installed one. Modules whose name starts with ``_``
   or ``host_`` are skipped (``host_*`` packages hold host-side code such as the Nuke panel, which may
   need the host's own Python modules). A built-in that fails to import or whose hook raises is a bug:
   the error propagates.
2. **Third-party**: entry points of the group ``dino_tracker_vfx.plugins``; each entry point names a
   module (or object) holding ``@hookimpl def dtvfx_adapters()``. A broken one (import error, hook
   raising, returning something other than Adapters) is logged as a warning and skipped - it never
   stops the built-ins from working. Its plugin name is ``<distribution>:<entry point name>``.

Every adapter name must be unique: a clash is a :class:`~dino_tracker_vfx.errors.ConfigError` naming
both plugins. Selection: :meth:`Registry.get` by name, :meth:`Registry.for_path` by file suffix (the
longest matching suffix wins, so ``.nuke.txt`` beats ``.txt``; two adapters with the same best suffix
that both can do the job -> ConfigError listing the candidates; pick one with ``--to``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Iterable

import pluggy

from ..errors import ConfigError
from . import hookspecs
from .records import Adapter

log = logging.getLogger("dino_tracker_vfx.adapters")

BUILTIN_PACKAGE = "dtvfx_plugins"
_REPO_PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
NEEDS = ("write", "read_queries", "read_tracks")


def builtin_package() -> ModuleType:
    """``dtvfx_plugins``: the ``plugins/`` folder beside this package when it runs from a checkout (so
    a checkout never mixes with an older installed copy), else the installed package."""
    if BUILTIN_PACKAGE in sys.modules:
        return sys.modules[BUILTIN_PACKAGE]
    init = _REPO_PLUGINS / "__init__.py"
    if not init.is_file():
        try:
            return importlib.import_module(BUILTIN_PACKAGE)
        except ModuleNotFoundError as e:
            if e.name != BUILTIN_PACKAGE:
                raise
            raise ConfigError(f"built-in plugins not found: package {BUILTIN_PACKAGE} is not installed and "
                              f"{_REPO_PLUGINS} does not exist") from None
    spec = importlib.util.spec_from_file_location(BUILTIN_PACKAGE, init,
                                                  submodule_search_locations=[str(_REPO_PLUGINS)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[BUILTIN_PACKAGE] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(BUILTIN_PACKAGE, None)
        raise
    return mod


def builtin_modules() -> list[ModuleType]:
    pkg = builtin_package()
    mods = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith(("_", "host_")):
            continue
        mods.append(importlib.import_module(f"{BUILTIN_PACKAGE}.{info.name}"))
    return mods


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP)
    seen, out = set(), []
    for ep in sorted(eps, key=lambda e: (e.name, e.value)):
        key = (ep.name, ep.value)
        if key not in seen:  # the same dist visible twice on sys.path
            seen.add(key)
            out.append(ep)
    return out


def _ep_plugin_name(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name}:{ep.name}" if dist is not None else ep.name


@dataclass
class Registry:
    """Adapters by name, with the plugin each came from."""

    pm: pluggy.PluginManager
    adapters: dict[str, Adapter] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # adapter name -> plugin name
    builtin_plugins: tuple[str, ...] = ()
    skipped: list[str] = field(default_factory=list)  # "plugin: reason" of broken third-party plugins

    def names(self) -> list[str]:
        return list(self.adapters)

    def __iter__(self):
        return iter(self.adapters.values())

    def __len__(self) -> int:
        return len(self.adapters)

    def source_of(self, name: str) -> str:
        return self.sources[name]

    def is_builtin(self, name: str) -> bool:
        return self.sources[name] in self.builtin_plugins

    def get(self, name: str, need: str | None = None) -> Adapter:
        a = self.adapters.get(name) or self.adapters.get(name.lower())
        if a is None:
            raise ConfigError(f"unknown adapter {name!r} (known: {', '.join(self.names())}; see 'dtvfx plugins')")
        if need and not a.can(need):
            able = [n for n, x in self.adapters.items() if x.can(need)]
            raise ConfigError(f"adapter {name!r} cannot {need.replace('_', ' ')} "
                              f"(adapters that can: {', '.join(able) or 'none'})")
        return a

    def for_path(self, path: str | Path, need: str = "write") -> Adapter:
        """The adapter whose suffix ends the file name (longest suffix wins)."""
        fname = Path(path).name.lower()
        best: list[Adapter] = []
        best_len = 0
        for a in self.adapters.values():
            if not a.can(need):
                continue
            for s in a.suffixes:
                if fname.endswith(s) and len(fname) > len(s) - 1:
                    if len(s) > best_len:
                        best, best_len = [a], len(s)
                    elif len(s) == best_len and a not in best:
                        best.append(a)
        if not best:
            known = sorted({s for a in self.adapters.values() if a.can(need) for s in a.suffixes})
            raise ConfigError(f"no adapter can {need.replace('_', ' ')} a {Path(path).suffix or 'suffix-less'} "
                              f"file (suffixes: {' '.join(known)}); name one with --to", where=str(path))
        if len(best) > 1:
            cands = ", ".join(f"{a.name} ({self.sources[a.name]})" for a in best)
            raise ConfigError(f"suffix is ambiguous: {cands}; pick one with --to NAME", where=str(path))
        return best[0]

    def select(self, name: str | None = None, path: str | Path | None = None, need: str = "write") -> Adapter:
        if name:
            return self.get(name, need)
        if path is None:
            raise ConfigError("name an adapter (--to NAME) or give a file whose suffix picks one")
        return self.for_path(path, need)


def _collect(pm: pluggy.PluginManager, plugin_name: str, plugin: object, strict: bool) -> list[Adapter]:
    impls = [i for i in pm.hook.dtvfx_adapters.get_hookimpls() if i.plugin is plugin]
    out: list[Adapter] = []
    for impl in impls:
        try:
            got = impl.function()
            got = list(got or ())
            bad = [type(a).__name__ for a in got if not isinstance(a, Adapter)]
            if bad:
                raise TypeError(f"dtvfx_adapters() returned {bad} instead of Adapter records")
        except Exception as e:  # noqa: BLE001 - a plugin can fail in any way
            if strict:
                raise
            raise _Skip(f"{type(e).__name__}: {e}") from e
        out.extend(got)
    return out


class _Skip(Exception):
    pass


def load_registry(entry_points: bool = True, extra_plugins: Iterable[tuple[str, object]] = ()) -> Registry:
    """Build the registry (built-ins, then entry points, then ``extra_plugins`` as (name, module))."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    reg = Registry(pm)
    plan: list[tuple[str, object, bool]] = []
    for mod in builtin_modules():
        if not hasattr(mod, "dtvfx_adapters"):
            continue
        plan.append((mod.__name__, mod, True))
    reg.builtin_plugins = tuple(p[0] for p in plan)
    if entry_points:
        for ep in _entry_points():
            pname = _ep_plugin_name(ep)
            try:
                obj = ep.load()
            except Exception as e:  # noqa: BLE001
                msg = f"{pname}: cannot load {ep.value} ({type(e).__name__}: {e})"
                log.warning("skipping plugin %s", msg)
                reg.skipped.append(msg)
                continue
            plan.append((pname, obj, False))
    for name, obj in extra_plugins:
        plan.append((name, obj, False))

    for pname, obj, strict in plan:
        if pm.is_registered(obj):
            log.info("plugin %s is already registered as %s", pname, pm.get_name(obj))
            continue
        try:
            pm.register(obj, name=pname)
        except Exception as e:  # noqa: BLE001 - pluggy validation errors
            if strict:
                raise
            msg = f"{pname}: invalid plugin ({type(e).__name__}: {e})"
            log.warning("skipping plugin %s", msg)
            reg.skipped.append(msg)
            continue
        try:
            adapters = _collect(pm, pname, obj, strict)
        except _Skip as e:
            msg = f"{pname}: dtvfx_adapters() failed ({e})"
            log.warning("skipping plugin %s", msg)
            reg.skipped.append(msg)
            pm.unregister(obj)
            continue
        for a in adapters:
            if a.name in reg.adapters:
                raise ConfigError(f"adapter name {a.name!r} is provided by two plugins: "
                                  f"{reg.sources[a.name]} and {pname}; uninstall or rename one")
            reg.adapters[a.name] = a
            reg.sources[a.name] = pname
    return reg


_cached: Registry | None = None


def registry(refresh: bool = False) -> Registry:
    """The process-wide registry (built once; ``refresh=True`` rebuilds, e.g. after installing a plugin)."""
    global _cached
    if _cached is None or refresh:
        _cached = load_registry()
    return _cached
