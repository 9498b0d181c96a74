"""``dtvfx plugins``: the adapters the plugin system found (built-in and third-party)."""

from __future__ import annotations

import json

COMMAND = "plugins"
HELP = "list host adapters: name, suffixes, capabilities, options and the plugin providing each"


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--options", action="store_true", help="also list each adapter's options")


def run(args) -> int:
    from ..adapters import registry

    reg = registry()
    rows = []
    for a in reg:
        can = [n for n, ok in (("write", a.write), ("read-queries", a.read_queries), ("read-tracks", a.read_tracks))
               if ok]
        rows.append({"name": a.name, "suffixes": list(a.suffixes), "capabilities": sorted(a.capabilities),
                     "can": can, "plugin": reg.source_of(a.name), "builtin": reg.is_builtin(a.name),
                     "description": a.description,
                     "options": [{"name": o.name, "type": o.type, "default": o.default, "flag": o.flag,
                                  "required": o.required, "help": o.help} for o in a.options]})
    if args.json:
        print(json.dumps({"adapters": rows, "skipped_plugins": reg.skipped}, indent=1, default=str))
        return 0
    w = max([len(r["name"]) for r in rows] + [4])
    ws = max([len(" ".join(r["suffixes"])) for r in rows] + [8])
    print(f"{'NAME':<{w}}  {'SUFFIXES':<{ws}}  {'CAN':<30}  {'CAPABILITIES':<45}  PLUGIN")
    for r in rows:
        print(f"{r['name']:<{w}}  {' '.join(r['suffixes']):<{ws}}  {','.join(r['can']):<30}  "
              f"{','.join(r['capabilities']):<45}  {r['plugin']}")
        if args.options:
            for o in r["options"]:
                flag = f" ({o['flag']})" if o["flag"] else ""
                req = " required" if o["required"] else ""
                print(f"{'':<{w}}    --option {o['name']}=<{o['type']}>{flag}{req}: {o['help']}")
    for s in reg.skipped:
        print(f"skipped plugin {s}")
    return 0
