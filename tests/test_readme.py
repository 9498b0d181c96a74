"""The README's Quick start holds exactly two commands, and CI runs the second one."""

from __future__ import annotations

import os
import re

from conftest import REPO


def _quick_start_commands():
    text = open(os.path.join(REPO, "README.md")).read()
    m = re.search(r"## Quick start\n(.*?)\n## ", text, re.S)
    assert m, "README has no '## Quick start' section"
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", m.group(1), re.S)
    cmds = [ln.strip() for b in blocks for ln in b.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return cmds


def test_quick_start_has_exactly_two_commands():
    cmds = _quick_start_commands()
    assert len(cmds) == 2, cmds
    assert "pip install" in cmds[0] and "dtvfx" in cmds[0] and "samples/horsejump" in cmds[0]
    assert "pip install" in cmds[1] and "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    ci = open(os.path.join(REPO, ".ci", "run")).read()
    cmd = _quick_start_commands()[1]
    assert cmd in ci, (cmd, ci)
    assert "python -m ruff check ." in ci.split(cmd)[0], "CI lints (ruff) before the tests"


def test_every_cli_command_is_documented_in_readme():
    from dino_tracker_vfx.cli import _commands

    text = open(os.path.join(REPO, "README.md")).read()
    missing = [m.COMMAND for m in _commands() if f"dtvfx {m.COMMAND}" not in text]
    assert not missing, f"README does not mention: {missing}"
