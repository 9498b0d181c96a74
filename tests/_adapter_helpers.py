"""Shared test data for adapter tests (hand-built, every value chosen so host values can be
computed by hand).

``golden_trackset()``: 1920x1080 plate, frames 1001-1005 (image index t = 0..4), three tracks:

======== ======= ======================================= =========================== ===================
name     group   xy at t (plate px, top-left, y down)    visible                     confidence
======== ======= ======================================= =========================== ===================
car_a    car     (10 t, 5 t): (0,0) (10,5) ... (40,20)    all                         1 .9 .8 .75 .5
car_b    car     (100.25 + 2 t, 200.5 - t)               t=2 occluded (frame 1003)   .95 .9 .1 .85 .8
corner 1 -       (1919 - 1.5 t, 1079 - 2.5 t)            all                         1 1 1 1 1
======== ======= ======================================= =========================== ===================

Queries: car_a at t=0, car_b at t=0, "corner 1" at t=2 (frame 1003). Group ``car`` has an
ObjectTrack: centroid = mean of car_a and car_b, visible at every image, bbox of the two.
The occluded position of car_b (t=2) is kept (the tracker predicts it); writers must not key it.
"""

from __future__ import annotations

import numpy as np

from dino_tracker_vfx.tracks import ObjectTrack, Query, TrackSet

FRAMES = [1001, 1002, 1003, 1004, 1005]
W, H = 1920, 1080


def golden_trackset() -> TrackSet:
    t = np.arange(5, dtype=np.float64)
    a = np.stack([10 * t, 5 * t], -1)
    b = np.stack([100.25 + 2 * t, 200.5 - t], -1)
    c = np.stack([1919 - 1.5 * t, 1079 - 2.5 * t], -1)
    xy = np.stack([a, b, c])
    vis = np.ones((3, 5), bool)
    vis[1, 2] = False
    conf = np.array([[1, .9, .8, .75, .5], [.95, .9, .1, .85, .8], [1, 1, 1, 1, 1]], np.float32)
    names = ["car_a", "car_b", "corner 1"]
    queries = [Query(0, 0.0, 0.0, "car_a", "car"), Query(0, 100.25, 200.5, "car_b", "car"),
               Query(2, 1916.0, 1074.0, "corner 1", None)]
    cen = (a + b) / 2
    bbox = np.concatenate([np.minimum(a, b), np.maximum(a, b)], -1)
    obj = ObjectTrack(cen, np.ones(5, bool), bbox, np.array([1, .9, .8, .75, .5], np.float32))
    return TrackSet(xy, vis, conf, names, queries, FRAMES, (W, H), {"car": obj})


def corner_trackset() -> TrackSet:
    """Four ungrouped tracks on the corners of a 200x100 rectangle translating by (+4, +2) per image,
    frames 1001-1003 on a 1920x1080 plate. Names tl, tr, br, bl (plate corners at t=0:
    (100,100) (300,100) (300,200) (100,200))."""
    t = np.arange(3, dtype=np.float64)[:, None]
    base = np.array([[100, 100], [300, 100], [300, 200], [100, 200]], np.float64)
    xy = np.stack([base[i] + t * np.array([4.0, 2.0]) for i in range(4)])
    names = ["tl", "tr", "br", "bl"]
    queries = [Query(0, *base[i], names[i], None) for i in range(4)]
    return TrackSet(xy, np.ones((4, 3), bool), np.ones((4, 3), np.float32), names, queries, FRAMES[:3], (W, H))


def assert_same_tracks(a: TrackSet, b: TrackSet, *, atol: float = 1e-4, visible_only: bool = True,
                       confidence: bool = False, conf_atol: float = 1e-3, groups: bool = True) -> None:
    """Equal names, frames, plate size, visibility; positions equal where visible (or everywhere)."""
    assert a.names == b.names
    assert list(a.frame_numbers) == list(b.frame_numbers)
    assert tuple(a.plate_size) == tuple(b.plate_size)
    np.testing.assert_array_equal(a.visible, b.visible)
    mask = a.visible if visible_only else np.isfinite(a.xy[..., 0])
    np.testing.assert_allclose(a.xy[mask], b.xy[mask], atol=atol)
    if confidence:
        np.testing.assert_allclose(a.confidence[mask], b.confidence[mask], atol=conf_atol)
    if groups:
        assert [q.group for q in a.queries] == [q.group for q in b.queries]


# ------------------------------------------------------------------------------------------- goldens
import difflib  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
REPO = Path(__file__).resolve().parents[1]


def check_golden(written: Path, adapter: str, name: str | None = None) -> None:
    """Byte-for-byte comparison with tests/golden/<adapter>/<name>. ``DTVFX_UPDATE_GOLDEN=1`` rewrites
    the reference (review the diff before committing)."""
    g = GOLDEN / adapter / (name or Path(written).name)
    data = Path(written).read_bytes()
    if os.environ.get("DTVFX_UPDATE_GOLDEN"):
        g.parent.mkdir(parents=True, exist_ok=True)
        g.write_bytes(data)
    assert g.exists(), f"missing golden file {g} (run once with DTVFX_UPDATE_GOLDEN=1 and review it)"
    ref = g.read_bytes()
    if data != ref:
        diff = "".join(difflib.unified_diff(ref.decode(errors="replace").splitlines(True),
                                            data.decode(errors="replace").splitlines(True), str(g), str(written)))
        raise AssertionError(f"{written} differs from golden {g}:\n{diff[:4000]}")


def registry():
    from dino_tracker_vfx.adapters import registry as reg

    return reg()


def write_with(adapter: str, tracks, path, **options):
    """Write through the registry (options resolved as the CLI does)."""
    from dino_tracker_vfx.adapters import resolve_options

    a = registry().get(adapter, "write")
    a.write(tracks, Path(path), resolve_options(a, options))
    return Path(path)


def read_with(adapter: str, path, what: str = "read_tracks", **options):
    from dino_tracker_vfx.adapters import resolve_options

    a = registry().get(adapter, what)
    return getattr(a, what)(Path(path), resolve_options(a, options))


def dtvfx(*args) -> "subprocess.CompletedProcess":
    """Run the CLI in this process (fast; same code path as the console script): returncode, stdout, stderr."""
    import contextlib
    import io

    from dino_tracker_vfx.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse errors
            rc = e.code
    return subprocess.CompletedProcess(list(args), rc, out.getvalue(), err.getvalue())


def dtvfx_subprocess(*args, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter (as a user would; sees newly installed plugins)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "dino_tracker_vfx.cli", *map(str, args)], capture_output=True,
                          text=True, env=e, cwd=cwd, timeout=120)


def has_tclsh() -> bool:
    return shutil.which("tclsh") is not None
