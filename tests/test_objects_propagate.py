"""Mask propagation: the exact step against a brute-force reference, patch sampling/upsampling, and
propagation on a synthetic shot with known masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _objects_helpers import DISC, SQUARE, ArrayShot, make_scene
from conftest import texture
from dino_tracker_vfx.coords import Resize
from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.objects.features import ColourTextureFeatures, PatchGrid, TrackerFeatures
from dino_tracker_vfx.objects.metrics import jaccard
from dino_tracker_vfx.objects.propagate import (PropagationParams, Upsampler, mask_to_patch_probs,
                                                propagate_masks, propagate_step)


def _reference_step(cur, ctx_f, ctx_p, radius, topk, temp):
    """Brute force: every (patch, context frame, context patch) pair, distance test, top-k, softmax."""
    K, C, h, w = ctx_f.shape
    M = ctx_p.shape[1]
    out = np.zeros((M, h, w))
    for i in range(h):
        for j in range(w):
            cands = []
            for k in range(K):
                for a in range(h):
                    for b in range(w):
                        if (a - i) ** 2 + (b - j) ** 2 <= radius * radius:
                            cands.append((float(ctx_f[k, :, a, b] @ cur[:, i, j]), k, a, b))
            cands.sort(key=lambda c: -c[0])
            top = cands[:topk]
            s = np.array([c[0] for c in top]) / temp
            wts = np.exp(s - s.max())
            wts /= wts.sum()
            for wt, (_, k, a, b) in zip(wts, top):
                out[:, i, j] += wt * ctx_p[k, :, a, b]
    return out


@pytest.mark.parametrize("radius,topk,tile", [(2, 3, 4), (1, 1, 3), (3, 5, 16)])
def test_step_matches_brute_force(radius, topk, tile):
    g = torch.Generator().manual_seed(radius * 10 + topk)
    K, C, h, w, M = 2, 6, 7, 9, 3
    f = torch.nn.functional.normalize(torch.randn(K + 1, C, h, w, generator=g), dim=1)
    p = torch.softmax(torch.randn(K, M, h, w, generator=g), dim=1)
    out = propagate_step(f[0], f[1:], p, radius, topk, 0.2, tile=tile)
    ref = _reference_step(f[0].numpy(), f[1:].numpy(), p.numpy(), radius, topk, 0.2)
    assert out.shape == (M, h, w)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)
    np.testing.assert_allclose(out.sum(0).numpy(), 1.0, atol=1e-5)  # still probabilities


def test_step_copies_labels_of_identical_features():
    """Features equal to the context -> the best match of each patch is itself; with topk=1 the labels
    are copied exactly (also through the tile borders)."""
    g = torch.Generator().manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(8, 11, 13, generator=g), dim=0)
    lab = torch.randint(0, 4, (11, 13), generator=g)
    p = torch.nn.functional.one_hot(lab, 4).permute(2, 0, 1).float()
    out = propagate_step(f, f[None], p[None], 3, 1, 0.2, tile=5)
    assert torch.equal(out.argmax(0), lab)


def test_patch_probs_are_cell_averages_and_upsampling_interpolates():
    grid = PatchGrid(3, 4, (1.5, 1.5), (4.0, 4.0), Resize((16, 12), (16, 12)))  # cells of 4x4 px
    mask = np.zeros((12, 16), np.int32)
    mask[0:4, 0:4] = 5  # one full cell
    mask[4:6, 4:8] = 9  # half a cell
    p = mask_to_patch_probs(mask, [5, 9], grid).numpy()
    assert p.shape == (3, 3, 4)
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-6)
    assert p[1, 0, 0] == pytest.approx(1.0, abs=1e-6)
    assert p[2, 1, 1] == pytest.approx(0.5, abs=1e-6)
    assert p[1, 2, 3] == pytest.approx(0.0)
    up = Upsampler(grid, (16, 12))
    ramp = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4)  # value = 4 * row + col
    full = up(ramp)[0].numpy()
    # plate pixel (x, y) reads the grid at ((x - 1.5) / 4, (y - 1.5) / 4), held at the border patches outside the
    # outermost centres; bilinear interpolation of a linear ramp is the ramp itself, so every pixel is known
    gx = np.clip((np.arange(16) - 1.5) / 4.0, 0, 3)
    gy = np.clip((np.arange(12) - 1.5) / 4.0, 0, 2)
    np.testing.assert_allclose(full, 4.0 * gy[:, None] + gx[None, :], atol=1e-5)
    inner = [(n, x, y) for n, (x, y) in enumerate(grid.centres_plate()) if 1.5 < x < 13.5 and 1.5 < y < 9.5]
    assert [n for n, _, _ in inner] == [5, 6]
    for n, x, y in inner:  # an inner patch centre (between four pixels) is its patch's value
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        assert full[y0:y0 + 2, x0:x0 + 2].mean() == pytest.approx(float(n), abs=1e-5)
    assert full[1, 3] == pytest.approx(0.375, abs=1e-5) and full[1, 4] == pytest.approx(0.625, abs=1e-5)


def test_grid_from_centres_checks_regularity():
    c = np.stack(np.meshgrid(np.arange(4) * 7 + 6.5, np.arange(3) * 7 + 6.5), -1).reshape(-1, 2)
    g = PatchGrid.from_centres(c, 3, 4, Resize((100, 50), (35, 28)))
    assert g.step == (7.0, 7.0) and g.origin == (6.5, 6.5)
    c[5] += 1.0
    with pytest.raises(ValueError):
        PatchGrid.from_centres(c, 3, 4, Resize((100, 50), (35, 28)))


@pytest.fixture(scope="module")
def scene():
    return make_scene(T=8)


def test_propagation_follows_moving_objects_and_keeps_ids(scene):
    shot = ArrayShot(scene.frames)
    src = ColourTextureFeatures(scene.frames, shot.size, stride=4)
    preds = list(propagate_masks(src, 8, {0: scene.masks[0]}, shot.size, PropagationParams(radius=6)))
    assert [p.t for p in preds] == list(range(8))
    assert preds[0].given and np.array_equal(preds[0].labels, scene.masks[0])
    last = preds[-1].labels
    assert set(np.unique(last)) <= {0, SQUARE, DISC}  # the input's ids, never channel numbers
    for i in (SQUARE, DISC):
        j = jaccard(last == i, scene.masks[7] == i)
        static = jaccard(scene.masks[0] == i, scene.masks[7] == i)
        assert j > 0.75 and j > static + 0.3, (i, j, static)
    assert preds[-1].areas[SQUARE] > 0.7 * (scene.masks[7] == SQUARE).sum()


def test_mid_shot_mask_propagates_backward_too(scene):
    shot = ArrayShot(scene.frames)
    src = ColourTextureFeatures(scene.frames, shot.size, stride=4, ref_t=4)
    preds = list(propagate_masks(src, 8, {4: scene.masks[4]}, shot.size, PropagationParams(radius=6)))
    assert [p.t for p in preds] == [4, 5, 6, 7, 3, 2, 1, 0]
    first = next(p for p in preds if p.t == 0).labels
    assert jaccard(first == SQUARE, scene.masks[0] == SQUARE) > 0.75


def test_second_given_mask_is_used_as_given(scene):
    shot = ArrayShot(scene.frames)
    src = ColourTextureFeatures(scene.frames, shot.size, stride=8)
    m5 = scene.masks[5].copy()
    m5[m5 == DISC] = 0  # the disc is gone according to the mask at frame 5
    preds = {p.t: p for p in propagate_masks(src, 8, {0: scene.masks[0], 5: m5}, shot.size)}
    assert preds[5].given and np.array_equal(preds[5].labels, m5)


def test_bad_masks_are_refused(scene):
    src = ColourTextureFeatures(scene.frames, (160, 120), stride=8)
    with pytest.raises(InputError, match="no object"):
        next(propagate_masks(src, 8, {0: np.zeros((120, 160), np.int32)}, (160, 120)))
    with pytest.raises(InputError, match="plate is 160x120"):
        next(propagate_masks(src, 8, {0: np.ones((60, 80), np.int32)}, (160, 120)))
    with pytest.raises(InputError, match="outside the shot"):
        next(propagate_masks(src, 8, {9: scene.masks[0]}, (160, 120)))


class _FakeTracker:
    """What tracker.api.ShotTracker.features returns: ([C, h, w], centres [h*w, 2] working px, Resize)."""

    preset = "fake"

    def __init__(self, frames):
        self.src = ColourTextureFeatures(frames, (frames.shape[2], frames.shape[1]), stride=8)
        self.calls = []

    def features(self, t):
        self.calls.append(t)
        g = self.src.grid
        return (self.src(t) * 3.0).numpy(), g.centres_working(), g.resize  # not normalised on purpose


def test_tracker_features_wrapper_normalises_and_keeps_grid(scene):
    fake = _FakeTracker(scene.frames)
    src = TrackerFeatures(fake)
    f = src(3)
    assert f.shape[1:] == (src.grid.h, src.grid.w)
    np.testing.assert_allclose(f.norm(dim=0).numpy(), 1.0, atol=1e-5)
    assert src.grid.step == (8.0, 8.0) and src.describe()["features"] == "tracker"


def test_dino_source_with_random_weights_runs_on_the_backbone_grid(scene):
    """The DINO path wired to the tracker's DinoV2 with untrained weights: its grid, unit features, and
    features that move with the picture (an untrained ViT's patch features are local)."""
    from dino_tracker_vfx.objects.features import DinoFeatures

    shot = ArrayShot(scene.frames[:3])
    src = DinoFeatures.build(shot.read, shot.size, model="vits14", stride=14, height=56, random_weights=True)
    g = src.grid
    assert g.step == (14.0, 14.0) and g.origin == (6.5, 6.5)
    assert (g.h, g.w) == ((src.resize.work_wh[1] - 14) // 14 + 1, (src.resize.work_wh[0] - 14) // 14 + 1)
    f = src(1)
    assert f.shape == (384, g.h, g.w)
    np.testing.assert_allclose(f.norm(dim=0).numpy(), 1.0, atol=1e-4)
    assert "RANDOM" in src.describe()["backbone"]
    preds = list(propagate_masks(src, 3, {0: scene.masks[0]}, shot.size))
    assert len(preds) == 3 and set(np.unique(preds[-1].labels)) <= {0, SQUARE, DISC}
    # a picture moved left by two patches (28 px on an 84x56 plate that is its own working raster)
    big = texture(56, 112, seed=3)
    moved = ArrayShot(np.stack([big[:, :84], big[:, 28:]]))
    src = DinoFeatures.build(moved.read, moved.size, model="vits14", stride=14, height=56, random_weights=True)
    assert src.resize.work_wh == (84, 56) and (src.grid.h, src.grid.w) == (4, 6)
    f0, f1 = src(0), src(1)
    cos = torch.einsum("cn,cm->nm", f0[:, :, 2:].reshape(384, -1), f1.reshape(384, -1))
    want = (torch.arange(4)[:, None] * 6 + torch.arange(4)[None, :]).reshape(-1)  # column j in 0 -> j - 2 in 1
    assert torch.equal(cos.argmax(1), want)
    assert float(cos[torch.arange(len(want)), want].min()) > 0.9  # (0.96 here; unit features)


def test_auto_feature_choice(scene, monkeypatch, caplog, tmp_path):
    from dino_tracker_vfx.errors import ConfigError
    from dino_tracker_vfx.objects import features as fmod

    shot = ArrayShot(scene.frames[:2])
    assert not fmod.dino_weights_available("vits14", tmp_path / "missing.pth")
    monkeypatch.setattr(fmod, "dino_weights_available", lambda *a, **k: False)
    monkeypatch.setattr(fmod, "tracker_available", lambda: False)
    src = fmod.open_feature_source(shot, "auto")
    assert src.name == "colour-texture" and "weight-free colour-texture" in caplog.text
    # a given trained tracker is used when there are no DINO weights
    src = fmod.open_feature_source(shot, "auto", tracker=_FakeTracker(scene.frames[:2]))
    assert src.name == "tracker"
    with pytest.raises(ConfigError, match="features 'tracker' need"):
        fmod.open_feature_source(shot, "tracker")
    with pytest.raises(ConfigError, match="not one of"):
        fmod.open_feature_source(shot, "sift")
