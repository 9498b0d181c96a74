# Nuke runs this file at start-up when this folder is on NUKE_PATH.
# It only adds a menu entry: the panel module is imported when the entry is used.
import nuke


def _show():
    import dtvfx_nuke_panel

    dtvfx_nuke_panel.show_panel()


nuke.menu("Nuke").addCommand("DINO-Tracker/Track points...", _show)
