"""Delta-DINO: the small CNN whose output is added to frozen DINO features (``Phi = Phi_DINO + Phi_delta``).

Architecture (docs/method.md section 1): channels ``3 -> 64 -> 128 -> 256 -> C``. Layers 1-3:
``Conv2d(k5, stride 1, reflect pad 2) -> BatchNorm2d -> ReLU -> BlurPool`` (anti-aliased stride-2
downsample, Zhang 2019: reflect pad, depthwise binomial ``[1, 3, 3, 1]`` filter). Layer 4:
``Conv2d(k5, dilation 2, reflect pad 4) -> BatchNorm2d``; zero-initialised output so training starts
at raw DINO. About 7.59M parameters for C = 1024.

Coordinates: the native output map has stride 8 and cell ``(i, j)`` centred at working pixel
``(8 j + 3.5, 8 i + 3.5)`` (each BlurPool output ``k`` is centred at input ``2 k + 0.5``;
:meth:`FeatureGrid.cnn`). :meth:`DeltaDino.forward` bilinearly resamples it at the cells of any other
:class:`FeatureGrid` (the DINO patch centres) so the two maps add cell by cell.

Weight-free mode (``backbone: none``) uses the same network, not zero-initialised, as the whole
feature extractor (the paper's "w/o DINO" ablation).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...checks import check_shape
from .feature_grid import FeatureGrid

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BlurPool(nn.Module):
    """Anti-aliased stride-2 downsample: reflect pad (1, 2) then the depthwise 4x4 binomial filter
    ``[1, 3, 3, 1] x [1, 3, 3, 1] / 64`` at stride 2.

    ``[B, C, H, W] -> [B, C, ceil(H/2), ceil(W/2)]``; output ``k`` is centred at input ``2k + 0.5``.
    """

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 3.0, 3.0, 1.0])
        k = a[:, None] * a[None, :]
        self.register_buffer("kernel", (k / k.sum())[None, None].repeat(channels, 1, 1, 1), persistent=False)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        x = F.pad(x, (1, 2, 1, 2), mode="reflect" if min(H, W) > 2 else "replicate")
        return F.conv2d(x, self.kernel.to(x.dtype), stride=2, groups=self.channels)


class DeltaDino(nn.Module):
    """images float ``[B, 3, H, W]`` in 0..1 -> features ``[B, C, h, w]`` on ``grid`` (or native)."""

    def __init__(self, out_channels: int, hidden: tuple[int, ...] = (64, 128, 256), kernel: int = 5,
                 zero_init: bool = True, last_bn_gamma: float = 0.05):
        super().__init__()
        self.out_channels = int(out_channels)
        chans = (3,) + tuple(int(c) for c in hidden)
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, padding_mode="reflect"),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True), BlurPool(cout)]
        self.body = nn.Sequential(*layers)
        dil = 2
        self.head = nn.Conv2d(chans[-1], self.out_channels, kernel, dilation=dil, padding=dil * (kernel // 2),
                              padding_mode="reflect")
        self.head_bn = nn.BatchNorm2d(self.out_channels)
        self.n_down = len(hidden)
        if zero_init:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
            self.head_bn.weight.data.fill_(last_bn_gamma)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def native_grid(self, work_wh: tuple[int, int]) -> FeatureGrid:
        return FeatureGrid.cnn(work_wh, self.n_down)

    def forward_native(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` 0..1 -> ``[B, C, ceil(H/8), ceil(W/8)]`` on :meth:`native_grid`."""
        check_shape(images, "B 3 H W", "DeltaDino images")
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        x = self.body(x)
        h, w = x.shape[-2:]
        pad = self.head.padding[0]
        if min(h, w) <= pad:  # reflection needs pad < size; tiny maps replicate instead
            x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
            x = F.conv2d(x, self.head.weight.to(x.dtype), self.head.bias.to(x.dtype), dilation=self.head.dilation)
        else:
            x = self.head(x)
        return self.head_bn(x)

    def forward(self, images: torch.Tensor, grid: FeatureGrid | None = None) -> torch.Tensor:
        """``[B, 3, H, W]`` 0..1 -> ``[B, C, grid.h, grid.w]`` sampled at ``grid``'s cell centres.

        The resampling runs in float32 with autocast off (its output is float32): under bf16 autocast the
        sampling coordinates would otherwise be rounded to bf16 (8 significant bits: up to 0.8 px off at
        854x476)."""
        out = self.forward_native(images)
        H, W = images.shape[-2:]
        native = self.native_grid((W, H))
        if grid is None or grid == native:
            return out
        with torch.autocast(device_type=out.device.type, enabled=False):
            centres = grid.centres(device=out.device)  # [h*w, 2] working px, float32
            g = native.to_norm(centres).view(1, grid.h, grid.w, 2).expand(out.shape[0], -1, -1, -1)
            return F.grid_sample(out.float(), g.float(), mode="bilinear", padding_mode="border",
                                 align_corners=False)


def count_parameters(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
