"""DINO-Tracker panel for Nuke: track the selected Read node with ``dtvfx`` in the studio's own
environment and import the resulting Tracker4 nodes.

Runs inside Nuke's Python. It never imports torch, numpy or dino_tracker_vfx: all work happens in a
``dtvfx`` subprocess configured by an environment variable (checked in this order):

* ``DTVFX_CMD`` - a command line that runs dtvfx, split like a shell would
  (e.g. ``rez env dtvfx -- dtvfx`` or ``/studio/envs/dtvfx/bin/dtvfx``);
* ``DTVFX_PYTHON`` - the studio environment's python; runs ``python -m dino_tracker_vfx.cli``.

Flow: the panel writes a job spec (JSON, which is valid YAML) beside the output, runs
``dtvfx submit SPEC`` and then ``dtvfx status JOBDIR --json`` every two seconds. Each child process is
started with ``subprocess.Popen`` and only checked with ``poll()`` from a Qt timer on Nuke's main thread,
so Nuke's UI never waits. When the job is done, every written ``.nk`` output is pasted into the script
with ``nuke.nodePaste``. *Cancel* runs ``dtvfx cancel JOBDIR``.

Queries: a CSV/JSON query file (see docs: x, y in plate pixels, top-left; ``frame`` or ``t``), or the
selected Tracker4 node, saved with ``nuke.nodeCopy`` as a ``.nk`` query file.

Re-track (corrections): after a track, the artist keys a track's position on the frames where it is
wrong, on the imported Tracker4 node, selects it (and the Read) and presses *Re-track*. The panel saves
the node with ``nuke.nodeCopy`` as ``<node>_corrections.nk`` and submits the same job spec (same name,
so the same job directory and cache) with ``corrections:`` naming that file. dtvfx keeps the keys that
differ from the job's last tracks (the frames the artist moved) as anchors, re-tracks without training,
and the panel writes the new tracks into the SAME node (``node.readKnobs`` with the ``tracks`` knob of
the output's node of that name or label): no second node, the node's connections and edits stay.
"""

import json
import os
import shlex
import subprocess
import tempfile

ENV_CMD = "DTVFX_CMD"
ENV_PYTHON = "DTVFX_PYTHON"
POLL_MS = 2000
PRESETS = ("balanced", "fast", "paper", "cpu-preview")
DEVICES = ("auto", "cuda", "cpu", "mps")
FINAL_BAD = ("failed", "cancelled", "died")


class PanelError(Exception):
    """A problem to show to the artist (one line)."""


# ----------------------------------------------------------------------------------------- commands
def dtvfx_command(environ=None):
    """argv prefix that runs dtvfx in the studio environment."""
    env = os.environ if environ is None else environ
    cmd = (env.get(ENV_CMD) or "").strip()
    if cmd:
        return shlex.split(cmd, posix=(os.name != "nt"))
    py = (env.get(ENV_PYTHON) or "").strip()
    if py:
        return [py, "-m", "dino_tracker_vfx.cli"]
    raise PanelError("set %s (a command that runs dtvfx) or %s (the python of the environment where "
                     "dino_tracker_vfx is installed) before starting Nuke" % (ENV_CMD, ENV_PYTHON))


def submit_argv(cmd, spec_path):
    return list(cmd) + ["submit", str(spec_path)]


def status_argv(cmd, job_dir):
    return list(cmd) + ["status", str(job_dir), "--json"]


def cancel_argv(cmd, job_dir):
    return list(cmd) + ["cancel", str(job_dir)]


# ----------------------------------------------------------------------------------------- spec
def read_node_info(node):
    """Shot description from a Nuke Read node (file pattern, frame range, colorspace)."""
    if node is None or node.Class() != "Read":
        raise PanelError("select a Read node (the plate to track)")
    path = node["file"].value()
    if not path:
        raise PanelError("the Read node %s has no file" % node.name())
    info = {"path": path, "first": int(node["first"].value()), "last": int(node["last"].value()),
            "name": node.name()}
    cs = node["colorspace"].value() if "colorspace" in node.knobs() else ""
    if cs and not cs.startswith("default"):
        info["colorspace"] = cs
    return info


def spec_path_for(read_info, folder):
    """Where :func:`write_spec` puts the spec of ``read_info``'s shot (the panel's job for that Read)."""
    return os.path.join(folder, safe_job_name(read_info.get("name", "shot")) + ".dtvfx.yaml")


def correction_spec(spec_path, corrections_nk):
    """The spec of the last track of this shot with ``corrections`` added (same name: same job and cache)."""
    try:
        with open(spec_path) as fh:
            spec = json.load(fh)
    except (OSError, ValueError):
        raise PanelError("track the shot first (no job spec at %s)" % spec_path)
    spec["corrections"] = str(corrections_nk)
    return spec


def _closing_brace(text, j):
    """Index of the ``}`` closing the ``{`` at ``j`` (a backslash escapes the next character), or len(text)."""
    depth, k = 0, j
    while k < len(text):
        c = text[k]
        if c == "\\":
            k += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return k
        k += 1
    return len(text)


def _node_blocks(text):
    """``[(class, body)]`` of the top-level nodes of a .nk snippet (``Class {\n body }``)."""
    out, i = [], 0
    while True:
        j = text.find("{", i)
        if j < 0:
            return out
        k = _closing_brace(text, j)
        out.append((text[i:j].strip().split("\n")[-1].strip(), text[j + 1:k]))
        i = k + 1


def _knob_line(body, knob):
    for ln in body.splitlines():
        w = ln.strip().split(None, 1)
        if w and w[0] == knob:
            return w[1] if len(w) > 1 else ""
    return None


def tracker_knobs(nk_text, node_name, node_label=""):
    """The knob text (``tracks {...}`` and ``reference_frame``) of the Tracker4 in ``nk_text`` named
    ``node_name``, else labelled ``node_label``, else the only one; for ``node.readKnobs``."""
    blocks = [b for c, b in _node_blocks(nk_text) if c == "Tracker4"]
    pick = [b for b in blocks if _knob_line(b, "name") == node_name] or \
        [b for b in blocks if node_label and (_knob_line(b, "label") or "").strip("{}\" ") == node_label] or \
        (blocks if len(blocks) == 1 else [])
    if not pick:
        raise PanelError("the re-tracked file has no Tracker4 for node %s" % node_name)
    body = pick[0]
    start = body.find("tracks {")
    if start < 0:
        raise PanelError("the re-tracked Tracker4 has no tracks")
    knobs = body[start:_closing_brace(body, start + len("tracks ")) + 1]
    ref = _knob_line(body, "reference_frame")
    return knobs + ("\nreference_frame %s" % ref if ref is not None else "")


def build_spec(read_info, queries, out_nk, preset="balanced", device="auto", name=None):
    """Job spec dict (docs/jobs.md) that tracks ``read_info``'s shot and writes ``out_nk``."""
    if not queries:
        raise PanelError("choose a query file or select a Tracker4 node with the points to track")
    if not out_nk or not str(out_nk).lower().endswith(".nk"):
        raise PanelError("the output must be a .nk file")
    shot = {"path": read_info["path"], "frames": "%d-%d" % (read_info["first"], read_info["last"])}
    if read_info.get("colorspace"):
        shot["colorspace"] = read_info["colorspace"]
    spec = {"name": name or safe_job_name(read_info.get("name", "shot")), "shot": shot, "queries": str(queries),
            "preset": preset, "device": device, "outputs": [{"format": "nuke", "path": str(out_nk), "options": {}}]}
    return spec


def safe_job_name(s):
    out = "".join(c if (c.isalnum() or c in "_.-") else "_" for c in str(s))
    return out or "shot"


def write_spec(spec, folder):
    """Write the spec as JSON (valid YAML) atomically; returns its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, spec["name"] + ".dtvfx.yaml")
    fd, tmp = tempfile.mkstemp(prefix=".dtvfx_spec.", dir=folder)
    with os.fdopen(fd, "w") as fh:
        json.dump(spec, fh, indent=2)
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------------- status
def parse_submit_output(stdout):
    """``dtvfx submit`` prints the job directory as its last line."""
    lines = [ln.strip() for ln in (stdout or "").splitlines() if ln.strip()]
    if not lines:
        raise PanelError("dtvfx submit printed no job directory")
    return lines[-1]


def parse_status(stdout):
    """The dict of ``dtvfx status JOBDIR --json`` (first one of a list), with defaults filled."""
    try:
        st = json.loads(stdout)
    except ValueError:
        raise PanelError("dtvfx status did not print JSON: %r" % (stdout or "")[:120])
    if isinstance(st, list):
        st = st[0] if st else {}
    if not isinstance(st, dict) or "state" not in st:
        raise PanelError("dtvfx status JSON has no 'state'")
    st.setdefault("progress", 0.0)
    st.setdefault("outputs", [])
    return st


def status_text(st):
    state = st.get("state", "?")
    parts = [state]
    if state in ("running", "queued"):
        if st.get("stage"):
            parts.append(str(st["stage"]))
        parts.append("%d%%" % round(100 * float(st.get("progress") or 0)))
        if st.get("eta_s") is not None:
            eta = int(st["eta_s"])
            parts.append("eta %dm%02ds" % (eta // 60, eta % 60) if eta >= 60 else "eta %ds" % eta)
    elif state in FINAL_BAD:
        parts.append(str(st.get("error") or st.get("message") or ""))
    elif state == "done":
        parts.append("%d output(s)" % len(nk_outputs(st)))
    return " ".join(p for p in parts if p)


def nk_outputs(st):
    return [o["path"] for o in st.get("outputs") or []
            if o.get("written") and (o.get("format") == "nuke" or str(o.get("path", "")).lower().endswith(".nk"))]


def _last_line(text):
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class JobRunner:
    """Submit and poll a job without ever blocking: :meth:`tick` (from a Qt timer) only calls ``poll()``
    on the current child; a finished child's output is read and the next status poll is started.

    Callbacks: ``on_update(text, progress)``, ``on_done(nk_paths)``, ``on_error(message)``.
    """

    def __init__(self, cmd, on_update, on_done, on_error, popen=subprocess.Popen):
        self.cmd, self.popen = list(cmd), popen
        self.on_update, self.on_done, self.on_error = on_update, on_done, on_error
        self.phase = "idle"  # submitting | polling | done | failed
        self.job_dir = None
        self._proc = None

    def _spawn(self, argv):
        try:
            return self.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        except OSError as e:
            self._fail("cannot run %s: %s (check %s / %s)" % (argv[0], e, ENV_CMD, ENV_PYTHON))
            return None

    def _fail(self, msg):
        self.phase = "failed"
        self._proc = None
        self.on_error(msg)

    @property
    def active(self):
        return self.phase in ("submitting", "polling")

    def start(self, spec_path):
        self.phase = "submitting"
        self._proc = self._spawn(submit_argv(self.cmd, spec_path))
        if self._proc is not None:
            self.on_update("submitting...", 0.0)

    def tick(self):
        if not self.active:
            return
        if self._proc is None:
            self._proc = self._spawn(status_argv(self.cmd, self.job_dir))
            return
        rc = self._proc.poll()
        if rc is None:
            return  # still running: come back on the next tick
        out, err = self._proc.communicate()  # the child has exited: this returns at once
        self._proc = None
        if rc != 0:
            what = "submit" if self.phase == "submitting" else "status"
            self._fail("dtvfx %s failed: %s" % (what, _last_line(err) or "exit code %s" % rc))
            return
        try:
            if self.phase == "submitting":
                self.job_dir = parse_submit_output(out)
                self.phase = "polling"
                self.on_update("submitted: %s" % self.job_dir, 0.0)
                return
            st = parse_status(out)
        except PanelError as e:
            self._fail(str(e))
            return
        self.on_update(status_text(st), float(st.get("progress") or 0.0))
        if st["state"] == "done":
            self.phase = "done"
            self.on_done(nk_outputs(st))
        elif st["state"] in FINAL_BAD:
            self._fail("job %s: %s" % (st["state"], st.get("error") or st.get("message") or "see the job log"))

    def cancel(self):
        if self.job_dir:
            self._spawn(cancel_argv(self.cmd, self.job_dir))  # fire and forget; polling sees 'cancelled'


# ----------------------------------------------------------------------------------------- Nuke UI
def _qt_timer():
    try:
        from PySide6 import QtCore
    except ImportError:
        from PySide2 import QtCore
    return QtCore.QTimer()


def _selected(nuke, cls):
    for n in nuke.selectedNodes():
        if n.Class() == cls:
            return n
    return None


def _queries_from_tracker(nuke, tracker, folder, what="queries"):
    """Save the selected Tracker4 node as a .nk query (or corrections) file (read by the nuke adapter)."""
    keep = [n for n in nuke.selectedNodes()]
    for n in keep:
        n.setSelected(False)
    tracker.setSelected(True)
    path = os.path.join(folder, "%s_%s.nk" % (safe_job_name(tracker.name()), what))
    try:
        nuke.nodeCopy(path)
    finally:
        tracker.setSelected(False)
        for n in keep:
            n.setSelected(True)
    return path


def make_panel_class():
    import nuke
    import nukescripts

    class DtvfxPanel(nukescripts.PythonPanel):
        def __init__(self):
            nukescripts.PythonPanel.__init__(self, "DINO-Tracker", "uk.co.dtvfx.panel")
            self.read = _selected(nuke, "Read")
            self.tracker = _selected(nuke, "Tracker4")
            script_dir = os.path.dirname(nuke.root().name()) if nuke.root().name() != "Root" else tempfile.gettempdir()
            base = safe_job_name(self.read.name() if self.read else "shot")
            self.plate = nuke.Text_Knob("plate", "plate", self.read["file"].value() if self.read else "select a Read node")
            self.queries = nuke.File_Knob("queries", "queries (CSV/JSON)")
            self.use_tracker = nuke.Boolean_Knob("use_tracker", "use selected Tracker4 as queries", bool(self.tracker))
            self.preset = nuke.Enumeration_Knob("preset", "preset", list(PRESETS))
            self.device = nuke.Enumeration_Knob("device", "device", list(DEVICES))
            self.out = nuke.File_Knob("out", "output .nk")
            self.out.setValue(os.path.join(script_dir, "dtvfx", base + "_tracks.nk"))
            self.track_btn = nuke.PyScript_Knob("track", "Track")
            self.retrack_btn = nuke.PyScript_Knob("retrack", "Re-track")
            self.cancel_btn = nuke.PyScript_Knob("cancel", "Cancel")
            self.status = nuke.Text_Knob("status", "status", "idle")
            for k in (self.plate, self.queries, self.use_tracker, self.preset, self.device, self.out,
                      self.track_btn, self.retrack_btn, self.cancel_btn, self.status):
                self.addKnob(k)
            self.runner = None
            self.timer = None

        def knobChanged(self, knob):
            try:
                if knob is self.track_btn:
                    self.start()
                elif knob is self.retrack_btn:
                    self.retrack()
                elif knob is self.cancel_btn and self.runner is not None:
                    self.runner.cancel()
            except PanelError as e:
                self.set_status("error: %s" % e)

        def set_status(self, text, progress=None):
            self.status.setValue(text)

        def start(self):
            if self.runner is not None and self.runner.active:
                raise PanelError("a job is already running")
            info = read_node_info(self.read)
            out_nk = self.out.value()
            folder = os.path.dirname(out_nk) or tempfile.gettempdir()
            os.makedirs(folder, exist_ok=True)
            queries = self.queries.value()
            if self.use_tracker.value() and self.tracker is not None:
                queries = _queries_from_tracker(nuke, self.tracker, folder)
            spec = build_spec(info, queries, out_nk, self.preset.value(), self.device.value())
            self._run(write_spec(spec, folder), self.import_outputs)

        def retrack(self):
            """Send the keys the artist set on the selected Tracker4 as corrections; update it in place."""
            if self.runner is not None and self.runner.active:
                raise PanelError("a job is already running")
            info = read_node_info(self.read)
            if self.tracker is None:
                raise PanelError("select the Tracker4 node whose keys correct the tracks")
            folder = os.path.dirname(self.out.value()) or tempfile.gettempdir()
            spec_path = spec_path_for(info, folder)
            if not os.path.isfile(spec_path):
                raise PanelError("track the shot first (no job spec at %s)" % spec_path)
            fixes = _queries_from_tracker(nuke, self.tracker, folder, "corrections")
            spec = correction_spec(spec_path, fixes)
            node = self.tracker
            self._run(write_spec(spec, folder), lambda paths: self.update_in_place(node, paths))

        def _run(self, spec_path, on_done):
            self.runner = JobRunner(dtvfx_command(), self.set_status, on_done, self.on_error)
            self.runner.start(spec_path)
            self.timer = _qt_timer()
            self.timer.timeout.connect(self.runner.tick)
            self.timer.start(POLL_MS)

        def update_in_place(self, node, paths):
            self.stop_timer()
            try:
                if not paths:
                    raise PanelError("the job wrote no .nk output")
                with open(paths[0]) as fh:
                    text = fh.read()
                label = node["label"].value() if "label" in node.knobs() else ""
                node.readKnobs(tracker_knobs(text, node.name(), label))
            except (OSError, PanelError) as e:
                self.on_error(str(e))
                return
            self.set_status("done: re-tracked %s in place" % node.name())

        def stop_timer(self):
            if self.timer is not None:
                self.timer.stop()
                self.timer = None

        def on_error(self, msg):
            self.stop_timer()
            self.set_status("error: %s" % msg)

        def import_outputs(self, paths):
            self.stop_timer()
            for p in paths:
                nuke.nodePaste(p)
            self.set_status("done: imported %s" % ", ".join(os.path.basename(p) for p in paths) if paths
                            else "done (no .nk output)")

    return DtvfxPanel


_panel = None


def show_panel():
    """Open the panel (non-modal; the job keeps running while the artist works)."""
    global _panel
    _panel = make_panel_class()()
    _panel.show()
    return _panel
