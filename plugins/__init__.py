"""Built-in adapters of dino_tracker_vfx (installed as the package ``dtvfx_plugins``).

Each module ``<name>.py`` here implements ``@hookimpl def dtvfx_adapters()`` and is registered by
:mod:`dino_tracker_vfx.adapters.manager`. Modules starting with ``_`` or ``host_`` are not plugins
(``host_nuke/`` is the Nuke panel, run inside Nuke). See docs/adapters.md.
"""
