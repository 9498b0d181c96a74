"""Who and when, as job files record it: this host's name and UTC ISO 8601 time stamps.

Shared by :mod:`.status` (status.json) and :mod:`.lock` (lock holder files) without either importing the
other (status asks lock whether a worker lock is held).
"""

from __future__ import annotations

import datetime as _dt
import socket


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(s: str | None) -> float | None:
    if not s:
        return None
    try:
        return _dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def hostname() -> str:
    return socket.gethostname()


__all__ = ["now_iso", "parse_iso", "hostname"]
