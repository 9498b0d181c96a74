"""``dtvfx eval tapvid|badja``: benchmark a tracking method against ground truth.

    dtvfx eval tapvid --gt PATH.pkl --frames DIR --method {static,flow,dino,tracker} [--preset NAME]
                      [--mode strided|first] [--videos 29,horsejump-high] --out OUTDIR
    dtvfx eval badja  --data DIR --frames DIR --method ... --out OUTDIR
    dtvfx eval synth  --make DIR [--seed S --scenes N --size 1280x720 --frames 40 --format png|exr
                      --textures DIR --points 64]
    dtvfx eval synth  --data DIR --method klt,flow,tracker [--preset cpu-preview,fast] --out OUTDIR

OUTDIR receives summary.json (OA, AJ, delta_avg: means over videos; n_videos, method, preset, mode,
per-threshold values), per_video.csv, per_video.png, occlusion.png, videos/<key>.json, tracks/<key>.json and
cache/<key>/ (trained models, reused). ``eval synth`` writes one such folder per method (OUTDIR/<method>[-<preset>])
plus OUTDIR/table.json, and prints a table of the plate-pixel metrics with per-stage seconds and peak RSS. Finished videos are saved as they finish: after Ctrl-C, the same
command resumes and skips videos whose settings match. GT pickles are loaded with Python's pickle:
give only trusted files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

COMMAND = "eval"
HELP = ("evaluate a method on TAP-Vid (AJ, OA, delta_avg), BADJA (delta_seg, delta_3px) or synthetic plates "
        "with exact ground truth (plate-pixel metrics)")
DESCRIPTION = __doc__


def _method_args(p: argparse.ArgumentParser, several: bool = False) -> None:
    from ..evaluation.baselines import METHOD_NAMES

    what = ("static (query never moves), flow (chained optical flow), klt (chained pyramidal Lucas-Kanade), "
            "dino (raw DINOv2 matching, needs weights), tracker (DINO-Tracker, trained per video)")
    if several:
        p.add_argument("--method", default=None, help=f"comma-separated, run in turn: {what}")
    else:
        p.add_argument("--method", required=True, choices=METHOD_NAMES, help=what)
    p.add_argument("--preset", default=None, help="tracker preset (paper, balanced, fast, cpu-preview; "
                                                   "default cpu-preview for --method tracker)")
    p.add_argument("--flow", default="dis", choices=("dis", "raft_small", "raft_large"),
                   help="flow for --method flow (default dis; RAFT needs local weights)")
    p.add_argument("--fb-thresh", type=float, default=None,
                   help="forward-backward check in px for --method flow (default 1.5) and klt (default 1.0)")
    p.add_argument("--weights", default=None, help="RAFT weights file for --method flow --flow raft_*")
    p.add_argument("--device", default=None, help="torch device for dino/tracker (default: auto)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--masks", default="none", choices=("none", "first"),
                   help="dino/tracker foreground: none (the tracker's own) or first (the DAVIS mask of the "
                        "first image, <idx>_<name>/masks/)")
    p.add_argument("--videos", default=None,
                   help="comma-separated subset: indices (29), names (horsejump-high) or keys (29_horsejump-high)")
    p.add_argument("--out", required=not several, help="output folder (created; reruns resume in it)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG charts")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-video lines")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    t = sub.add_parser("tapvid", help="TAP-Vid metrics (DINO-Tracker / official TAP-Vid pickles or npz)",
                       description="TAP-Vid evaluation: AJ, OA, delta_avg (thresholds 1,2,4,8,16 px at 256x256)")
    t.add_argument("--gt", required=True, help="GT: DINO-Tracker strided .pkl, official TAP-Vid .pkl, .npz or a "
                                               "folder of .npz (pickles must be trusted files)")
    t.add_argument("--frames", default=None, help="folder of <idx>_<name>/video/*.jpg (not needed for --method "
                                                  "static or GT files that embed their video)")
    t.add_argument("--mode", default="strided", choices=("strided", "first"),
                   help="strided: queries every 5 frames, all other frames evaluated; first: query at the "
                        "first visible frame, later frames evaluated")
    _method_args(t)
    b = sub.add_parser("badja", help="BADJA joints (delta_seg, delta_3px) on DAVIS 480p frames",
                       description="BADJA evaluation: each joint queried at its first visible annotated frame")
    b.add_argument("--data", required=True, help="folder with badja_<name>_davis480.npz")
    b.add_argument("--frames", required=True, help="folder of <idx>_<name>/{video,masks}/")
    _method_args(b)
    s = sub.add_parser("synth", help="synthetic plates with exact ground truth: make scenes, or evaluate methods "
                                     "in plate pixels",
                       description="Synthetic plates (docs/evaluation.md): --make DIR writes scenes; --data DIR "
                                   "--method ... --out OUT evaluates (delta at 0.25..4 px, AJ, OA, median/p90 "
                                   "error, re-acquisition)")
    s.add_argument("--make", default=None, metavar="DIR", help="write scenes scene_<seed>/ under DIR")
    s.add_argument("--data", default=None, metavar="DIR", help="scenes to evaluate (DIR or one scene folder)")
    s.add_argument("--scenes", type=int, default=1, help="--make: number of scenes (seeds S, S+1, ...)")
    s.add_argument("--size", default="1280x720", help="--make: plate size WxH (default 1280x720)")
    s.add_argument("--frames", type=int, default=40, help="--make: frames per scene (numbered from 1001)")
    s.add_argument("--format", default="png", choices=("png", "exr"),
                   help="--make: 8-bit sRGB PNG or linear half EXR (read back through the OCIO display path)")
    s.add_argument("--points", type=int, default=64, help="--make: query points per scene")
    s.add_argument("--textures", default=None, metavar="DIR",
                   help="--make: photos (.jpg/.png, searched recursively) to texture the cards with; "
                        "default procedural textures")
    s.add_argument("--supersample", type=int, default=2, help="--make: SxS samples per pixel (default 2)")
    s.add_argument("--shutter-samples", type=int, default=0, help="--make: renders averaged per frame for motion "
                                                                   "blur; 0 (default): enough that nothing moves "
                                                                   "more than 2 px between two (3 to 48)")
    s.add_argument("--shutter", type=float, default=0.5, help="--make: shutter, fraction of a frame (0.5 = 180 deg)")
    s.add_argument("--noise", type=float, default=0.003, help="--make: sensor noise sigma, linear units")
    s.add_argument("--flicker", type=float, default=0.02, help="--make: exposure flicker amplitude (gain 1 +- this)")
    s.add_argument("--solve", action="store_true",
                   help="also judge each method's tracks by a camera solve with the known K (COLMAP bundle "
                        "adjustment; needs the solve extra: pip install 'dino-tracker-vfx[solve]')")
    _method_args(s, several=True)


def _parse_size(text: str) -> tuple[int, int]:
    from ..errors import ConfigError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"size {text!r} is not WxH (e.g. 1280x720)", where="--size") from None
    if w < 16 or h < 16:
        raise ConfigError(f"size {text!r} is too small (at least 16x16)", where="--size")
    return w, h


def _run_synth(args, progress, log) -> int:
    from ..errors import ConfigError
    from ..evaluation import harness
    from ..evaluation.baselines import METHOD_NAMES, make_method, method_label
    from ..evaluation.synth.files import make_scenes
    from ..evaluation.synth.scene import texture_files

    if (args.make is None) == (args.data is None):
        raise ConfigError("give exactly one of --make DIR (write scenes) or --data DIR (evaluate them)",
                          where="eval synth")
    if args.make is not None:
        size = _parse_size(args.size)
        if args.frames < 2 or args.scenes < 1 or args.points < 1 or args.supersample < 1 or args.shutter_samples < 0:
            raise ConfigError("--frames must be >= 2, --scenes, --points, --supersample >= 1 and --shutter-samples >= 0",
                              where="eval synth")
        tex = texture_files(args.textures) if args.textures else None
        dirs = make_scenes(args.make, args.seed, args.scenes, size, args.frames, args.format, tex, args.points,
                           args.supersample, args.shutter_samples, args.shutter, args.noise, args.flicker, log=log)
        print(f"{len(dirs)} scene(s) -> {args.make}")
        return 0
    if not args.method or not args.out:
        raise ConfigError("evaluating needs --method (e.g. klt,flow,tracker) and --out", where="eval synth")
    if args.solve:
        from ..evaluation.synth.solve import require_pycolmap

        require_pycolmap()
    names = [m.strip() for m in args.method.split(",") if m.strip()]
    bad = [m for m in names if m not in METHOD_NAMES]
    if bad:
        raise ConfigError(f"method {bad[0]!r} is not one of {', '.join(METHOD_NAMES)}", where="--method")
    presets = [p.strip() for p in (args.preset or "").split(",") if p.strip()] or [None]
    runs = []
    for name in names:
        for preset in (presets if name in ("tracker", "dino") else [None]):
            m = make_method(name, preset=preset, flow=args.flow, fb_thresh=args.fb_thresh, weights=args.weights,
                            device=args.device, seed=args.seed, masks=args.masks)
            label = method_label(name, m)
            m.check()
            runs.append((label, m))
    table = {}
    for label, m in runs:
        table[label] = harness.evaluate_synth(args.data, m, Path(args.out) / label, solve=args.solve,
                                              progress=progress, log=log)
    from .. import atomic

    atomic.write_json(Path(args.out) / "table.json", harness._clean(table))
    print(synth_table(table))
    return 0


def synth_table(table: dict) -> str:
    """The printed comparison: one row per method."""
    cols = ("AJ", "delta_avg", "delta_0.25", "delta_0.5", "delta_1", "OA", "median_err", "p90_err", "reacq")
    if any("solve_reproj_mean" in s for s in table.values()):
        cols += ("solve_reproj_mean", "solve_path_rmse_rel", "solve_rot_err_deg")
    head = f"{'method':<22}" + "".join(f"{c:>11}" for c in cols) + f"{'track s':>10}{'peak MiB':>10}"
    lines = [head]
    for label, s in table.items():
        lines.append(f"{label:<22}" + "".join(f"{float('nan') if s.get(c) is None else s[c]:>11.3f}" for c in cols)
                     + f"{s['stage_seconds']['track_s']:>10.1f}{s['peak_rss_mb']:>10.0f}")
    if len(cols) > 9:
        lines.append("(solve_*: reprojection px, camera-path RMSE / path spread, orientation error deg; the column "
                     "names are shortened in the header)")
    return "\n".join(lines)


def run(args) -> int:
    from ..evaluation import harness
    from ..evaluation.baselines import make_method
    from ..progress import ConsoleBar

    if args.benchmark == "synth":
        return _run_synth(args, None if args.quiet else ConsoleBar(),
                          None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True)))
    method = make_method(args.method, preset=args.preset, flow=args.flow, fb_thresh=args.fb_thresh,
                         weights=args.weights, device=args.device, seed=args.seed, masks=args.masks)
    videos = [v for v in (args.videos or "").split(",") if v.strip()] or None
    progress = None if args.quiet else ConsoleBar()
    log = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    if args.benchmark == "tapvid":
        s = harness.evaluate_tapvid(args.gt, args.frames, method, args.out, mode=args.mode, videos=videos,
                                    progress=progress, plots=not args.no_plots, log=log)
        print(f"{s['method']}{' ' + s['preset'] if s['preset'] else ''} ({s['mode']}, {s['n_videos']} videos, "
              f"{s['n_queries']} queries): AJ {s['AJ']:.3f}  OA {s['OA']:.3f}  delta_avg {s['delta_avg']:.3f}"
              f"  -> {args.out}/summary.json")
    else:
        s = harness.evaluate_badja(args.data, args.frames, method, args.out, videos=videos, progress=progress,
                                   plots=not args.no_plots, log=log)
        print(f"{s['method']}{' ' + s['preset'] if s['preset'] else ''} (BADJA, {s['n_videos']} videos): "
              f"delta_seg {s['delta_seg']:.3f}  delta_3px {s['delta_3px']:.3f}  -> {args.out}/summary.json")
    return 0
