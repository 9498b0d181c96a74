"""Which function a job calls to track: the built-in DINO-Tracker (``dino_tracker_vfx.tracker.api:track``)
or a stand-in that Python code already running in the same process registered with :func:`use`.

Nothing outside the code can choose it: no environment variable, job-spec field, command-line option or
file names a tracker to import (an old ``DTVFX_TRACK_FN`` in the environment is ignored). The job tests
register their fast checkpointing stand-in (tests/_jobs_helpers.py) this way. A process that registered a
stand-in hands it on to the workers it starts itself (:func:`worker_argv` for detached and batch workers,
the Ray task's argument), so a stand-in only ever reaches a worker started by code that had imported it.

A stand-in has its own settings: while one is registered, job specs skip the built-in tracker's preset
check (:func:`stand_in` is not None); otherwise the check always runs.
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import Callable

from ..errors import ConfigError

BUILTIN = "dino_tracker_vfx.tracker.api:track"
_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
# a worker started by a process with a stand-in: register it, then run the normal worker entry point
_BOOTSTRAP = ("import sys; from dino_tracker_vfx.jobs import tracker_entry, worker; "
              "tracker_entry.use(sys.argv[1]); sys.exit(worker.main(sys.argv[2:]))")
_stand_in: str | None = None


def use(target: str | None) -> None:
    """Make ``"module:function"`` the tracker of the jobs this process runs or starts (None: the built-in)."""
    global _stand_in
    if target is not None and not _TARGET.fullmatch(target):
        raise ValueError(f"expected 'module:function', got {target!r}")
    _stand_in = target


def stand_in() -> str | None:
    """The registered stand-in's ``"module:function"``, None when jobs use the built-in tracker."""
    return _stand_in


def track_function() -> Callable:
    """The tracker entry point: the registered stand-in, else the built-in tracker."""
    target = _stand_in or BUILTIN
    mod_name, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise ConfigError(f"tracker not available: cannot import {mod_name} ({e})") from None
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise ConfigError(f"tracker not available: {target} is not a function")
    return fn


def worker_argv(args: list[str]) -> list[str]:
    """The command line of a worker process running ``dino_tracker_vfx.jobs.worker`` with ``args``."""
    if _stand_in is None:
        return [sys.executable, "-m", "dino_tracker_vfx.jobs.worker", *args]
    return [sys.executable, "-c", _BOOTSTRAP, _stand_in, *args]


__all__ = ["BUILTIN", "use", "stand_in", "track_function", "worker_argv"]
