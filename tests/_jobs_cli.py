"""``python tests/_jobs_cli.py ARGS``: the dtvfx CLI with the job tests' ``counting_track`` registered as
the tracker (dino_tracker_vfx.jobs.tracker_entry); the workers it starts inherit it."""

import sys

from _jobs_helpers import HELPER_TRACK
from dino_tracker_vfx.cli import main
from dino_tracker_vfx.jobs import tracker_entry

if __name__ == "__main__":
    tracker_entry.use(HELPER_TRACK)
    sys.exit(main())
