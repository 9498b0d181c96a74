"""DINO-Tracker VFX add-on for Blender's Movie Clip Editor.

Sidebar tab "DINO Tracker" (Movie Clip Editor, N panel):

* **Track selected** sends the selected tracks of the clip, at the current frame, as queries to a
  dino_tracker_vfx job: it writes ``queries.blender.json`` (a markers document, see ``clipio.py``) and
  ``job.yaml`` into a new job folder and runs ``<dtvfx> submit job.yaml`` in the studio's own Python
  environment - the command comes from the add-on preference "dtvfx command", else the environment
  variable ``DTVFX_CMD``, else ``dtvfx`` on PATH. Blender never imports torch or dino_tracker_vfx.
* A ``bpy.app.timers`` timer polls ``<dtvfx> status JOBDIR --json`` (each poll a non-blocking
  subprocess, so Blender stays responsive) and shows state and progress in the panel.
* When the job is done the add-on reads the job's ``blender_markers`` output (``tracks.blender.json``,
  marker.co 0..1 from the bottom-left on plate frames, muted marker = occluded) and creates / refills
  the tracks in the clip (groups -> tracking objects), selected.
* **Re-track** (corrections): after a job, the artist keys a marker where a track is wrong (drags it:
  Blender marks it keyed, not tracked), selects the tracks and presses Re-track. The add-on writes the
  selected tracks' markers (with ``is_keyed``) as ``corrections.blender.json`` into the clip's last job
  folder (kept in the clip's custom property ``dtvfx_job_folder``), adds ``corrections:`` to that job's
  spec and submits it again: the same job, so the same cache - dtvfx re-tracks with the keyed markers as
  anchors and no training - and the result refills the SAME tracks (their keyed markers are the anchors,
  the others tracked).
* **Import tracks file** applies any ``.blender.json`` (``dtvfx export tracks.json --to blender_markers``).

Frame mapping: see ``clipio.py`` (clip frame 1 = the clip's first file; plate frame = the number in
the file name). All file writes go to a temp file and are renamed into place.
"""

# No "from __future__ import annotations": bpy reads the property annotations of the classes below.
import json
import os
import re
import shlex
import subprocess
import tempfile
import time

import bpy
from bpy.props import FloatProperty, StringProperty

from . import clipio

bl_info = {
    "name": "DINO-Tracker VFX",
    "author": "dino_tracker_vfx",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "Movie Clip Editor > Sidebar > DINO Tracker",
    "description": "Track the selected markers with DINO-Tracker (dino_tracker_vfx jobs) and import the result",
    "category": "Video Tools",
}

QUERIES_FILE = "queries.blender.json"
CORRECTIONS_FILE = "corrections.blender.json"
JOB_PROP = "dtvfx_job_folder"  # the clip's custom property: the folder of its last job
RESULT_FILE = "tracks.blender.json"
FINAL = ("done", "failed", "cancelled", "died")

# One job at a time per Blender session (module state; the timer and the panel read it).
STATE: dict = {"phase": "idle", "message": "", "progress": 0.0, "job_dir": None, "clip": None, "proc": None,
               "status_proc": None, "cmd": None, "imported": [], "started": None}


# ----------------------------------------------------------------------------- settings
def _addon_key() -> str:
    return __package__ or __name__


def settings(context=None) -> dict:
    """The add-on preferences as a plain dict (defaults when the add-on is not registered)."""
    ctx = context or bpy.context
    prefs = None
    try:
        prefs = ctx.preferences.addons[_addon_key()].preferences
    except (KeyError, AttributeError):
        pass
    return {
        "dtvfx_cmd": (getattr(prefs, "dtvfx_cmd", "") or os.environ.get("DTVFX_CMD") or "dtvfx"),
        "jobs_dir": getattr(prefs, "jobs_dir", "") or "",
        "preset": getattr(prefs, "preset", "") or "balanced",
        "poll_seconds": float(getattr(prefs, "poll_seconds", 1.0) or 1.0),
    }


def command(cfg: dict) -> list[str]:
    return shlex.split(cfg["dtvfx_cmd"], posix=os.name != "nt")


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.part"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- submit
def job_spec(clip, name: str, folder: str, cfg: dict) -> dict:
    """The job spec (dino_tracker_vfx.jobs.spec fields), absolute paths into ``folder``. Written as JSON,
    which YAML readers accept."""
    path = bpy.path.abspath(clip.filepath, library=clip.library)
    if clip.source == "MOVIE":
        shot = {"path": path, "first_frame": clipio.first_file_frame(clip)}
    else:
        shot = {"path": path}  # one frame of a sequence: dtvfx opens the whole sequence
    return {"name": name, "shot": shot, "queries": os.path.join(folder, QUERIES_FILE), "preset": cfg["preset"],
            "outputs": [{"format": "blender_markers", "path": os.path.join(folder, RESULT_FILE)},
                        {"format": "json", "path": os.path.join(folder, "tracks.json")}]}


def queries_doc(clip, scene) -> dict:
    """Markers document of the selected tracks; each must have an unmuted marker on the current frame."""
    doc = clipio.dump_clip(clip, selected_only=True, scene=scene)
    if not doc["tracks"]:
        raise clipio.ClipIOError("select the tracks to send as queries")
    pf = doc["clip"]["current_plate_frame"]
    bad = []
    for t in doc["tracks"]:
        m = next((m for m in t["markers"] if m[0] == pf), None)
        if m is None or m[3]:
            bad.append(t["name"])
    if bad:
        raise clipio.ClipIOError(f"no unmuted marker on the current frame (plate frame {pf}) for: {', '.join(bad)}")
    return doc


def start_job(clip, scene, cfg: dict) -> str:
    """Write queries + job spec into a new job folder and start ``dtvfx submit`` (non-blocking)."""
    if STATE["phase"] in ("submitting", "running", "importing"):
        raise clipio.ClipIOError(f"a job is already running ({STATE['job_dir']})")
    doc = queries_doc(clip, scene)
    base = cfg["jobs_dir"] and bpy.path.abspath(cfg["jobs_dir"])
    if not base:
        blend = bpy.data.filepath
        base = os.path.join(os.path.dirname(blend), "dtvfx_jobs") if blend else os.path.join(tempfile.gettempdir(),
                                                                                               "dtvfx_jobs")
    stem = re.sub(r"[^A-Za-z0-9_.\-]+", "_", os.path.splitext(clip.name)[0]).strip("._") or "clip"
    name = f"{stem}_{time.strftime('%Y%m%d_%H%M%S')}"
    job_dir = os.path.join(base, name)
    k = 2
    while os.path.exists(job_dir):
        job_dir = os.path.join(base, f"{name}_{k}")
        k += 1
    os.makedirs(job_dir)
    _write_atomic(os.path.join(job_dir, QUERIES_FILE), json.dumps(doc, indent=1))
    spec = os.path.join(job_dir, "job.yaml")
    _write_atomic(spec, json.dumps(job_spec(clip, os.path.basename(job_dir), job_dir, cfg), indent=1) + "\n")
    clip[JOB_PROP] = job_dir
    return _submit(clip, job_dir, cfg)


def start_retrack(clip, scene, cfg: dict) -> str:
    """Send the selected tracks' markers (the keyed ones correct them) to the clip's last job again."""
    if STATE["phase"] in ("submitting", "running", "importing"):
        raise clipio.ClipIOError(f"a job is already running ({STATE['job_dir']})")
    job_dir = clip.get(JOB_PROP)
    spec_path = os.path.join(job_dir, "job.yaml") if job_dir else ""
    if not job_dir or not os.path.isfile(spec_path):
        raise clipio.ClipIOError("track the clip first (Track Selected): it has no job to correct")
    doc = clipio.dump_clip(clip, selected_only=True, scene=scene)
    if not doc["tracks"]:
        raise clipio.ClipIOError("select the tracks whose keyed markers correct them")
    fixes = os.path.join(job_dir, CORRECTIONS_FILE)
    _write_atomic(fixes, json.dumps(doc, indent=1))
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    spec["corrections"] = fixes
    _write_atomic(spec_path, json.dumps(spec, indent=1) + "\n")
    return _submit(clip, job_dir, cfg)


def _submit(clip, job_dir: str, cfg: dict) -> str:
    """Start ``dtvfx submit job_dir/job.yaml --job-dir job_dir/job`` (non-blocking)."""
    spec = os.path.join(job_dir, "job.yaml")
    cmd = command(cfg)
    try:
        proc = subprocess.Popen(cmd + ["submit", spec, "--job-dir", os.path.join(job_dir, "job")], cwd=job_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    except OSError as e:
        raise clipio.ClipIOError(f"cannot run {cmd[0]!r} ({e}); set the add-on preference 'dtvfx command' or "
                                 f"DTVFX_CMD") from None
    STATE.update(phase="submitting", message=f"submitting {os.path.basename(job_dir)}", progress=0.0,
                 job_dir=job_dir, clip=clip.name, proc=proc, status_proc=None, cmd=cmd, imported=[],
                 started=time.time(), poll=cfg["poll_seconds"])
    return job_dir


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _job_dir_from_submit(out: str, fallback: str) -> str:
    """``dtvfx submit`` prints the job folder (or a JSON object with ``job_dir``); default: the spec's."""
    try:
        d = json.loads(out)
        if isinstance(d, dict) and d.get("job_dir"):
            return d["job_dir"]
    except ValueError:
        pass
    lines = [ln.strip() for ln in (out or "").splitlines() if ln.strip()]
    if lines and os.path.isdir(lines[-1]):  # dtvfx submit: the last line is the job directory
        return lines[-1]
    return fallback


def _result_path(status: dict, job_dir: str) -> str:
    for o in status.get("outputs") or []:
        if isinstance(o, dict) and o.get("format") == "blender_markers" and o.get("path"):
            p = o["path"]
            return p if os.path.isabs(p) else os.path.join(job_dir, p)
    return os.path.join(job_dir, RESULT_FILE)


def import_doc(clip, path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    return clipio.apply_doc(clip, doc, replace=True, select=True)


def tick() -> float | None:
    """One poll step; returns the seconds until the next call, or None when finished (timer stops)."""
    poll = float(STATE.get("poll") or 1.0)
    ph = STATE["phase"]
    try:
        if ph == "submitting":
            p = STATE["proc"]
            if p.poll() is None:
                return poll
            out, err = p.communicate()
            if p.returncode != 0:
                return _fail(f"submit failed: {_last_line(err) or _last_line(out) or f'exit {p.returncode}'}")
            STATE.update(phase="running", proc=None, message="submitted",
                         job_dir=_job_dir_from_submit(out.strip(), os.path.join(STATE["job_dir"], "job")))
            return poll
        if ph == "running":
            sp = STATE["status_proc"]
            if sp is None:
                STATE["status_proc"] = subprocess.Popen(STATE["cmd"] + ["status", STATE["job_dir"], "--json"],
                                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                return poll
            if sp.poll() is None:
                return poll
            out, err = sp.communicate()
            STATE["status_proc"] = None
            if sp.returncode != 0:
                return _fail(f"status failed: {_last_line(err) or f'exit {sp.returncode}'}")
            st = json.loads(out)
            state = st.get("state", "?")
            STATE["progress"] = float(st.get("progress") or 0.0)
            STATE["message"] = f"{state}: {st.get('stage') or ''} {st.get('message') or ''}".strip()
            if state == "done":
                STATE["phase"] = "importing"
                clip = bpy.data.movieclips.get(STATE["clip"])
                if clip is None:
                    return _fail(f"clip {STATE['clip']!r} is gone")
                STATE["imported"] = import_doc(clip, _result_path(st, STATE["job_dir"]))
                STATE.update(phase="done", progress=1.0, message=f"imported {len(STATE['imported'])} track(s)")
                _redraw()
                return None
            if state in FINAL:
                return _fail(f"job {state}: {st.get('error') or st.get('message') or ''}".strip())
            _redraw()
            return poll
    except (OSError, ValueError, KeyError, clipio.ClipIOError) as e:
        return _fail(f"{type(e).__name__}: {e}")
    return None


def _fail(msg: str) -> None:
    STATE.update(phase="failed", message=" ".join(msg.split()), proc=None, status_proc=None)
    _redraw()
    return None


def _redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for win in getattr(wm, "windows", []) if wm else []:
        for area in win.screen.areas:
            if area.type == "CLIP_EDITOR":
                area.tag_redraw()


def _timer() -> float | None:
    return tick()


# ----------------------------------------------------------------------------- UI
class DTVFX_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = _addon_key()

    dtvfx_cmd: StringProperty(name="dtvfx command", default="",
                              description="Command of the studio's dtvfx (e.g. /studio/envs/dtvfx/bin/dtvfx); "
                                          "empty: $DTVFX_CMD, then 'dtvfx' on PATH")
    jobs_dir: StringProperty(name="Jobs folder", subtype="DIR_PATH", default="",
                             description="Where job folders are made (empty: dtvfx_jobs beside the .blend)")
    preset: StringProperty(name="Preset", default="balanced", description="Job preset (paper, balanced, fast, ...)")
    poll_seconds: FloatProperty(name="Poll every (s)", default=1.0, min=0.2, max=60.0)

    def draw(self, context):
        col = self.layout.column()
        for p in ("dtvfx_cmd", "jobs_dir", "preset", "poll_seconds"):
            col.prop(self, p)


def _launch(op, context, start, what: str) -> set:
    """Run ``start(clip, scene, cfg)`` for an operator and start polling; errors are reported, not raised."""
    cfg = settings(context)
    try:
        job_dir = start(context.edit_movieclip, context.scene, cfg)
    except clipio.ClipIOError as e:
        op.report({"ERROR"}, str(e))
        return {"CANCELLED"}
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=cfg["poll_seconds"])
    op.report({"INFO"}, f"{what} {job_dir}")
    return {"FINISHED"}


class DTVFX_OT_track_selected(bpy.types.Operator):
    bl_idname = "dtvfx.track_selected"
    bl_label = "Track Selected"
    bl_description = "Send the selected tracks (markers on the current frame) to a DINO-Tracker job"

    @classmethod
    def poll(cls, context):
        return getattr(context, "edit_movieclip", None) is not None and STATE["phase"] not in (
            "submitting", "running", "importing")

    def execute(self, context):
        return _launch(self, context, start_job, "dtvfx job")


class DTVFX_OT_retrack(bpy.types.Operator):
    bl_idname = "dtvfx.retrack"
    bl_label = "Re-track"
    bl_description = ("Re-track the selected tracks of the clip's last job with the markers you keyed as "
                      "corrections (no retraining)")

    @classmethod
    def poll(cls, context):
        clip = getattr(context, "edit_movieclip", None)
        return clip is not None and bool(clip.get(JOB_PROP)) and STATE["phase"] not in (
            "submitting", "running", "importing")

    def execute(self, context):
        return _launch(self, context, start_retrack, "dtvfx re-track")


class DTVFX_OT_cancel(bpy.types.Operator):
    bl_idname = "dtvfx.cancel"
    bl_label = "Stop Watching"
    bl_description = "Stop polling the job (runs 'dtvfx cancel JOBDIR' to stop the job itself)"

    def execute(self, context):
        for k in ("proc", "status_proc"):
            if STATE.get(k) is not None and STATE[k].poll() is None:
                STATE[k].terminate()
        if STATE.get("job_dir") and STATE.get("cmd"):
            try:
                subprocess.Popen(STATE["cmd"] + ["cancel", STATE["job_dir"]], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            except OSError:
                pass
        if bpy.app.timers.is_registered(_timer):
            bpy.app.timers.unregister(_timer)
        STATE.update(phase="failed", message="stopped", proc=None, status_proc=None)
        return {"FINISHED"}


class DTVFX_OT_import(bpy.types.Operator):
    bl_idname = "dtvfx.import_tracks"
    bl_label = "Import Tracks File"
    bl_description = "Create / refill tracks from a .blender.json markers document"

    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.blender.json", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return getattr(context, "edit_movieclip", None) is not None

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            names = import_doc(context.edit_movieclip, self.filepath)
        except (OSError, ValueError, clipio.ClipIOError) as e:
            self.report({"ERROR"}, f"{type(e).__name__}: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"imported {len(names)} track(s)")
        return {"FINISHED"}


class DTVFX_PT_panel(bpy.types.Panel):
    bl_space_type = "CLIP_EDITOR"
    bl_region_type = "UI"
    bl_category = "DINO Tracker"
    bl_label = "DINO Tracker"

    def draw(self, context):
        layout = self.layout
        clip = getattr(context, "edit_movieclip", None)
        if clip is None:
            layout.label(text="Open a clip")
            return
        n = sum(1 for o in clip.tracking.objects for t in o.tracks if t.select)
        layout.label(text=f"{n} selected track(s)")
        layout.operator(DTVFX_OT_track_selected.bl_idname, icon="TRACKING")
        layout.operator(DTVFX_OT_retrack.bl_idname, icon="FILE_REFRESH")
        layout.operator(DTVFX_OT_import.bl_idname, icon="IMPORT")
        ph = STATE["phase"]
        if ph != "idle":
            box = layout.box()
            box.label(text=f"{ph}: {os.path.basename(STATE['job_dir'] or '')}")
            if hasattr(box, "progress"):
                box.progress(factor=float(STATE["progress"]), type="BAR", text=STATE["message"] or ph)
            else:
                box.label(text=f"{100 * float(STATE['progress']):.0f}%  {STATE['message']}")
            if ph in ("submitting", "running"):
                box.operator(DTVFX_OT_cancel.bl_idname, icon="CANCEL")


CLASSES = (DTVFX_AddonPreferences, DTVFX_OT_track_selected, DTVFX_OT_retrack, DTVFX_OT_cancel, DTVFX_OT_import,
           DTVFX_PT_panel)


def register():
    for c in CLASSES:
        bpy.utils.register_class(c)


def unregister():
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    for c in reversed(CLASSES):
        bpy.utils.unregister_class(c)
