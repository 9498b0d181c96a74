"""``dtvfx segment SHOT --masks MASK --out DIR``: propagate instance masks through a shot."""

from __future__ import annotations

import sys
import warnings

COMMAND = "segment"
HELP = "propagate instance masks (palette PNG / mattes / id EXR) through a shot; write masks and mattes"
DESCRIPTION = """Propagate instance masks given at one frame (or more) through the whole shot with space-time
label propagation on per-frame features (DINOv3 segmentation-tracking / Jabri et al. 2020): forward from the
first given frame, backward to the start when it is mid-shot. Each object keeps the id it has in the input.

Writes DIR/<5-digit image index>.png (palette PNG, pixel = object id; --index-format png16/exr for ids
above 255), DIR/mattes/<object>/<index>.png|exr (one matte per object; object = obj<id> or --names) and
DIR/segment.json (features used, settings, per-object areas, frames where an object vanished).

MASK: a palette PNG (DAVIS style: index = id), a binary matte (-> id 1), or an integer id EXR/TIFF;
MASK@FRAME names its host frame; otherwise the frame number in the file name, else --frame, else the
first frame. Give --masks several times for masks at several frames.

--preview also renders DIR/segment.preview.mp4 and a contact sheet DIR/segment.preview.png: every
object's mask tinted in its colour, its box and centroid, and a legend of the object names.

features (--features): auto = DINOv2 when weights are installed, else the weight-free colour-texture
features (with a warning). tracker = train the shot's tracker (--preset, --cache) and use its refined
features; without DINO weights that is the weight-free Delta-CNN, which measured worse than
colour-texture on DAVIS (docs/results-objects.md).

examples:
  dtvfx segment "plate.####.exr" --masks roto.1001.png --out seg/
  dtvfx segment clip.mov --masks ids.exr --frame 40 --out seg/ --mattes soft --matte-format exr
  dtvfx segment "plate.####.png" --masks m.png --features colour-texture --names 1=horse,2=rider --out seg/
"""


def add_mask_arguments(p) -> None:
    p.add_argument("--masks", action="append", required=True, metavar="MASK",
                   help="instance mask file (MASK or MASK@FRAME); repeat for masks at several frames")
    p.add_argument("--frame", type=int, metavar="N", help="host frame number of a mask whose name has none")
    p.add_argument("--names", metavar="ID=NAME,...", help="object names, e.g. 1=horse,2=rider (default obj<id>)")


def add_arguments(p) -> None:
    from ..objects.features import FEATURE_CHOICES
    from ..objects.masks_io import INDEX_FORMATS, MATTE_FORMATS
    from ..objects.propagate import PropagationParams
    from .info import add_shot_arguments

    d = PropagationParams()
    p.add_argument("shot", metavar="SHOT", help="sequence pattern, frame, folder or movie")
    add_shot_arguments(p)
    add_mask_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--features", choices=FEATURE_CHOICES, default="auto", help="feature source (default auto)")
    p.add_argument("--preset", default="cpu-preview", metavar="NAME",
                   help="tracker preset when the features come from the shot's tracker (default cpu-preview)")
    p.add_argument("--dino-model", default="vits14", metavar="NAME",
                   help="DINOv2 model for --features dino/auto: vits14 (default), vitb14, vitl14, vitg14, +_reg4")
    p.add_argument("--weights", metavar="FILE", help="DINOv2 checkpoint file (default: the standard weight folders)")
    p.add_argument("--cache", metavar="DIR", help="tracker cache folder (reuse a training)")
    p.add_argument("--radius", type=int, default=None,
                   help="neighbourhood radius in patches (default: 6 for colour-texture features, else 12)")
    p.add_argument("--topk", type=int, default=d.topk, help=f"context patches averaged per patch ({d.topk})")
    p.add_argument("--temperature", type=float, default=d.temperature,
                   help=f"softmax temperature over the top-k similarities ({d.temperature})")
    p.add_argument("--context", type=int, default=d.n_recent, dest="n_recent",
                   help=f"recent frames kept in the context queue besides the first ({d.n_recent})")
    p.add_argument("--index-format", choices=INDEX_FORMATS, default="png",
                   help="png: 8-bit palette (ids <= 255); png16; exr (float ids, exact to 2^24)")
    p.add_argument("--mattes", choices=("hard", "soft", "none"), default="hard",
                   help="per-object mattes: hard (argmax), soft (probability) or none")
    p.add_argument("--matte-format", choices=MATTE_FORMATS, default="png")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_preview_argument(p, "DIR/segment.preview.mp4 and a contact sheet DIR/segment.preview.png")


def add_preview_argument(p, what: str) -> None:
    p.add_argument("--preview", action="store_true", help=f"also render {what} (mask tints, boxes, centroids)")


def render_object_preview(shot, tracks, out_mp4, masks, mask_names: dict[int, str], quiet: bool) -> None:
    """``--preview`` of ``segment`` and ``objects``: the overlay movie and contact sheet beside the output."""
    from ..progress import ConsoleBar
    from ..render.preview import render_preview

    res = render_preview(shot, tracks, out_mp4, out_mp4.with_suffix(".png"), masks=masks, mask_names=mask_names,
                         progress=None if quiet else ConsoleBar())
    print(f"{res['mp4']}, {res['png']}")


def read_cli_masks(args, shot):
    """Masks through ``inputs.read_masks``; its warnings (e.g. a resized mask) are shown on stderr."""
    from ..inputs import read_masks

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        masks = read_masks(args.masks, shot, frame=args.frame)
    show_warnings(caught)
    return masks


def show_warnings(caught) -> None:
    for w in caught:
        print(f"dtvfx: warning: {w.message}", file=sys.stderr)


def run(args) -> int:
    from ..inputs import split_mask_spec
    from ..objects.api import segment_to_dir
    from ..objects.masks_io import parse_names, read_palette
    from ..objects.propagate import PropagationParams
    from ..progress import ConsoleBar
    from .info import open_from_args

    shot = open_from_args(args)
    masks = read_cli_masks(args, shot)
    params = PropagationParams(args.radius, args.topk, args.temperature, args.n_recent).validate()
    palette = next((pal for pal in (read_palette(split_mask_spec(m)[0]) for m in args.masks) if pal), None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = segment_to_dir(shot, masks, args.out, features=args.features, params=params,
                             names=parse_names(args.names), index_format=args.index_format, mattes=args.mattes,
                             matte_format=args.matte_format, palette=palette, preset=args.preset,
                             cache_dir=args.cache, weights=args.weights, dino_model=args.dino_model,
                             progress=None if args.quiet else ConsoleBar())
    show_warnings(caught)
    objs = ", ".join(f"{o['name']} (id {o['id']})" for o in rep["objects"])
    print(f"{len(rep['frames'])} frames, objects {objs}, features {rep['features']['features']} -> {args.out}")
    if args.preview:
        from pathlib import Path

        from ..inputs import read_mask
        from ..objects.masks_io import index_path
        from ..render.preview import mask_objects
        from ..tracks import TrackSet

        def labels(t: int):
            return read_mask(index_path(args.out, t, args.index_format))

        names = {int(o["id"]): o["name"] for o in rep["objects"]}
        ts = TrackSet.empty(shot.frame_numbers, shot.size)
        ts.groups = mask_objects(labels, shot.n_images, names)
        render_object_preview(shot, ts, Path(args.out) / "segment.preview.mp4", labels, names, args.quiet)
    return 0
