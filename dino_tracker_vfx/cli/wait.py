"""``dtvfx wait JOBDIR``: follow a job with a progress bar until it ends."""

from __future__ import annotations

import argparse
import sys

COMMAND = "wait"
HELP = "follow a job with a progress bar; exit code reflects its final state"
DESCRIPTION = """Follow a job until it ends. Exit codes: 0 done, 1 failed, 3 died (worker killed; resumable),
130 cancelled, 124 --timeout passed while it still runs.

examples:
  dtvfx wait shots/sh010.dtvfx
  dtvfx wait shots/sh010.dtvfx --timeout 3600 --quiet
"""

EXIT = {"done": 0, "failed": 1, "died": 3, "cancelled": 130}


def add_arguments(p) -> None:
    p.add_argument("job_dir", metavar="JOBDIR")
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="give up after S seconds (exit 124)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--poll", type=float, default=0.5, metavar="S", help=argparse.SUPPRESS)


def run(args) -> int:
    from ..jobs import client
    from ..progress import ConsoleBar

    state = client.wait(args.job_dir, progress=None if args.quiet else ConsoleBar(), timeout=args.timeout,
                        poll=args.poll)
    st = client.status(args.job_dir)
    if state == "failed":
        print(f"dtvfx: job failed: {st.get('error')}", file=sys.stderr)
    elif state in ("died", "cancelled"):
        print(f"dtvfx: job {state}: {st.get('message')}", file=sys.stderr)
    elif state == "done":
        for o in st.get("outputs") or []:
            print(o["path"])
    else:
        print(f"dtvfx: job still {state} after {args.timeout:g} s", file=sys.stderr)
        return 124
    return EXIT.get(state, 1)
