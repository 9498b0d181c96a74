"""The ``dtvfx`` command. Each subcommand is a module in this package exposing

    COMMAND = "name"                      # the subcommand
    HELP = "one line for dtvfx --help"
    def add_arguments(parser): ...        # argparse parser of the subcommand
    def run(args) -> int: ...             # exit code

Modules are discovered automatically (sorted by name), so adding a command is adding a file.
User errors (:class:`~dino_tracker_vfx.errors.UserError`) print one line ``dtvfx: error: ...`` and
exit with their code (2), as does a full disk (the file being written is named, see ``atomic``); Ctrl-C exits 130 after the command has saved what it can.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from .. import __version__
from ..errors import Cancelled, UserError

log = logging.getLogger("dino_tracker_vfx")

DESCRIPTION = """Point and object tracking for VFX (DINO-Tracker).

typical flow:
  dtvfx info plate.####.exr 1001-1100          what is in the shot
  dtvfx track plate.####.exr --queries q.csv --out tracks.json
  dtvfx export tracks.json --to nuke --out tracks.nk
  dtvfx preview plate.####.exr tracks.json --out preview.mp4
"""


def _commands():
    mods = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"{__name__}.{info.name}")
        except Exception as e:  # one broken command must not take the whole CLI down
            print(f"dtvfx: warning: command module {info.name!r} failed to load: {e}", file=sys.stderr)
            continue
        if hasattr(mod, "COMMAND") and hasattr(mod, "run"):
            mods.append(mod)
    return sorted(mods, key=lambda m: m.COMMAND)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dtvfx", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"dtvfx {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _commands():
        sp = sub.add_parser(mod.COMMAND, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(sp)
        sp.set_defaults(_run=mod.run)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="dtvfx: %(levelname)s: %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        print(f"dtvfx: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        from ..atomic import is_disk_full

        if not is_disk_full(e):
            raise
        print(f"dtvfx: error: {e.filename or 'output'}: cannot write it, disk full ({e.strerror}); "
              "files written before are unchanged", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print("dtvfx: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
