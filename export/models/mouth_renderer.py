"""The learned mouth renderer: a small U-Net that paints the lip region of a lower-face crop.

In: the crop with its lip region blanked, the region's mask, a reference crop of the same face
and the target lip shape drawn as three channels (10 channels, 96 x 128). Out: the crop, BGR in
[0, 1]; only the masked region is used. Strided convolutions down to 1/8, residual blocks, and
nearest-neighbour upsampling with additive skips back up: about 0.5 GMAC per frame. The crop
geometry rides along as buffers, so the checkpoint holds everything the runtime needs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ...face.landmarks import STABLE_POINTS

IN_CHANNELS = 10
ROWS, WIDTH = 96, 128
CHANNELS = (16, 32, 64, 128)


def conv(a: int, b: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(a, b, 3, stride, 1), nn.LeakyReLU(0.2))


class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels), nn.Conv2d(channels, channels, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.body(x), 0.2)


class MouthRenderer(nn.Module):
    def __init__(self, channels: tuple[int, ...] = CHANNELS):
        super().__init__()
        c0, c1, c2, c3 = channels
        self.stem = conv(IN_CHANNELS, c0)
        self.down1 = nn.Sequential(conv(c0, c1, 2), conv(c1, c1))
        self.down2 = nn.Sequential(conv(c1, c2, 2), conv(c2, c2))
        self.down3 = nn.Sequential(conv(c2, c3, 2), Residual(c3), Residual(c3))
        self.up2, self.merge2 = conv(c3, c2), conv(c2, c2)
        self.up1, self.merge1 = conv(c2, c1), conv(c1, c1)
        self.up0 = conv(c1, c0)
        self.out = nn.Conv2d(c0, 3, 3, 1, 1)
        self.register_buffer("template", torch.zeros(len(STABLE_POINTS), 2))
        self.register_buffer("crop", torch.zeros(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 10, 96, 128) -> (batch, 3, 96, 128), BGR in [0, 1]."""
        e0 = self.stem(x)
        e1 = self.down1(e0)
        e2 = self.down2(e1)
        e3 = self.down3(e2)
        d2 = self.merge2(self.up2(F.interpolate(e3, scale_factor=2.0, mode="nearest")) + e2)
        d1 = self.merge1(self.up1(F.interpolate(d2, scale_factor=2.0, mode="nearest")) + e1)
        d0 = self.up0(F.interpolate(d1, scale_factor=2.0, mode="nearest")) + e0
        return torch.sigmoid(self.out(d0))
