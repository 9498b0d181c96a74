"""Synthetic plates with exact ground truth (``dtvfx eval synth``; docs/evaluation.md).

    scene.py   Scene / Plane / CameraPath dataclasses, make_scene(seed), textures, the projection convention
    render.py  supersampled z-buffered renderer with motion blur, flicker and noise; ground truth per point
               (xy at the shutter centre, visible, evaluable) and query sampling
    solve.py   camera solve as the judge (pycolmap bundle adjustment, known K): reprojection and path error
    files.py   scene folders: plate.1001.png|exr, gt.npz, queries.csv, scene.json; make_scenes, read_truth
"""
