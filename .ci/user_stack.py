#!/usr/bin/env python
"""Write what the README's user install (``pip install -c .ci/constraints.txt -e .``) resolves to on a
fresh machine, as JSON ``{"name": "version"}``, without installing anything (pip's dry-run report with
``--ignore-installed``). .ci/run writes it before installing the test extra and hands it to the tests
(env ``DTVFX_USER_STACK``); tests/test_environment.py then checks that every one of these packages has
exactly that version in the test environment, so CI tests the stack a user runs.

    python .ci/user_stack.py OUT.json                  # the resolution, as JSON
    python .ci/user_stack.py --requirements OUT.json   # the same JSON -> name==version lines (not the project)

.ci/run installs exactly those versions before the test command, so a machine that already holds other
versions (CI runs on a used machine) tests the same stack as a fresh one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def resolve() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                        "--report", report, "-c", ".ci/constraints.txt", "-e", "."], cwd=REPO, check=True)
        with open(report, encoding="utf-8") as fh:
            items = json.load(fh)["install"]
    return {i["metadata"]["name"]: i["metadata"]["version"] for i in items}


def requirements(stack: dict[str, str]) -> str:
    return "".join(f"{n}=={v}\n" for n, v in sorted(stack.items()) if n.replace("-", "_") != "dino_tracker_vfx")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--requirements":
        with open(sys.argv[2], encoding="utf-8") as fh:
            sys.stdout.write(requirements(json.load(fh)))
    elif len(sys.argv) == 2:
        with open(sys.argv[1], "w", encoding="utf-8") as fh:
            json.dump(resolve(), fh, indent=1, sort_keys=True)
    else:
        sys.exit("usage: python .ci/user_stack.py OUT.json | --requirements STACK.json")
