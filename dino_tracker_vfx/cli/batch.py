"""``dtvfx batch SHOTS.yaml``: run many jobs, locally or on a Ray cluster."""

from __future__ import annotations

import sys

COMMAND = "batch"
HELP = "run many tracking jobs (one at a time, --parallel N, or on Ray); one bad shot fails alone"
DESCRIPTION = """Run every job of a batch file (a list of job specs, or a template + a list of shots; see
docs/jobs.md) with an overall progress bar, then print a summary with the reason of every failure.
A job that fails (bad spec, corrupt frame, ...) fails alone; the exit code is 1 if any job did not finish.

Locally jobs run one at a time by default; --parallel N runs N at once, but at most --gpus of the jobs
whose device is cuda (default 1: one GPU at a time). --executor ray runs one Ray task per shot instead
(resources: num_gpus=1 for cuda jobs, else --num-cpus), retried --retries times after a crash; the job
directories must then be on storage every Ray node sees (--jobs-root).

examples:
  dtvfx batch shots.yaml
  dtvfx batch shots.yaml --parallel 4 --gpus 2
  dtvfx batch shots.yaml --executor ray --address auto --jobs-root /mnt/shared/dtvfx_jobs
"""


def add_arguments(p) -> None:
    p.add_argument("batch", metavar="SHOTS.yaml")
    p.add_argument("--jobs-root", metavar="DIR", help="job directories go to DIR/<job name> "
                                                     "(default <batch dir>/<batch stem>.dtvfx)")
    p.add_argument("--executor", choices=("local", "ray"), default="local")
    p.add_argument("--parallel", type=int, default=1, metavar="N", help="local: jobs at once (default 1)")
    p.add_argument("--gpus", type=int, default=1, metavar="N",
                   help="local: GPU jobs at once, one GPU each (default 1)")
    p.add_argument("--address", metavar="ADDR",
                   help="ray: cluster address (auto, ray://head:10001; default $RAY_ADDRESS or a local instance)")
    p.add_argument("--num-cpus", type=float, default=None, metavar="N", help="ray: CPUs per task (default 1)")
    p.add_argument("--num-gpus", type=float, default=None, metavar="N",
                   help="ray: GPUs per task (default 1 for cuda jobs, else 0)")
    p.add_argument("--retries", type=int, default=None, metavar="N",
                   help="ray: re-runs of a crashed task (default: the spec's retries, 1)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def run(args) -> int:
    from pathlib import Path

    from ..jobs import batch as B
    from ..progress import ConsoleBar

    jobs = B.load_batch(args.batch)
    root = Path(args.jobs_root).resolve() if args.jobs_root else B.default_jobs_root(args.batch)
    B.prepare_batch(jobs, root, executor=args.executor)
    bar = None if args.quiet else ConsoleBar()
    if args.executor == "ray":
        from ..jobs.ray_executor import run_ray

        run_ray(jobs, address=args.address, num_cpus=args.num_cpus, num_gpus=args.num_gpus, retries=args.retries,
                progress=bar)
    else:
        B.run_local(jobs, parallel=args.parallel, gpus=args.gpus, progress=bar)
    print(B.summary(jobs))
    print(root)
    failed = [j for j in jobs if not j.ok]
    for j in failed:
        print(f"dtvfx: {j.name}: {j.state}: {j.reason}", file=sys.stderr)
    return 1 if failed else 0
