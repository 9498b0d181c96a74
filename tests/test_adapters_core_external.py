"""A third-party plugin package pip-installed into a temp target is listed and used; a broken one is skipped."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dino_tracker_vfx.adapters import load_registry

from _adapter_helpers import REPO, dtvfx_subprocess, golden_trackset

FIXTURE = Path(__file__).parent / "fixtures" / "external_plugin"


@pytest.fixture(scope="module")
def plugin_target(tmp_path_factory):
    src = tmp_path_factory.mktemp("src") / "external_plugin"
    shutil.copytree(FIXTURE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(target), str(src)], capture_output=True, text=True, timeout=180)
    if r.returncode != 0:
        pytest.skip(f"pip cannot build the fixture here: {r.stderr.strip()[-300:]}")
    return target


def test_entry_point_plugin_loaded_in_process(plugin_target, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_target))
    assert any(ep.name == "example" for ep in importlib.metadata.entry_points(group="dino_tracker_vfx.plugins"))
    reg = load_registry()
    assert reg.source_of("example-xy") == "dtvfx-example-plugin:example"
    assert not reg.is_builtin("example-xy") and reg.for_path("t.xy.txt").name == "example-xy"
    assert any(s.startswith("dtvfx-example-plugin:broken: cannot load") and "studio_secret_sdk" in s
               for s in reg.skipped)
    assert "nuke" in reg.names()  # the broken plugin did not take the built-ins down
    for m in [m for m in sys.modules if m.startswith("dtvfx_example_plugin")]:
        del sys.modules[m]


def test_cli_lists_and_uses_installed_plugin(plugin_target, tmp_path):
    env = {"PYTHONPATH": f"{plugin_target}:{REPO}"}
    r = dtvfx_subprocess("plugins", env=env)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("example-xy"))
    assert ".xy.txt" in line and "dtvfx-example-plugin:example" in line
    assert "skipped plugin dtvfx-example-plugin:broken" in r.stdout and "studio_secret_sdk" in r.stderr
    golden_trackset().save_json(tmp_path / "t.json")
    r = dtvfx_subprocess("export", tmp_path / "t.json", "--to", "example-xy", "--xy-precision", "1", env=env)
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "t.xy.txt").read_text().splitlines()
    assert lines[1] == "car_a 1001 0.0 0.0" and "car_b 1003" not in "\n".join(lines)  # occluded omitted
    r = dtvfx_subprocess("export", tmp_path / "t.json", "--to", "nuke", "--xy-precision", "1", env=env)
    assert r.returncode == 2 and "--xy-precision is an option of example-xy, not of nuke" in r.stderr
