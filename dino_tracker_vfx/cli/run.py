"""``dtvfx run JOB.yaml``: run a job in the foreground (what a render farm task runs)."""

from __future__ import annotations

import sys

COMMAND = "run"
HELP = "run a job here in the foreground (render-farm task); same code path as the background worker"
DESCRIPTION = """Run a job in this process with a progress bar; the job directory, status.json, cache and
checkpoints are exactly those of 'dtvfx submit', so a farm task that is killed and started again resumes
from its last checkpoint. SIGTERM/SIGINT stop it after a checkpoint (state cancelled).

JOB.yaml may also be an existing job directory (run it again / resume it here).
Exit codes: 0 done, 1 failed, 2 bad spec, 130 cancelled.

examples:
  dtvfx run shots/sh010.yaml
  dtvfx run shots/sh010.yaml --jobs-root /farm/jobs
  dtvfx run /farm/jobs/sh010
"""


def add_arguments(p) -> None:
    p.add_argument("spec", metavar="JOB.yaml|JOBDIR")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--jobs-root", metavar="DIR", help="put the job directory at DIR/<job name>")
    g.add_argument("--job-dir", metavar="DIR", help="use exactly this job directory")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def report(st: dict, rc: int) -> int:
    if st.get("state") == "done":
        for o in st.get("outputs") or []:
            print(o["path"])
    elif st.get("state") == "failed":
        print(f"dtvfx: error: job {st.get('job')} failed: {st.get('error')}", file=sys.stderr)
    else:
        print(f"dtvfx: job {st.get('job')} {st.get('state')}: {st.get('message')}", file=sys.stderr)
    print(st.get("job_dir"))
    return rc


def run(args) -> int:
    from ..jobs import client
    from ..jobs.worker import exit_code
    from ..progress import ConsoleBar

    bar = None if args.quiet else ConsoleBar()
    if client.is_job_dir(args.spec):
        st = client.run(job_dir=args.spec, progress=bar)
    else:
        st = client.run(args.spec, jobs_root=args.jobs_root, job_dir=args.job_dir, progress=bar)
    return report(st, exit_code(st))
