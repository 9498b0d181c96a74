"""Per-shot cache of the tracker's stages and checkpoints.

Layout (``root`` is the cache directory a user passes with ``--cache``)::

    root/<shot-key>/shot.json                       what the shot is (for people browsing the cache)
    root/<shot-key>/<stage>-<key>.npz               frames, flow, correspondences, features, foreground,
                                                    best_buddies: arrays + a JSON ``__meta__`` entry
    root/<shot-key>/checkpoints/<key>/iter_<n>.pt   model + optimiser + RNG state every N iterations

Each stage's ``key`` hashes the keys of the stages it reads and the settings that change its content
(``config.STAGE_FIELDS``), so changed settings recompute only what they touch and never mix.
Writes are atomic (temp file + rename). A corrupt or unreadable entry is reported with a warning,
deleted and recomputed. A checkpoint whose recorded settings differ from the ones asked for raises
:class:`CacheError` naming the differing fields (it can only happen when files were moved by hand
or a checkpoint is loaded explicitly).

Checkpoints hold plain data only - tensors and dicts / lists / tuples of numbers, strings, booleans and
None (:func:`check_plain` refuses anything else before writing) - and are read with
``torch.load(weights_only=True)``, so a file in a cache folder never runs code when loaded (cache folders
may be shared, and the user never names the files in them). A checkpoint file that is not plain data
(e.g. a pickle with code in it) is refused: in the cache it is reported with a warning, deleted and
ignored (training starts anew or from an older checkpoint); named explicitly
(:func:`read_checkpoint`) it raises :class:`CacheError`.

A checkpoint key leaves out ``train.iterations`` (and ``train.checkpoint_every``, which changes no
weight): raising the count resumes from the newest checkpoint, and a lower count uses the newest
checkpoint at or below it (``latest_checkpoint(..., at_most=)``); pruning keeps later checkpoints.

``root=None`` keeps nothing on disk (everything is recomputed; training cannot resume).
Listing, cleaning, the size limit and the in-use lock every ShotCache holds: :mod:`.cache_admin`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import atomic
from ..errors import CacheError
from . import cache_admin
from .config import diff_settings, settings_hash

log = logging.getLogger(__name__)
CACHE_VERSION = 1


def shot_identity(shot) -> dict[str, Any]:
    """What identifies a shot's pixels: source, frames, size, colour transform and file stats (a shot held
    in memory, ``shots.from_array``: the sha256 of its pixels instead of files)."""
    if getattr(shot, "content_hash", None):
        return {"source": str(shot.source), "frames": [int(f) for f in shot.frame_numbers],
                "size": [int(shot.size[0]), int(shot.size[1])], "content": str(shot.content_hash)}
    paths = list(getattr(shot, "paths", []) or [])
    files = paths if paths else [str(shot.source)]
    stats = []
    for f in files:
        try:
            st = os.stat(f)
            stats.append([int(st.st_size), int(st.st_mtime_ns)])
        except OSError:
            stats.append(None)
    tr = getattr(shot, "transform", None)
    return {
        "source": str(shot.source),
        "frames": [int(f) for f in shot.frame_numbers],
        "size": [int(shot.size[0]), int(shot.size[1])],
        "transform": tr.describe() if hasattr(tr, "describe") else str(tr),
        "files": [os.path.abspath(f) for f in files],
        "stats": stats,
    }


def shot_key(identity: dict[str, Any]) -> str:
    """The folder name of a shot in a cache: a hash of its :func:`shot_identity` (the resolved frames, not
    the range text that chose them). The one definition: job shot locks (:mod:`dino_tracker_vfx.jobs.lock`)
    use it too, so two jobs that train into the same folder always share one lock."""
    return settings_hash(identity)


class ShotCache:
    def __init__(self, root: str | Path | None, identity: dict[str, Any]):
        self.identity = identity
        self.shot_key = shot_key(identity)
        self.root = None if root is None else Path(root) / self.shot_key
        if self.root is not None:
            try:
                self._in_use = cache_admin.hold(self.root)  # `dtvfx cache clean` never deletes a held entry
            except OSError as e:
                raise CacheError(f"cannot create the cache folder ({e.strerror})", where=str(self.root)) from None
            info = self.root / "shot.json"
            if not info.exists():
                atomic.write_json(info, {"version": CACHE_VERSION, **identity})

    @property
    def enabled(self) -> bool:
        return self.root is not None

    @staticmethod
    def key(stage: str, settings: Any, inputs: list[str] | tuple[str, ...] = ()) -> str:
        return settings_hash({"stage": stage, "v": CACHE_VERSION, "settings": settings, "inputs": list(inputs)})

    # ------------------------------------------------------------------ array stages
    def entry_path(self, stage: str, key: str) -> Path | None:
        return None if self.root is None else self.root / f"{stage}-{key}.npz"

    def load(self, stage: str, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """Arrays and meta of a stage entry, or None when absent (corrupt entries warn and count as absent)."""
        p = self.entry_path(stage, key)
        if p is None or not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(bytes(arrays.pop("__meta__")).decode())
            if meta.get("stage") != stage or meta.get("key") != key:
                raise ValueError("entry belongs to another stage/key")
            missing = [k for k in meta.get("arrays", []) if k not in arrays]
            if missing:
                raise ValueError(f"missing arrays {missing}")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as e:
            warnings.warn(f"{p}: corrupt cache entry ({type(e).__name__}: {e}); recomputing {stage}")
            try:
                p.unlink()
            except OSError:
                pass
            return None
        return arrays, meta

    def save(self, stage: str, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> None:
        p = self.entry_path(stage, key)
        if p is None:
            return
        m = {"stage": stage, "key": key, "arrays": sorted(arrays), **(meta or {})}
        payload = {k: np.asarray(v) for k, v in arrays.items()}  # fail before any byte is written
        payload["__meta__"] = np.frombuffer(json.dumps(m, default=str).encode(), dtype=np.uint8)
        with atomic.atomic_path(p) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **payload)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_dir(self, key: str) -> Path | None:
        return None if self.root is None else self.root / "checkpoints" / key

    def save_checkpoint(self, key: str, iteration: int, state: dict[str, Any], keep: int = 2) -> Path | None:
        """Write ``state`` (plain data only, :func:`check_plain`) as ``iter_<iteration>.pt``; keeps the
        ``keep`` newest checkpoints up to ``iteration`` and every later one (a longer training's)."""
        d = self.checkpoint_dir(key)
        if d is None:
            return None
        import torch

        check_plain(state, "checkpoint")
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"iter_{iteration:07d}.pt"
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic.write_bytes(p, buf.getvalue())
        older = [q for q in _checkpoint_files(d) if _iteration_of(q) < iteration]
        for old in older[:max(0, len(older) - (keep - 1))]:
            try:
                old.unlink()
            except OSError:
                pass
        return p

    def latest_checkpoint(self, key: str, settings: dict[str, Any], at_most: int | None = None
                          ) -> dict[str, Any] | None:
        """Newest readable checkpoint of ``key`` (at or below iteration ``at_most`` when given; corrupt or
        unsafe ones warn and are deleted), checked against ``settings``."""
        d = self.checkpoint_dir(key)
        if d is None or not d.is_dir():
            return None
        for p in reversed(_checkpoint_files(d)):
            if at_most is not None and _iteration_of(p) > at_most:
                continue
            st = read_checkpoint(p, settings, corrupt_ok=True)
            if st is not None:
                return st
        return None


_ITER_RE = re.compile(r"iter_(\d+)\.pt$")
_PLAIN = (str, int, float, bool, type(None))


def _iteration_of(p: Path) -> int:
    m = _ITER_RE.search(p.name)
    return int(m.group(1)) if m else -1


def _checkpoint_files(d: Path) -> list[Path]:
    """``iter_<n>.pt`` files of a checkpoint folder, oldest first."""
    return sorted((p for p in d.glob("iter_*.pt") if _ITER_RE.search(p.name)), key=_iteration_of)


def check_plain(obj: Any, where: str = "state") -> None:
    """TypeError unless ``obj`` is tensors and dicts / lists / tuples of numbers, strings, booleans, None
    (what ``torch.load(weights_only=True)`` reads back)."""
    import torch

    if isinstance(obj, torch.Tensor) or isinstance(obj, _PLAIN):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}, not plain data")
            check_plain(v, f"{where}.{k}")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__name__}: checkpoints hold tensors and plain data only")


def read_checkpoint(path: str | Path, settings: dict[str, Any] | None, corrupt_ok: bool = False
                    ) -> dict[str, Any] | None:
    """Load a checkpoint file (plain data only: ``weights_only=True``, nothing in it is executed);
    CacheError when it was trained with other ``settings`` (fields named) or is not a plain-data tracker
    checkpoint (``corrupt_ok``: warn, delete it and return None instead)."""
    import torch

    p = Path(path)
    try:
        st = torch.load(p, map_location="cpu", weights_only=True)
        if not isinstance(st, dict) or "iteration" not in st or "settings" not in st:
            raise ValueError("not a tracker checkpoint")
    except FileNotFoundError:
        raise CacheError("checkpoint file not found", where=str(p)) from None
    except Exception as e:  # torch raises many types for truncated / foreign files
        if isinstance(e, pickle.UnpicklingError):  # its text is a page long: one line instead
            why = "holds objects other than tensors and plain data (refused: loading it could run code)"
        else:
            why = f"{type(e).__name__}: {' '.join(str(e).split())}"
        if corrupt_ok:
            warnings.warn(f"{p}: unusable checkpoint ({why}); deleting it and ignoring it")
            try:
                p.unlink()
            except OSError:
                pass
            return None
        raise CacheError(f"unusable checkpoint ({why})", where=str(p)) from None
    if settings is not None and st["settings"] != settings:
        diffs = diff_settings(st["settings"], settings)
        shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        raise CacheError(f"checkpoint was made with other settings (checkpoint vs requested: {shown}); "
                         f"delete it or use another cache folder", where=str(p))
    return st
