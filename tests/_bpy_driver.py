"""Runs in the tests' bpy venv (tests/_bpy_env.py), never in the environment under test: reads a .blend
back, edits one, or drives the Blender add-on, and answers in JSON for the test to assert on.

Usage: ``python _bpy_driver.py REQUEST.json``; the request names ``action`` and ``result`` (the JSON file
to write). Needs only bpy and the standard library.
"""

from __future__ import annotations

import json
import os
import sys
import time

import bpy


def _open(blend: str) -> None:
    bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)


def _tracks(clip) -> dict:
    out = {}
    for obj in clip.tracking.objects:
        for t in obj.tracks:
            out[t.name] = [None if obj.is_camera else obj.name,
                           [[m.frame, float(m.co[0]), float(m.co[1]), bool(m.mute)] for m in t.markers]]
    return out


def markers(req: dict) -> dict:
    """The first movie clip of the file, its scene (frame range, clip, rate), its non-camera tracking objects,
    every track's custom colour (None: none) and markers [frame, u, v, mute]."""
    _open(req["blend"])
    clip, scene = bpy.data.movieclips[0], bpy.data.scenes[0]
    return {"n_clips": len(bpy.data.movieclips),
            "clip": {"name": clip.name, "size": list(clip.size), "frame_start": clip.frame_start,
                     "frame_offset": clip.frame_offset, "source": clip.source,
                     "first_frame_prop": clip.get("dtvfx_first_frame")},
            "scene": {"frame_start": scene.frame_start, "frame_end": scene.frame_end,
                      "active_clip": scene.active_clip.name if scene.active_clip else None,
                      "fps": scene.render.fps, "fps_base": scene.render.fps_base},
            "objects": [o.name for o in clip.tracking.objects if not o.is_camera],
            "colors": {t.name: (list(map(float, t.color)) if t.use_custom_color else None)
                       for o in clip.tracking.objects for t in o.tracks},
            "tracks": _tracks(clip)}


def deselect_all(req: dict) -> dict:
    _open(req["blend"])
    for o in bpy.data.movieclips[0].tracking.objects:
        for t in o.tracks:
            t.select = False
    bpy.ops.wm.save_as_mainfile(filepath=req["blend"], copy=True)
    return {}


def addon(req: dict) -> dict:
    """Register the add-on, select ``select`` at plate frame ``frame``, start a job with ``cfg``, poll to
    the end, and report what the add-on did; then check that a track without an unmuted marker on the
    current frame is refused."""
    sys.path.insert(0, req["plugins"])
    import host_blender as ad  # the add-on folder as Blender installs it

    ad.register()
    try:
        props = sorted(ad.DTVFX_AddonPreferences.bl_rna.properties.keys())
        _open(req["blend"])
        clip, scene = bpy.data.movieclips[0], bpy.data.scenes[0]
        for o in clip.tracking.objects:
            for t in o.tracks:
                t.select = t.name in req["select"]
        scene.frame_set(req["frame"])
        job_dir = ad.start_job(clip, scene, req["cfg"])
        deadline = time.time() + 60
        while ad.tick() is not None:
            if time.time() > deadline:
                raise RuntimeError(f"the add-on did not finish: {ad.STATE}")
            time.sleep(0.05)
        out = {"props": props, "job_dir": job_dir, "phase": ad.STATE["phase"], "message": ad.STATE["message"],
               "state_job_dir": ad.STATE["job_dir"], "imported": sorted(ad.STATE["imported"]),
               "tracks": _tracks(clip)}
        tr = {t.name: t for o in clip.tracking.objects for t in o.tracks}
        tr[req["refuse"]["select"]].select = True
        scene.frame_set(req["refuse"]["frame"])
        try:
            ad.start_job(clip, scene, req["cfg"])
            out["refused"] = None
        except ad.clipio.ClipIOError as e:
            out["refused"] = str(e)
        return out
    finally:
        ad.unregister()


def _keyed(clip) -> dict:
    return {t.name: [[m.frame, float(m.co[0]), bool(m.is_keyed)] for m in t.markers]
            for o in clip.tracking.objects for t in o.tracks}


def _drive(ad) -> None:
    deadline = time.time() + 60
    while ad.tick() is not None:
        if time.time() > deadline:
            raise RuntimeError(f"the add-on did not finish: {ad.STATE}")
        time.sleep(0.05)


def retrack(req: dict) -> dict:
    """Track ``select`` at ``frame`` through the add-on, then act as the artist: drag the marker of
    ``fix["track"]`` at clip frame ``fix["frame"]`` by ``fix["du"]`` (Blender keys it), select only that
    track and press Re-track; report the tracks (markers with is_keyed) before and after."""
    sys.path.insert(0, req["plugins"])
    import host_blender as ad

    ad.register()
    try:
        _open(req["blend"])
        clip, scene = bpy.data.movieclips[0], bpy.data.scenes[0]
        out = {}
        try:
            ad.start_retrack(clip, scene, req["cfg"])
        except ad.clipio.ClipIOError as e:
            out["refused"] = str(e)
        for o in clip.tracking.objects:
            for t in o.tracks:
                t.select = t.name in req["select"]
        scene.frame_set(req["frame"])
        ad.start_job(clip, scene, req["cfg"])
        _drive(ad)
        out["first"] = _keyed(clip)
        fix = req["fix"]
        tr = {t.name: t for o in clip.tracking.objects for t in o.tracks}
        for t in tr.values():
            t.select = t.name == fix["track"]
        m = tr[fix["track"]].markers.find_frame(fix["frame"])
        m.co = (m.co[0] + fix["du"], m.co[1])
        m.is_keyed = True  # what dragging a marker in the Movie Clip Editor does
        job_dir = ad.start_retrack(clip, scene, req["cfg"])
        _drive(ad)
        out.update(job_dir=job_dir, phase=ad.STATE["phase"], message=ad.STATE["message"],
                   imported=sorted(ad.STATE["imported"]), after=_keyed(clip),
                   n_tracks=sum(len(o.tracks) for o in clip.tracking.objects))
        return out
    finally:
        ad.unregister()


ACTIONS = {"markers": markers, "deselect_all": deselect_all, "addon": addon, "retrack": retrack}

if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        request = json.load(fh)
    answer = ACTIONS[request["action"]](request)
    with open(request["result"] + ".part", "w", encoding="utf-8") as fh:
        json.dump(answer, fh)
    os.replace(request["result"] + ".part", request["result"])
