"""The tests run on the core packages a user's install gives: installing the ``test`` extra must not move
numpy, OpenCV, OpenImageIO, torch, PyAV... (bpy pinned numpy<2 and so dragged numpy 2 -> 1.26,
opencv 5 -> 4.11 and OpenImageIO 3.2 -> 3.0 into every test run)."""

from __future__ import annotations

import configparser
import importlib.metadata as md
import json
import os

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO, missing

# An upper bound a test-only package puts on a core package, accepted knowingly: pytest needs pluggy<2 and
# nothing runs without pytest; today's user install picks pluggy 1.x (the CI comparison below catches the
# day it does not).
ACCEPTED_BOUNDS = {("pytest", "pluggy")}


def _setup_cfg_requirements() -> tuple[list[Requirement], list[Requirement]]:
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))

    def reqs(text):
        lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
        return [Requirement(ln) for ln in lines if ln and not ln.startswith("%")]

    return reqs(cfg["options"]["install_requires"]), reqs(cfg["options.extras_require"]["test"])


def _applies(req: Requirement) -> bool:
    return req.marker is None or req.marker.evaluate({"extra": ""})


def upper_bounds_on_core() -> list[str]:
    """Every requirement, in the installed closure of the test extra, that caps a core package
    (``<``, ``<=``, ``==``, ``~=``, ``===``): each can move the core package off a user's version."""
    core_reqs, test_reqs = _setup_cfg_requirements()
    core = {canonicalize_name(r.name) for r in core_reqs}
    found, seen = [], set()
    todo = [("dino_tracker_vfx[test]", r) for r in test_reqs if _applies(r)]
    while todo:
        parent, req = todo.pop()
        name = canonicalize_name(req.name)
        if name in core:
            caps = [s for s in req.specifier if s.operator in ("<", "<=", "==", "~=", "===")]
            if caps and (parent, name) not in ACCEPTED_BOUNDS:
                found.append(f"{parent} requires {req}")
            continue  # the core package's own dependencies are the user's too
        if name in seen:
            continue
        seen.add(name)
        try:
            sub = md.requires(req.name) or []
        except md.PackageNotFoundError:
            continue  # not installed here: the CI comparison covers it
        todo += [(name, r) for r in map(Requirement, sub) if _applies(r)]
    return found


def test_the_test_extra_caps_no_core_package():
    assert upper_bounds_on_core() == []


def test_bpy_is_not_in_the_test_extra():
    _, test_reqs = _setup_cfg_requirements()
    assert "bpy" not in {canonicalize_name(r.name) for r in test_reqs}


def test_core_packages_are_what_a_plain_user_install_gives():
    """.ci/run resolves ``pip install -c .ci/constraints.txt -e .`` on a fresh machine (.ci/user_stack.py)
    before installing the test extra; every package of that resolution must have that exact version here."""
    path = os.environ.get("DTVFX_USER_STACK")
    if not path:
        missing("set DTVFX_USER_STACK to the output of 'python .ci/user_stack.py FILE' (.ci/run does)")
    with open(path, encoding="utf-8") as fh:
        want = json.load(fh)
    diff = {}
    for name, version in want.items():
        if canonicalize_name(name) == "dino-tracker-vfx":
            continue
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            have = None
        if have != version:
            diff[name] = f"user install {version}, test environment {have}"
    assert not diff, diff


# ----------------------------------------------------------------------------- missing prerequisites
class _Item:
    def __init__(self, marker):
        self.marker = marker

    def get_closest_marker(self, name):
        return object() if name == self.marker else None


def test_missing_prerequisite_skips_locally_and_fails_under_ci(monkeypatch, tmp_path):
    import pytest

    import conftest

    monkeypatch.setattr(conftest, "SHARED_DATA", str(tmp_path / "no-shared-data"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs the project's shared data at .*no-shared-data"):
        conftest.pytest_runtest_setup(_Item("shared_data"))
    for value in ("true", "1"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception, match=r"no-shared-data \(required when CI is set\)"):
            conftest.pytest_runtest_setup(_Item("shared_data"))
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="shared data"):
        conftest.pytest_runtest_setup(_Item("shared_data"))
    conftest.pytest_runtest_setup(_Item("slow"))  # other markers: nothing to check
    monkeypatch.setattr(conftest, "SHARED_DATA", str(tmp_path))
    conftest.pytest_runtest_setup(_Item("shared_data"))  # present: runs


def test_the_default_cache_of_a_test_session_is_private(tmp_path_factory):
    from dino_tracker_vfx.tracker.cache_admin import default_root

    assert str(default_root()).startswith(str(tmp_path_factory.getbasetemp()))
