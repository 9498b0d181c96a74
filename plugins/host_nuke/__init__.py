"""Host-side code for Nuke (not an adapter plugin: the manager skips ``host_*``).

Put this folder on ``NUKE_PATH``; Nuke runs ``menu.py``, which adds *DINO-Tracker > Track points...*.
See ``dtvfx_nuke_panel.py`` and docs/adapters.md ("Nuke panel").
"""
