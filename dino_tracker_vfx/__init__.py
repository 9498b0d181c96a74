"""dino_tracker_vfx: DINO-Tracker point and object tracking for VFX hosts.

Flow from shot to exported track (one module each):

    shots/      read a plate (image sequence via OpenImageIO, movie via PyAV) -> display-referred RGB
    inputs.py   query points (CSV/JSON) and masks (mattes, instance-ID images) in core form
    tracker/    preprocess (flow, features, best-buddies) -> train per shot -> infer tracks + visibility
    objects/    multi-object centroid tracks and mask propagation
    tracks.py   the one track model (plate pixels, image index + frame-number map), JSON/CSV
    adapters    (package ``dtvfx_plugins``, folder ``plugins/``) write/read host formats via pluggy
    jobs/       background workers, batch and Ray execution
    evaluation/ TAP-Vid / BADJA metrics, baselines and pictures
    cli/        the ``dtvfx`` command

Coordinates: see :mod:`dino_tracker_vfx.coords`. Heavy libraries (torch, av, OpenImageIO) are imported
lazily so host-side code can import this package without them.
"""

__version__ = "0.1.0"
