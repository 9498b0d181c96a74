"""One fixed display transform per shot, through OpenImageIO's OCIO.

Scene-linear (and log) plates are turned into display-referred 0..1 RGB *before* any network sees them.
Without ``$OCIO`` the transform is pinned, not left to the OpenImageIO build: OCIO's built-in config
``BUILTIN_CONFIG`` (the CG config v2.1.0 / ACES 1.3, which every OIIO 3.x carries) with display
``DEFAULT_DISPLAY`` and view ``DEFAULT_VIEW``. (Each OIIO release's *default* built-in config differs:
OIIO 3.0's default view is ``ACES 1.0 - SDR Video``, OIIO 3.2's ``ACES 2.0 - SDR 100 nits (Rec.709)``,
so following the default changed every linear plate's pixels with the OIIO version.) With ``$OCIO`` set,
the studio's config and its default display/view are used. ``--display`` / ``--view`` override either.
The config's name is part of :meth:`DisplayTransform.describe`, which the tracker's cache key holds, so a
different config or view never reuses cached features.

Display-referred sources (8/16-bit sRGB PNG/JPEG/TIFF) pass through unchanged. The transform is chosen
once per shot from its first frame (or ``--colorspace``) and applied identically to every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import ShotError

# Names (lower-case) that mean "already display-referred, leave alone".
_DISPLAY_REFERRED = {"srgb", "srgb_rec709_scene", "srgb encoded rec.709 (srgb)", "srgb_texture", "rec709",
                     "gamma22", "g22_rec709", "raw", "srgb - display", "out_srgb", "utility - srgb - texture"}
# What float files without a colour-space tag are taken to be (VFX plates: linear Rec.709).
DEFAULT_LINEAR = "lin_rec709"
# The pinned transform when $OCIO is not set (see the module docstring).
BUILTIN_CONFIG = "ocio://cg-config-v2.1.0_aces-v1.3_ocio-v2.3"
DEFAULT_DISPLAY = "sRGB - Display"
DEFAULT_VIEW = "ACES 1.0 - SDR Video"


def config_name() -> str:
    """``$OCIO`` when set, else the pinned built-in config."""
    return _ocio_env() or BUILTIN_CONFIG


@lru_cache(maxsize=4)
def _config_for(name: str):
    import OpenImageIO as oiio

    cfg = oiio.ColorConfig(name)
    err = cfg.geterror()  # a config that fails to load falls back to a minimal one: refuse that
    if err:
        raise ShotError(f"OCIO config {name} cannot be loaded ({'$OCIO' if _ocio_env() else 'built-in'}): "
                        f"{' '.join(err.split())}")
    return cfg


def _config():
    return _config_for(config_name())


def is_display_referred(cs: str) -> bool:
    return cs.strip().lower() in _DISPLAY_REFERRED


@dataclass(frozen=True)
class DisplayTransform:
    """Source colour space -> display/view. ``identity`` when the source is display-referred."""

    source: str
    display: str
    view: str
    config: str = BUILTIN_CONFIG

    @property
    def identity(self) -> bool:
        return is_display_referred(self.source)

    def describe(self) -> str:
        if self.identity:
            return f"{self.source} (display-referred, no transform)"
        return f"{self.source} -> {self.display} / {self.view} (OCIO {self.config})"

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """float32 [H, W, 3] in the source space -> float32 [H, W, 3] display-referred, clipped to 0..1."""
        if not self.identity:
            import OpenImageIO as oiio

            buf = oiio.ImageBuf(np.ascontiguousarray(rgb, dtype=np.float32))
            out = oiio.ImageBufAlgo.ociodisplay(buf, self.display, self.view, self.source,
                                                colorconfig=self.config)
            if out.has_error:
                raise ShotError(f"colour transform {self.describe()} failed: {out.geterror()}")
            rgb = out.get_pixels(oiio.FLOAT)[..., :3]
        return np.clip(rgb, 0.0, 1.0).astype(np.float32, copy=False)


def make_transform(source: str, display: str | None = None, view: str | None = None) -> DisplayTransform:
    name = config_name()
    cfg = _config_for(name)
    if name == BUILTIN_CONFIG:
        display = display or DEFAULT_DISPLAY
        view = view or DEFAULT_VIEW
    display = display or cfg.getDefaultDisplayName()
    view = view or cfg.getDefaultViewName(display)
    if not is_display_referred(source):
        known = {n.lower() for n in cfg.getColorSpaceNames()}
        if cfg.resolve(source).lower() not in known and source.lower() not in known:
            raise ShotError(f"colour space {source!r} is not in the OCIO config "
                            f"({'$OCIO' if _ocio_env() else 'OIIO built-in'}); pass --colorspace with one of its names")
    return DisplayTransform(source, display, view, name)


def _ocio_env() -> str:
    import os

    return os.environ.get("OCIO", "")


def guess_colorspace(tagged: str | None, fmt_is_float: bool) -> str:
    """The source colour space: the file's tag, else linear for float data, else sRGB."""
    if tagged:
        return tagged
    return DEFAULT_LINEAR if fmt_is_float else "sRGB"
