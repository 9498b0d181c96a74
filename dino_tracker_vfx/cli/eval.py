"""``dtvfx eval tapvid|badja``: benchmark a tracking method against ground truth.

    dtvfx eval tapvid --gt PATH.pkl --frames DIR --method {static,flow,dino,tracker} [--preset NAME]
                      [--mode strided|first] [--videos 29,horsejump-high] --out OUTDIR
    dtvfx eval badja  --data DIR --frames DIR --method ... --out OUTDIR

OUTDIR receives summary.json (OA, AJ, delta_avg: means over videos; n_videos, method, preset, mode,
per-threshold values), per_video.csv, per_video.png, occlusion.png, videos/<key>.json, tracks/<key>.json and
cache/<key>/ (trained models, reused). Finished videos are saved as they finish: after Ctrl-C, the same
command resumes and skips videos whose settings match. GT pickles are loaded with Python's pickle:
give only trusted files.
"""

from __future__ import annotations

import argparse
import sys

COMMAND = "eval"
HELP = "evaluate a method on TAP-Vid (AJ, OA, delta_avg) or BADJA (delta_seg, delta_3px)"
DESCRIPTION = __doc__


def _method_args(p: argparse.ArgumentParser) -> None:
    from ..evaluation.baselines import METHOD_NAMES

    p.add_argument("--method", required=True, choices=METHOD_NAMES,
                   help="static (query never moves), flow (chained optical flow), dino (raw DINOv2 "
                        "matching, needs weights), tracker (DINO-Tracker, trained per video)")
    p.add_argument("--preset", default=None, help="tracker preset (paper, balanced, fast, cpu-preview; "
                                                   "default cpu-preview for --method tracker)")
    p.add_argument("--flow", default="dis", choices=("dis", "raft_small", "raft_large"),
                   help="flow for --method flow (default dis; RAFT needs local weights)")
    p.add_argument("--fb-thresh", type=float, default=1.5, help="forward-backward check in px for --method flow")
    p.add_argument("--weights", default=None, help="RAFT weights file for --method flow --flow raft_*")
    p.add_argument("--device", default=None, help="torch device for dino/tracker (default: auto)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--masks", default="none", choices=("none", "first"),
                   help="dino/tracker foreground: none (the tracker's own) or first (the DAVIS mask of the "
                        "first image, <idx>_<name>/masks/)")
    p.add_argument("--videos", default=None,
                   help="comma-separated subset: indices (29), names (horsejump-high) or keys (29_horsejump-high)")
    p.add_argument("--out", required=True, help="output folder (created; reruns resume in it)")
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


def run(args) -> int:
    from ..evaluation import harness
    from ..evaluation.baselines import make_method
    from ..progress import ConsoleBar

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
