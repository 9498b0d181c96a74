"""``dtvfx track SHOT --queries Q.csv``: train DINO-Tracker on a shot and track query points."""

from __future__ import annotations

from pathlib import Path

from .info import add_shot_arguments, open_from_args

COMMAND = "track"
HELP = "track query points through a shot (DINO-Tracker, trained on the shot)"
DESCRIPTION = """Track query points through a shot with DINO-Tracker (test-time training per shot).

Queries (CSV or JSON, plate pixels, origin top-left; see docs/tracker.md) name an image index `t` or a
host `frame` each. A host file works as well: its trackers/markers become the queries (Nuke .nk,
.nuke.txt; Blender .blend, .blender.json; After Effects .ae.txt; Fusion .setting; 3DEqualizer .3de.txt,
.3de; SynthEyes .syntheyes.txt; PFTrack .2dt; mmSolver .uv; a dtvfx track file .json/.csv to re-track;
'dtvfx plugins' lists them). Masks (mattes, palette PNGs, id EXRs; PATH or PATH@FRAME) mark the foreground that
training samples favour. Every stage and the training checkpoints are cached under --cache, so a
cancelled run (Ctrl-C: a checkpoint is saved, exit 130; press it twice to stop at once) resumes where
it stopped, a second query file reuses the trained tracker, and a larger train.iterations (a YAML
preset) continues from the last checkpoint.

Corrections: rows that share a name are one track (the first is its query, the others corrections the
track passes through exactly). --corrections FILE (any query format; each row names a track of the
queries) adds such anchors: with the same --cache, the trained model and every cached stage are reused
and only inference runs (seconds to minutes; see docs/tracker.md for the blend between anchors). A host
file as corrections (an edited .nk, .blender.json, .uv, ...) gives its keyed frames; those where the
track is unchanged from --out (the result being corrected) are left out.

presets: paper (ViT-L/14, the paper's settings, GPU), balanced, fast (GPU), cpu-preview (weight-free:
no DINOv2 weights needed, minutes on a CPU; lower quality), or a YAML file (see presets/).

examples:
  dtvfx track "plate.####.exr" --queries points.csv --out tracks.json
  dtvfx track clip.mov --queries q.json --masks hero.1001.png --preset paper --device cuda --preview
  dtvfx track "plate.####.exr" --queries points.csv --corrections fixes.csv --out tracks.json
"""


def add_arguments(p) -> None:
    p.add_argument("shot", metavar="SHOT", help="sequence pattern, frame, folder or movie")
    add_shot_arguments(p)
    p.add_argument("--queries", required=True, metavar="FILE",
                   help="query points: .csv or .json, or a host file (.nk, .blend, .3de.txt, ...; see above)")
    p.add_argument("--corrections", metavar="FILE",
                   help="anchors to add to tracks by name (.csv, .json or a host file): re-track without "
                        "retraining (same --cache)")
    p.add_argument("--masks", nargs="+", metavar="MASK", help="foreground masks: PATH or PATH@FRAME")
    p.add_argument("--preset", default="cpu-preview", metavar="NAME",
                   help="paper, balanced, fast, cpu-preview (default) or a YAML file")
    p.add_argument("--cache", metavar="DIR",
                   help="cache folder (default $DTVFX_CACHE or ~/.cache/dino_tracker_vfx; kept under "
                        "$DTVFX_CACHE_MAX, default 20G: see dtvfx cache)")
    p.add_argument("--out", metavar="FILE", help="tracks file .json or .csv (default: <queries>.tracks.json)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--seed", type=int, default=0, help="random seed of training (default 0)")
    p.add_argument("--preview", action="store_true",
                   help="also render <out>.preview.mp4 and a contact sheet <out>.preview.png")


def run(args) -> int:
    from ..errors import ConfigError, InputError
    from ..inputs import read_masks, read_queries
    from ..progress import ConsoleBar, SignalCancel
    from ..tracker import cache_admin
    from ..tracker.api import ShotTracker
    from ..tracker.presets import load_preset

    out = Path(args.out) if args.out else Path(args.queries).with_suffix(".tracks.json")
    if out.suffix.lower() not in (".json", ".csv"):
        raise InputError("--out must end in .json or .csv", where=str(out))
    for given in (args.queries, args.corrections):
        if given and out.resolve() == Path(given).resolve():
            raise ConfigError(f"output {out} would overwrite the query file; give another --out", where=given)
    cfg = load_preset(args.preset)  # bad preset: fail before reading any frame
    cache_admin.size_limit()  # a bad $DTVFX_CACHE_MAX too
    shot = open_from_args(args)
    if args.corrections:  # a track file corrected here must come from a model these settings reuse
        for f in (args.queries, args.corrections):
            check_tracked_with(f, cfg, args.seed)
    previous = None  # the tracks being corrected: an edited host export then gives just the moved keys
    if args.corrections and out.is_file():
        from ..tracks import TrackSet

        try:
            previous = TrackSet.load(out)
        except InputError:
            previous = None
    queries = read_queries(args.queries, shot, corrections=args.corrections, previous=previous)
    masks = read_masks(args.masks, shot) if args.masks else None
    bar = ConsoleBar()
    cache = args.cache or cache_admin.default_root()
    with SignalCancel() as cancel:  # Ctrl-C: checkpoint, then exit 130 (cli.main)
        st = ShotTracker(shot, cfg, masks=masks, cache_dir=cache, device=args.device, seed=args.seed,
                         progress=bar, cancel=cancel)
        st.prepare()
        st.train()
        tracks = st.infer(queries)
    tracks.save(out)
    cache_admin.enforce_limit(cache, keep=(st.cache.shot_key,))
    vis = float(tracks.visible.mean()) if tracks.visible.size else 0.0
    n_fix = sum(len(a) - 1 for a in tracks.anchors)
    print(f"{out}: {tracks.n_tracks} tracks x {tracks.n_images} images, {vis:.0%} visible "
          f"(preset {cfg.name}, {st.trained_iterations} iterations"
          + (f", {n_fix} correction{'s' * (n_fix != 1)}" if n_fix else "") + ")")
    if args.preview:
        from ..render.preview import render_preview

        mp4 = out.with_suffix(".preview.mp4")
        res = render_preview(shot, tracks, mp4, out.with_suffix(".preview.png"), progress=bar)
        print(f"{res['mp4']}" + (f", {res['png']}" if res.get("png") else ""))
    return 0


def check_tracked_with(path, cfg, seed: int) -> None:
    """CacheError when ``path`` is a dtvfx track file tracked with other training settings (or seed) than
    ``cfg``: its corrections would need another trained model, not inference alone. Inference settings
    (``infer.*``) may differ. Files that are not track files, or carry no settings, pass."""
    from ..errors import CacheError
    from ..tracker.config import diff_settings
    from ..tracks import FORMAT_NAME, TrackSet

    p = Path(path)
    try:
        head = p.read_text(errors="replace")[:4096]
    except OSError:
        return  # read_queries names a missing file
    if FORMAT_NAME not in head:
        return
    meta = (TrackSet.load(p).meta or {}).get("tracker") or {}
    if "config" not in meta:
        return

    def training(d):
        return {k: v for k, v in d.items() if k not in ("infer", "name", "description")}

    diffs = diff_settings(training(meta["config"]), training(cfg.to_dict()))
    if meta.get("seed", seed) != seed:
        diffs.append(f"seed: {meta['seed']!r} vs {seed!r}")
    if diffs:
        shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        raise CacheError(f"tracked with other settings (file vs requested: {shown}); corrections reuse a trained "
                         f"model only with its settings: give those (preset {meta.get('preset')!r}) or track again "
                         f"without --corrections", where=str(p))
