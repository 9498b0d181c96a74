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

Which sources are transformed is the OCIO config's own answer (:func:`needs_display_transform`, through
PyOpenColorIO), not a list of names: a scene-linear or log colour space (its ``encoding``, or a linear
scene-referred space where the config gives no encoding) is transformed; data spaces (Raw), display-referred
spaces and display encodings (``sdr-video``: sRGB or gamma 2.2 textures, 8/16-bit PNG/JPEG/TIFF) pass
through unchanged. A name the config does not hold is looked up through OpenImageIO's aliases (``sRGB``,
``lin_rec709``) and then as a colour interop ID (``srgb_rec709_scene``) in OCIO's newest built-in CG config.
The transform is chosen once per shot from its first frame (or ``--colorspace``) and applied identically to
every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import ShotError

# Encodings (OCIO v2 colour space attribute) of scene-referred data a display transform must map.
_SCENE_ENCODINGS = ("scene-linear", "log")
# Where colour interop IDs (OIIO's own file tags, e.g. srgb_rec709_scene) are defined.
_INTEROP_CONFIG = "ocio://cg-config-latest"
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


@lru_cache(maxsize=8)
def _ocio_config(name: str):
    """The PyOpenColorIO view of config ``name`` (a path or an ``ocio://`` built-in)."""
    import PyOpenColorIO as ocio

    try:
        return ocio.Config.CreateFromFile(name)
    except Exception as e:  # OCIO raises its own Exception type for any unreadable config
        raise ShotError(f"OCIO config {name} cannot be loaded: {' '.join(str(e).split())}") from None


@lru_cache(maxsize=64)
def needs_display_transform(cs: str, config: str = BUILTIN_CONFIG) -> bool | None:
    """Whether colour space ``cs`` is scene-referred data a display transform must map (True), or already
    fit to look at (False: data, display-referred, display-encoded), by the OCIO config's own attributes;
    None when no config knows the name (see the module docstring for the lookup)."""
    import PyOpenColorIO as ocio

    cfg = _ocio_config(config)
    space = cfg.getColorSpace(cs)
    if space is None:
        resolved = _config_for(config).resolve(cs)  # OpenImageIO's aliases (sRGB, lin_rec709, ...)
        space = cfg.getColorSpace(resolved)
    if space is None:  # a colour interop ID: its meaning is the same in every config that defines it
        cfg = _ocio_config(_INTEROP_CONFIG)
        space = cfg.getColorSpace(cs)
    if space is None:
        return None
    if space.isData() or space.getReferenceSpaceType() == ocio.REFERENCE_SPACE_DISPLAY:
        return False
    if space.getEncoding():
        return space.getEncoding() in _SCENE_ENCODINGS
    return bool(cfg.isColorSpaceLinear(space.getName(), ocio.REFERENCE_SPACE_SCENE))


def is_display_referred(cs: str, config: str = BUILTIN_CONFIG) -> bool:
    return needs_display_transform(cs, config) is False


@dataclass(frozen=True)
class DisplayTransform:
    """Source colour space -> display/view. ``identity`` when the source is display-referred."""

    source: str
    display: str
    view: str
    config: str = BUILTIN_CONFIG

    @property
    def identity(self) -> bool:
        return is_display_referred(self.source, self.config)

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
    need = needs_display_transform(source, name)
    known = {n.lower() for n in cfg.getColorSpaceNames()}
    if need is None or (need and cfg.resolve(source).lower() not in known and source.lower() not in known):
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
