"""``dtvfx cache list|clean``: what the tracker cache holds, and removing it."""

from __future__ import annotations

import json
import time

COMMAND = "cache"
HELP = "list the tracker cache's shots (size, last use, stages) or clean them"
DESCRIPTION = """List or clean a tracker cache. `dtvfx track` caches every stage and checkpoint of each shot
(hundreds of MB for a short shot, GB for a long one) under --cache, by default $DTVFX_CACHE or
~/.cache/dino_tracker_vfx ($XDG_CACHE_HOME/dino_tracker_vfx when set); a job caches in its job folder
unless its spec names a cache. After each run the least recently used shots are removed while the cache
is over $DTVFX_CACHE_MAX (default 20G; 0 or none: no limit). A shot a running job or `dtvfx track` is
using is never removed: it is listed as in use and kept.

examples:
  dtvfx cache list
  dtvfx cache list --cache /shared/cache/sh010 --json
  dtvfx cache clean --older-than 7d --dry-run
  dtvfx cache clean --max-size 10G
  dtvfx cache clean --all
"""


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="every cached shot: path, shot, size, last used, stages, checkpoints")
    cl = sub.add_parser("clean", help="remove cached shots (never one in use)")
    for sp in (ls, cl):
        sp.add_argument("--cache", metavar="DIR", help="cache folder (default $DTVFX_CACHE or ~/.cache/dino_tracker_vfx)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    cl.add_argument("--older-than", metavar="AGE", help="shots last used longer ago than AGE (7d, 12h, 30m, 2w)")
    cl.add_argument("--max-size", metavar="SIZE", help="then the least recently used until the cache fits SIZE "
                    "(10G, 500M)")
    cl.add_argument("--all", action="store_true", help="every shot not in use")
    cl.add_argument("--dry-run", action="store_true", help="only print what would be removed")


def _line(e, now: float) -> str:
    from ..tracker.cache_admin import human

    age = now - e.last_used
    ago = f"{age / 86400:.1f}d" if age >= 86400 else f"{age / 3600:.1f}h" if age >= 3600 else f"{age / 60:.0f}m"
    ck = ", ".join(f"{k} @ {i}" for k, i in sorted(e.checkpoints.items())) or "-"
    return (f"{e.path}  {human(e.size):>7}  used {ago} ago{'  IN USE' if e.in_use else ''}\n"
            f"    shot {e.shot}  frames {e.frames}\n    stages {', '.join(e.stages) or '-'}  checkpoints {ck}")


def run(args) -> int:
    from pathlib import Path

    from ..tracker import cache_admin as ca

    root = Path(args.cache) if args.cache else ca.default_root()
    now = time.time()
    if args.action == "list":
        entries = ca.list_entries(root)
        if args.json:
            print(json.dumps({"cache": str(root), "entries": [e.as_dict() for e in entries]}, indent=1))
            return 0
        for e in entries:
            print(_line(e, now))
        print(f"{root}: {len(entries)} shot(s), {ca.human(sum(e.size for e in entries))}"
              + ("" if root.is_dir() else " (no cache yet)"))
        return 0
    older = ca.parse_age(args.older_than, "--older-than") if args.older_than else None
    size = ca.parse_size(args.max_size, "--max-size") if args.max_size else None
    res = ca.clean(root, older_than=older, max_size=size, everything=args.all, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for e in res.removed:
        print(f"{verb} {e.path}  {ca.human(e.size)}  ({e.shot})")
    for e in res.kept_in_use:
        print(f"kept {e.path}: in use by a running job or track")
    print(f"{root}: {verb} {len(res.removed)} shot(s), {ca.human(res.freed)}; {ca.human(res.remaining)} left")
    return 0
