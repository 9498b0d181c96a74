"""``dtvfx objects SHOT --masks MASK --out TRACKS.json``: object tracks (centroid, bbox, visibility)."""

from __future__ import annotations

import sys
import warnings

COMMAND = "objects"
HELP = "track objects given by instance masks: member points + robust centroid, bbox and visibility per object"
DESCRIPTION = """Sample points inside each object of the mask (spread over it, denser where it is textured), track
them all with one tracker training for the shot, and derive per object a robust centroid that follows the
mask centroid (MAD outlier rejection, similarity motion model), a bounding box, a visibility keyframe
and a confidence.

--guide propagate (default) also propagates the masks through the shot (as dtvfx segment, weight-free
colour-texture features unless --guide-features says otherwise) and uses them as a check: a point counts
for its object only while it lies on that object's propagated mask (never on another object's), the
centroid leans three quarters of the way to the propagated mask's centroid and follows it alone where
too few points are left (not where the propagated mask has leaked: > 3x the area the points explain),
and the object is visible while the propagated mask holds it (or >= 30% of its points lie on it).
--guide none: points only (visible while >= 30% of its points are).

The output track file holds the member tracks <object>_pNN (group = object) and one object track per group;
exporters write them as one named group per object. Objects are named obj<id> unless --names is given.
Masks at more frames (repeat --masks) mark an object invisible where its id is absent.
--preview also renders <out>.preview.mp4 and a contact sheet <out>.preview.png: object boxes and
centroids, member points in their object's colour, the given masks tinted, a legend of the objects.

examples:
  dtvfx objects "plate.####.exr" --masks roto.1001.png --out objects.json
  dtvfx objects clip.mov --masks ids.png --frame 1 --preset fast --points-per-object 32 --smooth savgol
  dtvfx objects "plate.####.png" --masks m.png --tracker flow --out objects.json     # quick, flow only
"""


def add_arguments(p) -> None:
    from ..objects.api import POINT_TRACKERS
    from ..objects.centroids import MOTION_MODELS, CentroidParams
    from ..objects.guide import GUIDES
    from .info import add_shot_arguments
    from .segment import add_mask_arguments, add_preview_argument

    d = CentroidParams()
    p.add_argument("shot", metavar="SHOT", help="sequence pattern, frame, folder or movie")
    add_shot_arguments(p)
    add_mask_arguments(p)
    p.add_argument("--out", required=True, metavar="TRACKS.json", help="track file (.json or .csv)")
    p.add_argument("--preset", default="cpu-preview", metavar="NAME", help="tracker preset (default cpu-preview)")
    p.add_argument("--tracker", choices=POINT_TRACKERS, default="dino",
                   help="point tracker: dino (DINO-Tracker, default) or flow (chained optical flow, quick)")
    p.add_argument("--points-per-object", type=int, default=24, metavar="K", help="points per object (24)")
    p.add_argument("--smooth", default="none", metavar="SPEC",
                   help="none (default), one-euro[:min_cutoff=1,beta=0.02], savgol[:window=9,order=2]")
    p.add_argument("--motion-model", choices=MOTION_MODELS, default=d.motion_model,
                   help=f"model from points to the mask centroid ({d.motion_model})")
    p.add_argument("--min-visible", type=float, default=d.min_visible_fraction, metavar="FRACTION",
                   help=f"object visible while this fraction of its points is ({d.min_visible_fraction})")
    p.add_argument("--guide", choices=GUIDES, default="propagate",
                   help="check the points against the propagated masks (propagate, default) or not (none)")
    p.add_argument("--guide-features", choices=("colour-texture", "auto", "dino"), default="colour-texture",
                   help="features for the guide's mask propagation (default colour-texture: weight-free)")
    p.add_argument("--cache", metavar="DIR", help="tracker cache folder (resume / reuse a training)")
    p.add_argument("--device", metavar="DEV", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_preview_argument(p, "<out>.preview.mp4 and a contact sheet <out>.preview.png")


def run(args) -> int:
    from ..objects.api import track_objects
    from ..objects.centroids import CentroidParams
    from ..objects.masks_io import parse_names
    from ..objects.smoothing import parse_smooth
    from ..progress import ConsoleBar
    from .info import open_from_args
    from .segment import read_cli_masks, render_object_preview, show_warnings

    shot = open_from_args(args)
    smooth = parse_smooth(args.smooth)
    cp = CentroidParams(min_visible_fraction=args.min_visible, motion_model=args.motion_model).validate()
    masks = read_cli_masks(args, shot)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ts = track_objects(shot, masks, names=parse_names(args.names), points_per_object=args.points_per_object,
                           point_tracker=args.tracker, preset=args.preset, centroid=cp, smooth=smooth,
                           guide=args.guide, guide_features=args.guide_features,
                           cache_dir=args.cache, device=args.device, seed=args.seed,
                           progress=None if args.quiet else ConsoleBar())
    show_warnings(caught)
    if str(args.out).lower().endswith(".csv"):
        print("dtvfx: warning: a CSV track file keeps the member point tracks only; write .json to keep the "
              "object tracks (centroid, bbox, visibility)", file=sys.stderr)
    ts.save(args.out)
    objs = ts.meta["objects"]["objects"]
    for name, o in objs.items():
        vis = int(ts.groups[name].visible.sum())
        print(f"{name}: id {o['id']}, {o['points']} points, visible in {vis}/{ts.n_images} frames")
    print(args.out)
    if args.preview:
        from pathlib import Path

        ids = {int(o["id"]): name for name, o in objs.items()}
        render_object_preview(shot, ts, Path(args.out).with_suffix(".preview.mp4"), masks.get, ids, args.quiet)
    return 0
