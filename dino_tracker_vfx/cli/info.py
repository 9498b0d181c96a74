"""``dtvfx info SHOT``: what is in a shot."""

from __future__ import annotations

import json

COMMAND = "info"
HELP = "show a shot's frame range, size, pixel aspect, colour space, windows and frame gaps"
DESCRIPTION = """Show what a shot holds, without reading every frame.

SHOT is an image sequence pattern (plate.####.exr, plate.%04d.dpx, plate.@@@@.png), optionally followed
by a range (``plate.####.exr 1001-1100``), a single frame of a sequence, a folder of images, or a movie,
optionally followed by a range of its frames, numbered from 1 (``clip.mov 21-60``, as ``dtvfx info clip.mov``
lists them). ``--range`` does the same for any shot.

examples:
  dtvfx info "plate.####.exr"
  dtvfx info "plate.%04d.exr 1001-1100" --json
  dtvfx info clip.mov
  dtvfx info "clip.mov 21-60"
"""


def add_shot_arguments(p) -> None:
    """Shot options shared by every command that reads a shot."""
    p.add_argument("--range", dest="frame_range", metavar="FRAMES",
                   help="frames to use, e.g. 1001-1100, 1-50x2 or 1001,1005-1010 (sequences; movies: their frame numbers, 1 = first)")
    p.add_argument("--colorspace", metavar="NAME",
                   help="source colour space of the plate (default: file tag; float data lin_rec709; else sRGB)")
    p.add_argument("--display", metavar="NAME", help="OCIO display for the fixed display transform")
    p.add_argument("--view", metavar="NAME", help="OCIO view for the fixed display transform")
    p.add_argument("--fps", type=float, metavar="RATE",
                   help="frame rate of the shot (default: the movie's, or EXR/DPX metadata; unknown -> "
                        "exporters use 24); kept in the track file for the exporters")


def open_from_args(args, spec: str | None = None):
    from ..shots import open_shot

    return open_shot(spec or args.shot, frame_range=getattr(args, "frame_range", None),
                     colorspace=getattr(args, "colorspace", None), display=getattr(args, "display", None),
                     view=getattr(args, "view", None), fps=getattr(args, "fps", None))


def add_arguments(p) -> None:
    p.add_argument("shot", metavar="SHOT", help="sequence pattern, frame, folder or movie")
    add_shot_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args) -> int:
    shot = open_from_args(args)
    info = shot.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    dw, dd = info["display_window"], info["data_window"]
    gaps = shot.gaps_text(limit=50)
    lines = [
        ("shot", info["source"]),
        ("kind", f"{info['kind']} ({info['format']})"),
        ("frames", f"{info['frame_range'][0]}-{info['frame_range'][1]} ({info['images']} images)"),
        ("gaps", gaps),
        ("size", f"{info['size'][0]}x{info['size'][1]}  pixel aspect {info['pixel_aspect']:g}"),
        ("display win", f"x {dw[0]} y {dw[1]} {dw[2]}x{dw[3]}"),
        ("data win", f"x {dd[0]} y {dd[1]} {dd[2]}x{dd[3]}" + ("" if dd == dw else "  (differs: placed into display window)")),
        ("colour", info["display_transform"]),
        ("channels", " ".join(info["channels"])),
    ]
    if "fps" in info:
        lines.append(("fps", f"{info['fps']:g}"))
    if "timecode" in info:
        lines.append(("timecode", info["timecode"]))
    if "movie_frames" in info:
        (a, b), n = info["movie_frames"]["range"], info["movie_frames"]["images"]
        lines.append(("movie", f"frames {a}-{b} ({n} images; a range picks some: \"{info['source']} {a}-{b}\")"))
    for k, v in lines:
        print(f"{k:<12} {v}")
    return 0
