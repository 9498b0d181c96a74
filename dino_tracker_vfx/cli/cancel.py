"""``dtvfx cancel JOBDIR``: stop a job cooperatively (it saves a checkpoint first)."""

from __future__ import annotations

import sys

COMMAND = "cancel"
HELP = "stop a running job after it saves a checkpoint (killed after --timeout)"
DESCRIPTION = """Ask a job's worker to stop: it notices the request at its next cancel check, saves a
checkpoint and ends 'cancelled'. A worker that has not stopped after --timeout seconds is killed
(SIGKILL, when it runs on this host); either way 'dtvfx resume JOBDIR' continues from the last checkpoint.

examples:
  dtvfx cancel shots/sh010.dtvfx
  dtvfx cancel shots/sh010.dtvfx --timeout 300 --no-kill
"""


def add_arguments(p) -> None:
    p.add_argument("job_dirs", nargs="+", metavar="JOBDIR")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for a cooperative stop before killing (default 60)")
    p.add_argument("--no-kill", action="store_true", help="only request the stop; never kill")


def run(args) -> int:
    from ..jobs import client

    rc = 0
    for d in args.job_dirs:
        state = client.cancel(d, timeout=args.timeout, kill=not args.no_kill)
        print(f"{d}: {state}")
        if state not in ("cancelled", "done", "failed"):
            print(f"dtvfx: {d} has not stopped yet ({state})", file=sys.stderr)
            rc = 1
    return rc
