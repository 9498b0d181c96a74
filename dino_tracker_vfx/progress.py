"""Progress reporting and cancellation shared by the tracker, jobs, evaluation and the CLI.

Long work takes ``progress: ProgressFn | None`` and ``cancel: CancelFn | None``::

    progress(Progress(stage="train", done=1200, total=10000, iteration=1200, eta_s=431.0))
    if cancel and cancel(): raise Cancelled(...)   # after saving what can be resumed

``stage`` is one of :data:`dino_tracker_vfx.stages.NAMES` (the ordered list the tracker, the jobs and
the docs share); any other name raises ValueError.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from . import stages as _stages
from .errors import Cancelled, ConfigError


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


_BAR = "{desc:<12} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}"  # label, bar, the stage's own counter


class ConsoleBar:
    """The CLI's progress display, a :data:`ProgressFn` drawn by tqdm: per stage its label, a bar, the stage's
    own counter (``done/total``) and the ETA (``Progress.eta_s`` when the work gives one, else tqdm's estimate
    from the rate), then the message.

    On a terminal one live bar per stage (a finished stage's bar stays); on anything else (a farm log, a pipe)
    plain lines, never carriage returns: one when a stage starts, one when it ends, and between them at most
    one every ``log_interval`` seconds (default ``$DTVFX_PROGRESS_INTERVAL``, else 30)."""

    def __init__(self, stream=None, log_interval: float | None = None):
        self.stream = stream or sys.stderr
        self.log_interval = _env_interval() if log_interval is None else log_interval
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = None  # the terminal's tqdm bar of the current stage
        self._stage: str | None = None
        self._t0 = self._last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        new_stage = p.stage != self._stage
        if new_stage:
            self.close()
            self._stage, self._t0, self._last = p.stage, now, 0.0
        final = p.total > 0 and p.done >= p.total
        if self.tty:
            self._draw(p, final)
        elif new_stage or final or now - self._last >= self.log_interval:
            self._last = now
            self.stream.write(self._line(p, now - self._t0) + "\n")
            self.stream.flush()
        if final:
            self.close()
            self._stage = None

    def _draw(self, p: Progress, final: bool) -> None:  # (tqdm throttles its redraws itself)
        from tqdm import tqdm

        total = max(p.total, 0) or None
        if self._bar is None:
            self._bar = tqdm(total=total, desc=p.stage, file=self.stream, leave=True, dynamic_ncols=True,
                             bar_format=_BAR)
        bar = self._bar
        if bar.total != total:
            bar.total = total
        if p.done < bar.n:  # a counter that restarts (a resumed stage): a fresh bar, no bogus rate
            bar.reset(total)
        suffix = self._suffix(p, bar.format_dict.get("rate"), final).replace("{", "{{").replace("}", "}}")
        bar.bar_format = _BAR + (" " + suffix if suffix else "")
        bar.update(p.done - bar.n)

    def _line(self, p: Progress, elapsed: float) -> str:
        from tqdm import tqdm

        final = p.total > 0 and p.done >= p.total
        rate = p.done / elapsed if elapsed > 0 and p.done > 0 else None
        meter = tqdm.format_meter(p.done, max(p.total, 0) or None, elapsed, ncols=80, prefix=p.stage, ascii=True,
                                  bar_format=_BAR.replace("{bar}", "{bar:30}"))
        return f"{meter} {self._suffix(p, rate, final)}".rstrip()

    @staticmethod
    def _suffix(p: Progress, rate: float | None, final: bool) -> str:
        eta = p.eta_s
        if eta is None and rate and p.total > p.done:
            eta = (p.total - p.done) / rate
        return " ".join(x for x in (f"eta {_fmt_s(eta)}" if eta is not None and not final else "", p.message) if x)

    def close(self) -> None:
        """End the current stage's bar (the CLI calls nothing: a stage's last event or the next stage does)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _env_interval() -> float:
    raw = os.environ.get("DTVFX_PROGRESS_INTERVAL", "").strip()
    if not raw:
        return 30.0
    try:
        v = float(raw)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v >= 0):
        raise ConfigError(f"DTVFX_PROGRESS_INTERVAL={raw!r}: seconds between plain progress lines, a number >= 0",
                          where="environment")
    return v


def _fmt_s(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


__all__ = ["Progress", "ProgressFn", "CancelFn", "check_cancel", "catch_signals", "SignalCancel", "EtaClock",
           "ConsoleBar", "Cancelled"]
