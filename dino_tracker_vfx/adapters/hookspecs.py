"""The pluggy hook specification of dino_tracker_vfx adapters.

A plugin (a built-in module of ``dtvfx_plugins`` or a third-party module registered under the
entry-point group ``dino_tracker_vfx.plugins``) implements one hook::

    from dino_tracker_vfx.adapters import Adapter, hookimpl

    @hookimpl
    def dtvfx_adapters():
        return [Adapter(name="myhost", suffixes=(".myh",), description="...", write=_write)]

See :mod:`dino_tracker_vfx.adapters.records` for the :class:`Adapter` contract and
``docs/adapters.md`` for the conventions every adapter states.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import pluggy

PROJECT_NAME = "dino_tracker_vfx"
ENTRY_POINT_GROUP = "dino_tracker_vfx.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

if TYPE_CHECKING:  # pragma: no cover
    from .records import Adapter


@hookspec
def dtvfx_adapters() -> "Iterable[Adapter]":
    """Return the adapters (host formats) this plugin provides.

    Called once per plugin when the registry is built. Adapter names must be unique across all
    plugins (a clash is an error naming both plugins).
    """
