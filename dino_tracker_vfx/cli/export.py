"""``dtvfx export``: write a track file in a host format through the adapter plugins.

    dtvfx export tracks.json --to nuke                      # -> tracks.nk beside the input
    dtvfx export tracks.json --out shot.nk --option cornerpin=bl,br,tr,tl
    dtvfx export tracks.json --to blender --blend out.blend --clip plate.####.exr
    dtvfx export shot.nk --read-option plate_size=1920x1080 --to json --out tracks.json
    dtvfx export points.3de.txt --shot "plate.####.exr" --to json --out tracks.json

The input is a core track file (``.json`` / ``.csv``) or any host file an adapter can read, picked by
its longest suffix (``x.blender.json`` is a Blender markers document, not a core ``.json``; ``--from
NAME`` when the suffix is ambiguous). Host formats in plate-relative units (3DE, PFTrack, SynthEyes,
mmSolver...) need the plate: ``--shot PLATE`` reads its size, frame numbers, fps and timecode (or give
``--read-option plate_size=WxH``). ``--to NAME`` picks the writer, else the suffix of
``--out`` does. Adapter options: ``--option key=value`` (repeatable); options that an adapter declares
with a flag (``OptionSpec(flag="--blend")``) are also flags of this command. ``dtvfx plugins``
lists adapters, suffixes and options.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import ConfigError, UserError

COMMAND = "export"
HELP = "write tracks for a host (Nuke, After Effects, Fusion, Blender, ...) via adapter plugins"
DESCRIPTION = __doc__

log = logging.getLogger("dino_tracker_vfx")
_OWN = {"--to", "--out", "--option", "--from", "--read-option", "--shot", "--fps", "--help", "-h", "--quiet", "-o",
        "-q"}
_FLAG_OWNERS: dict[str, list[tuple[str, str]]] = {}  # flag -> [(adapter, option name)]


def _dest(flag: str) -> str:
    return "adapter_flag__" + flag.lstrip("-").replace("-", "_")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("tracks", help="track file: core .json/.csv, or a host file an adapter reads")
    p.add_argument("--to", metavar="NAME", help="adapter to write with (see 'dtvfx plugins')")
    p.add_argument("--out", "-o", metavar="FILE", help="output file (default: input name + the adapter's suffix)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="adapter option (repeatable), e.g. --option cornerpin=a,b,c,d")
    p.add_argument("--from", dest="from_", metavar="NAME", help="adapter that reads the input (default: by suffix)")
    p.add_argument("--read-option", action="append", default=[], metavar="KEY=VALUE",
                   help="option for reading a host file, e.g. plate_size=1920x1080 or first_frame=1001")
    p.add_argument("--shot", metavar="PLATE",
                   help="reading a host file: the shot it belongs to (sequence pattern, folder or movie); "
                        "gives the plate size, frame numbers, fps and timecode")
    p.add_argument("--fps", type=float, metavar="RATE",
                   help="frame rate of the shot for every exporter that writes time (default: the track file's, "
                        "else the --shot's, else 24)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    _FLAG_OWNERS.clear()
    try:
        from ..adapters import registry

        reg = registry()
    except UserError as e:  # reported again when the command runs
        log.debug("adapter flags unavailable: %s", e)
        return
    group = p.add_argument_group("adapter flags (each belongs to the adapters named in its help)")
    for a in reg:
        for o in a.options:
            if not o.flag:
                continue
            if o.flag in _OWN:
                log.warning("adapter %s: option flag %s clashes with dtvfx export's own; use --option %s=...",
                            a.name, o.flag, o.name)
                continue
            owners = _FLAG_OWNERS.setdefault(o.flag, [])
            owners.append((a.name, o.name))
            if len(owners) > 1:
                continue  # already added; help lists the first adapter only
            kw = dict(dest=_dest(o.flag), default=None, metavar=o.name.upper(),
                      help=f"[{a.name}] {o.help}")
            if o.type == "bool":
                kw.update(nargs="?", const="true", metavar="BOOL")
            group.add_argument(o.flag, **kw)


CORE_READERS = ("json", "csv")  # the core track file adapters (plugins/core_formats.py)


def _load_input(path: Path, from_: str | None, read_opts: dict, reg, shot=None):
    from ..adapters import resolve_options
    from ..errors import InputError
    from ..tracks import TrackSet

    if not path.exists():
        raise InputError("file not found", where=str(path))
    if shot is not None:  # the shot gives what a plate-relative host format cannot say itself
        read_opts.setdefault("plate_size", tuple(shot.size))
        read_opts.setdefault("frame_numbers", [int(f) for f in shot.frame_numbers])
    a = reg.select(from_, path, "read_tracks")  # by the longest suffix: .blender.json is not core .json
    if a.name in CORE_READERS and from_ is None and not read_opts:
        try:
            tracks = TrackSet.load(path)
        except InputError as e:
            raise _with_reader_hint(e, path, reg) from None
    else:
        tracks = a.read_tracks(path, resolve_options(a, read_opts, where=f"--read-option ({a.name})"))
    if shot is not None and tracks.fps is None:
        tracks.with_time(shot.fps, tracks.timecode or shot.timecode)
    return tracks


def _with_reader_hint(err, path: Path, reg):
    """A JSON document of another format (``"format": "dino_tracker_vfx.<adapter>"``): name the
    ``--from`` that reads it."""
    import json

    from ..errors import InputError

    try:
        fmt = json.loads(path.read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        return err
    name = str(fmt).rsplit(".", 1)[-1] if fmt else None
    if name and name in reg.names() and reg.get(name).can("read_tracks") and name not in CORE_READERS:
        return InputError(f"{err.args[0]}; it is a {name} document: read it with --from {name}")
    return err


def run(args) -> int:
    from ..adapters import parse_option_pairs, registry, resolve_options
    from .info import open_from_args

    reg = registry()
    src = Path(args.tracks)
    shot = open_from_args(args, args.shot) if args.shot else None
    tracks = _load_input(src, args.from_, parse_option_pairs(args.read_option, "--read-option"), reg, shot)
    if args.fps is not None:
        tracks.with_time(args.fps, tracks.timecode)
    if args.to is None and args.out is None:
        raise ConfigError("say where to write: --to NAME and/or --out FILE (see 'dtvfx plugins')")
    adapter = reg.select(args.to, args.out, "write")
    out = Path(args.out) if args.out else src.with_name(src.name[: -len(src.suffix)] + adapter.suffixes[0]
                                                       if src.suffix else src.name + adapter.suffixes[0])
    if out.resolve() == src.resolve():
        raise ConfigError(f"output {out} would overwrite the input; give --out", where=str(src))
    opts = parse_option_pairs(args.option)
    for flag, owners in _FLAG_OWNERS.items():
        val = getattr(args, _dest(flag), None)
        if val is None:
            continue
        mine = [o for a, o in owners if a == adapter.name]
        if not mine:
            raise ConfigError(f"{flag} is an option of {', '.join(sorted({a for a, _ in owners}))}, "
                              f"not of {adapter.name}")
        opts[mine[0]] = val
    options = resolve_options(adapter, opts, where=f"adapter {adapter.name}")
    if not args.out and options.get("blend"):  # --blend names the Blender adapter's output file
        out = Path(options["blend"])
    adapter.write(tracks, out, options)
    if not args.quiet:
        print(f"wrote {out} ({adapter.name}, {tracks.n_tracks} tracks, frames "
              f"{tracks.frame_numbers[0]}-{tracks.frame_numbers[-1]})" if tracks.n_images else f"wrote {out}")
    return 0
