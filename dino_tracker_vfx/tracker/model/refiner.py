"""CNN-refiner of the cost volume: ``Conv(1->16, k3, p1) -> ReLU -> Conv(16->1, k3, p1)`` (~300 params).

As in the reference implementation each 3x3 filter is divided by the sum of its taps
(``NormalizedConv2d``), so at initialisation the refiner is a smoothing of the cost volume with its
scale kept, and the learned filters sharpen it.

:meth:`Refiner.forward` works on a full map (zero padding at the border). :meth:`Refiner.forward_valid`
works on a crop that carries a 2-cell margin and a validity mask, and gives *exactly* the full-map
result inside the crop (hidden activations outside the map are zeroed like the padding would); the
tracker uses it to refine only the window around the argmax.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-3  # |tap sum| floor (the reference uses 1e-8, which lets a near-zero sum blow a filter up 1e8-fold)


class NormalizedConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        self.bias = nn.Parameter(torch.empty(cout))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(cin * k * k)
        nn.init.uniform_(self.bias, -bound, bound)

    def normalized_weight(self) -> torch.Tensor:
        s = self.weight.sum(dim=(2, 3), keepdim=True)
        s = torch.where(s.abs() < EPS, torch.where(s < 0, -EPS, EPS) * torch.ones_like(s), s)
        return self.weight / s

    def forward(self, x: torch.Tensor, padding: int = 1) -> torch.Tensor:
        return F.conv2d(x, self.normalized_weight().to(x.dtype), self.bias.to(x.dtype), padding=padding)


class Refiner(nn.Module):
    """cost volume ``[B, 1, h, w]`` -> refined logits ``[B, 1, h, w]``."""

    margin = 2  # receptive-field half width of the two 3x3 convs

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.conv1 = NormalizedConv2d(1, hidden, 3)
        self.conv2 = NormalizedConv2d(hidden, 1, 3)

    def forward(self, cost: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(cost, 1)), 1)

    def forward_valid(self, crop: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        """crop ``[B, 1, k+4, k+4]`` (zeros outside the map), inside bool ``[B, 1, k+4, k+4]`` -> ``[B, 1, k, k]``.

        Equals the centre ``k x k`` of :meth:`forward` on the full zero-padded map.
        """
        hid = F.relu(self.conv1(crop, 0)) * inside[:, :, 1:-1, 1:-1].to(crop.dtype)
        return self.conv2(hid, 0)
