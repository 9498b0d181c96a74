"""Writing instance masks and per-object mattes (every write is atomic).

Index images (``labels``: int ``[H, W]`` object ids, 0 = background, the ids of the *input* masks):

* ``png``   - 8-bit palette PNG (mode ``P``): pixel value = object id (as DAVIS). Ids must be <= 255;
  more than 255 objects or a larger id is refused with a message naming ``png16`` / ``exr``.
* ``png16`` - 16-bit grey PNG, pixel value = id (ids <= 65535).
* ``exr``   - one-channel ``id`` EXR of 32-bit floats holding whole numbers (exact for ids up to 2^24,
  the usual ID-pass convention of compositors).

``inputs.read_mask`` reads all three back to the same ids. Palette: the input PNG's own palette when
there is one, else the DAVIS / PASCAL-VOC colour map (:data:`DAVIS_PALETTE`).

Mattes (one per object, ``[H, W]`` in 0..1): ``png`` = 8-bit grey (0 or 255 for hard mattes), ``exr`` =
one-channel ``A`` half-float EXR.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import atomic
from ..checks import check_shape
from ..errors import InputError

INDEX_FORMATS = ("png", "png16", "exr")
MATTE_FORMATS = ("png", "exr")
_MAX_ID = {"png": 255, "png16": 65535, "exr": 2 ** 24}


def _voc_palette(n: int = 256) -> list[int]:
    """The DAVIS / PASCAL-VOC colour map: bits of the index spread over R, G, B from the high bit down."""
    pal = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


DAVIS_PALETTE: list[int] = _voc_palette()


def read_palette(path: str | Path) -> list[int] | None:
    """The RGB palette (768 ints) of a palette PNG, or None for other images."""
    p = Path(path)
    if p.suffix.lower() != ".png" or not p.is_file():
        return None
    from PIL import Image

    try:
        with Image.open(p) as im:
            if im.mode != "P":
                return None
            pal = list(im.getpalette() or [])
    except OSError:
        return None
    return (pal + DAVIS_PALETTE[len(pal):])[:768]


def check_ids_fit(ids: Sequence[int], fmt: str) -> None:
    """Raise :class:`InputError` when ``ids`` cannot be stored in index format ``fmt``."""
    if fmt not in INDEX_FORMATS:
        raise InputError(f"index format {fmt!r} is not one of {', '.join(INDEX_FORMATS)}", where="--index-format")
    if not len(ids):
        return
    top = max(int(i) for i in ids)
    if top > _MAX_ID[fmt]:
        n = len(ids)
        alt = "png16 or exr" if fmt == "png" and top <= 65535 else "exr"
        why = f"{n} objects" if n > 255 and fmt == "png" else f"object id {top}"
        raise InputError(f"{why} cannot be stored in a {fmt} index image (ids up to {_MAX_ID[fmt]}); "
                         f"use --index-format {alt}")


def write_index(path: str | Path, labels: np.ndarray, fmt: str = "png", palette: list[int] | None = None) -> None:
    """Write an id image (see module docstring) atomically."""
    check_shape(labels, "H W", "labels")
    lab = np.asarray(labels)
    present = [int(v) for v in np.unique(lab)]
    check_ids_fit(present, fmt)
    if min(present) < 0:
        raise InputError(f"negative object id {min(present)} cannot be written", where=str(path))
    if fmt == "png":
        from PIL import Image

        im = Image.fromarray(lab.astype(np.uint8), mode="P")
        im.putpalette(palette or DAVIS_PALETTE)
        with atomic.atomic_path(path, suffix=".png") as tmp:
            im.save(tmp, format="PNG", optimize=False)
    elif fmt == "png16":
        import cv2

        with atomic.atomic_path(path, suffix=".png") as tmp:
            if not cv2.imwrite(str(tmp), lab.astype(np.uint16)):
                raise OSError(f"cannot write {path}")
    else:
        _write_exr(path, lab.astype(np.float32), "id")


def write_matte(path: str | Path, alpha: np.ndarray, fmt: str = "png") -> None:
    """Write one object's matte ``[H, W]`` (bool or float 0..1) atomically."""
    check_shape(alpha, "H W", "matte")
    a = np.clip(np.asarray(alpha, np.float32), 0.0, 1.0)
    if fmt == "png":
        import cv2

        with atomic.atomic_path(path, suffix=".png") as tmp:
            if not cv2.imwrite(str(tmp), np.round(a * 255.0).astype(np.uint8)):
                raise OSError(f"cannot write {path}")
    elif fmt == "exr":
        _write_exr(path, a.astype(np.float16), "A")
    else:
        raise InputError(f"matte format {fmt!r} is not one of {', '.join(MATTE_FORMATS)}", where="--matte-format")


def _write_exr(path: str | Path, data: np.ndarray, channel: str) -> None:
    import OpenImageIO as oiio

    H, W = data.shape
    kind = {np.dtype(np.float32): oiio.FLOAT, np.dtype(np.float16): oiio.HALF}[data.dtype]
    spec = oiio.ImageSpec(W, H, 1, kind)
    spec.channelnames = (channel,)
    spec.attribute("compression", "zip")
    with atomic.atomic_path(path, suffix=".exr") as tmp:
        out = oiio.ImageOutput.create(str(tmp))
        if out is None or not out.open(str(tmp), spec):
            raise OSError(f"cannot write {path}: {oiio.geterror()}")
        ok = out.write_image(np.ascontiguousarray(data[..., None]))  # [H, W, 1]: a 2-D array is misread
        out.close()
        if not ok:
            raise OSError(f"cannot write {path}: {oiio.geterror()}")


_NAME_OK = re.compile(r"^[A-Za-z0-9_.-]+$")


def object_names(ids: Sequence[int], names: dict[int, str] | None = None) -> dict[int, str]:
    """Object name per id: ``names[id]`` when given (letters, digits, ``_ . -``), else ``obj<id>``."""
    names = dict(names or {})
    out: dict[int, str] = {}
    for i in ids:
        n = names.get(int(i), f"obj{int(i)}")
        if not _NAME_OK.match(n):
            raise InputError(f"object name {n!r} may hold only letters, digits, '_', '.' and '-'", where="--names")
        out[int(i)] = n
    unknown = sorted(set(names) - set(int(i) for i in ids))
    if unknown:
        raise InputError(f"--names gives ids {unknown} that are not in the masks (ids: {list(ids)})", where="--names")
    if len(set(out.values())) != len(out):
        raise InputError("two objects have the same name", where="--names")
    return out


def parse_names(text: str | None) -> dict[int, str]:
    """``"1=horse,2=rider"`` -> ``{1: "horse", 2: "rider"}``."""
    if not text:
        return {}
    out: dict[int, str] = {}
    for part in text.split(","):
        if "=" not in part:
            raise InputError(f"expected ID=NAME, got {part!r}", where="--names")
        k, v = part.split("=", 1)
        try:
            out[int(k)] = v.strip()
        except ValueError:
            raise InputError(f"object id {k!r} is not an integer", where="--names") from None
    return out


def index_path(out_dir: str | Path, t: int, fmt: str) -> Path:
    return Path(out_dir) / f"{int(t):05d}.{'exr' if fmt == 'exr' else 'png'}"


def matte_path(out_dir: str | Path, name: str, t: int, fmt: str) -> Path:
    return Path(out_dir) / "mattes" / name / f"{int(t):05d}.{fmt}"


__all__ = ["write_index", "write_matte", "read_palette", "check_ids_fit", "object_names", "parse_names",
           "DAVIS_PALETTE", "INDEX_FORMATS", "MATTE_FORMATS", "index_path", "matte_path"]
