"""Progress reporting and cancellation shared by the tracker, jobs, evaluation and the CLI.

Long work takes ``progress: ProgressFn | None`` and ``cancel: CancelFn | None``::

    progress(Progress(stage="train", done=1200, total=10000, iteration=1200, eta_s=431.0))
    if cancel and cancel(): raise Cancelled(...)   # after saving what can be resumed

``stage`` is one of :data:`dino_tracker_vfx.stages.NAMES` (the ordered list the tracker, the jobs and
the docs share); any other name raises ValueError.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from . import stages as _stages
from .errors import Cancelled


@dataclass(frozen=True)
class Progress:
    stage: str
    done: int
    total: int
    iteration: int | None = None
    eta_s: float | None = None
    message: str = ""

    def __post_init__(self):
        _stages.check(self.stage)

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)


ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]


def check_cancel(cancel: CancelFn | None, what: str = "work") -> None:
    if cancel is not None and cancel():
        raise Cancelled(f"{what} cancelled")


def catch_signals(on_signal: Callable[[str], None], signals=(signal.SIGTERM, signal.SIGINT)
                  ) -> Callable[[], None]:
    """Route ``signals`` to ``on_signal(name)`` instead of their default action (e.g. Ctrl-C's
    KeyboardInterrupt), so a CancelFn can stop the work after it saved what can be resumed. Returns the
    function that restores the previous handlers. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {}

    def handler(signum, _frame):
        on_signal(signal.Signals(signum).name)

    for s in signals:
        try:
            old[s] = signal.signal(s, handler)
        except (ValueError, OSError):
            pass

    def restore():
        for s, h in old.items():
            try:
                signal.signal(s, h)
            except (ValueError, OSError):
                pass

    return restore


class SignalCancel:
    """A CancelFn for an interactive command: the first Ctrl-C (SIGINT) or SIGTERM makes it return True
    (the tracker saves a checkpoint and raises Cancelled); a second one interrupts at once
    (KeyboardInterrupt). Use as a context manager around the work."""

    def __init__(self):
        self.signalled: str | None = None
        self._restore: Callable[[], None] | None = None

    def _on_signal(self, name: str) -> None:
        if self.signalled:
            raise KeyboardInterrupt
        self.signalled = name
        print(f"\ndtvfx: {name}: stopping after a checkpoint (again to stop at once)", file=sys.stderr, flush=True)

    def __call__(self) -> bool:
        return self.signalled is not None

    def __enter__(self) -> "SignalCancel":
        self._restore = catch_signals(self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        if self._restore is not None:
            self._restore()


class EtaClock:
    """ETA from the rate since ``start`` (``eta(done, total)`` in seconds, None until measurable)."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.d0: int | None = None

    def eta(self, done: int, total: int) -> float | None:
        if self.d0 is None:
            self.d0, self.t0 = done, time.monotonic()
            return None
        dt, dd = time.monotonic() - self.t0, done - self.d0
        return None if dd <= 0 else dt / dd * max(0, total - done)


class ConsoleBar:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, stream=None, width: int = 30, min_interval: float = 0.2):
        self.stream = stream or sys.stderr
        self.width = width
        self.min_interval = min_interval
        self._last = 0.0
        self._stage = None
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        final = p.done >= p.total
        if not final and p.stage == self._stage and now - self._last < (self.min_interval if self.tty else 5.0):
            return
        self._last, new_stage, self._stage = now, p.stage != self._stage, p.stage
        n = int(round(self.width * p.fraction))
        eta = f" eta {_fmt_s(p.eta_s)}" if p.eta_s is not None and not final else ""
        line = f"{p.stage:<12} [{'#' * n}{'.' * (self.width - n)}] {p.done}/{p.total}{eta} {p.message}".rstrip()
        if self.tty:
            self.stream.write(("\n" if new_stage and self._last else "\r") + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _fmt_s(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


__all__ = ["Progress", "ProgressFn", "CancelFn", "check_cancel", "catch_signals", "SignalCancel", "EtaClock",
           "ConsoleBar", "Cancelled"]
