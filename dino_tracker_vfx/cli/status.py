"""``dtvfx status JOBDIR|BATCHDIR``: state and progress of jobs, or of every job of a batch."""

from __future__ import annotations

import json

COMMAND = "status"
HELP = "show the state, stage, progress and ETA of jobs (--json for hosts and scripts)"
DESCRIPTION = """Show a job's state: queued, running, done, failed, cancelled - or died (status says running
but no worker holds the job: it was killed; 'dtvfx resume JOBDIR' continues from its last checkpoint).

A batch folder (the jobs root 'dtvfx batch' prints last) shows one line per job, then the count of jobs
per state; a job refused before it was queued shows as failed with its reason.

--json prints the status dict (one object; a list for several directories). Fields: state, stage,
stage_done, stage_total, progress (0..1), iteration, eta_s, message, pid, host, error, error_kind,
retryable, reused, attempt, created/started/updated/finished (ISO 8601 UTC), outputs [{format, path,
written}], resumable. For a batch folder: {"batch": DIR, "jobs": [status dicts], "counts": {state: n}}.

examples:
  dtvfx status shots/sh010.dtvfx
  dtvfx status shots/*.dtvfx
  dtvfx status shots/sh010.dtvfx --json
  dtvfx status shots.dtvfx                  # the batch of shots.yaml
"""


def add_arguments(p) -> None:
    p.add_argument("job_dirs", nargs="+", metavar="JOBDIR", help="job directory or batch folder")
    p.add_argument("--json", action="store_true", help="print the status as JSON")


def line(st: dict) -> str:
    from ..progress import _fmt_s

    state = st["state"]
    parts = [f"{st.get('job', '?'):<16}", f"{state:<9}"]
    if state in ("running", "queued"):
        stage = st.get("stage") or "-"
        inner = f" {st.get('stage_done')}/{st.get('stage_total')}" if st.get("stage_total") else ""
        parts.append(f"{stage}{inner}")
        parts.append(f"{100 * float(st.get('progress') or 0):5.1f}%")
        if st.get("eta_s") is not None:
            parts.append(f"eta {_fmt_s(float(st['eta_s']))}")
        if st.get("pid"):
            parts.append(f"pid {st['pid']}@{st.get('host')}")
    elif state == "failed":
        parts.append(f"error: {st.get('error')}")
    elif state == "done":
        n = sum(1 for o in st.get("outputs") or [] if o.get("written"))
        parts.append(f"{n} output(s)")
    else:
        parts.append(st.get("message") or "")
    return "  ".join(p for p in parts if p).rstrip()


def counts_line(counts: dict) -> str:
    n = sum(counts.values())
    return f"{n} job(s): " + ", ".join(f"{counts[s]} {s}" for s in sorted(counts, key=_state_order))


def _state_order(state: str) -> int:
    from ..jobs.status import REPORTED

    return REPORTED.index(state) if state in REPORTED else len(REPORTED)


def run(args) -> int:
    from ..jobs import batch, client

    sts = [batch.batch_status(d) if not client.is_job_dir(d) and batch.is_batch_dir(d) else client.status(d)
           for d in args.job_dirs]
    if args.json:
        print(json.dumps(sts[0] if len(sts) == 1 else sts, indent=2))
        return 0
    for st in sts:
        if "batch" in st:
            print(f"batch {st['batch']}")
            for js in st["jobs"]:
                print(line(js) if js.get("queued", True) else line({**js, "error": f"not queued: {js['error']}"}))
            print(counts_line(st["counts"]))
            continue
        print(line(st))
        if len(sts) == 1:
            if st["state"] == "died":
                print(f"  {st['message']}")
            for o in st.get("outputs") or []:
                print(f"  {'written' if o.get('written') else 'pending':<8} {o['format']:<10} {o['path']}")
            print(f"  log: {st['job_dir']}/{st.get('log', 'job.log')}")
    return 0
