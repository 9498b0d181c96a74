"""Blender for the tests, in its own environment: the real ``bpy`` wheel in a venv the test session
creates once and reuses, never in the environment under test.

Why: ``bpy`` pins ``numpy<2`` (and through it older OpenCV / OpenImageIO builds). Installed into the
test environment it would move the core packages away from what ``pip install -e .`` gives a user, so
the suite would test a stack nobody runs. Here the Blender side runs in a subprocess of this venv's
Python, exactly as a Blender executable runs it for a user without ``bpy``:

* :func:`bpy_python` -> the venv's ``python`` (created on first use under
  ``$DTVFX_TEST_CACHE`` or ``~/.cache/dtvfx-test``, one folder per bpy version and Python version,
  built under a file lock and marked complete only when ``import bpy`` works);
* :func:`blender_shim` -> a ``blender``-compatible executable (``--python SCRIPT -- ARGS``) running that
  Python, for ``DTVFX_BLENDER`` (the adapter's Blender-executable path);
* :func:`run_driver` -> runs ``tests/_bpy_driver.py`` there and returns its JSON answer.

bpy wheels exist for one CPython minor version per Blender release (5.0: 3.11): the venv is built with
that interpreter (this one when it matches, else ``python3.11`` on PATH).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BPY_VERSION = os.environ.get("DTVFX_TEST_BPY_VERSION", "5.0.1")
BPY_PYTHON = "3.11"  # the CPython minor version the bpy wheels of BPY_VERSION are built for
DRIVER = Path(__file__).resolve().parent / "_bpy_driver.py"


class BpyEnvError(RuntimeError):
    """The bpy environment cannot be created here (no matching Python, no registry access...)."""


def cache_root() -> Path:
    return Path(os.environ.get("DTVFX_TEST_CACHE") or Path.home() / ".cache" / "dtvfx-test")


def _base_python() -> str:
    if "%d.%d" % sys.version_info[:2] == BPY_PYTHON:
        return getattr(sys, "_base_executable", None) or sys.executable
    exe = shutil.which(f"python{BPY_PYTHON}")
    if not exe:
        raise BpyEnvError(f"bpy {BPY_VERSION} wheels need Python {BPY_PYTHON}: this is "
                          f"{sys.version_info[0]}.{sys.version_info[1]} and no python{BPY_PYTHON} is on PATH")
    return exe


def _run(cmd: list[str], what: str, timeout: float) -> str:
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BpyEnvError(f"{what}: {e}") from None
    if cp.returncode != 0:
        tail = " ".join((cp.stderr or cp.stdout).strip().splitlines()[-2:])
        raise BpyEnvError(f"{what} failed ({cp.returncode}): {tail[-400:]}")
    return cp.stdout


_FAILED: list[BpyEnvError] = []  # a failed build is not retried by every test of the session


def bpy_python() -> Path:
    """The Python of the bpy venv, created on first use (minutes: the wheel is a few hundred MB)."""
    if _FAILED:
        raise _FAILED[0]
    try:
        return _build()
    except BpyEnvError as e:
        _FAILED.append(e)
        raise


def _build() -> Path:
    root = cache_root()
    venv = root / f"bpy-{BPY_VERSION}-py{BPY_PYTHON}"
    py = venv / "bin" / "python"
    ok = venv / "dtvfx-ok"
    if ok.is_file():
        return py
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it: wait, then reuse
        if ok.is_file():
            return py
        shutil.rmtree(venv, ignore_errors=True)  # a half-built one from an interrupted run
        _run([_base_python(), "-m", "venv", str(venv)], f"python -m venv {venv}", 300)
        _run([str(py), "-m", "pip", "install", "--quiet", f"bpy=={BPY_VERSION}"],
             f"pip install bpy=={BPY_VERSION} into {venv}", 1800)
        version = _run([str(py), "-c", "import bpy; print(bpy.app.version_string)"], "import bpy", 300)
        ok.write_text(version)
    return py


def blender_shim(folder: Path, python: Path) -> Path:
    """``folder/blender``: takes Blender's ``--background --python SCRIPT -- ARGS`` command line and runs
    ``python SCRIPT -- ARGS`` (what a Blender executable does with the adapter's clipio script)."""
    exe = Path(folder) / "blender"
    exe.write_text(f"""#!/bin/sh
script=""
while [ $# -gt 0 ]; do
  case "$1" in --python) script="$2"; shift 2;; --) shift; break;; *) shift;; esac
done
exec "{python}" "$script" -- "$@"
""")
    exe.chmod(0o755)
    return exe


def run_driver(python: Path, action: str, timeout: float = 300, **request) -> dict:
    """Run one ``_bpy_driver.py`` action in the bpy venv; its JSON answer (AssertionError with the
    driver's stderr when it fails)."""
    with tempfile.TemporaryDirectory(prefix="dtvfx_bpy_") as tmp:
        rq, res = os.path.join(tmp, "request.json"), os.path.join(tmp, "result.json")
        with open(rq, "w", encoding="utf-8") as fh:
            json.dump(dict(request, action=action, result=res), fh)
        cp = subprocess.run([str(python), str(DRIVER), rq], capture_output=True, text=True, timeout=timeout)
        assert cp.returncode == 0 and os.path.exists(res), (cp.returncode, cp.stderr[-3000:])
        with open(res, encoding="utf-8") as fh:
            return json.load(fh)
