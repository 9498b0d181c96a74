"""Read one still image (EXR, DPX, TIFF, PNG, JPEG, ...) through OpenImageIO.

Returns RGB float32 of the **display window** (the data window is placed into it, outside is black),
so plate pixel ``(x, y)`` is ``pixels[y, x]`` whatever the file's data window is.

Windows are checked when a file is probed, before any pixel is allocated: each side of the display and
data windows at most :data:`MAX_SIDE` px and each window at most :data:`MAX_PIXELS` (a 60000x60000 display
window would otherwise allocate 40 GiB).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ShotError

MAX_SIDE = 32768            # px, each side of the display and the data window
MAX_PIXELS = 16384 * 16384  # px per window (1 GiB of float32 RGB): 16K plates fit, typos do not


@dataclass(frozen=True)
class ImageInfo:
    path: str
    display_window: tuple[int, int, int, int]  # x, y, width, height
    data_window: tuple[int, int, int, int]
    channels: tuple[str, ...]
    pixel_aspect: float
    is_float: bool
    colorspace_tag: str | None
    format: str
    fps: float | None = None  # EXR framesPerSecond / DPX frame rate, when the file says
    timecode: str | None = None  # SMPTE timecode (EXR smpte:TimeCode, DPX time code), when the file has one

    @property
    def size(self) -> tuple[int, int]:
        return self.display_window[2], self.display_window[3]


def _open(path: str):
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(path)
    if inp is None:
        msg = oiio.geterror().strip().splitlines()
        raise ShotError(f"cannot open image ({msg[0] if msg else 'unknown format'})", where=path)
    return inp


def probe(path: str) -> ImageInfo:
    inp = _open(path)
    try:
        return _info(path, inp.spec(), inp.format_name())
    finally:
        inp.close()


def _info(path: str, s, fmt: str) -> ImageInfo:
    base = str(s.format).split("(")[0].lower()
    is_float = any(k in base for k in ("half", "float", "double"))
    tag = s.getattribute("oiio:ColorSpace")
    check_window(path, "display", s.full_width, s.full_height)
    check_window(path, "data", s.width, s.height)
    return ImageInfo(path, (s.full_x, s.full_y, s.full_width, s.full_height), (s.x, s.y, s.width, s.height),
                     tuple(s.channelnames), float(s.get_float_attribute("PixelAspectRatio", 1.0) or 1.0),
                     is_float, str(tag) if tag else None, fmt, _fps(s), _timecode(s))


def _fps(s) -> float | None:
    """Frame rate from the file's metadata: ``FramesPerSecond`` (EXR rational), else DPX's
    ``dpx:FrameRate`` / ``dpx:TemporalFrameRate``; ``None`` when absent or not > 0."""
    v = s.getattribute("FramesPerSecond")
    if isinstance(v, (tuple, list)) and len(v) == 2 and v[1]:
        v = v[0] / v[1]
    for cand in (v, s.getattribute("dpx:FrameRate"), s.getattribute("dpx:TemporalFrameRate")):
        try:
            f = float(cand)
        except (TypeError, ValueError):
            continue
        if np.isfinite(f) and 0 < f < 1000:
            return f
    return None


def _timecode(s) -> str | None:
    if s.getattribute("smpte:TimeCode") is None:
        return None
    tc = s.get_string_attribute("smpte:TimeCode").strip()  # OIIO formats the timecode as HH:MM:SS:FF
    return tc or None


def check_window(path: str, which: str, w: int, h: int) -> None:
    """Refuse a window too large to read (see the module docstring), naming the file."""
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE and w * h <= MAX_PIXELS):
        raise ShotError(f"{which} window {w}x{h} is too large or empty (at most {MAX_SIDE} px a side and "
                        f"{MAX_PIXELS // 1_000_000} Mpx)", where=path)


def read_rgb(path: str) -> tuple[np.ndarray, ImageInfo]:
    """-> (float32 [H, W, 3] of the display window in the file's own colour space, info)."""
    inp = _open(path)
    try:
        spec = inp.spec()
        info = _info(path, spec, inp.format_name())
        px = inp.read_image("float")
        if px is None or getattr(px, "size", 0) == 0:
            import OpenImageIO as oiio

            raise ShotError(f"cannot read pixels ({oiio.geterror().strip() or inp.geterror().strip() or 'truncated?'})",
                            where=path)
        err = inp.geterror() if hasattr(inp, "geterror") else ""
        if err:
            raise ShotError(f"cannot read pixels ({err.strip().splitlines()[0]})", where=path)
    finally:
        inp.close()
    px = np.asarray(px, dtype=np.float32)
    if px.ndim == 2:
        px = px[..., None]
    px = px.reshape(spec.height, spec.width, spec.nchannels)
    rgb = _pick_rgb(px, info.channels)
    return _into_display_window(rgb, info), info


def _pick_rgb(px: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    lower = [n.lower() for n in names]
    idx = []
    for c in ("r", "g", "b"):
        hit = [i for i, n in enumerate(lower) if n == c or n.endswith("." + c)]
        idx.append(hit[0] if hit else None)
    if all(i is not None for i in idx):
        return px[..., idx]
    if px.shape[-1] >= 3:
        return px[..., :3]
    return np.repeat(px[..., :1], 3, axis=-1)  # greyscale (Y or single channel)


def _into_display_window(rgb: np.ndarray, info: ImageInfo) -> np.ndarray:
    fx, fy, fw, fh = info.display_window
    dx, dy, dw, dh = info.data_window
    if (fx, fy, fw, fh) == (dx, dy, dw, dh):
        return rgb
    out = np.zeros((fh, fw, 3), np.float32)
    # overlap of data window with display window, in display-window pixel coordinates
    x0, y0 = max(dx, fx), max(dy, fy)
    x1, y1 = min(dx + dw, fx + fw), min(dy + dh, fy + fh)
    if x1 > x0 and y1 > y0:
        out[y0 - fy:y1 - fy, x0 - fx:x1 - fx] = rgb[y0 - dy:y1 - dy, x0 - dx:x1 - dx]
    return out
