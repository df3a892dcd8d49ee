"""VideoReTalking's enhancement network ENet (384x384), written for edge-retalk with the official
state-dict layout (../shared/checkpoint_layouts/videoretalking_ENet.keys.json; its `low_res.*`
copy of LNet is ignored when loading, as upstream does, and LNet comes from LNet.pth).

ENet runs LNet at 96x96 on the downscaled crop, then upsamples its output twice with
style-modulated convolutions to 384x384. The style code depends only on the reference crop, so
it is its own entry point (`style_code`), computed once per reference rather than per frame.

Export-friendly forms that keep the upstream numbers (each is tested):
- a modulated convolution is a static convolution of the input scaled per channel by the style,
  with its output scaled per channel by the demodulation factor (the same product, reordered);
- the noise injection of the style convolutions is off (its learned strength stays in the
  state dict), so a frame's output depends only on its inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .lnet import LNet

FACE_SIZE = 384
STYLE_SIZE = 256
STYLE_FEATURES = 512
LNET_SIZE = 96
PAD = 2


def _resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def _resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class ResBlock(nn.Module):
    """Residual block that halves the resolution (bilinear)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _resize(F.leaky_relu(self.conv1(x), 0.2), 0.5)
        return F.leaky_relu(self.conv2(out), 0.2) + self.skip(_resize(x, 0.5))


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution, as conv(x * s) * d with a static weight."""

    def __init__(self, cin: int, cout: int, kernel: int, demodulate: bool, upsample: bool, eps: float = 1e-8):
        super().__init__()
        self.modulation = nn.Linear(STYLE_FEATURES, cin)
        self.weight = nn.Parameter(torch.randn(1, cout, cin, kernel, kernel) / math.sqrt(cin * kernel ** 2))
        self.demodulate, self.upsample, self.eps = demodulate, upsample, eps

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        scale = self.modulation(style)
        weight = self.weight[0]
        if self.upsample:
            x = _resize(x, 2.0)
        out = F.conv2d(x * scale[:, :, None, None], weight, padding=weight.shape[-1] // 2)
        if self.demodulate:
            energy = (scale * scale) @ (weight * weight).sum(dim=(2, 3)).transpose(0, 1)
            out = out * torch.rsqrt(energy + self.eps)[:, :, None, None]
        return out


class StyleConv(nn.Module):
    def __init__(self, cin: int, cout: int, upsample: bool):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(cin, cout, 3, demodulate=True, upsample=upsample)
        self.weight = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.modulated_conv(x, style) * math.sqrt(2) + self.bias, 0.2)


class ToRGB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(cin, 3, 1, demodulate=False, upsample=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.modulated_conv(x, style) + self.bias + _resize(skip, 2.0)


class ENet(nn.Module):
    """Inputs of `forward`: mel (B, 1, 80, 16), face (B, 6, 384, 384) (the crop with its lower half
    zeroed and the reference crop, BGR in [0, 1]) and the reference's style code (B, 512).
    Output: the generated crop (B, 3, 384, 384), nominally in [0, 1] (clip it)."""

    def __init__(self, lnet: LNet | None = None):
        super().__init__()
        self.low_res = lnet if lnet is not None else LNet()
        self.conv_body_first = nn.Conv2d(3, 256, 1)
        widths = [256, 256, 512, 512, 512, 512, 512]
        self.conv_body_down = nn.ModuleList(ResBlock(cin, cout) for cin, cout in zip(widths, widths[1:]))
        self.final_conv = nn.Conv2d(512, 512, 3, 1, 1)
        self.final_linear = nn.Linear(512 * 4 * 4, STYLE_FEATURES)
        self.style_convs = nn.ModuleList([StyleConv(3, 256, True), StyleConv(256, 256, False),
                                          StyleConv(256, 128, True), StyleConv(128, 128, False)])
        self.to_rgbs = nn.ModuleList([ToRGB(256), ToRGB(128)])

    def style_code(self, reference: torch.Tensor) -> torch.Tensor:
        """The style code (B, 512) of a reference crop (B, 3, 384, 384), BGR in [0, 1]."""
        feat = F.leaky_relu(self.conv_body_first(_resize_to(reference, STYLE_SIZE)), 0.2)
        for block in self.conv_body_down:
            feat = block(feat)
        feat = F.leaky_relu(self.final_conv(feat), 0.2)
        return self.final_linear(feat.flatten(1))

    def forward(self, mel: torch.Tensor, face: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        low = self.low_res(mel, _resize_to(face, LNET_SIZE))
        out = F.pad(low, (PAD, PAD, PAD, PAD), mode="reflect")
        skip = out
        for conv1, conv2, to_rgb in zip(self.style_convs[::2], self.style_convs[1::2], self.to_rgbs):
            out = conv2(conv1(out, style), style)
            skip = to_rgb(out, style, skip)
        crop = 4 * PAD
        return skip[:, :, crop:-crop, crop:-crop]


class StyleEncoder(nn.Module):
    """ENet's reference-to-style-code path as its own model, for export."""

    def __init__(self, enet: ENet):
        super().__init__()
        self.enet = enet

    def forward(self, reference: torch.Tensor) -> torch.Tensor:
        return self.enet.style_code(reference)
