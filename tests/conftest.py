"""Shared fixtures: tiny shots written by the tests themselves (no network, no GPU)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


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


def textured_frame(t: int, w: int = 64, h: int = 48, seed: int = 0) -> np.ndarray:
    """uint8 [h, w, 3]: smooth random texture shifted right by t pixels (deterministic)."""
    import cv2

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(h // 4 + 2, (w + 64) // 4 + 2, 3)).astype(np.uint8)
    big = cv2.resize(base, ((w + 64) // 4 * 4 + 8, h // 4 * 4 + 8), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(big[:h, 32 - t:32 - t + w])


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
