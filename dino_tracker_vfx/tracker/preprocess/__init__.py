"""Preprocessing: flow, tracklets, DINO features, foreground and best-buddies, computed once per shot and
cached (:mod:`.stages` turns each into arrays for :class:`~..cache.ShotCache`)."""
