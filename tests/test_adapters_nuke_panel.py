"""Nuke panel (plugins/host_nuke) without Nuke: a fake ``nuke``/``nukescripts`` module, fake and real
``dtvfx`` subprocesses. Checks the commands it builds, the spec, status parsing, non-blocking polling,
and that the .nk output is pasted when the job is done."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import yaml

HOST = Path(__file__).resolve().parents[1] / "plugins" / "host_nuke"


# ------------------------------------------------------------------------------------------- fake Nuke
class Knob:
    def __init__(self, name="", label="", value=""):
        self._name, self._v = name, value

    def value(self):
        return self._v

    def setValue(self, v):
        self._v = v


class Node:
    def __init__(self, cls, name, **knobs):
        self._cls, self._name, self._sel = cls, name, True
        self._knobs = {k: Knob(k, value=v) for k, v in knobs.items()}

    def Class(self):
        return self._cls

    def name(self):
        return self._name

    def knobs(self):
        return self._knobs

    def __getitem__(self, k):
        return self._knobs[k]

    def setSelected(self, s):
        self._sel = s

    def readKnobs(self, text):  # Nuke's Node.readKnobs: set knobs from .nk text
        self.read_knobs = getattr(self, "read_knobs", []) + [text]


def fake_nuke(selected=()):
    nuke = types.ModuleType("nuke")
    nuke.log = {"paste": [], "copy": [], "menu": []}
    nuke.selectedNodes = lambda: [n for n in selected if n._sel]
    nuke.root = lambda: Node("Root", "/shots/sh010/comp.nk")
    nuke.nodePaste = lambda p: nuke.log["paste"].append(p)

    def node_copy(p):
        nuke.log["copy"].append((p, [n.name() for n in nuke.selectedNodes()]))
        Path(p).write_text("Tracker4 {\n}\n")
    nuke.nodeCopy = node_copy

    class Menu:
        def addCommand(self, name, fn):
            nuke.log["menu"].append((name, fn))
    nuke.menu = lambda name: Menu()
    for cls in ("Text_Knob", "File_Knob", "Boolean_Knob", "Enumeration_Knob", "PyScript_Knob"):
        setattr(nuke, cls, lambda name, label="", value="", _c=cls: Knob(
            name, label, value[0] if isinstance(value, list) else value))
    ns = types.ModuleType("nukescripts")

    class PythonPanel:
        def __init__(self, title, pid=""):
            self.knobs_added = []

        def addKnob(self, k):
            self.knobs_added.append(k)

        def show(self):
            return True
    ns.PythonPanel = PythonPanel
    return nuke, ns


@pytest.fixture
def panel(monkeypatch):
    monkeypatch.syspath_prepend(str(HOST))
    nuke, ns = fake_nuke()
    monkeypatch.setitem(sys.modules, "nuke", nuke)
    monkeypatch.setitem(sys.modules, "nukescripts", ns)
    sys.modules.pop("dtvfx_nuke_panel", None)
    mod = importlib.import_module("dtvfx_nuke_panel")
    yield mod
    sys.modules.pop("dtvfx_nuke_panel", None)


FAKE_DTVFX = textwrap.dedent(r'''
    import json, os, sys
    args = sys.argv[1:]
    if args[0] == "submit":
        spec = json.load(open(args[1]))
        job = os.path.join(os.path.dirname(args[1]), spec["name"] + ".job")
        os.makedirs(job, exist_ok=True)
        json.dump(spec, open(os.path.join(job, "spec.json"), "w"))
        print("submitted job " + spec["name"]); print(job)
    elif args[0] == "status":
        job = args[1]
        n_file = os.path.join(job, "polls")
        n = int(open(n_file).read()) + 1 if os.path.exists(n_file) else 1
        open(n_file, "w").write(str(n))
        spec = json.load(open(os.path.join(job, "spec.json")))
        out = spec["outputs"][0]["path"]
        if n < 2:
            print(json.dumps({"state": "running", "stage": "train", "progress": 0.5, "eta_s": 75}))
        else:
            open(out, "w").write("Tracker4 {\n name Tracker_car\n}\n")
            print(json.dumps([{"state": "done", "progress": 1.0,
                               "outputs": [{"format": "nuke", "path": out, "written": True}]}]))
    elif args[0] == "cancel":
        print("cancelling")
    sys.exit(0)
''')


# ------------------------------------------------------------------------------------------- tests
def test_command_from_environment(panel):
    assert panel.dtvfx_command({"DTVFX_CMD": "rez env dtvfx -- dtvfx"}) == ["rez", "env", "dtvfx", "--", "dtvfx"]
    assert panel.dtvfx_command({"DTVFX_PYTHON": "/envs/dt/bin/python"}) == ["/envs/dt/bin/python", "-m",
                                                                            "dino_tracker_vfx.cli"]
    assert panel.dtvfx_command({"DTVFX_CMD": "a b", "DTVFX_PYTHON": "p"})[0] == "a"  # DTVFX_CMD wins
    with pytest.raises(panel.PanelError, match="DTVFX_CMD.*DTVFX_PYTHON"):
        panel.dtvfx_command({})
    cmd = ["py", "-m", "dino_tracker_vfx.cli"]
    assert panel.submit_argv(cmd, "/j/s.yaml") == cmd + ["submit", "/j/s.yaml"]
    assert panel.status_argv(cmd, "/j/x") == cmd + ["status", "/j/x", "--json"]
    assert panel.cancel_argv(cmd, "/j/x") == cmd + ["cancel", "/j/x"]


def test_spec_from_read_node(panel, tmp_path):
    read = Node("Read", "Read 1", file="/plates/sh010.####.exr", first=1001, last=1100, colorspace="ACES - ACEScg")
    info = panel.read_node_info(read)
    spec = panel.build_spec(info, "/q/points.csv", str(tmp_path / "out.nk"), "fast", "cuda")
    assert spec["shot"] == {"path": "/plates/sh010.####.exr", "frames": "1001-1100", "colorspace": "ACES - ACEScg"}
    assert spec["name"] == "Read_1" and spec["outputs"] == [{"format": "nuke", "path": str(tmp_path / "out.nk"),
                                                              "options": {}}]
    path = panel.write_spec(spec, str(tmp_path / "specs"))
    assert yaml.safe_load(Path(path).read_text()) == spec  # JSON is YAML
    with pytest.raises(panel.PanelError, match="select a Read node"):
        panel.read_node_info(Node("Blur", "Blur1"))
    with pytest.raises(panel.PanelError, match="query file"):
        panel.build_spec(info, "", "o.nk")
    with pytest.raises(panel.PanelError, match=r"\.nk"):
        panel.build_spec(info, "q.csv", "o.txt")
    default_cs = Node("Read", "R", file="/p.exr", first=1, last=2, colorspace="default (sRGB)")
    assert "colorspace" not in panel.read_node_info(default_cs)


def test_status_parsing(panel):
    st = panel.parse_status(json.dumps({"state": "running", "stage": "train", "progress": 0.425, "eta_s": 125}))
    assert panel.status_text(st) == "running train 42% eta 2m05s"
    done = panel.parse_status(json.dumps([{"state": "done", "outputs": [
        {"format": "nuke", "path": "/o/a.nk", "written": True}, {"format": "csv", "path": "/o/a.csv", "written": True},
        {"format": "nuke", "path": "/o/b.nk", "written": False}]}]))
    assert panel.nk_outputs(done) == ["/o/a.nk"] and panel.status_text(done) == "done 1 output(s)"
    assert panel.status_text({"state": "failed", "error": "CUDA out of memory"}) == "failed CUDA out of memory"
    with pytest.raises(panel.PanelError, match="did not print JSON"):
        panel.parse_status("Traceback ...")
    with pytest.raises(panel.PanelError, match="no 'state'"):
        panel.parse_status("{}")
    assert panel.parse_submit_output("submitted job a (log: x)\n/jobs/a\n") == "/jobs/a"


class FakeProc:
    def __init__(self, argv, results, log):
        self.argv, self._results, self.log = argv, results, log
        self.polls = 0

    def poll(self):
        self.polls += 1
        rc, _, _, running = self._results
        return None if self.polls <= running else rc

    def communicate(self):
        assert self.poll() is not None, "communicate() on a running child would block Nuke"
        self.log.append(("communicate", self.argv[1]))
        return self._results[1], self._results[2]


def test_runner_never_blocks_and_finishes(panel):
    script = {"submit": [(0, "submitted\n/jobs/sh\n", "", 2)],
              "status": [(0, json.dumps({"state": "running", "progress": 0.3}), "", 1),
                         (0, json.dumps({"state": "done", "outputs": [{"format": "nuke", "path": "/o/t.nk",
                                                                       "written": True}]}), "", 0)]}
    log, events = [], []

    def popen(argv, **kw):
        log.append(("spawn", argv[1]))
        return FakeProc(argv, script[argv[1]].pop(0), log)

    r = panel.JobRunner(["dtvfx"], lambda t, p: events.append(("update", t, p)),
                        lambda paths: events.append(("done", paths)), lambda m: events.append(("error", m)), popen)
    r.start("/jobs/sh.yaml")
    for _ in range(12):
        r.tick()
    assert r.phase == "done" and r.job_dir == "/jobs/sh"
    assert events[-1] == ("done", ["/o/t.nk"])
    assert ("update", "running 30%", 0.3) in events
    assert [e for e in log if e[0] == "spawn"] == [("spawn", "submit"), ("spawn", "status"), ("spawn", "status")]


def test_runner_reports_failures(panel):
    def popen_fail(argv, **kw):
        return FakeProc(argv, (2, "", "dtvfx: error: job.yaml: shot: no frames on disk match the pattern\n", 0), [])
    errs = []
    r = panel.JobRunner(["dtvfx"], lambda *a: None, lambda p: None, errs.append, popen_fail)
    r.start("s.yaml")
    r.tick()
    assert r.phase == "failed" and errs == ["dtvfx submit failed: dtvfx: error: job.yaml: shot: no frames on disk "
                                            "match the pattern"]

    def popen_missing(argv, **kw):
        raise FileNotFoundError(2, "No such file or directory", argv[0])
    errs = []
    panel.JobRunner(["/nope/python"], lambda *a: None, lambda p: None, errs.append, popen_missing).start("s.yaml")
    assert errs and "cannot run /nope/python" in errs[0] and "DTVFX_CMD" in errs[0]


def _selected_read_and_tracker(tmp_path, monkeypatch, **tracker_knobs):
    """The fake dtvfx as DTVFX_CMD, and a Read and a Tracker4 selected in the fake nuke module."""
    fake = tmp_path / "fake_dtvfx.py"
    fake.write_text(FAKE_DTVFX)
    monkeypatch.setenv("DTVFX_CMD", f"{sys.executable} {fake}")
    nuke = sys.modules["nuke"]
    read = Node("Read", "Read1", file=str(tmp_path / "plate.####.exr"), first=1001, last=1010, colorspace="")
    tracker = Node("Tracker4", "Tracker1", **tracker_knobs)
    nuke.selectedNodes = lambda: [n for n in (read, tracker) if n._sel]
    return nuke, read, tracker


def test_panel_end_to_end_with_real_subprocess(panel, tmp_path, monkeypatch):
    nuke, read, tracker = _selected_read_and_tracker(tmp_path, monkeypatch)
    timers = []

    class Timer:
        def __init__(self):
            self.timeout = types.SimpleNamespace(connect=lambda fn: setattr(self, "fn", fn))
            self.running = False
            timers.append(self)

        def start(self, ms):
            self.running, self.ms = True, ms

        def stop(self):
            self.running = False
    monkeypatch.setattr(panel, "_qt_timer", Timer)
    p = panel.make_panel_class()()
    p.out.setValue(str(tmp_path / "out" / "sh_tracks.nk"))
    p.knobChanged(p.track_btn)
    assert timers and timers[0].running and timers[0].ms == panel.POLL_MS
    # the selected Tracker4 became the query file, saved with only it selected
    qpath, sel = nuke.log["copy"][0]
    assert sel == ["Tracker1"] and qpath.endswith("Tracker1_queries.nk") and read._sel
    import time
    end = time.time() + 20
    while timers[0].running and time.time() < end:
        timers[0].fn()
        time.sleep(0.02)
    assert nuke.log["paste"] == [str(tmp_path / "out" / "sh_tracks.nk")]
    assert p.status.value().startswith("done: imported sh_tracks.nk")
    spec = json.loads(next((tmp_path / "out").glob("*.dtvfx.yaml")).read_text())
    assert spec["queries"] == qpath and spec["shot"]["frames"] == "1001-1010"


def test_panel_shows_errors_without_raising(panel, monkeypatch):
    monkeypatch.delenv("DTVFX_CMD", raising=False)
    monkeypatch.delenv("DTVFX_PYTHON", raising=False)
    p = panel.make_panel_class()()  # nothing selected
    p.knobChanged(p.track_btn)
    assert p.status.value() == "error: select a Read node (the plate to track)"


def test_host_code_imports_no_heavy_modules(tmp_path):
    code = textwrap.dedent(f"""
        import sys, types
        nuke = types.ModuleType("nuke")
        calls = []
        class M:
            def addCommand(self, *a): calls.append(a[0])
        nuke.menu = lambda n: M()
        sys.modules["nuke"] = nuke
        sys.path.insert(0, {str(HOST)!r})
        import runpy
        runpy.run_path({str(HOST / "menu.py")!r})
        import dtvfx_nuke_panel
        bad = [m for m in ("torch", "numpy", "dino_tracker_vfx", "cv2") if m in sys.modules]
        print(calls, bad)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['DINO-Tracker/Track points...'] []"


RETRACK_NK = """# dino_tracker_vfx export for Nuke
Tracker4 {
 inputs 0
 tracks { { 1 31 1 } { { 3 1 75 name name 1 } { 2 1 58 track_x track_x 1 } { 2 1 58 track_y track_y 1 } }
{ { "a \\{b" {curve x1001 1.5 2.5} {curve x1001 3.5 4.5} } } }
 reference_frame 1001
 name Tracker_other
}
Tracker4 {
 tracks { { 1 31 1 } { { 3 1 75 name name 1 } } { { "pt" } } }
 reference_frame 1002
 name Tracker1
 label car
}
"""


def test_retrack_sends_the_node_as_corrections_and_updates_it_in_place(panel, tmp_path, monkeypatch):
    """Same set-up as the end-to-end test above (fake dtvfx, a Read and a Tracker4 selected)."""
    nuke, read, tracker = _selected_read_and_tracker(tmp_path, monkeypatch, label="car")

    def qt_timer():  # a timer the test drives by hand
        t = types.SimpleNamespace(running=False)
        t.timeout = types.SimpleNamespace(connect=lambda fn: setattr(t, "fn", fn))
        t.start = lambda ms: setattr(t, "running", True)
        t.stop = lambda: setattr(t, "running", False)
        return t
    monkeypatch.setattr(panel, "_qt_timer", qt_timer)
    p = panel.make_panel_class()()
    out = tmp_path / "out" / "sh_tracks.nk"
    p.out.setValue(str(out))
    p.knobChanged(p.retrack_btn)  # nothing tracked yet: one line, no job
    assert p.status.value().startswith("error: track the shot first (no job spec at ")

    def drive():
        import time
        end = time.time() + 20
        while p.timer is not None and p.timer.running and time.time() < end:
            p.timer.fn()
            time.sleep(0.02)
    p.knobChanged(p.track_btn)
    drive()
    first = json.loads((tmp_path / "out" / "Read1.dtvfx.yaml").read_text())
    assert "corrections" not in first and nuke.log["paste"] == [str(out)]
    # the artist keys Tracker1 on some frames, then re-tracks: the fake job writes RETRACK_NK
    (tmp_path / "fake_dtvfx.py").write_text(FAKE_DTVFX.replace('open(out, "w").write("Tracker4 {\\n name Tracker_car\\n}\\n")',
                                       f"open(out, 'w').write({RETRACK_NK!r})"))
    p.knobChanged(p.retrack_btn)
    drive()
    spec = json.loads((tmp_path / "out" / "Read1.dtvfx.yaml").read_text())
    fixes, sel = nuke.log["copy"][-1]
    assert sel == ["Tracker1"] and fixes.endswith("Tracker1_corrections.nk")
    assert spec["corrections"] == fixes and spec["queries"] == first["queries"] and spec["name"] == first["name"]
    assert nuke.log["paste"] == [str(out)]  # no second node pasted
    assert p.status.value() == "done: re-tracked Tracker1 in place"
    got = tracker.read_knobs[-1]
    assert got.startswith("tracks {") and '{ "pt" }' in got and got.endswith("reference_frame 1002")
    assert "Tracker_other" not in got and "curve" not in got  # the node of that name, not the other one
    # by label when the artist renamed the node; by the only node when there is one
    assert "1002" in panel.tracker_knobs(RETRACK_NK, "Renamed", "car")
    with pytest.raises(panel.PanelError, match="no Tracker4 for node Renamed"):
        panel.tracker_knobs(RETRACK_NK, "Renamed", "")
