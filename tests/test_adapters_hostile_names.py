"""Hostile track and group names through EVERY writer.

(a) The format's own reader gives back exactly the same names (and groups, where the format carries
    them) and positions; the ``.jsx`` has no reader, so its names are read from the file's string literals.
(b) Where the host language's real interpreter is here, the file parses and evaluating it cannot run a
    payload: ``.nk`` is sourced by ``tclsh`` with Tracker4 standing in for Nuke, which applies ``subst``
    to every label and track name (what Nuke does to a label); every ``.setting`` name is a plain string
    literal for ``luaparser`` and the only calls are Fusion's constructors; ``.jsx`` passes
    ``node --check`` and runs under ``node`` against a stub After Effects. Every payload would create
    the file ``pwned`` in the interpreter's working directory.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dino_tracker_vfx.adapters import registry, resolve_options
from dino_tracker_vfx.tracks import Query, TrackSet

PAYLOAD = "pwned"
HOSTILE = [
    "g] [exec touch pwned] [", "[exec touch pwned]", "\\[exec touch pwned]", "$(touch pwned)", "${x}$env(HOME)",
    '"; os.execute("touch pwned") --', "]] os.execute('touch pwned') --[[",
    "'); require('child_process').execSync('touch pwned'); ('", '"); require("child_process").execSync("touch pwned"); ("',
    "#comment {", "{", "}", "\\", "a\\", "a\nb", "a\r\nb", "a\rb", "a\u2028b", "a\u2029b\x85c", "tab\there",
    " lead", "trail ", "  ", "Ünïcødé 名前", "50% %41 %zz %", "bell\x07del\x7f", "plain",
]
GROUPS = ["g] [exec touch pwned] [", '"; os.execute("touch pwned") --', "#comment {", "a\nb", " lead", None]
W, H = 64, 48
FRAMES = [1001, 1002, 1003]
ATOL = {"syntheyes": 2e-5, "fusion": 1e-6, "blender": 2e-4}  # formats with normalised coordinates
ALL_WRITERS = sorted(a.name for a in registry() if a.write is not None)
SUFFIX = {a.name: a.suffixes[0] for a in registry()}


def hostile_trackset() -> TrackSet:
    n, t = len(HOSTILE), np.arange(len(FRAMES), dtype=np.float64)
    xy = np.stack([np.stack([2.0 + 2 * i + t, 3.0 + i + 0.5 * t], -1) for i in range(n)])
    groups = [GROUPS[i % len(GROUPS)] for i in range(n)]
    qs = [Query(0, float(xy[i, 0, 0]), float(xy[i, 0, 1]), HOSTILE[i], groups[i]) for i in range(n)]
    return TrackSet(xy, np.ones((n, len(FRAMES)), bool), np.ones((n, len(FRAMES)), np.float32), list(HOSTILE),
                    qs, FRAMES, (W, H))


def test_every_writer_is_covered():
    assert {"nuke", "nuke-ascii", "fusion", "aftereffects", "aftereffects-jsx", "tde", "syntheyes", "pftrack",
            "mmsolver", "blender", "blender_markers", "json", "csv"} <= set(ALL_WRITERS)


def _write(name: str, ts: TrackSet, folder: Path, png_sequence) -> tuple[Path, dict]:
    a = registry().get(name)
    out = folder / f"hostile{SUFFIX[name]}"
    opts: dict = {}
    if name in ("blender", "blender_markers"):
        # groups as tracking objects: with the default groups=prefix a group joins the name, and the
        # longest hostile names would pass Blender's 63-byte limit (cut, as documented)
        opts["groups"] = "objects"
    if name == "blender":
        opts["clip"] = png_sequence(first=FRAMES[0], n=len(FRAMES), w=W, h=H)
    a.write(ts, out, resolve_options(a, opts))
    return out, opts


def _jsx_names_and_positions(text: str) -> dict[str, np.ndarray]:
    """The names (JSON string literals) and positions of the .jsx tracks array, read without running it."""
    rows = re.findall(r'^ {8}\{name: ("(?:[^"\\]|\\.)*"), frames: \[[^\]]*\], xy: (\[.*\])\},?$', text, re.M)
    return {json.loads(n): np.array(json.loads(xy)) - 0.5 for n, xy in rows}  # AE layer space: pixel corners


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "fusion" else n  # lua parsing
                                  for n in ALL_WRITERS])
def test_hostile_names_round_trip_and_run_nothing(name, tmp_path, png_sequence, request):
    if name == "blender":
        request.getfixturevalue("blender")  # real Blender, from the tests' bpy venv
    ts = hostile_trackset()
    folder = tmp_path / "out"
    folder.mkdir()
    path, _ = _write(name, ts, folder, png_sequence)
    a = registry().get(name)
    want = {n: (ts.xy[i], ts.queries[i].group) for i, n in enumerate(ts.names)}
    if a.read_tracks is None:  # aftereffects-jsx
        got = _jsx_names_and_positions(path.read_text(encoding="utf-8"))
        assert sorted(got) == sorted(want)
        for n, xy in got.items():
            np.testing.assert_allclose(xy, want[n][0], atol=1e-6)
    else:
        back = a.read_tracks(path, resolve_options(a, {"plate_size": (W, H), "frame_numbers": FRAMES}))
        assert sorted(back.names) == sorted(ts.names), f"{name}: names differ"
        assert list(back.frame_numbers) == FRAMES
        for i, n in enumerate(back.names):
            np.testing.assert_allclose(back.xy[i], want[n][0], atol=ATOL.get(name, 1e-5), err_msg=repr(n))
            if "groups" in a.capabilities:
                assert back.queries[i].group == want[n][1], repr(n)
    checks = {"nuke": _tcl_subst_check, "fusion": _lua_literal_check, "aftereffects-jsx": _node_check}
    if name in checks:
        checks[name](path, ts, tmp_path)
    assert not (tmp_path / PAYLOAD).exists() and not (folder / PAYLOAD).exists()


# ----------------------------------------------------------------------------- the real interpreters
TCL_NUKE = r"""
# Nuke stand-ins: a node body is a list of knob/value pairs; Nuke applies Tcl substitution to a label
proc emit {s} { puts [binary encode hex [encoding convertto utf-8 $s]] }
proc Tracker4 {body} {
    foreach {k v} $body {
        if {$k eq "label"} { emit [subst $v] }
        if {$k eq "tracks"} { foreach row [lindex $v 2] { emit [subst [lindex $row 1]] } }
    }
}
proc CornerPin2D {body} { foreach {k v} $body { if {$k eq "label"} { emit [subst $v] } } }
cd [lindex $argv 1]
source -encoding utf-8 [lindex $argv 0]
"""


def _tcl_subst_check(path: Path, ts: TrackSet, cwd: Path, extra: list[str] = ()) -> None:
    if shutil.which("tclsh") is None:
        pytest.skip("tclsh not installed (apt-get install tcl): the .nk was read back but not run by Tcl")
    script = cwd / "nuke.tcl"
    script.write_text(TCL_NUKE)
    r = subprocess.run(["tclsh", str(script), str(path), str(cwd)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    seen = [bytes.fromhex(h).decode("utf-8") for h in r.stdout.decode().split()]
    groups = {q.group for q in ts.queries} - {None}
    assert sorted(seen) == sorted(list(ts.names) + list(groups) + list(extra))  # each shows as it is


def test_nk_cornerpin_label_of_hostile_names_runs_nothing(tmp_path):
    ts = hostile_trackset()
    pin = ["g] [exec touch pwned] [", "$(touch pwned)", "a\nb", "${x}$env(HOME)"]
    a = registry().get("nuke")
    out = tmp_path / "pin.nk"
    a.write(ts, out, resolve_options(a, {"cornerpin": pin, "centroid": False}))
    _tcl_subst_check(out, ts, tmp_path, extra=[f"{' '.join(pin)} ref {FRAMES[0]}"])
    assert not (tmp_path / PAYLOAD).exists()


FUSION_CONSTRUCTORS = {"ordered", "Tracker", "Input", "BezierSpline", "XYPath", "OperatorInfo"}


def _lua_literal_check(path: Path, ts: TrackSet, cwd: Path) -> None:
    pytest.importorskip("luaparser", reason="pip install luaparser (test extra)")
    from luaparser import ast

    tree = ast.parse("return " + path.read_text(encoding="utf-8"))
    strings, calls = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.String):
            strings.append(node.s.decode("utf-8") if isinstance(node.s, bytes) else node.s)
        elif isinstance(node, (ast.Call, ast.Invoke)):
            func = node.func.func if isinstance(node.func, ast.Call) else node.func  # ordered() { ... }
            calls.add(func.id if isinstance(node, ast.Call) and isinstance(func, ast.Name) else
                      type(node).__name__ + ":" + type(func).__name__)
    assert calls <= FUSION_CONSTRUCTORS, calls  # no os.execute & co: only Fusion's table constructors
    groups = {q.group for q in ts.queries} - {None}
    assert set(ts.names) | groups <= set(strings)  # each name is one plain string literal


JS_STUB = """
var made = [];
function CompItem() {}
var comp = new CompItem();
comp.width = %d; comp.height = %d; comp.frameDuration = 1;
comp.layers = {addNull: function () {
    var layer = {name: null, frames: null, values: null};
    layer.property = function () { return {property: function () { return {setValuesAtTimes:
        function (t, v) { layer.frames = t; layer.values = v; }}; }}; };
    made.push(layer);
    return layer;
}};
var app = {project: {activeItem: comp}, beginUndoGroup: function () {}, endUndoGroup: function () {}};
function alert(m) { throw new Error(m); }
"""


def _node_check(path: Path, ts: TrackSet, cwd: Path) -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node not installed (apt-get install nodejs): the .jsx literals were read but not run")
    js = cwd / "script.js"  # node --check wants a .js suffix
    js.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    r = subprocess.run([node, "--check", str(js)], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert r.returncode == 0, r.stderr
    run = cwd / "run.js"
    run.write_text(JS_STUB % (W, H) + path.read_text(encoding="utf-8")
                   + "\nprocess.stdout.write(JSON.stringify(made.map(function (l) { return [l.name, l.values]; })));\n",
                   encoding="utf-8")
    r = subprocess.run([node, str(run)], capture_output=True, timeout=60, cwd=cwd)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    made = json.loads(r.stdout.decode("utf-8"))
    assert [m[0] for m in made] == list(ts.names)
    for (n, values), xy in zip(made, ts.xy):
        np.testing.assert_allclose(np.array(values) - 0.5, xy, atol=1e-6, err_msg=repr(n))
