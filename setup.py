"""Only computes the package list; everything else is in setup.cfg.

The built-in adapters live in the top-level folder ``plugins/`` but are installed as the package
``dtvfx_plugins`` (a bare ``plugins`` package would collide with other projects). setup.cfg cannot
express "find packages under a renamed folder", so it is done here.
"""

from setuptools import find_packages, setup

core = find_packages(include=["dino_tracker_vfx", "dino_tracker_vfx.*"])
builtin = ["dtvfx_plugins"] + [f"dtvfx_plugins.{p}" for p in find_packages("plugins")]
# The YAML presets live in the top-level presets/ folder and install as dino_tracker_vfx/presets/*.yaml,
# where dino_tracker_vfx.tracker.presets looks for them in an installed (non-editable) package.
setup(packages=core + builtin + ["dino_tracker_vfx.presets"],
      package_dir={"dtvfx_plugins": "plugins", "dino_tracker_vfx.presets": "presets"},
      package_data={"dino_tracker_vfx.presets": ["*.yaml"]})
