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

``root=None`` keeps nothing on disk (everything is recomputed; training cannot resume).
Listing, cleaning, the size limit and the in-use lock every ShotCache holds: :mod:`.cache_admin`.
"""

from __future__ import annotations

import io
import json
import logging
import os
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
    """What identifies a shot's pixels: source, frames, size, colour transform and file stats."""
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


class ShotCache:
    def __init__(self, root: str | Path | None, identity: dict[str, Any]):
        self.identity = identity
        self.shot_key = settings_hash(identity)
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
        d = self.checkpoint_dir(key)
        if d is None:
            return None
        import torch

        d.mkdir(parents=True, exist_ok=True)
        p = d / f"iter_{iteration:07d}.pt"
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic.write_bytes(p, buf.getvalue())
        for old in sorted(d.glob("iter_*.pt"))[:-keep]:
            try:
                old.unlink()
            except OSError:
                pass
        return p

    def latest_checkpoint(self, key: str, settings: dict[str, Any]) -> dict[str, Any] | None:
        """Newest readable checkpoint of ``key`` (corrupt ones warn and are skipped), checked against ``settings``."""
        d = self.checkpoint_dir(key)
        if d is None or not d.is_dir():
            return None
        for p in sorted(d.glob("iter_*.pt"), reverse=True):
            st = read_checkpoint(p, settings, corrupt_ok=True)
            if st is not None:
                return st
        return None


_ITER_RE = re.compile(r"iter_(\d+)\.pt$")


def read_checkpoint(path: str | Path, settings: dict[str, Any] | None, corrupt_ok: bool = False
                    ) -> dict[str, Any] | None:
    """Load a checkpoint file; CacheError when it was trained with other ``settings`` (fields named)."""
    import torch

    p = Path(path)
    try:
        st = torch.load(p, map_location="cpu", weights_only=False)
        if not isinstance(st, dict) or "iteration" not in st or "settings" not in st:
            raise ValueError("not a tracker checkpoint")
    except FileNotFoundError:
        raise CacheError("checkpoint file not found", where=str(p)) from None
    except Exception as e:  # torch raises many types for truncated / foreign files
        if corrupt_ok:
            warnings.warn(f"{p}: corrupt checkpoint ({type(e).__name__}: {e}); ignoring it")
            try:
                p.unlink()
            except OSError:
                pass
            return None
        raise CacheError(f"unreadable checkpoint ({type(e).__name__}: {e})", where=str(p)) from None
    if settings is not None and st["settings"] != settings:
        diffs = diff_settings(st["settings"], settings)
        shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        raise CacheError(f"checkpoint was made with other settings (checkpoint vs requested: {shown}); "
                         f"delete it or use another cache folder", where=str(p))
    return st
