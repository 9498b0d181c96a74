"""``dtvfx preview SHOT TRACKS --out preview.mp4 [--sheet sheet.png]``: overlay movie and contact sheet.

The movie is H.264 / yuv420p MP4 (plays everywhere), one colour per track, fading trails, filled dots
where visible and hollow rings where occluded, object boxes and centroids for tracked groups.
TRACKS is a core track file (.json or .csv) made for SHOT; images are matched by frame number.
The plate is shown through the same display transform as the tracker saw it (--colorspace, --display,
--view as given to ``dtvfx track``; a linear EXR goes through the OCIO display/view), undimmed.
"""

from __future__ import annotations

COMMAND = "preview"
HELP = "render tracks over the shot: H.264 movie and a PNG contact sheet"
DESCRIPTION = __doc__


def add_arguments(p) -> None:
    from .info import add_shot_arguments

    p.add_argument("shot", help="image sequence (plate.####.exr [1001-1100]), folder of images or movie")
    p.add_argument("tracks", help="track file (.json or .csv, core format)")
    p.add_argument("--out", required=True, help="output movie (.mp4)")
    p.add_argument("--sheet", default=None, help="also write a PNG contact sheet here")
    p.add_argument("--trail", type=int, default=12, help="trail length in images (0: none; default 12)")
    p.add_argument("--max-size", type=int, default=1920, help="longest side of the movie in px (default 1920)")
    p.add_argument("--sheet-frames", type=int, default=8, help="images on the contact sheet (default 8)")
    add_shot_arguments(p)  # --range, --colorspace, --display, --view, --fps (the movie's rate; default the shot's)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from pathlib import Path

    from ..errors import InputError
    from ..progress import ConsoleBar
    from ..render.preview import render_preview
    from ..tracks import TrackSet
    from .info import open_from_args

    if Path(args.out).suffix.lower() != ".mp4":
        raise InputError("the preview movie must be an .mp4 file", where=args.out)
    if args.trail < 0 or args.sheet_frames < 1 or args.max_size < 16:
        raise InputError("--trail must be >= 0, --sheet-frames >= 1 and --max-size >= 16")
    shot = open_from_args(args)
    tracks = TrackSet.load(args.tracks)
    res = render_preview(shot, tracks, args.out, args.sheet, trail=args.trail,
                         progress=None if args.quiet else ConsoleBar(), max_size=args.max_size,
                         sheet_frames=args.sheet_frames)
    print(f"wrote {res['mp4']} ({res['frames']} frames, {res['size'][0]}x{res['size'][1]})"
          + (f" and {res['png']}" if res["png"] else ""))
    return 0
