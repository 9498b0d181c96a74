"""Typed errors. Every error a *user* can cause derives from :class:`UserError`.

The CLI prints ``str(err)`` of a UserError as one line (``dtvfx: error: ...``) and exits
with ``err.exit_code``; anything else is a bug and keeps its traceback.
Messages name the file, frame or field at fault, e.g.
``plate.1004.exr: frame 1004 is missing from range 1001-1010``.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or settings; shown to the user as one line, exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None):
        self.where = where
        msg = f"{where}: {message}" if where else message
        super().__init__(" ".join(str(msg).split()))  # always one line


class ShotError(UserError):
    """A shot (sequence or movie) cannot be read as asked."""


class InputError(UserError):
    """Queries, masks or host files that do not fit the shot."""


class ConfigError(UserError):
    """A preset, job spec or option with a bad field."""


class WeightsError(UserError):
    """Model weights missing, corrupt or of the wrong layout."""


class CacheError(UserError):
    """A cache entry or checkpoint that cannot be used (e.g. made with other settings)."""


class ShapeError(ValueError):
    """A tensor/array boundary received the wrong shape (a programming error, not user input)."""


class Cancelled(Exception):
    """Work stopped because the user (or a job controller) asked for it."""
