"""Run a method over a benchmark, one video at a time, resumably.

Layout of ``out_dir``::

    summary.json            means over videos + settings (written when every selected video is done)
    per_video.csv           one row per video
    per_video.png           bar chart of the per-video metrics
    occlusion.png           accuracy vs trajectory occlusion rate (TAP-Vid only)
    videos/<key>.json       result of one video (metrics, per-track metrics, settings, fingerprint, seconds)
    tracks/<key>.json       the predicted TrackSet of that video (plate pixels, core JSON)
    cache/<key>/            the method's per-video cache (trained models, flow, ...), reused on reruns
    frames/<key>/           frames written from GT files that embed their video (only when needed)

Per-video results are written atomically as each video finishes; a rerun skips videos whose saved
settings and GT fingerprint match, so an interrupted run (Ctrl-C) resumes where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import atomic
from ..errors import InputError
from ..progress import CancelFn, Progress, ProgressFn, check_cancel
from ..tracks import TrackSet
from . import metrics as M
from .baselines import Method
from .datasets import GTVideo, find_frames_dir, name_from_frames_dir, read_gt, select

HARNESS_VERSION = 1
SHOWN = ("AJ", "OA", "delta_avg", "delta_seg", "delta_3px", "median_err", "p90_err", "reacq", "solve_reproj_mean",
         "solve_path_rmse_rel")
TAPVID_KEYS = ("OA", "AJ", "delta_avg") + tuple(f"delta_{d}" for d in M.THRESHOLDS) + tuple(
    f"jaccard_{d}" for d in M.THRESHOLDS)


def machine() -> dict[str, Any]:
    d = {"platform": platform.platform(terse=True), "python": platform.python_version(),
         "cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    torch = sys.modules.get("torch")  # only when a method used it (importing torch costs seconds)
    if torch is not None:
        d["torch"] = torch.__version__
        d["torch_threads"] = torch.get_num_threads()
        d["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return d


def fingerprint(*arrays, extra: Any = None) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.shape).encode())
        h.update(np.nan_to_num(a.astype(np.float64), nan=-1e9).round(4).tobytes() if a.dtype.kind == "f"
                 else a.tobytes())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


@dataclass
class VideoTask:
    """One unit of work: ``run(progress, cancel)`` -> (metrics row, per-track dict, TrackSet)."""

    key: str
    fingerprint: str
    run: Callable[[ProgressFn | None, CancelFn | None], tuple[dict, dict, TrackSet]]


def _load_done(path: Path, settings: dict, fp: str) -> dict | None:
    try:
        rec = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if rec.get("settings") == settings and rec.get("fingerprint") == fp and rec.get("version") == HARNESS_VERSION:
        return rec
    return None


def run_tasks(tasks: Sequence[VideoTask], out_dir: Path, settings: dict, progress: ProgressFn | None = None,
              cancel: CancelFn | None = None, log: Callable[[str], None] | None = None) -> list[dict]:
    """Run (or reuse) every task; returns the per-video records in task order."""
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    records = []
    n = len(tasks)
    for i, task in enumerate(tasks):
        path = out_dir / "videos" / f"{task.key}.json"
        rec = _load_done(path, settings, task.fingerprint)
        if rec is not None:
            if log:
                log(f"{task.key}: done before, reused")
        else:
            check_cancel(cancel, "evaluation")
            if progress:
                progress(Progress("eval", i, n, message=task.key))
            t0 = time.monotonic()
            row, per_track, tracks = task.run(progress, cancel)
            secs = time.monotonic() - t0
            atomic.write_json(out_dir / "tracks" / f"{task.key}.json", tracks.to_json_dict(), indent=None)
            rec = {"version": HARNESS_VERSION, "key": task.key, "settings": settings, "fingerprint": task.fingerprint,
                   "seconds": round(secs, 3), "metrics": row, "per_track": per_track}
            atomic.write_json(path, _clean(rec), indent=None)
            if log:
                log(f"{task.key}: " + "  ".join(f"{k} {row[k]:.3f}" for k in SHOWN if k in row) + f"  ({secs:.1f} s)")
        records.append(rec)
    if progress:
        progress(Progress("eval", n, n, message="done"))
    return records


def _clean(o):
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def write_table(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else (f"{r[c]:.6f}" if isinstance(r[c], float) else r[c])
                    for c in columns])
    atomic.write_text(path, buf.getvalue())


# ----------------------------------------------------------------------------------------- shots


def open_frames(gt: GTVideo, frames_root, out_dir: Path, first_frame: int | None = None):
    """The shot of ``gt``'s first ``T`` images: from ``frames_root`` (``<idx>_<name>/video/*``) or, when the
    GT file embeds its video, from those frames in memory (``shots.from_array``)."""
    from ..shots import from_array, open_shot

    T = gt.n_frames
    if frames_root is None:
        if gt.video is None:
            raise InputError(f"video {gt.key}: give --frames (the GT file holds no frames)", where="--frames")
        if len(gt.video) < T:
            raise InputError(f"video {gt.key} needs {T} images, the GT file embeds {len(gt.video)}",
                             where="--gt")
        return from_array(np.asarray(gt.video[:T]), name=gt.key)
    d = find_frames_dir(frames_root, gt)
    shot = open_shot(d)
    start = int(shot.frame_numbers[0]) if first_frame is None else int(first_frame)
    have = [int(f) for f in shot.frame_numbers if f >= start][:T]
    if len(have) < T:
        raise InputError(f"video {gt.key} needs {T} images from frame {start}, the folder has {len(have)}",
                         where=str(d))
    if [int(f) for f in shot.frame_numbers] == have:
        return shot
    contiguous = have[-1] - have[0] == len(have) - 1
    return open_shot(d, frame_range=f"{have[0]}-{have[-1]}" if contiguous else ",".join(map(str, have)))


# ----------------------------------------------------------------------------------------- TAP-Vid


def _tapvid_task(gt: GTVideo, method: Method, frames_root, out_dir: Path, mode: str) -> VideoTask:
    fp = fingerprint(gt.xy, gt.visible, gt.query_t, np.array([[q.x, q.y] for q in gt.queries]),
                     extra={"plate": gt.plate_size, "mode": mode, "frames": str(frames_root)})

    def run(progress, cancel):
        g = gt
        shot = None
        # open the frames when the method reads them, or to put normalised GT on the frames' pixel raster
        if method.needs_frames or (gt.normalized and frames_root is not None):
            shot = open_frames(gt, frames_root, out_dir)
            g = gt.scaled_to(shot.size)
        pred = method.run(shot, g.queries, progress=progress, cancel=cancel, cache_dir=out_dir / "cache" / gt.key,
                          n_frames=g.n_frames, plate_size=g.plate_size,
                          frame_numbers=np.arange(g.n_frames) if shot is None else shot.frame_numbers)
        pred = _align(pred, g)
        row = M.tapvid_metrics_plate(g.query_t, g.xy, g.visible, g.plate_size, pred.xy, pred.visible,
                                     pred.plate_size, mode=mode)
        tr = M.tapvid_metrics_plate(g.query_t, g.xy, g.visible, g.plate_size, pred.xy, pred.visible,
                                    pred.plate_size, mode=mode, per_track=True)
        row = {"video": gt.key, "index": gt.index, "name": gt.name, "n_queries": g.n_queries, "n_frames": g.n_frames,
               **{k: float(row[k]) for k in TAPVID_KEYS}}
        per_track = {"occlusion_rate": g.occlusion_rate(), "is_fg": g.is_fg,
                     **{k: tr[k] for k in ("OA", "AJ", "delta_avg")}}
        return row, per_track, pred

    return VideoTask(gt.key, fp, run)


def _align(pred: TrackSet, gt: GTVideo) -> TrackSet:
    """Predictions in GT query order (matched by name); checks the frame count."""
    if pred.n_images != gt.n_frames:
        raise InputError(f"video {gt.key}: method returned {pred.n_images} frames, the GT has {gt.n_frames}")
    pos = {n: i for i, n in enumerate(pred.names)}
    missing = [q.name for q in gt.queries if q.name not in pos]
    if missing:
        raise InputError(f"video {gt.key}: method returned no track for query {missing[0]!r} "
                         f"({len(missing)} missing)")
    return pred.subset([pos[q.name] for q in gt.queries])


def name_videos(videos: list[GTVideo], frames_root) -> list[GTVideo]:
    """Give videos read without names (DINO-Tracker pickles) the name of their frames folder."""
    from dataclasses import replace

    out = []
    for v in videos:
        if not v.name and frames_root is not None:
            try:
                nm = name_from_frames_dir(find_frames_dir(frames_root, v))
            except InputError:
                nm = None
            v = replace(v, name=nm or "")
        out.append(v)
    return out


def evaluate_tapvid(gt_path, frames_root, method: Method, out_dir, *, mode: str = "strided",
                    videos: Sequence[str] | None = None, progress: ProgressFn | None = None,
                    cancel: CancelFn | None = None, plots: bool = True,
                    log: Callable[[str], None] | None = None) -> dict:
    """TAP-Vid evaluation of ``method`` on the GT file ``gt_path`` (see :mod:`.datasets`) with frames
    from ``frames_root``; writes ``out_dir`` (module docstring) and returns the summary dict."""
    out_dir = Path(out_dir)
    method.check()
    all_videos = name_videos(read_gt(gt_path, mode), frames_root)
    chosen = select(all_videos, videos)
    if not chosen:
        raise InputError("no videos to evaluate", where=str(gt_path))
    settings = {**method.settings(), "mode": mode, "benchmark": "tapvid", "harness": HARNESS_VERSION}
    tasks = [_tapvid_task(v, method, frames_root, out_dir, mode) for v in chosen]
    records = run_tasks(tasks, out_dir, settings, progress, cancel, log)
    rows = [r["metrics"] for r in records]
    means = M.mean_over_videos(rows, TAPVID_KEYS)
    summary = {"benchmark": "tapvid", "method": method.name, "preset": method.options.get("preset"),
               "mode": mode, **{k: means[k] for k in ("OA", "AJ", "delta_avg")},
               "n_videos": len(rows), "n_queries": int(sum(r["n_queries"] for r in rows)),
               "thresholds_px_at_256": list(M.THRESHOLDS),
               "per_threshold": {k: means[k] for k in TAPVID_KEYS[3:]},
               "settings": settings, "gt": str(gt_path), "frames": None if frames_root is None else str(frames_root),
               "videos": [r["video"] for r in rows], "seconds": round(sum(r["seconds"] for r in records), 2),
               "machine": machine()}
    cols = ["video", "index", "name", "n_queries", "n_frames", *TAPVID_KEYS, "seconds"]
    write_table(out_dir / "per_video.csv", [{**r["metrics"], "seconds": r["seconds"]} for r in records], cols)
    if plots:
        from .plots import plot_occlusion_curve, plot_per_video

        title = f"{method.name}{' ' + str(summary['preset']) if summary['preset'] else ''} ({mode})"
        plot_per_video(rows, ["AJ", "delta_avg", "OA"], out_dir / "per_video.png", title=title)
        occ = np.concatenate([np.asarray(r["per_track"]["occlusion_rate"], float) for r in records])
        vals = {k: np.concatenate([np.array([np.nan if v is None else v for v in r["per_track"][k]], float)
                                   for r in records]) for k in ("delta_avg", "AJ", "OA")}
        plot_occlusion_curve(occ, vals, out_dir / "occlusion.png", title=title)
    atomic.write_json(out_dir / "summary.json", _clean(summary))
    return summary


# ----------------------------------------------------------------------------------------- BADJA

BADJA_KEYS = ("delta_seg", "delta_3px")


def _badja_task(bv, method: Method, frames_root, out_dir: Path) -> VideoTask:
    gt = bv.gt
    fp = fingerprint(gt.xy, gt.visible, gt.query_t, extra={"plate": gt.plate_size, "first": bv.first_frame,
                                                            "frames": str(frames_root)})

    def run(progress, cancel):
        area = bv.mask_area()
        shot = open_frames(gt, frames_root, out_dir, first_frame=bv.first_frame) if method.needs_frames else None
        if shot is not None and shot.size != gt.plate_size:
            raise InputError(f"BADJA video {gt.key}: frames are {shot.size[0]}x{shot.size[1]}, the joints are "
                             f"for {gt.plate_size[0]}x{gt.plate_size[1]}", where=str(frames_root))
        pred = method.run(shot, gt.queries, progress=progress, cancel=cancel, cache_dir=out_dir / "cache" / gt.key,
                          n_frames=gt.n_frames, plate_size=gt.plate_size,
                          frame_numbers=bv.first_frame + np.arange(gt.n_frames))
        pred = _align(pred, gt)
        xy = pred.xy
        if pred.plate_size != gt.plate_size:  # pure scale back to the GT raster
            xy = xy * (np.array(gt.plate_size, float) / np.array(pred.plate_size, float))
        m = M.badja_metrics(gt.xy, gt.visible, bv.eval_pairs, xy, np.nan_to_num(area))
        row = {"video": gt.key, "index": gt.index, "name": gt.name, "n_queries": gt.n_queries,
               "n_frames": gt.n_frames, "first_frame": bv.first_frame, **m}
        return row, {}, pred

    return VideoTask(gt.key, fp, run)


def evaluate_badja(data_dir, frames_root, method: Method, out_dir, *, videos: Sequence[str] | None = None,
                   progress: ProgressFn | None = None, cancel: CancelFn | None = None, plots: bool = True,
                   log: Callable[[str], None] | None = None) -> dict:
    """BADJA evaluation (protocol in :mod:`.badja`); writes ``out_dir`` like :func:`evaluate_tapvid`."""
    from .badja import read_badja

    out_dir = Path(out_dir)
    method.check()
    items = read_badja(data_dir, frames_root)
    keep = {id(v) for v in select([b.gt for b in items], videos)}
    items = [b for b in items if id(b.gt) in keep]
    settings = {**method.settings(), "benchmark": "badja", "harness": HARNESS_VERSION}
    records = run_tasks([_badja_task(b, method, frames_root, out_dir) for b in items], out_dir, settings,
                        progress, cancel, log)
    rows = [r["metrics"] for r in records]
    means = M.mean_over_videos(rows, BADJA_KEYS)
    summary = {"benchmark": "badja", "method": method.name, "preset": method.options.get("preset"),
               **means, "n_videos": len(rows), "n_eval": int(sum(r["n_eval"] for r in rows)),
               "protocol": "query each joint at its first visible annotated frame; evaluate at its other visible "
                           "annotated frames; delta_seg: err < 0.2*sqrt(mask area); delta_3px: err < 3 px (480p)",
               "settings": settings, "data": str(data_dir), "frames": str(frames_root),
               "videos": [r["video"] for r in rows], "seconds": round(sum(r["seconds"] for r in records), 2),
               "machine": machine()}
    cols = ["video", "index", "name", "n_queries", "n_frames", "first_frame", "delta_seg", "delta_3px", "n_eval",
            "seconds"]
    write_table(out_dir / "per_video.csv", [{**r["metrics"], "seconds": r["seconds"]} for r in records], cols)
    if plots:
        from .plots import plot_per_video

        plot_per_video(rows, list(BADJA_KEYS), out_dir / "per_video.png", title=f"BADJA {method.name}")
    atomic.write_json(out_dir / "summary.json", _clean(summary))
    return summary


# ----------------------------------------------------------------------------------------- synthetic plates


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _synth_task(scene_dir: Path, method: Method, out_dir: Path, solve: bool = False) -> VideoTask:
    from .plate_metrics import PLATE_KEYS, plate_metrics
    from .synth.files import QUERIES_FILE, read_truth

    gt = read_truth(scene_dir)
    fp = fingerprint(gt.xy, gt.visible, gt.evaluable, gt.query_t, extra={"scene": str(scene_dir)})

    def run(progress, cancel):
        from ..inputs import read_queries
        from ..shots import open_shot

        t0 = time.perf_counter()
        shot = open_shot(gt.pattern)
        if shot.size != gt.size or shot.n_images != gt.xy.shape[1]:
            raise InputError(f"scene {gt.key}: the plate is {shot.size[0]}x{shot.size[1]} x {shot.n_images}, "
                             f"gt.npz says {gt.size[0]}x{gt.size[1]} x {gt.xy.shape[1]}", where=str(scene_dir))
        queries = read_queries(scene_dir / QUERIES_FILE, shot)
        t1 = time.perf_counter()
        pred = method.run(shot, queries, progress=progress, cancel=cancel, cache_dir=out_dir / "cache" / gt.key)
        t2 = time.perf_counter()
        pos = {n: i for i, n in enumerate(pred.names)}
        missing = [n for n in gt.names if n not in pos]
        if missing or pred.n_images != gt.xy.shape[1]:
            raise InputError(f"scene {gt.key}: method returned {pred.n_images} frames and no track for "
                             f"{missing[:1]}", where=str(scene_dir))
        pred = pred.subset([pos[n] for n in gt.names])
        m = plate_metrics(gt.query_t, gt.xy, gt.visible, pred.xy, pred.visible, gt.evaluable)
        t3 = time.perf_counter()
        row = {"video": gt.key, "n_queries": len(gt.names), "n_frames": int(gt.xy.shape[1]),
               **{k: float(m[k]) for k in PLATE_KEYS}, "n_reappear": int(m["n_reappear"]),
               "n_eval": int(m["n_eval"]), "load_s": round(t1 - t0, 3), "track_s": round(t2 - t1, 3),
               "metrics_s": round(t3 - t2, 3)}
        if solve:
            from .synth.solve import judge

            row.update(judge(gt, pred.xy, pred.visible))
        row["peak_rss_mb"] = round(peak_rss_mb(), 1)
        return row, {}, pred

    return VideoTask(gt.key, fp, run)


SOLVE_KEYS = ("solve_reproj_mean", "solve_reproj_median", "solve_reproj_p90", "solve_path_rmse",
              "solve_path_rmse_rel", "solve_rot_err_deg", "solve_frames", "solve_s")


def evaluate_synth(scenes_root, method: Method, out_dir, *, solve: bool = False, progress: ProgressFn | None = None,
                   cancel: CancelFn | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Plate-pixel evaluation (:mod:`.plate_metrics`) of ``method`` on the synthetic scenes under ``scenes_root``
    (made by :func:`.synth.files.make_scenes`); writes ``out_dir`` like :func:`evaluate_tapvid` (per-video rows
    are scenes, with per-stage seconds and the peak RSS) and returns the summary. ``solve``: also judge the
    tracks by a camera solve (:mod:`.synth.solve`, needs pycolmap) and report its ``solve_*`` numbers."""
    from .plate_metrics import PLATE_KEYS, PLATE_THRESHOLDS
    from .synth.files import find_scenes

    out_dir = Path(out_dir)
    if solve:
        from .synth.solve import require_pycolmap

        require_pycolmap()
    method.check()
    scenes = find_scenes(scenes_root)
    settings = {**method.settings(), "benchmark": "synth", "harness": HARNESS_VERSION, "solve": bool(solve)}
    records = run_tasks([_synth_task(d, method, out_dir, solve) for d in scenes], out_dir, settings, progress,
                        cancel, log)
    rows = [r["metrics"] for r in records]
    stages = ("load_s", "track_s", "metrics_s") + (("solve_s",) if solve else ())
    means = M.mean_over_videos(rows, PLATE_KEYS + (SOLVE_KEYS[:-1] if solve else ()))
    summary = {"benchmark": "synth", "method": method.name, "preset": method.options.get("preset"), **means,
               "n_videos": len(rows), "n_queries": int(sum(r["n_queries"] for r in rows)),
               "n_reappear": int(sum(r["n_reappear"] for r in rows)),
               "thresholds_plate_px": list(PLATE_THRESHOLDS),
               "stage_seconds": {k: round(sum(float(r.get(k, 0.0)) for r in rows), 3) for k in stages},
               "peak_rss_mb": max(float(r.get("peak_rss_mb", 0.0)) for r in rows),
               "settings": settings, "scenes": str(scenes_root), "videos": [r["video"] for r in rows],
               "seconds": round(sum(r["seconds"] for r in records), 2), "machine": machine()}
    cols = ["video", "n_queries", "n_frames", *PLATE_KEYS, "n_reappear", "n_eval", *stages,
            *(SOLVE_KEYS[:-1] if solve else ()), "peak_rss_mb", "seconds"]
    write_table(out_dir / "per_video.csv", [{**r["metrics"], "seconds": r["seconds"]} for r in records], cols)
    atomic.write_json(out_dir / "summary.json", _clean(summary))
    return summary
