"""Shot input: image sequences (OpenImageIO) and movies (PyAV) behind one :class:`Shot` API."""

from .shot import Shot, from_array, open_shot

__all__ = ["Shot", "from_array", "open_shot"]
