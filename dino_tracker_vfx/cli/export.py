"""``dtvfx export``: write a track file in a host format through the adapter plugins.

    dtvfx export tracks.json --to nuke                      # -> tracks.nk beside the input
    dtvfx export tracks.json --out shot.nk --option cornerpin=bl,br,tr,tl
    dtvfx export tracks.json --to blender --blend out.blend --clip plate.####.exr
    dtvfx export shot.nk --read-option plate_size=1920x1080 --to json --out tracks.json

The input is a core track file (``.json`` / ``.csv``) or any host file an adapter can read
(``--from NAME`` when its suffix is ambiguous). ``--to NAME`` picks the writer, else the suffix of
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
_OWN = {"--to", "--out", "--option", "--from", "--read-option", "--help", "-h", "--quiet", "-o", "-q"}
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


def _load_input(path: Path, from_: str | None, read_opts: dict, reg):
    from ..adapters import resolve_options
    from ..errors import InputError
    from ..tracks import TrackSet

    if not path.exists():
        raise InputError("file not found", where=str(path))
    if from_ is None and path.suffix.lower() in (".json", ".csv") and not read_opts:
        return TrackSet.load(path)
    a = reg.select(from_, path, "read_tracks")
    return a.read_tracks(path, resolve_options(a, read_opts, where=f"--read-option ({a.name})"))


def run(args) -> int:
    from ..adapters import parse_option_pairs, registry, resolve_options

    reg = registry()
    src = Path(args.tracks)
    tracks = _load_input(src, args.from_, parse_option_pairs(args.read_option, "--read-option"), reg)
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
