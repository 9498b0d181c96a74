"""Public object API: mask propagation (:func:`segment`, :func:`segment_to_dir`) and object tracks
(:func:`track_objects`).

Inputs everywhere: ``shot`` (:class:`~dino_tracker_vfx.shots.Shot`) and ``masks`` =
``{image index: int32 [H, W] instance ids}`` at plate size (``inputs.read_masks``), 0 = background.
Objects are the ids > 0 found in any given mask; their names default to ``obj<id>``.

* :func:`segment` -> (feature source, iterator of :class:`~.propagate.FramePrediction`), labels carry the
  input ids; :func:`segment_to_dir` writes ``DIR/<5-digit image index>.png`` index images,
  ``DIR/mattes/<object>/<index>.png|exr`` mattes and ``DIR/segment.json`` (which features were used,
  settings, per-object areas and the frames where an object vanished).
* :func:`track_objects` -> :class:`~dino_tracker_vfx.tracks.TrackSet`: member tracks ``<object>_pNN``
  (group = object name) sampled in each object's first given mask and tracked together (one tracker
  training per shot), plus ``groups[object]`` = :class:`~dino_tracker_vfx.tracks.ObjectTrack` (robust
  centroid following the mask centroid, bbox, visibility keyframe, confidence); ``meta["objects"]``.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .. import atomic
from ..errors import ConfigError, InputError
from ..progress import CancelFn, ProgressFn
from ..tracks import Query, TrackSet
from . import masks_io
from .centroids import CentroidParams, mask_box, object_track_from_points
from .features import FeatureSource, open_feature_source
from .guide import GUIDES, GuideParams, MaskEvidence, guided_object_track
from .metrics import mask_centroid
from .propagate import FramePrediction, PropagationParams, Upsampler, propagate_masks
from .sampling import sample_points
from .smoothing import SmoothSpec, smooth_object_track

log = logging.getLogger("dino_tracker_vfx.objects")

POINT_TRACKERS = ("dino", "flow")


def _ids(masks: dict[int, np.ndarray]) -> list[int]:
    from ..inputs import object_ids

    return object_ids(masks)


def _check_masks(shot, masks: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    if not masks:
        raise InputError("no mask given")
    W, H = shot.size
    out = {}
    for t, m in sorted(masks.items()):
        if not 0 <= int(t) < shot.n_images:
            raise InputError(f"mask image index {t} is not in the shot (0..{shot.n_images - 1})")
        a = np.asarray(m)
        if a.shape != (H, W):
            raise InputError(f"mask for frame {shot.frame_of(int(t))} is {a.shape[-1]}x{a.shape[0]}, the plate is "
                             f"{W}x{H} (read masks with inputs.read_masks, which resizes them)")
        if a.dtype.kind not in "iu" or (a.size and a.min() < 0):
            raise InputError(f"mask for frame {shot.frame_of(int(t))} must hold integer ids >= 0")
        out[int(t)] = a.astype(np.int32, copy=False)
    if not _ids(out):
        raise InputError("the masks hold no object (every pixel is 0)")
    return out


def _small_object_warnings(shot, masks, ids, names, source: FeatureSource) -> list[str]:
    patch = 2 * half_patch_px(source)
    msgs = []
    for t, m in masks.items():
        vals, counts = np.unique(m, return_counts=True)
        for i, a in zip(vals.tolist(), counts.tolist()):
            if i != 0 and a < 0.5 * patch:
                msgs.append(f"object {names[i]} (id {i}) covers {a} px at frame {shot.frame_of(t)}, less than half "
                            f"a feature patch ({patch:.0f} px): it will likely vanish")
    return msgs


def segment(shot, masks: dict[int, np.ndarray], *, features: str | FeatureSource = "auto",
            params: PropagationParams = PropagationParams(), preset: str = "cpu-preview", tracker=None,
            cache_dir=None, weights=None, dino_model: str = "vits14", frames: Sequence[int] | None = None,
            progress: ProgressFn | None = None, cancel: CancelFn | None = None
            ) -> tuple[FeatureSource, Iterator[FramePrediction]]:
    """Propagate ``masks`` through the shot -> (the feature source used, iterator of frame predictions).

    ``features``: a :class:`~.features.FeatureSource` or a name for :func:`~.features.open_feature_source`.
    Frames come forward from the first given mask, then backward (see :mod:`.propagate`).
    """
    masks = _check_masks(shot, masks)
    k0 = min(masks)
    if isinstance(features, str):
        source = open_feature_source(shot, features, ref_t=k0, tracker=tracker, preset=preset, masks=masks,
                                     cache_dir=cache_dir, weights=weights, dino_model=dino_model,
                                     progress=progress, cancel=cancel)
    else:
        source = features
    it = propagate_masks(source, shot.n_images, masks, tuple(shot.size), params, progress=progress, cancel=cancel,
                         frames=frames)
    return source, it


def segment_to_dir(shot, masks: dict[int, np.ndarray], out_dir: str | Path, *, features: str | FeatureSource = "auto",
                   params: PropagationParams = PropagationParams(), names: dict[int, str] | None = None,
                   index_format: str = "png", mattes: str = "hard", matte_format: str = "png",
                   palette: list[int] | None = None, preset: str = "cpu-preview", tracker=None, cache_dir=None,
                   weights=None, dino_model: str = "vits14", progress: ProgressFn | None = None,
                   cancel: CancelFn | None = None) -> dict[str, Any]:
    """Propagate and write every frame (see module docstring); returns the ``segment.json`` dict.

    ``mattes``: ``hard`` (1 where the object wins the argmax), ``soft`` (its upsampled probability; given
    frames stay hard) or ``none``.
    """
    masks = _check_masks(shot, masks)
    ids = _ids(masks)
    masks_io.check_ids_fit(ids, index_format)  # before any work: >255 objects in a palette PNG etc.
    if mattes not in ("hard", "soft", "none"):
        raise ConfigError(f"mattes {mattes!r} is not one of hard, soft, none", where="--mattes")
    if matte_format not in masks_io.MATTE_FORMATS:
        raise ConfigError(f"matte format {matte_format!r} is not one of {', '.join(masks_io.MATTE_FORMATS)}",
                          where="--matte-format")
    nm = masks_io.object_names(ids, names)
    t_start = time.perf_counter()
    source, it = segment(shot, masks, features=features, params=params, preset=preset, tracker=tracker,
                         cache_dir=cache_dir, weights=weights, dino_model=dino_model, progress=progress,
                         cancel=cancel)
    for msg in _small_object_warnings(shot, masks, ids, nm, source):
        warnings.warn(msg)
    out = Path(out_dir)
    up = Upsampler(source.grid, tuple(shot.size)) if mattes == "soft" else None
    areas = {nm[i]: [0] * shot.n_images for i in ids}
    for fp in it:
        masks_io.write_index(masks_io.index_path(out, fp.t, index_format), fp.labels, index_format, palette)
        if mattes != "none":
            soft = up is not None and not fp.given
            for ch, i in enumerate(ids, start=1):
                a = up(fp.patch_probs[ch:ch + 1])[0].numpy() if soft else (fp.labels == i)
                masks_io.write_matte(masks_io.matte_path(out, nm[i], fp.t, matte_format), a, matte_format)
        for i in ids:
            areas[nm[i]][fp.t] = fp.areas.get(i, 0)
    fr = [int(f) for f in shot.frame_numbers]
    vanished = {}
    for i in ids:
        gone = [fr[t] for t, a in enumerate(areas[nm[i]]) if a == 0]
        if gone:
            vanished[nm[i]] = gone
            warnings.warn(f"object {nm[i]} (id {i}) is gone (0 px) at {len(gone)} frame(s): {_frames_text(gone)}")
    report = {
        "format": "dino_tracker_vfx.segment", "version": 1,
        "shot": str(shot.source), "plate": list(shot.size), "frames": fr,
        "given_frames": [fr[t] for t in masks],
        "objects": [{"id": i, "name": nm[i], "area_px": areas[nm[i]]} for i in ids],
        "vanished": vanished,
        "features": source.describe(),
        "propagation": asdict(params.resolved(source)),
        "index_format": index_format, "mattes": mattes, "matte_format": matte_format,
        "files": {"index": f"{{t:05d}}.{'exr' if index_format == 'exr' else 'png'}",
                  "mattes": f"mattes/<object>/{{t:05d}}.{matte_format}" if mattes != "none" else None},
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    atomic.write_json(out / "segment.json", report)
    return report


def _frames_text(fr: list[int]) -> str:
    runs, s = [], 0
    for i in range(1, len(fr) + 1):
        if i == len(fr) or fr[i] != fr[i - 1] + 1:
            runs.append(f"{fr[s]}" if s == i - 1 else f"{fr[s]}-{fr[i - 1]}")
            s = i
    return ", ".join(runs)


# ------------------------------------------------------------------------------------------ object tracks


def flow_point_tracker(shot, queries: list[Query], masks=None, *, max_side: int = 960, fb_thresh: float = 1.5,
                       flow=None, progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> TrackSet:
    """Chained optical flow (DIS, ``tracker.infer.chain.chain_on_shot``) as a fast point tracker.

    Flow runs at the plate scaled to ``max_side`` px on the long side (or ``flow``, a precomputed
    ``FlowField`` of the shot at any working size); positions come back in plate px; a point is visible
    until its first failed forward-backward check (confidence = visible).
    """
    from ..tracker.infer.chain import chain_on_shot

    W, H = shot.size
    wh = None
    if flow is None:
        s = min(1.0, max_side / max(W, H))
        wh = (max(8, int(round(W * s))), max(8, int(round(H * s))))
    t0 = np.array([q.t for q in queries], np.int64)
    xy_p, valid, wh = chain_on_shot(shot, t0, np.array([[q.x, q.y] for q in queries], np.float64), fb_thresh,
                                    wh=wh, flow=flow, progress=progress, cancel=cancel)
    for n, q in enumerate(queries):
        xy_p[n, q.t] = (q.x, q.y)
    return TrackSet(xy_p, valid, valid.astype(np.float32), [q.name for q in queries], list(queries),
                    shot.frame_numbers, shot.size, meta={"tracker": {"method": "flow", "flow": "dis",
                                                                      "working_size": list(wh)}},
                    fps=getattr(shot, "fps", None), timecode=getattr(shot, "timecode", None))


def sample_object_queries(shot, masks: dict[int, np.ndarray], ids: list[int], names: dict[int, str],
                          points_per_object: int) -> tuple[list[Query], dict[int, int]]:
    """Queries ``<object>_pNN`` sampled in each object's first given mask -> (queries, {id: query frame})."""
    queries: list[Query] = []
    t0s: dict[int, int] = {}
    digits = max(2, len(str(points_per_object)))
    frames_cache: dict[int, np.ndarray] = {}
    for i in ids:
        t0 = next(t for t in sorted(masks) if (masks[t] == i).any())
        t0s[i] = t0
        if t0 not in frames_cache:
            frames_cache[t0] = shot.read(t0)
        pts = sample_points(masks[t0] == i, frames_cache[t0], points_per_object)
        if len(pts) < points_per_object:
            warnings.warn(f"object {names[i]} (id {i}) has only {int((masks[t0] == i).sum())} px at frame "
                          f"{shot.frame_of(t0)}: {len(pts)} points instead of {points_per_object}")
        for j, (x, y) in enumerate(pts, start=1):
            queries.append(Query(t0, float(x), float(y), f"{names[i]}_p{j:0{digits}d}", names[i]))
    return queries, t0s


def half_patch_px(source: FeatureSource) -> float:
    """Half a feature patch in plate px: objects smaller than this are lost by the propagation."""
    sx, sy = source.grid.step_plate()
    return 0.5 * sx * sy


def track_objects(shot, masks: dict[int, np.ndarray], *, names: dict[int, str] | None = None,
                  points_per_object: int = 24, point_tracker: str | Callable = "dino", preset: str = "cpu-preview",
                  centroid: CentroidParams = CentroidParams(), smooth: SmoothSpec = SmoothSpec(),
                  guide: str = "propagate", guide_params: GuideParams = GuideParams(),
                  guide_features: str | FeatureSource = "colour-texture", guide_labels: np.ndarray | None = None,
                  cache_dir=None, device=None, seed: int = 0, progress: ProgressFn | None = None,
                  cancel: CancelFn | None = None) -> TrackSet:
    """Object tracks for every object of ``masks`` (see module docstring).

    ``point_tracker``: ``"dino"`` (``tracker.api.track``, one training for all objects), ``"flow"``
    (:func:`flow_point_tracker`) or a callable ``(shot, queries, masks) -> TrackSet`` (same order).
    ``guide``: ``"propagate"`` (default) checks the points against the masks propagated through the shot
    (:mod:`.guide`; ``guide_labels`` ``[T, H, W]`` = those id images when the caller has them, else
    :func:`segment` propagates them with ``guide_features``, one image at a time); ``"none"``: points only. An object whose
    first mask is smaller than half a feature patch of the guide's features (when known: ``guide_features``
    is a source or the labels are propagated here) is tracked from its points only: propagation loses it.
    """
    masks = _check_masks(shot, masks)
    if points_per_object < 1:
        raise ConfigError(f"points per object must be >= 1, got {points_per_object}", where="--points-per-object")
    if guide not in GUIDES:
        raise ConfigError(f"guide {guide!r} is not one of {', '.join(GUIDES)}", where="--guide")
    guide_params.validate()
    if guide_labels is not None:
        W, H = shot.size
        if np.shape(guide_labels) != (shot.n_images, H, W):
            raise InputError(f"guide labels are {np.shape(guide_labels)}, expected ({shot.n_images}, {H}, {W}): "
                             f"one id image per image of the shot at plate size")
    ids = _ids(masks)
    nm = masks_io.object_names(ids, names)
    queries, t0s = sample_object_queries(shot, masks, ids, nm, points_per_object)
    if point_tracker == "dino":
        try:
            from ..tracker.api import track

            ts = track(shot, queries, preset=preset, masks=masks, cache_dir=cache_dir, device=device, seed=seed,
                       progress=progress, cancel=cancel)
        except ImportError as e:  # an incomplete tracker install: say so in one line
            raise ConfigError(f"the DINO tracker cannot run here ({e}); use --tracker flow",
                              where="--tracker") from None
    elif point_tracker == "flow":
        ts = flow_point_tracker(shot, queries, masks, progress=progress, cancel=cancel)
    elif callable(point_tracker):
        ts = point_tracker(shot, queries, masks)
    else:
        raise ConfigError(f"point tracker {point_tracker!r} is not one of {', '.join(POINT_TRACKERS)}",
                          where="--tracker")
    if ts.n_tracks != len(queries) or list(ts.names) != [q.name for q in queries]:
        raise RuntimeError(f"point tracker returned {ts.n_tracks} tracks ({ts.names[:3]}...) for {len(queries)} "
                           f"queries ({queries[0].name}...): order or names differ")
    # names/groups exactly as sampled (a tracker may have renamed duplicates; there are none here)
    ts = TrackSet(ts.xy, ts.visible, ts.confidence, [q.name for q in queries], queries, ts.frame_numbers,
                  ts.plate_size, {}, ts.pixel_aspect, dict(ts.meta), ts.fps, ts.timecode)
    fr = [int(f) for f in shot.frame_numbers]
    evidence, small_px = None, 0.0
    if guide == "propagate":  # one pass over the propagated id images; only per-object evidence is kept
        src = None if isinstance(guide_features, str) else guide_features
        if guide_labels is not None:
            frames = enumerate(guide_labels)
        else:
            src, it = segment(shot, masks, features=guide_features, progress=progress, cancel=cancel)
            frames = ((fp.t, fp.labels) for fp in it)
        small_px = half_patch_px(src) if src is not None else 0.0
        mems = {i: ts.members(nm[i]) for i in ids}
        evidence = {i: MaskEvidence.empty(len(mems[i]), shot.n_images) for i in ids}
        for t, lab in frames:
            lab = np.asarray(lab)
            for i in ids:
                evidence[i].add(t, lab, i, ts.xy[mems[i], t], ts.visible[mems[i], t], guide_params)
    info: dict[str, Any] = {}
    for i in ids:
        name = nm[i]
        mem = ts.members(name)
        t0 = t0s[i]
        m0 = masks[t0] == i
        c0, area0 = mask_centroid(m0)
        guided = evidence is not None and area0 >= small_px
        if evidence is not None and not guided:
            warnings.warn(f"object {name} (id {i}) covers {area0} px at frame {fr[t0]}, less than half a feature "
                          f"patch of the guide ({small_px:.0f} px): tracked from its points only")
        if not guided:
            obj, inl = object_track_from_points(ts.xy[mem], ts.visible[mem], ts.confidence[mem], t0, c0,
                                                mask_box(m0), centroid)
            gstats = None
        else:
            obj, inl, gstats = guided_object_track(ts.xy[mem], ts.visible[mem], ts.confidence[mem], t0, c0,
                                                   mask_box(m0), evidence[i], i, centroid, guide_params)
        absent = [t for t in sorted(masks) if not (masks[t] == i).any()]
        for t in absent:  # a given mask says the object is not there: invisible, whatever the points say
            obj.visible[t] = False
            obj.confidence[t] = 0.0
        obj = smooth_object_track(obj, smooth, shot.fps)
        ts.groups[name] = obj
        invisible = [fr[t] for t in range(len(fr)) if not obj.visible[t]]
        if absent:
            warnings.warn(f"object {name} (id {i}) is absent from the given mask at frame(s) "
                          f"{_frames_text([fr[t] for t in absent])}: marked invisible there")
        info[name] = {"id": i, "query_frame": fr[t0], "points": len(mem), "mask_area_px": area0,
                      "mask_centroid": [float(c0[0]), float(c0[1])], "absent_frames": [fr[t] for t in absent],
                      "invisible_frames": invisible, "guided": guided}
        if gstats is not None:
            info[name]["supported_points"] = gstats["supported"]
            info[name]["propagated_area_px"] = gstats["area"]
    ts.meta["objects"] = {
        "objects": info, "point_tracker": point_tracker if isinstance(point_tracker, str) else "custom",
        "preset": preset if point_tracker == "dino" else None, "points_per_object": points_per_object,
        "centroid": asdict(centroid), "smoothing": smooth.describe(),
        "visibility_rule": (f"visible while >= {centroid.min_visible_fraction:g} of the object's points are visible"
                            if evidence is None else
                            f"visible while the propagated mask holds >= {guide_params.min_area_fraction:g} of the "
                            f"object's first area or >= {centroid.min_visible_fraction:g} of its points lie on it"),
        "guide": {"method": "none"} if evidence is None else {
            "method": "propagate", **asdict(guide_params),
            "features": "given labels" if guide_labels is not None else
            (guide_features if isinstance(guide_features, str) else guide_features.name)},
    }
    return ts


__all__ = ["segment", "segment_to_dir", "track_objects", "flow_point_tracker", "sample_object_queries",
           "POINT_TRACKERS"]
