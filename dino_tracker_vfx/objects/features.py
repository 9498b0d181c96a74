"""Per-frame feature sources for mask propagation (a pluggable :class:`FeatureSource`).

Contract (every source)
-----------------------
* ``source(t)`` -> float32 torch tensor ``[C, h, w]``, **L2-normalised over C** at every patch, for
  image index ``t`` of the shot (deterministic: the same ``t`` gives the same map).
* ``source.grid`` -> :class:`PatchGrid`: where the ``h x w`` patch centres lie (working px, a regular
  grid) and the :class:`~dino_tracker_vfx.coords.Resize` between plate and working raster.
* ``source.name`` -> ``"dino"``, ``"tracker"`` or ``"colour-texture"``; ``source.describe()`` a dict
  written into output metadata (which features made a result).

Sources
-------
* :class:`DinoFeatures`   - a frozen DINOv2 backbone (``tracker.preprocess.backbones`` + ``.weights``) when
  weights are present; ``random_weights=True`` builds the same network untrained (timing only).
* :class:`TrackerFeatures` - the refined features of the shot's own trained DINO-Tracker
  (``tracker.api.ShotTracker.features``); without DINO weights that is the weight-free Delta-CNN.
* :class:`ColourTextureFeatures` - weight-free hand-made features (CIE Lab colour at three scales +
  gradient-orientation energy at two scales) on a regular grid of ``stride`` px. No training, no
  weights; the reference for tests and the measured source of ``docs/results-objects.md``.

:func:`open_feature_source` picks one: ``"auto"`` = DINO when weights are found, else the shot's
trained tracker when the caller hands one over, else colour-texture (with a warning; on DAVIS it beats
the weight-free tracker's features, J&F 0.680 vs 0.472, see docs/results-objects.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from ..checks import check_shape
from ..coords import Resize
from ..errors import ConfigError

log = logging.getLogger("dino_tracker_vfx.objects")

FEATURE_CHOICES = ("auto", "dino", "tracker", "colour-texture")


@dataclass(frozen=True)
class PatchGrid:
    """A regular ``h x w`` grid of patch centres in working px.

    Patch ``(i, j)`` (row i, column j) has its centre at ``(origin[0] + step[0] * j, origin[1] + step[1] * i)``
    working px; ``resize`` maps plate px <-> working px (``coords.Resize``).
    """

    h: int
    w: int
    origin: tuple[float, float]  # working px (x, y) of patch (0, 0)
    step: tuple[float, float]  # working px between neighbouring patch centres (x, y)
    resize: Resize

    @classmethod
    def from_centres(cls, centres: np.ndarray, h: int, w: int, resize: Resize) -> "PatchGrid":
        """Build from patch-centre coordinates ``[h*w, 2]`` (row-major, working px); checks regularity."""
        c = np.asarray(centres, np.float64)
        check_shape(c, "P 2", "patch centres", {"P": h * w})
        g = c.reshape(h, w, 2)
        ox, oy = g[0, 0]
        sx = (g[0, -1, 0] - ox) / (w - 1) if w > 1 else 1.0
        sy = (g[-1, 0, 1] - oy) / (h - 1) if h > 1 else 1.0
        jj, ii = np.meshgrid(np.arange(w), np.arange(h))
        expect = np.stack([ox + sx * jj, oy + sy * ii], -1)
        if not np.allclose(expect, g, atol=1e-3):
            raise ValueError("patch centres do not form a regular row-major grid")
        return cls(h, w, (float(ox), float(oy)), (float(sx), float(sy)), resize)

    def centres_working(self) -> np.ndarray:
        """``[h*w, 2]`` patch centres, working px, row-major."""
        jj, ii = np.meshgrid(np.arange(self.w), np.arange(self.h))
        return np.stack([self.origin[0] + self.step[0] * jj, self.origin[1] + self.step[1] * ii], -1).reshape(-1, 2)

    def centres_plate(self) -> np.ndarray:
        return self.resize.to_plate(self.centres_working())

    def plate_to_grid(self, xy_plate) -> np.ndarray:
        """Plate px ``(..., 2)`` -> fractional grid coordinates ``(j, i)`` (column, row)."""
        wk = self.resize.to_working(xy_plate)
        return (wk - np.array(self.origin)) / np.array(self.step)

    def step_plate(self) -> tuple[float, float]:
        """Patch spacing in plate px (x, y)."""
        s = self.resize.scale
        return (self.step[0] / s[0], self.step[1] / s[1])

    def describe(self) -> dict[str, Any]:
        return {"grid_hw": [self.h, self.w], "origin_working_px": list(self.origin),
                "step_working_px": list(self.step), "working_wh": list(self.resize.work_wh),
                "plate_wh": list(self.resize.plate_wh)}


@runtime_checkable
class FeatureSource(Protocol):
    name: str
    grid: PatchGrid

    def __call__(self, t: int):  # -> torch.Tensor [C, h, w], L2-normalised over C
        ...

    def describe(self) -> dict[str, Any]:
        ...


def l2_normalise(feat):
    """L2-normalise a torch ``[C, h, w]`` map over C (zero vectors stay zero)."""
    import torch

    return feat / feat.norm(dim=0, keepdim=True).clamp_min(1e-8) if isinstance(feat, torch.Tensor) else \
        feat / np.maximum(np.linalg.norm(feat, axis=0, keepdims=True), 1e-8)


# ----------------------------------------------------------------------------------- colour-texture


def _grid_for_stride(plate_wh: tuple[int, int], stride: int, max_side: int) -> tuple[Resize, int, int]:
    """Working raster = plate scaled so its long side is <= ``max_side``, rounded to whole ``stride`` cells."""
    W, H = plate_wh
    s = min(1.0, max_side / max(W, H))
    w = max(1, int(round(W * s / stride)))
    h = max(1, int(round(H * s / stride)))
    return Resize((W, H), (w * stride, h * stride)), h, w


class ColourTextureFeatures:
    """Weight-free features on a grid of ``stride`` working px (cell-centred: ``origin = (stride-1)/2``).

    Channels (before per-channel standardisation and L2 normalisation):
    ``Lab`` cell means (3) + the same blurred over ``sigma = 1`` and ``3`` cells (6) - colour at three
    scales - and ``sqrt`` of gradient energy in 8 orientation bins per cell (8) + blurred over 1.5 cells
    (8) - texture. Group weights ``colour_weight`` / ``texture_weight`` scale the two groups. Each channel
    is standardised with the mean/std of the **reference frame** (``ref_t``, the first frame with a
    mask), so every frame goes through the same fixed affine map and features stay comparable.

    ``frames``: a callable ``t -> float32 RGB [H, W, 3]`` in 0..1 at plate size (e.g. ``shot.read``) or a
    uint8 array ``[T, H, W, 3]``.
    """

    name = "colour-texture"
    default_radius = 6  # patches (see propagate.PropagationParams)

    def __init__(self, frames, plate_wh: tuple[int, int], *, stride: int = 8, max_side: int = 864,
                 colour_weight: float = 1.0, texture_weight: float = 0.6, ref_t: int = 0, cache: bool = True):
        self.stride = int(stride)
        self.resize, h, w = _grid_for_stride(plate_wh, self.stride, max_side)
        o = (self.stride - 1) / 2.0
        self.grid = PatchGrid(h, w, (o, o), (float(self.stride), float(self.stride)), self.resize)
        self._frames = frames
        self.colour_weight, self.texture_weight = float(colour_weight), float(texture_weight)
        self._cache: dict[int, Any] | None = {} if cache else None
        self._mean = self._std = None
        raw = self._raw(ref_t)
        self._mean = raw.reshape(raw.shape[0], -1).mean(1)[:, None, None]
        self._std = raw.reshape(raw.shape[0], -1).std(1)[:, None, None] + 1e-3
        self.ref_t = int(ref_t)

    def describe(self) -> dict[str, Any]:
        return {"features": self.name, "stride_working_px": self.stride, "colour_weight": self.colour_weight,
                "texture_weight": self.texture_weight, "standardised_on_frame": self.ref_t, **self.grid.describe()}

    def _image(self, t: int) -> np.ndarray:
        import cv2

        f = self._frames
        img = f(t) if callable(f) else np.asarray(f[t], np.float32) / 255.0
        img = np.asarray(img, np.float32)
        wk = self.resize.work_wh
        if (img.shape[1], img.shape[0]) != wk:
            interp = cv2.INTER_AREA if wk[0] < img.shape[1] else cv2.INTER_LINEAR
            img = cv2.resize(img, wk, interpolation=interp)
        return img

    def _raw(self, t: int) -> np.ndarray:
        import cv2

        img = self._image(t)
        lab = cv2.cvtColor(img, cv2.COLOR_RGB2Lab) * np.array([1 / 100.0, 1 / 128.0, 1 / 128.0], np.float32)
        h, w = self.grid.h, self.grid.w
        cells = cv2.resize(lab, (w, h), interpolation=cv2.INTER_AREA)
        col = [cells, cv2.GaussianBlur(cells, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT),
               cv2.GaussianBlur(cells, (0, 0), 3.0, borderType=cv2.BORDER_REFLECT)]
        L = cv2.GaussianBlur(lab[..., 0], (0, 0), 0.8)
        gx = cv2.Sobel(L, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(L, cv2.CV_32F, 0, 1, ksize=3)
        mag = np.sqrt(gx * gx + gy * gy)
        ang = (np.arctan2(gy, gx) % np.pi) / np.pi * 8.0  # unsigned orientation in [0, 8)
        b0 = np.floor(ang).astype(np.int64) % 8
        frac = (ang - np.floor(ang)).astype(np.float32)
        bins = np.zeros((lab.shape[0], lab.shape[1], 8), np.float32)
        r, c = np.indices(b0.shape)
        bins[r, c, b0] += mag * (1 - frac)
        bins[r, c, (b0 + 1) % 8] += mag * frac
        tex = np.sqrt(cv2.resize(bins, (w, h), interpolation=cv2.INTER_AREA))
        tex2 = cv2.GaussianBlur(tex, (0, 0), 1.5, borderType=cv2.BORDER_REFLECT)
        colour = np.concatenate(col, -1).transpose(2, 0, 1)
        texture = np.concatenate([tex, tex2], -1).transpose(2, 0, 1)
        return np.concatenate([colour, texture], 0).astype(np.float32)

    def __call__(self, t: int):
        import torch

        if self._cache is not None and t in self._cache:
            return self._cache[t]
        raw = (self._raw(t) - self._mean) / self._std
        nc = 9
        raw[:nc] *= self.colour_weight / np.sqrt(nc)
        raw[nc:] *= self.texture_weight / np.sqrt(raw.shape[0] - nc)
        out = l2_normalise(torch.from_numpy(np.ascontiguousarray(raw)))
        if self._cache is not None:
            self._cache[t] = out
        return out


# ----------------------------------------------------------------------------------- tracker / DINO


class TrackerFeatures:
    """Refined features of the shot's trained DINO-Tracker.

    ``tracker``: an object with ``features(t) -> (feat [C, h, w], centres [h*w, 2] working px, Resize)``
    (``tracker.api.ShotTracker`` after ``prepare()`` / ``train()``).
    """

    name = "tracker"
    default_radius = 12

    def __init__(self, tracker, label: str = "tracker"):
        self._tracker = tracker
        self.label = label
        feat, centres, resize = tracker.features(0)
        C, h, w = (int(s) for s in feat.shape)
        self.grid = PatchGrid.from_centres(np.asarray(centres), h, w, resize)
        self._first = (0, feat)

    def describe(self) -> dict[str, Any]:
        tr = self._tracker
        cfg = getattr(tr, "cfg", None)
        d: dict[str, Any] = {"features": self.name, "tracker_preset": getattr(cfg, "name", None) or self.label}
        if cfg is not None:
            d["weight_free"] = bool(getattr(cfg, "weight_free", False))
            try:
                d["backbone"] = cfg["backbone"]
            except (KeyError, TypeError):
                pass
        if hasattr(tr, "trained_iterations"):
            d["trained_iterations"] = int(tr.trained_iterations)
        return {**d, **self.grid.describe()}

    def __call__(self, t: int):
        import torch

        if self._first is not None and self._first[0] == t:
            feat = self._first[1]
            self._first = None
        else:
            feat, _, _ = self._tracker.features(t)
        feat = torch.as_tensor(feat).detach().float().cpu()
        check_shape(feat, "C h w", "tracker features", {"h": self.grid.h, "w": self.grid.w})
        return l2_normalise(feat)


class DinoFeatures:
    """A frozen DINOv2 backbone (``tracker.preprocess.backbones.DinoV2``): patch tokens of one block.

    ``model``: a ``DinoV2`` (``forward(images [B, 3, H, W] RGB 0..1) -> [B, C, h, w]``, attributes ``stride``,
    ``name``, ``layer``); ``frames``: callable ``t -> float32 RGB [H, W, 3]`` in 0..1 at plate size;
    ``work_wh``: the working raster (each side ``14 + k * stride``). Patch ``(i, j)`` is centred at working
    px ``(j * stride + 6.5, i * stride + 6.5)`` (``tracker.model.feature_grid.FeatureGrid.dino``).
    """

    name = "dino"
    default_radius = 12

    def __init__(self, model, frames, plate_wh: tuple[int, int], *, work_wh: tuple[int, int], device: str = "cpu",
                 label: str | None = None):
        from ..tracker.model.feature_grid import FeatureGrid

        self.model = model.eval().to(device)
        self._frames = frames
        self.device = device
        self.label = label or f"dinov2_{getattr(model, 'name', '?')}"
        self.resize = Resize(tuple(plate_wh), tuple(int(v) for v in work_wh))
        g = FeatureGrid.dino(self.resize.work_wh, model.stride)
        self.grid = PatchGrid.from_centres(g.centres().numpy(), g.h, g.w, self.resize)

    @classmethod
    def build(cls, frames, plate_wh, *, model: str = "vits14", stride: int = 14, height: int = 476,
              layer: int | None = None, weights=None, random_weights: bool = False, device: str = "cpu",
              seed: int = 0) -> "DinoFeatures":
        """DINOv2 ``model`` at patch ``stride`` on a working raster ``height`` px high (aspect kept).

        ``layer``: 0-based block (default: the last). ``random_weights``: untrained network (timing only).
        """
        from ..tracker.model.feature_grid import dino_working_size
        from ..tracker.preprocess import backbones

        arch, _ = backbones.parse_name(model)
        depth = backbones.ARCHS[arch][1]
        lay = depth - 1 if layer is None else int(layer)
        net = backbones.build_dinov2(model, stride=stride, layer=lay, weights=weights, pretrained=not random_weights)
        if random_weights:
            net.reset_parameters(seed)
        work = dino_working_size(tuple(plate_wh), height=min(height, plate_wh[1]), stride=stride)
        label = f"dinov2_{net.name} stride {stride} block {lay}" + (" (RANDOM weights: timing only)"
                                                                    if random_weights else "")
        return cls(net, frames, plate_wh, work_wh=work, device=device, label=label)

    def describe(self) -> dict[str, Any]:
        return {"features": self.name, "backbone": self.label, **self.grid.describe()}

    def __call__(self, t: int):
        import cv2

        from ..tracker.preprocess.backbones import run_frames

        img = np.asarray(self._frames(t), np.float32)
        wk = self.resize.work_wh
        if (img.shape[1], img.shape[0]) != wk:
            img = cv2.resize(img, wk, interpolation=cv2.INTER_AREA if wk[0] < img.shape[1] else cv2.INTER_LINEAR)
        f = run_frames(self.model, img[None])[0].cpu()
        check_shape(f, "C h w", "DINO features", {"h": self.grid.h, "w": self.grid.w})
        return l2_normalise(f)


# ----------------------------------------------------------------------------------- choice


def dino_weights_available(model: str = "vits14", weights=None) -> bool:
    """True when the DINOv2 checkpoint is on disk (``weights`` or the standard folders); never downloads."""
    if weights is not None:
        return Path(weights).expanduser().exists()
    try:
        from ..tracker.preprocess import backbones
        from ..tracker.preprocess import weights as wmod
    except ImportError:
        return False
    arch, reg = backbones.parse_name(model)
    fname = wmod.dinov2_filename(arch, reg)
    return any((d / fname).is_file() for d in wmod.search_dirs())


def tracker_available() -> bool:
    import importlib

    try:
        importlib.import_module("..tracker.api", __package__)
    except ImportError:
        return False
    return True


def open_feature_source(shot, kind: str = "auto", *, ref_t: int = 0, tracker=None, preset: str = "cpu-preview",
                        masks=None, cache_dir=None, weights=None, dino_model: str = "vits14", stride: int = 8,
                        device: str | None = None, progress=None, cancel=None, frames: Callable | None = None
                        ) -> FeatureSource:
    """Open the feature source ``kind`` (see :data:`FEATURE_CHOICES`) for ``shot``.

    ``auto``: DINOv2 when weights are found (or named by ``weights``), else the shot's trained tracker when
    the caller passes one (``tracker``), else colour-texture with a warning - measured better than the
    weight-free tracker's features on DAVIS (docs/results-objects.md). ``tracker``: the given tracker, or
    ``tracker.api.ShotTracker(shot, preset, masks, cache_dir)`` prepared and trained now (slow on a CPU).
    """
    if kind not in FEATURE_CHOICES:
        raise ConfigError(f"features {kind!r} is not one of {', '.join(FEATURE_CHOICES)}", where="--features")
    read = frames or shot.read
    if kind == "auto":
        if weights is not None or dino_weights_available(dino_model, weights):  # named weights: no fallback
            kind = "dino"
        elif tracker is not None:  # the shot's own trained tracker, handed over by the caller
            kind = "tracker"
        else:
            # Without DINO weights a tracker would be the weight-free Delta-CNN, which propagates worse
            # than colour-texture on DAVIS (J&F 0.472 vs 0.680, docs/results-objects.md) and costs a training.
            log.warning("no DINOv2 weights found: using the weight-free colour-texture features "
                        "(--features tracker trains the shot's tracker and uses its features instead)")
            kind = "colour-texture"
    if kind == "colour-texture":
        return ColourTextureFeatures(read, shot.size, stride=stride, ref_t=ref_t)
    if kind == "dino":
        import torch

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return DinoFeatures.build(read, shot.size, model=dino_model, weights=weights, device=dev)
    if tracker is None:
        if not tracker_available():
            raise ConfigError("features 'tracker' need the tracker package (dino_tracker_vfx.tracker.api)",
                              where="--features")
        from ..tracker import api

        tracker = api.ShotTracker(shot, preset, masks=masks, cache_dir=cache_dir, progress=progress,
                                  cancel=cancel, device=device)
        tracker.prepare()
        tracker.train()
    return TrackerFeatures(tracker, label=str(preset))


__all__ = ["PatchGrid", "FeatureSource", "ColourTextureFeatures", "TrackerFeatures", "DinoFeatures",
           "open_feature_source", "FEATURE_CHOICES", "l2_normalise"]
