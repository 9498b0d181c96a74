"""``dtvfx submit JOB.yaml``: start a job in a detached background worker."""

from __future__ import annotations

COMMAND = "submit"
HELP = "start a tracking job in the background; prints the job directory (last line)"
DESCRIPTION = """Validate a job spec, create its job directory and start a detached worker (a new session:
it keeps running after the terminal closes; its output goes to JOBDIR/job.log).

The LAST line printed is the job directory; follow it with 'dtvfx status/wait/cancel/resume JOBDIR'.
Submitting a spec whose job directory exists reuses it (its cache and checkpoints), unless it is running.

examples:
  dtvfx submit shots/sh010.yaml                # -> shots/sh010.dtvfx
  dtvfx submit sh010.yaml --jobs-root /jobs    # -> /jobs/sh010
  dtvfx wait "$(dtvfx submit sh010.yaml | tail -n1)"
"""


def add_arguments(p) -> None:
    p.add_argument("spec", metavar="JOB.yaml", help="job spec (see docs/jobs.md)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--jobs-root", metavar="DIR", help="put the job directory at DIR/<job name>")
    g.add_argument("--job-dir", metavar="DIR", help="use exactly this job directory")


def run(args) -> int:
    from ..jobs import client

    job = client.submit(args.spec, jobs_root=args.jobs_root, job_dir=args.job_dir)
    st = client.status(job.path)
    print(f"submitted job {st['job']} (log: {job.log})")
    print(job.path)
    return 0
