"""The foreground quota of training minibatches (the one owner: the flow-pair, best-buddy, refined
best-buddy and cycle-point samplers all ask it).

``fg_share(n, fg_ratio)``: how many of ``n`` items are foreground, ``round(n * fg_ratio)``.
``split_quota(n, fg_ratio, n_fg, n_bg)``: (foreground, background) counts when the candidates are known: the
foreground share, and a side with too few candidates hands the rest to the other.
``draw_with_fg_quota(n, fg_ratio, use_fg, draw, rng)`` rejection-samples until ``round(n * fg_ratio)``
foreground and the rest background items are collected (``use_fg=False``: all background). ``draw(m)``
returns ``(is_fg bool [m], ok bool [m] | None, payload)`` where ``payload`` is a tuple of arrays with a
leading axis of ``m``. A side that has yielded no candidate after 4 rounds hands its share to the other
(e.g. empty foreground masks). Returns the concatenated payload (foreground first) or None if nothing
was drawn; fewer than ``n`` rows only when the candidates run out.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

DrawFn = Callable[[int], "tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray, ...]]"]


def fg_share(n: int, fg_ratio: float) -> int:
    """How many of ``n`` items are foreground: ``round(n * fg_ratio)``."""
    return int(round(n * fg_ratio))


def split_quota(n: int, fg_ratio: float, n_fg: int, n_bg: int) -> tuple[int, int]:
    """(foreground, background) counts, at most ``n`` in all, out of ``n_fg`` / ``n_bg`` candidates:
    :func:`fg_share` foreground, and a side that runs short hands its rest to the other."""
    take_fg = min(fg_share(n, fg_ratio), n_fg)
    take_bg = min(n - take_fg, n_bg)
    return min(n - take_bg, n_fg), take_bg


def draw_with_fg_quota(n: int, fg_ratio: float, use_fg: bool, draw: DrawFn,
                       max_rounds: int = 64) -> tuple[np.ndarray, ...] | None:
    want = {True: fg_share(n, fg_ratio) if use_fg else 0}
    want[False] = int(n) - want[True]
    have, seen = {True: 0, False: 0}, {True: 0, False: 0}
    got: dict[bool, list] = {True: [], False: []}
    for round_ in range(max_rounds):
        need = sum(max(0, want[s] - have[s]) for s in (True, False))
        if need == 0:
            break
        is_fg, ok, payload = draw(max(256, 4 * need))
        for side in (True, False):
            match = is_fg == side
            cand = np.nonzero(match if ok is None else ok & match)[0]
            seen[side] += len(cand)
            sel = cand[: max(0, want[side] - have[side])]
            if len(sel):
                got[side].append(tuple(a[sel] for a in payload))
                have[side] += len(sel)
        if round_ >= 3:  # a side never drawn (e.g. empty masks) hands its share to the other
            for side in (True, False):
                if seen[side] == 0 and want[side] > 0:
                    want[not side] += want[side]
                    want[side] = 0
    parts = got[True] + got[False]
    if not parts:
        return None
    return tuple(np.concatenate(p) for p in zip(*parts))
