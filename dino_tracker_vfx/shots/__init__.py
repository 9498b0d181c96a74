"""Shot input: image sequences (OpenImageIO) and movies (PyAV) behind one :class:`Shot` API."""

from .shot import Shot, open_shot

__all__ = ["Shot", "open_shot"]
