"""DINOv2 ViT backbones (S/B/L/G, patch 14, optional 4 registers) with a denser patch stride.

The module tree and parameter names equal the official ``facebookresearch/dinov2`` checkpoints
(``dinov2_vit{s,b,l,g}14[_reg4]_pretrain.pth``), so those files load with ``strict=True``:
``cls_token``, ``pos_embed`` [1, 1+37*37, C], ``register_tokens`` [1, 4, C] (reg4 only), ``mask_token``,
``patch_embed.proj.{weight,bias}``, ``blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1,
mlp.fc2 | mlp.w12, mlp.w3 (ViT-g SwiGLU), ls2.gamma}``, ``norm``.

Features (as DINO-Tracker extracts them): the raw token output of block ``layer`` (0-based, before the
final norm), patch tokens only, with the patch embedding applied at ``stride`` (default 7, not 14) and the
position embedding bicubically resized to the denser grid as DINOv2 does (scale factor with the +0.1
offset). Image ``[B, 3, H, W]`` -> map ``[B, C, h, w]`` with ``h = (H - 14) // stride + 1`` (same for w).
Patch ``(i, j)`` covers pixels ``j*stride .. j*stride+13`` so its centre is at working pixel
``(j*stride + 6.5, i*stride + 6.5)``. That geometry (map size, centres, the working raster) is
:mod:`..model.feature_grid`'s (``FeatureGrid.dino``, ``dino_working_size``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...checks import check_shape
from ...errors import ConfigError
from ...progress import CancelFn, check_cancel
from ..model.feature_grid import DINO_PATCH as PATCH

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# name -> (embed dim, depth, heads, ffn)
ARCHS = {
    "vits14": (384, 12, 6, "mlp"),
    "vitb14": (768, 12, 12, "mlp"),
    "vitl14": (1024, 24, 16, "mlp"),
    "vitg14": (1536, 40, 24, "swiglu"),
}
PRETRAIN_GRID = 37  # official checkpoints: img_size 518 -> 37 x 37 position embeddings


def default_layer(arch: str) -> int:
    """0-based block whose tokens are used: 15 of 24 for ViT-L, the same depth fraction for others."""
    depth = ARCHS[arch][1]
    return int(round(15 * depth / 24))


def parse_name(name: str) -> tuple[str, bool]:
    """``"vitl14"``, ``"dinov2_vitl14_reg4"``, ``"vitl14_reg"`` ... -> (arch, registers)."""
    n = name.lower().removeprefix("dinov2_").removesuffix("_pretrain")
    registers = n.endswith("_reg4") or n.endswith("_reg")
    arch = n.split("_")[0]
    if arch not in ARCHS:
        raise ConfigError(f"unknown DINOv2 model {name!r}; use one of {', '.join(ARCHS)} (+ '_reg4')",
                          where="backbone")
    return arch, registers


# ------------------------------------------------------------------------------------------------ layers


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # [B, C, h, w]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # scale 1/sqrt(head dim)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8  # as DINOv2's SwiGLUFFNFused
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x):
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: str):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = (Mlp if ffn == "mlp" else SwiGLU)(dim, 4 * dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


# ------------------------------------------------------------------------------------------------ model


class DinoV2(nn.Module):
    """DINOv2 feature extractor; see the module docstring for conventions.

    forward(images float ``[B, 3, H, W]`` RGB in 0..1) -> float ``[B, C, h, w]``; ImageNet normalisation is
    done inside. Runs only blocks ``0..layer``. Works under bf16/fp16 autocast.
    """

    def __init__(self, arch: str = "vitl14", registers: bool = False, stride: int = 7, layer: int | None = None,
                 init: bool = True):
        super().__init__()
        if arch not in ARCHS:
            arch, registers = parse_name(arch)[0], registers or parse_name(arch)[1]
        dim, depth, heads, ffn = ARCHS[arch]
        if not 1 <= int(stride) <= PATCH:
            raise ConfigError(f"patch stride must be 1..{PATCH}, got {stride}", where="backbone.stride")
        layer = default_layer(arch) if layer is None else int(layer)
        if not 0 <= layer < depth:
            raise ConfigError(f"layer must be 0..{depth - 1} for {arch}, got {layer}", where="backbone.layer")
        self.arch, self.registers, self.stride, self.layer = arch, bool(registers), int(stride), layer
        self.embed_dim, self.depth = dim, depth
        self.patch_embed = PatchEmbed(dim, self.stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + PRETRAIN_GRID ** 2, dim))
        if self.registers:
            self.register_tokens = nn.Parameter(torch.zeros(1, 4, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, ffn) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self._pos_cache: dict = {}
        self.init_buffers()
        if init:
            self.reset_parameters()

    def init_buffers(self) -> None:
        """(Re)create the ImageNet normalisation buffers on the CPU (after building on the meta device)."""
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, device="cpu").view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD, device="cpu").view(1, 3, 1, 1), persistent=False)

    @property
    def name(self) -> str:
        return f"{self.arch}{'_reg4' if self.registers else ''}"

    def reset_parameters(self, seed: int | None = None) -> None:
        """Random init (truncated normal, like DINOv2's), e.g. for tests without weights."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            for p_name, p in self.named_parameters():
                if p_name.endswith("gamma"):
                    p.fill_(1.0)
                elif p_name.endswith(".weight") and p.dim() == 1:  # LayerNorm
                    p.fill_(1.0)
                elif p_name.endswith(".bias"):
                    p.zero_()
                else:
                    p.copy_(torch.randn(p.shape, generator=g).clamp_(-2, 2) * 0.02)
        self._pos_cache.clear()

    def _load_from_state_dict(self, *args, **kwargs):
        self._pos_cache.clear()
        return super()._load_from_state_dict(*args, **kwargs)

    def interpolate_pos_encoding(self, h: int, w: int, dtype) -> torch.Tensor:
        """Position embeddings [1, 1 + h*w, C] for an h x w token grid (bicubic, DINOv2's +0.1 offset)."""
        key = (h, w, dtype, self.pos_embed.device, self.training)
        if key in self._pos_cache and not torch.is_grad_enabled():
            return self._pos_cache[key]
        pos = self.pos_embed.float()
        cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
        M = PRETRAIN_GRID
        if h == M and w == M:
            out = pos
        else:
            grid = patch_pos.reshape(1, M, M, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, scale_factor=((h + 0.1) / M, (w + 0.1) / M), mode="bicubic",
                                 align_corners=False)
            assert grid.shape[-2:] == (h, w), (grid.shape, h, w)
            out = torch.cat([cls_pos, grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)], dim=1)
        out = out.to(dtype)
        if not torch.is_grad_enabled():
            self._pos_cache = {key: out}
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_shape(images, "B 3 H W", "DinoV2 images")
        B, _, H, W = images.shape
        if H < PATCH or W < PATCH:
            raise ValueError(f"DinoV2: image {W}x{H} is smaller than one {PATCH}px patch")
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        x = self.patch_embed(x)
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)  # [B, h*w, C], row-major (i, j)
        x = torch.cat([self.cls_token.expand(B, -1, -1).to(x.dtype), x], dim=1)
        x = x + self.interpolate_pos_encoding(h, w, x.dtype)
        n_extra = 1
        if self.registers:
            x = torch.cat([x[:, :1], self.register_tokens.expand(B, -1, -1).to(x.dtype), x[:, 1:]], dim=1)
            n_extra = 5
        for blk in self.blocks[: self.layer + 1]:
            x = blk(x)
        return x[:, n_extra:].transpose(1, 2).reshape(B, -1, h, w)


def build_dinov2(name: str = "vitl14", stride: int = 7, layer: int | None = None, weights=None,
                 pretrained: bool = True, progress=None) -> DinoV2:
    """A DinoV2 in eval mode, with the official weights resolved by :mod:`.weights` when ``pretrained``.

    ``weights``: explicit file (else $DTVFX_WEIGHTS / torch hub cache / download). Raises WeightsError
    with a one-line hint when they cannot be found offline.
    """
    from .weights import load_into, load_state_dict, resolve_dinov2

    arch, registers = parse_name(name)
    if not pretrained:
        return DinoV2(arch, registers, stride, layer).eval().requires_grad_(False)
    path = resolve_dinov2(arch, registers, weights, progress=progress)  # before building: fail fast
    sd = load_state_dict(path)
    with torch.device("meta"):  # no wasted random init of up to 1.1B parameters
        model = DinoV2(arch, registers, stride, layer, init=False)
    load_into(model, sd, path, assign=True)
    model.init_buffers()
    return model.eval().requires_grad_(False)


@torch.no_grad()
def run_frames(model: DinoV2, frames: np.ndarray, *, layer: int | None = None, chunk: int = 2,
               dtype: torch.dtype = torch.float32, amp: bool = False, cancel: CancelFn | None = None,
               what: str = "DINO features", on_chunk: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """The ViT over frames (the one loop that does it: tracker features, saliency, the objects' DINO source).

    frames: uint8 ``[T, H, W, 3]`` RGB, or float RGB in 0..1 -> maps ``[T, C, h, w]`` in ``dtype`` on the
    model's device, ``chunk`` frames per forward pass. ``layer``: run to this block instead of the model's
    own (restored after). ``amp``: bf16 autocast (on CUDA only). ``cancel`` is checked before each chunk
    (``what`` names the step); ``on_chunk(done, T)`` is called after each.
    """
    check_shape(frames, "T H W 3", "frames")
    dev = next(model.parameters()).device
    T = frames.shape[0]
    old = model.layer
    if layer is not None:
        model.layer = int(layer)
    out = None
    try:
        for s in range(0, T, chunk):
            check_cancel(cancel, what)
            e = min(T, s + chunk)
            x = torch.from_numpy(frames[s:e]).to(dev).permute(0, 3, 1, 2)
            x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp and dev.type == "cuda"):
                f = model(x)
            if out is None:
                out = torch.empty((T,) + tuple(f.shape[1:]), dtype=dtype, device=dev)
            out[s:e] = f.to(dtype)
            if on_chunk is not None:
                on_chunk(e, T)
    finally:
        model.layer = old
    return out


__all__ = ["DinoV2", "build_dinov2", "run_frames", "default_layer", "parse_name", "ARCHS"]
