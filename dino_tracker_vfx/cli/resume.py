"""``dtvfx resume JOBDIR``: restart a failed, cancelled or killed job from its cache and checkpoint."""

from __future__ import annotations

COMMAND = "resume"
HELP = "restart a failed/cancelled/died job from its cached stages and last checkpoint"
DESCRIPTION = """Restart a job that failed, was cancelled or died (its worker was killed). The new worker
reuses the tracker's cached stages and resumes training at the last checkpoint; a still-valid
tracks.json is reused, so a job that failed while writing outputs only writes them.

examples:
  dtvfx resume shots/sh010.dtvfx                 # in the background; prints the job directory last
  dtvfx resume shots/sh010.dtvfx --foreground    # here, with a progress bar
  dtvfx resume shots/sh010.dtvfx --force         # even a done job (rewrites its outputs)
"""


def add_arguments(p) -> None:
    p.add_argument("job_dir", metavar="JOBDIR")
    p.add_argument("--force", action="store_true", help="also run a job that is done")
    p.add_argument("--foreground", action="store_true", help="run here instead of a background worker")
    p.add_argument("--quiet", "-q", action="store_true", help="--foreground: no progress bar")


def run(args) -> int:
    from ..jobs import client

    if args.foreground:
        from ..jobs import runner
        from ..jobs.worker import exit_code
        from ..progress import ConsoleBar
        from .run import report

        runner.reset_for_resume(args.job_dir, executor="foreground", force=args.force)
        st = client.run(job_dir=args.job_dir, progress=None if args.quiet else ConsoleBar())
        return report(st, exit_code(st))
    job = client.resume(args.job_dir, force=args.force)
    print(f"resumed (log: {job.log})")
    print(job.path)
    return 0
