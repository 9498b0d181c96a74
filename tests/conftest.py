"""Shared fixtures: tiny shots written by the tests themselves (no network, no GPU)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


def on_ci() -> bool:
    """CI=true (any value but empty/0/false/no): every test must really run there."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(reason: str):
    """The one policy for a prerequisite a test cannot have everywhere (../shared data, the bpy
    environment, a tool): skip with ``reason`` on a developer's machine, fail under CI, so CI never
    passes with a test silently skipped."""
    if on_ci():
        pytest.fail(f"{reason} (required when CI is set)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True, scope="session")
def _private_default_cache(tmp_path_factory):
    """`dtvfx track` without --cache writes to $DTVFX_CACHE: keep it out of the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DTVFX_CACHE", str(tmp_path_factory.mktemp("default-cache")))
    yield
    mp.undo()


# ----------------------------------------------------------------------------- device and dtype (kornia's style)
DTYPES = ("float32", "float64", "float16", "bfloat16")
DEVICES = ("cpu", "cuda")


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu",
                     help="devices for the tests taking a `device` fixture: cpu, cuda, a comma list, or all "
                          "(default cpu; cuda skips without a GPU, fails nothing)")
    parser.addoption("--dtype", default="float32",
                     help="dtypes for the tests taking a `dtype` fixture: float32, float64, float16, bfloat16, "
                          "a comma list, or all (default float32)")


def _option_values(config, name: str, choices: tuple[str, ...]) -> list[str]:
    raw = str(config.getoption(name)).strip()
    vals = list(choices) if raw == "all" else [v.strip() for v in raw.split(",") if v.strip()]
    bad = [v for v in vals if v not in choices]
    if bad or not vals:
        raise pytest.UsageError(f"--{name} {raw!r}: give one or more of {', '.join(choices)} (comma-separated) or all")
    return vals


def pytest_configure(config):
    for name, choices in (("device", DEVICES), ("dtype", DTYPES)):
        _option_values(config, name, choices)  # a typo fails at once, not only where a test takes the fixture


def pytest_generate_tests(metafunc):
    """Tests asking for ``device`` / ``dtype`` run once per value given on the command line."""
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", [pytest.param(d, id=d, marks=[pytest.mark.cuda] if d == "cuda" else [])
                                        for d in _option_values(metafunc.config, "device", DEVICES)],
                             indirect=True)
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", _option_values(metafunc.config, "dtype", DTYPES), indirect=True)


@pytest.fixture
def device(request):
    """torch.device of this run (--device)."""
    import torch

    return torch.device(request.param)


@pytest.fixture
def dtype(request):
    """torch dtype of this run (--dtype)."""
    import torch

    return getattr(torch, request.param)


def tolerance(dtype, scale: float = 1.0) -> float:
    """Absolute tolerance for values up to ``scale`` computed in ``dtype``: one unit of its precision at
    ``scale`` (float16 2^-10, bfloat16 2^-7 relative), never finer than float32's, in which positions and
    sampling coordinates are handled whatever the maps' dtype."""
    import torch

    return float(scale) * max(torch.finfo(dtype).eps, torch.finfo(torch.float32).eps)


def pytest_runtest_setup(item):
    if item.get_closest_marker("shared_data") and not os.path.isdir(SHARED_DATA):
        missing(f"needs the project's shared data at {SHARED_DATA}")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not has_cuda:
            item.add_marker(skip)


def texture(h: int, w: int, seed: int = 0, blur: float = 1.5) -> np.ndarray:
    """uint8 [h, w, 3]: smooth random texture (noise blurred by ``blur`` px, stretched to the full 0..255
    range), deterministic per ``seed``. The one texture of the tests' synthetic shots."""
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), blur)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)


def textured_frame(t: int, w: int = 64, h: int = 48, seed: int = 0) -> np.ndarray:
    """uint8 [h, w, 3]: :func:`texture` shifted right by t pixels (0 <= t <= 32)."""
    return np.ascontiguousarray(texture(h, w + 64, seed)[:, 32 - t:32 - t + w])


@pytest.fixture
def png_sequence(tmp_path):
    """Factory: write ``plate.####.png`` frames (first..last, skipping ``gaps``) -> pattern string."""

    def make(first: int = 1001, n: int = 6, w: int = 64, h: int = 48, gaps=(), name: str = "plate") -> str:
        import cv2

        for i in range(n):
            f = first + i
            if f in gaps:
                continue
            rgb = textured_frame(i, w, h)
            cv2.imwrite(str(tmp_path / f"{name}.{f:04d}.png"), rgb[..., ::-1])
        return str(tmp_path / f"{name}.####.png")

    return make


def write_exr(path, pixels: np.ndarray, data_window=None, display_size=None, pixel_type: str = "half",
              fps: int | None = None, timecode: int | None = None) -> None:
    """Write float RGB ``pixels`` [h, w, 3] as EXR with an optional data window (x, y) offset inside a
    display window of ``display_size`` (W, H); ``fps`` -> ``FramesPerSecond`` (fps/1), ``timecode`` ->
    ``smpte:TimeCode`` (its BCD time word, e.g. 0x01000000 = 01:00:00:00)."""
    import OpenImageIO as oiio

    h, w = pixels.shape[:2]
    spec = oiio.ImageSpec(w, h, pixels.shape[2], pixel_type)
    if data_window is not None:
        spec.x, spec.y = data_window
    if display_size is not None:
        spec.full_x, spec.full_y = 0, 0
        spec.full_width, spec.full_height = display_size
    if fps is not None:
        spec.attribute("FramesPerSecond", oiio.TypeRational, (int(fps), 1))
    if timecode is not None:
        spec.attribute("smpte:TimeCode", oiio.TypeTimeCode, (int(timecode), 0))
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), oiio.geterror()
    assert out.write_image(np.ascontiguousarray(pixels, np.float32)), out.geterror()
    out.close()


# ----------------------------------------------------------------------------- Blender (tests/_bpy_env.py)
@pytest.fixture(scope="session")
def bpy_py():
    """The Python of the tests' bpy venv (tests/_bpy_env.py): Blender never runs in this environment."""
    from _bpy_env import BpyEnvError, bpy_python

    try:
        return bpy_python()
    except BpyEnvError as e:
        missing(f"no Blender for the tests: {e}")


@pytest.fixture(scope="session")
def shim(bpy_py, tmp_path_factory):
    from _bpy_env import blender_shim

    return blender_shim(tmp_path_factory.mktemp("blender_exe"), bpy_py)


@pytest.fixture
def blender(bpy_py, shim, monkeypatch):
    """The adapter runs Blender as a user without bpy gets it: the executable named by DTVFX_BLENDER
    (here the bpy venv's Python behind a blender-compatible command line)."""
    from dino_tracker_vfx.adapters import registry

    registry()
    import dtvfx_plugins.blender as mod

    monkeypatch.setenv("DTVFX_BLENDER", str(shim))
    monkeypatch.setattr(mod, "bpy_available", lambda: False)
    return bpy_py
