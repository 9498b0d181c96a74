"""tracker/preprocess/foreground.py: user masks (resize, nearest + dilation), DINO saliency, all-foreground."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dino_tracker_vfx.coords import Resize
from dino_tracker_vfx.errors import ConfigError, InputError
from dino_tracker_vfx.tracker.preprocess.backbones import DinoV2
from dino_tracker_vfx.tracker.preprocess.foreground import foreground_masks, saliency_component

T, W, H = 5, 56, 42
FRAMES = np.zeros((T, H, W, 3), np.uint8)
PLATE = (140, 105)  # 2.5x the working raster


def _plate_mask(x0, y0, x1, y1, value=1):
    m = np.zeros(PLATE[::-1], np.int32)
    m[y0:y1, x0:x1] = value
    return m


def test_user_masks_resized_and_nearest_dilated():
    masks = {1: _plate_mask(50, 25, 75, 50, value=3), 4: _plate_mask(0, 0, 10, 10).astype(bool)}
    fg = foreground_masks(FRAMES, masks=masks, resize=Resize(PLATE, (W, H)))
    assert fg.shape == (T, H, W) and fg.dtype == bool
    assert fg[1].sum() == 10 * 10 and fg[1, 10:20, 20:30].all()  # 25 plate px -> 10 working px
    assert fg[4].sum() == 4 * 4
    # frames 0 and 2 take frame 1's mask grown by 3 px; frame 3 is nearest to frame 4 (grown by 3 px)
    assert fg[0].sum() == fg[2].sum() > 100 and fg[0, 7, 20] and not fg[1, 7, 20]
    assert fg[3, :6, :6].all() and not fg[3, 15, 25]
    with pytest.raises(InputError, match=r"masks\[2\]"):
        foreground_masks(FRAMES, masks={2: np.ones((10, 10), bool)}, resize=Resize(PLATE, (W, H)))
    with pytest.raises(InputError, match=r"masks\[9\]"):
        foreground_masks(FRAMES, masks={9: _plate_mask(0, 0, 1, 1)}, resize=Resize(PLATE, (W, H)))
    with pytest.raises(InputError):
        foreground_masks(FRAMES, source="masks")


def _object_features(h=6, w=8, C=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = 0.2 * torch.randn(T, C, h, w, generator=g)
    f[:, 0] += 3.0  # shared background direction
    for t in range(T):  # an object (other direction) moving right
        f[t, 1, 2:4, 2 + t // 2:5 + t // 2] += 6.0
    return f


def test_saliency_finds_the_object_at_patch_centres():
    f = _object_features()
    comp = saliency_component(f)
    assert comp.shape == (T, 6, 8) and comp.min() == 0.0 and comp.max() == 1.0
    fg = foreground_masks(FRAMES, dino=f, stride=7)
    assert fg.shape == (T, H, W)
    # patch (i, j) is centred at (7j + 6.5, 7i + 6.5): the object's patches and nothing else
    for t in range(T):
        patch = fg[t, 6::7][:6, 6::7][:, :8]
        want = np.zeros((6, 8), bool)
        want[2:4, 2 + t // 2:5 + t // 2] = True
        assert np.array_equal(patch, want)
    flipped = foreground_masks(FRAMES, dino=-f, stride=7)  # PCA sign is arbitrary: the border ring decides
    assert np.array_equal(flipped, fg)


def test_saliency_from_a_backbone_and_fallbacks():
    net = DinoV2("vits14", stride=7, layer=1).eval()
    fg = foreground_masks(FRAMES, source="saliency", dino=net, layer=2)
    assert fg.shape == (T, H, W) and net.layer == 1  # layer restored
    assert foreground_masks(FRAMES).all()
    assert foreground_masks(FRAMES, source="all", dino=_object_features()).all()
    with pytest.raises(ConfigError, match="foreground.source"):
        foreground_masks(FRAMES, source="saliency")
    with pytest.raises(ConfigError, match="foreground.source"):
        foreground_masks(FRAMES, source="magic")
