"""tracker/preprocess/backbones.py: DINOv2 forward semantics at a denser patch stride (the patch grid's geometry:
test_tracker_model.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dino_tracker_vfx.errors import Cancelled, ConfigError
from dino_tracker_vfx.tracker.preprocess.backbones import DinoV2, default_layer, parse_name, run_frames


def _reference_forward(m: DinoV2, img: torch.Tensor) -> torch.Tensor:
    """Plain-PyTorch re-statement of DINOv2 (explicit softmax attention, DINOv2's pos-embed resize)."""
    x = (img - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = F.conv2d(x, m.patch_embed.proj.weight, m.patch_embed.proj.bias, stride=m.stride)
    B, C, h, w = x.shape
    x = torch.cat([m.cls_token.expand(B, -1, -1), x.flatten(2).transpose(1, 2)], 1)
    M = int(math.sqrt(m.pos_embed.shape[1] - 1))
    grid = m.pos_embed[:, 1:].reshape(1, M, M, C).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((h + 0.1) / M, (w + 0.1) / M), mode="bicubic")
    x = x + torch.cat([m.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h * w, C)], 1)
    if m.registers:
        x = torch.cat([x[:, :1], m.register_tokens.expand(B, -1, -1), x[:, 1:]], 1)
    for blk in m.blocks[: m.layer + 1]:
        y = blk.norm1(x)
        heads = blk.attn.heads
        q, k, v = blk.attn.qkv(y).reshape(B, -1, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C // heads), -1)
        x = x + blk.ls1.gamma * blk.attn.proj((a @ v).transpose(1, 2).reshape(B, -1, C))
        x = x + blk.ls2.gamma * blk.mlp.fc2(F.gelu(blk.mlp.fc1(blk.norm2(x))))
    return x[:, 1 + 4 * m.registers:].transpose(1, 2).reshape(B, C, h, w)


@pytest.mark.parametrize("registers", [False, True])
def test_forward_matches_reference_at_stride_7(registers):
    torch.manual_seed(0)
    m = DinoV2("vits14", registers=registers, stride=7, layer=2).eval()
    with torch.no_grad():
        for p in m.parameters():  # non-trivial layer scales / norms
            p.add_(0.05 * torch.randn_like(p))
        img = torch.rand(2, 3, 49, 70)
        out = m(img)
        ref = _reference_forward(m, img)
    assert out.shape == (2, 384, 6, 9)  # (49-14)//7+1, (70-14)//7+1
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4)


def test_stride_14_at_pretraining_size_keeps_pos_embed():
    m = DinoV2("vits14", stride=14, layer=0).eval()
    pe = m.interpolate_pos_encoding(37, 37, torch.float32)
    assert torch.equal(pe, m.pos_embed)


def test_bf16_autocast_runs():
    m = DinoV2("vits14", stride=7, layer=1).eval()
    img = torch.rand(1, 3, 28, 42)
    with torch.no_grad():
        ref = m(img)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(img)
    assert out.shape == ref.shape and torch.isfinite(out.float()).all()
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_layers_names_and_errors():
    assert default_layer("vitl14") == 15 and default_layer("vits14") == 8 and default_layer("vitg14") == 25
    assert parse_name("dinov2_vitb14_reg4") == ("vitb14", True) and parse_name("vitl14") == ("vitl14", False)
    with pytest.raises(ConfigError, match="backbone"):
        parse_name("vith16")
    with pytest.raises(ConfigError, match="backbone.layer"):
        DinoV2("vits14", layer=12)
    with pytest.raises(ConfigError, match="backbone.stride"):
        DinoV2("vits14", stride=15)




def test_run_frames_runs_the_vit_over_a_shot_in_chunks():
    """The one loop over frames: uint8 or 0..1 float frames, chunked, a block other than the model's (restored),
    the output dtype, progress after each chunk and cancel before each."""
    import numpy as np

    m = DinoV2("vits14", stride=7, layer=1)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 28, 35, 3), dtype=np.uint8)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        want1 = m(x)
        m.layer = 0
        want0 = m(x)
        m.layer = 1
    done = []
    out = run_frames(m, frames, chunk=2, on_chunk=lambda e, T: done.append((e, T)))
    assert out.shape == (3, 384, 3, 4) and out.dtype == torch.float32 and done == [(2, 3), (3, 3)]
    assert torch.allclose(out, want1, atol=1e-5)
    assert torch.allclose(run_frames(m, frames.astype(np.float32) / 255.0, chunk=3), want1, atol=1e-5)
    half = run_frames(m, frames, layer=0, dtype=torch.float16)
    assert half.dtype == torch.float16 and torch.allclose(half.float(), want0, atol=1e-2) and m.layer == 1

    def cancel():
        return len(done) >= 3

    with pytest.raises(Cancelled, match="saliency"):
        run_frames(m, frames, layer=0, chunk=1, cancel=cancel, what="saliency", on_chunk=lambda e, T: done.append(e))
    assert m.layer == 1 and len(done) == 3
