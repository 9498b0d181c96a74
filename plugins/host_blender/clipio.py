"""Blender side of the dino_tracker_vfx Blender adapter: markers in and out of a MovieClip.

Runs INSIDE Blender (the ``bpy`` module or a Blender executable) and needs only ``bpy`` and the
standard library - no numpy, no dino_tracker_vfx, never torch. The host side
(``dtvfx_plugins.blender``) does every coordinate conversion (through ``dino_tracker_vfx.coords``) and
hands this module a *markers document*; this module only maps plate frames to clip frames and
creates / reads Blender tracks. Used three ways:

* in-process by ``dtvfx_plugins.blender`` when ``import bpy`` works (:func:`write_blend`, :func:`dump_blend`);
* as a script: ``blender --background --factory-startup --python clipio.py -- REQUEST.json --dtvfx-clipio``
  (the request names the action and a result file, see :func:`main`);
* by the add-on in ``__init__.py`` (:func:`apply_doc` / :func:`dump_clip` on the open clip).

Markers document (``dino_tracker_vfx.blender_markers`` v1)::

    {"format": "dino_tracker_vfx.blender_markers", "version": 1,
     "plate": {"width": W, "height": H}, "frames": [1001, ...],
     "clip": {...},                                    # in dumps: the clip's frame mapping (see dump_clip)
     "fps": 10.0,                                      # optional: the shot's rate (scene fps of a new clip)
     "tracks": [{"name": "car_a", "object": "car" | null, "select": true,
                 "color": [r, g, b],                   # optional: the track's custom colour (its group's)
                 "markers": [[plate_frame, u, v, mute, keyed], ...]}]}

``u, v``: Blender's ``marker.co``, 0..1 of the clip's width/height from the bottom-left corner.
``plate_frame``: the plate's own frame number (1001...). ``mute``: a muted (disabled) marker.
``keyed`` (optional): ``marker.is_keyed``, placed by hand rather than tracked (dumps always write it;
a document without it leaves Blender's default).

Frame mapping (Blender ``movieclip.cc``): clip frame 1 shows the file the clip's ``filepath`` names
(a sequence's first image, number ``F0``) moved by ``frame_offset``; scene frame ``s`` shows clip frame
``s - frame_start + 1``. Markers are stored on clip frames, so

    clip_frame  = plate_frame - F0 - frame_offset + 1
    plate_frame = clip_frame + F0 + frame_offset - 1

``F0`` is the number in the sequence's first file name (Blender's own guess); a movie has no number,
so the writer stores the plate number of its first image in the clip's custom property
``dtvfx_first_frame`` (default 1). ``frame_start`` only moves the clip on the scene's timeline (the
writer sets it to the plate's first frame, so scene frames read as plate frames).
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback

FORMAT = "dino_tracker_vfx.blender_markers"
VERSION = 1
FIRST_FRAME_PROP = "dtvfx_first_frame"
MAX_NAME_BYTES = 63  # Blender's MAX_NAME (64) minus the terminating NUL

_TRAILING_NUMBER = re.compile(r"(\d+)(?=\.[^./\\]*$)")


class ClipIOError(Exception):
    """A user-level problem (bad clip, name clash...): reported as one line to the host side."""


# ----------------------------------------------------------------------------- pure helpers
def clip_frame_of(plate_frame: int, first_file_frame: int, frame_offset: int) -> int:
    return int(plate_frame) - int(first_file_frame) - int(frame_offset) + 1


def plate_frame_of(clip_frame: int, first_file_frame: int, frame_offset: int) -> int:
    return int(clip_frame) + int(first_file_frame) + int(frame_offset) - 1


def file_number(filepath: str) -> int | None:
    """The frame number Blender guesses from a sequence's file name (digits before the extension)."""
    m = _TRAILING_NUMBER.search(os.path.basename(filepath))
    return int(m.group(1)) if m else None


# ----------------------------------------------------------------------------- bpy side
def first_file_frame(clip) -> int:
    prop = clip.get(FIRST_FRAME_PROP)
    if clip.source == "SEQUENCE":
        n = file_number(clip.filepath)
        if n is not None:
            return n
    return int(prop) if prop is not None else 1


def clip_info(clip, scene=None) -> dict:
    import bpy

    scene = scene or (bpy.context.scene if bpy.context.scene else (bpy.data.scenes[0] if bpy.data.scenes else None))
    f0, off = first_file_frame(clip), int(clip.frame_offset)
    info = {"name": clip.name, "filepath": bpy.path.abspath(clip.filepath, library=clip.library),
            "source": clip.source, "size": [int(clip.size[0]), int(clip.size[1])],
            "frame_start": int(clip.frame_start), "frame_offset": off, "first_file_frame": f0,
            "frame_duration": int(clip.frame_duration)}
    if scene is not None:
        cf = int(scene.frame_current) - int(clip.frame_start) + 1
        info["scene_frame_current"] = int(scene.frame_current)
        info["current_plate_frame"] = plate_frame_of(cf, f0, off)
    return info


def _objects(clip):
    cam = next((o for o in clip.tracking.objects if o.is_camera), None)
    return cam, [o for o in clip.tracking.objects if not o.is_camera]


def dump_clip(clip, selected_only: bool = False, scene=None) -> dict:
    """Markers document of ``clip`` (every tracking object; the camera object's tracks have
    ``object: null``)."""
    info = clip_info(clip, scene)
    f0, off = info["first_file_frame"], info["frame_offset"]
    tracks = []
    cam, others = _objects(clip)
    for obj in ([cam] if cam else []) + others:
        for tr in obj.tracks:
            if selected_only and not tr.select:
                continue
            mk = [[plate_frame_of(m.frame, f0, off), float(m.co[0]), float(m.co[1]), bool(m.mute), bool(m.is_keyed)]
                  for m in sorted(tr.markers, key=lambda m: m.frame)]
            tracks.append({"name": tr.name, "object": None if obj.is_camera else obj.name,
                           "select": bool(tr.select), "markers": mk})
    return {"format": FORMAT, "version": VERSION, "plate": {"width": info["size"][0], "height": info["size"][1]},
            "clip": info, "tracks": tracks}


def _name_ok(name: str, what: str) -> str:
    if not name or len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ClipIOError(f"{what} name {name!r} is empty or longer than {MAX_NAME_BYTES} bytes")
    return name


def _object_for(clip, group: str | None):
    cam, _ = _objects(clip)
    if group is None:
        if cam is None:  # every clip has one; be safe
            raise ClipIOError(f"clip {clip.name!r} has no camera tracking object")
        return cam
    obj = clip.tracking.objects.get(group)
    if obj is not None and obj.is_camera:  # a group named like the camera object
        group = f"{group}_2"
        obj = clip.tracking.objects.get(group)
    if obj is None:
        obj = clip.tracking.objects.new(_name_ok(group, "tracking object"))
        if obj.name != group:
            raise ClipIOError(f"Blender renamed tracking object {group!r} to {obj.name!r}")
    return obj


def apply_doc(clip, doc: dict, replace: bool = True, select: bool = True) -> list[str]:
    """Create (or, with ``replace``, refill) one track per document track. Returns the track names.

    A track of the same name in the same tracking object is reused: its markers become exactly the
    document's (new ones inserted, the others deleted); ``replace=False`` makes that an error."""
    if doc.get("format") != FORMAT:
        raise ClipIOError(f"not a {FORMAT} document (format={doc.get('format')!r})")
    f0, off = first_file_frame(clip), int(clip.frame_offset)
    made = []
    for tdoc in doc.get("tracks", []):
        name = _name_ok(tdoc["name"], "track")
        marks = tdoc.get("markers") or []
        if not marks:
            raise ClipIOError(f"track {name!r} has no markers")
        frames = []
        for mark in marks:
            pf, u, v, mute = mark[:4]
            keyed = bool(mark[4]) if len(mark) > 4 else None
            cf = clip_frame_of(pf, f0, off)
            # Blender's frame_duration of a sequence stops at the first missing file, so only the
            # start is a hard limit: markers after a gap in the plate numbering are kept.
            if cf < 1:
                raise ClipIOError(f"track {name!r}: plate frame {pf} is clip frame {cf}, before the start of clip "
                                  f"{clip.name!r} (clip frame 1 = plate frame {plate_frame_of(1, f0, off)})")
            frames.append((cf, float(u), float(v), bool(mute), keyed))
        obj = _object_for(clip, tdoc.get("object"))
        tr = obj.tracks.get(name)
        if tr is not None and not replace:
            raise ClipIOError(f"clip {clip.name!r} already has a track {name!r} in {obj.name!r}")
        if tr is None:
            tr = obj.tracks.new(name=name, frame=frames[0][0])
            if tr.name != name:
                raise ClipIOError(f"Blender renamed track {name!r} to {tr.name!r}")
        for cf, u, v, mute, keyed in frames:
            m = tr.markers.insert_frame(cf, co=(u, v))
            m.mute = mute
            if keyed is not None:  # tracked markers are not keyed; the anchors (query, corrections) are
                m.is_keyed = keyed
        keep = {f[0] for f in frames}
        for m in [m.frame for m in tr.markers if m.frame not in keep]:
            tr.markers.delete_frame(m)
        if tdoc.get("color"):
            tr.color = [float(c) for c in tdoc["color"][:3]]
            tr.use_custom_color = True
        tr.select = select
        made.append(name)
    return made


def find_clip(spec: str | None, load: bool = False):
    """A clip of the open file by name or by (absolute) file path; ``load`` opens the file as a new
    clip when none matches; ``spec=None``: the scene's active clip, or the only clip."""
    import bpy

    clips = list(bpy.data.movieclips)
    if spec:
        for c in clips:
            if c.name == spec:
                return c
        want = os.path.normpath(os.path.abspath(spec))
        for c in clips:
            if os.path.normpath(bpy.path.abspath(c.filepath, library=c.library)) == want:
                return c
        if load:
            if not os.path.exists(spec):
                raise ClipIOError(f"clip file not found: {spec}")
            return bpy.data.movieclips.load(want)
        raise ClipIOError(f"no clip {spec!r} in the file (clips: {', '.join(c.name for c in clips) or 'none'})")
    scene = bpy.context.scene if bpy.context.scene else (bpy.data.scenes[0] if bpy.data.scenes else None)
    if scene is not None and scene.active_clip is not None:
        return scene.active_clip
    if len(clips) == 1:
        return clips[0]
    raise ClipIOError("name the clip: the file has " + (f"{len(clips)} clips ({', '.join(c.name for c in clips)})"
                                                       if clips else "no clip"))


def _open(blend: str | None) -> None:
    import bpy

    if blend:
        if not os.path.isfile(blend):
            raise ClipIOError(f"no such .blend file: {blend}")
        bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)
    else:
        bpy.ops.wm.read_factory_settings(use_empty=True)


def write_blend(req: dict) -> dict:
    """Open ``req["blend_in"]`` (or start empty), find or load the clip ``req["clip"]["filepath"]``,
    apply ``req["doc"]`` and save a copy to ``req["save_to"]`` (the host renames it into place)."""
    import bpy

    _open(req.get("blend_in"))
    c = req.get("clip") or {}
    before = {x.name for x in bpy.data.movieclips}
    clip = find_clip(c.get("filepath") or c.get("name"), load=bool(c.get("filepath")))
    new_clip = clip.name not in before
    if c.get("first_file_frame") is not None and (clip.source != "SEQUENCE" or file_number(clip.filepath) is None):
        clip[FIRST_FRAME_PROP] = int(c["first_file_frame"])
    size = [int(clip.size[0]), int(clip.size[1])]
    plate = req["doc"].get("plate") or {}
    if size == [0, 0]:
        raise ClipIOError(f"Blender cannot read clip {clip.name!r} ({clip.filepath})")
    if plate and size != [plate.get("width"), plate.get("height")]:
        raise ClipIOError(f"clip {clip.name!r} is {size[0]}x{size[1]}, the tracks are for a "
                          f"{plate.get('width')}x{plate.get('height')} plate")
    if c.get("frame_start") is not None:
        clip.frame_start = int(c["frame_start"])
    elif new_clip:
        clip.frame_start = plate_frame_of(1, first_file_frame(clip), clip.frame_offset)
    scene = bpy.context.scene if bpy.context.scene else bpy.data.scenes[0]
    if scene.active_clip is None:
        scene.active_clip = clip
    if new_clip or req.get("set_scene"):
        frames = req["doc"].get("frames") or []
        last_cf = max([int(clip.frame_duration)] + [clip_frame_of(f, first_file_frame(clip), clip.frame_offset)
                                                    for f in frames[-1:]])
        scene.frame_start = int(clip.frame_start)
        scene.frame_end = int(clip.frame_start) + max(last_cf, 1) - 1
        scene.frame_current = scene.frame_start
        scene.render.resolution_x, scene.render.resolution_y = size
        scene.render.resolution_percentage = 100
        fps = req["doc"].get("fps")
        if fps:  # the shot's rate; fps_base carries NTSC rates (23.976 = 24 / 1.001)
            scene.render.fps = max(1, int(round(float(fps))))
            scene.render.fps_base = scene.render.fps / float(fps)
    made = apply_doc(clip, req["doc"], replace=bool(req.get("replace", True)), select=True)
    bpy.ops.wm.save_as_mainfile(filepath=req["save_to"], check_existing=False, copy=True)
    return {"ok": True, "clip": clip_info(clip, scene), "tracks": made}


def dump_blend(req: dict) -> dict:
    _open(req["blend"])
    clip = find_clip(req.get("clip"))
    return {"ok": True, "doc": dump_clip(clip, bool(req.get("selected_only")))}


ACTIONS = {"write": write_blend, "dump": dump_blend}


def run(req: dict) -> dict:
    """Run one request; user problems come back as ``{"ok": false, "error": "..."}``."""
    try:
        return ACTIONS[req["action"]](req)
    except ClipIOError as e:
        return {"ok": False, "error": " ".join(str(e).split())}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    args = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    args = [a for a in args if a != "--dtvfx-clipio"]
    if len(args) != 1:
        print("usage: blender --background --python clipio.py -- REQUEST.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as fh:
        req = json.load(fh)
    try:
        res = run(req)
    except Exception as e:  # a bug or a Blender failure: report it, keep the traceback on stderr
        traceback.print_exc()
        res = {"ok": False, "error": f"Blender failed: {type(e).__name__}: {' '.join(str(e).split())}", "bug": True}
    tmp = req["result"] + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(res, fh)
    os.replace(tmp, req["result"])
    return 0


if __name__ == "__main__" and "--dtvfx-clipio" in sys.argv:
    sys.exit(main())
