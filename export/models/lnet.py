"""VideoReTalking's lip-sync network LNet (96x96), written for edge-retalk with the official
state-dict layout (../shared/checkpoint_layouts/videoretalking_LNet.keys.json).

Inputs: mel (B, 1, 80, 16) and face (B, 6, 96, 96): the crop with its lower half zeroed and a
reference crop, BGR in [0, 1]. Output: the generated crop (B, 3, 96, 96) in [0, 1].

Written in export-friendly forms that keep the upstream numbers (each is tested):
- the Fourier units' 2-D real FFT and its inverse are fixed matrix products (ONNX's DFT is slow in
  onnxruntime at these sizes and missing from TFLite and older TensorRT);
- the (C, H, W) layer norm reduces over fixed axes instead of reading the input's shape.
Convolutions keep their spectral norm (`weight_orig`, `weight_u`, `weight_v`) so that official
files load; `fold_spectral_norm` turns them into plain weights before export.

Longer than most modules (about 350 lines) on purpose: it mirrors one upstream network block by
block, so that it can be read against the original and its state-dict layout in one place.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from .wav2lip import Conv2d

FACE_SIZE = 96
MEL_STEPS = 16
DESCRIPTOR = 512
ACTIVATION_SLOPE = 0.1
FFC_ACTIVATION_SLOPE = 0.01
GLOBAL_RATIO = 0.75


class LayerNorm2d(nn.Module):
    """Layer norm over (C, H, W) with a per-channel affine, as upstream, over fixed axes."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        centred = x - mean
        variance = (centred * centred).mean(dim=(1, 2, 3), keepdim=True)
        return centred * torch.rsqrt(variance + self.eps) * self.weight + self.bias


def _normed_block(cin: int, cout: int, kernel: int, *tail: nn.Module) -> nn.Sequential:
    """Spectral-normed convolution, layer norm, leaky ReLU, then `tail` (the upstream blocks)."""
    conv = spectral_norm(nn.Conv2d(cin, cout, kernel, 1, kernel // 2))
    return nn.Sequential(conv, LayerNorm2d(cout), nn.LeakyReLU(ACTIVATION_SLOPE), *tail)


class Block(nn.Module):
    """Upstream's FirstBlock2d / DownBlock2d / Jump: one `model` sequence."""

    def __init__(self, model: nn.Sequential):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UpBlock(Block):
    """Nearest-neighbour upsampling by 2, then convolution, norm and activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Attention(nn.Module):
    """Cross attention: queries and keys from the masked crop's features, values from the reference's."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim))

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.reshape(b, n, self.heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.to_q(x)), self._heads(self.to_k(x)), self._heads(self.to_v(y))
        attention = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * self.scale, dim=-1)
        out = torch.matmul(attention, v).transpose(1, 2)
        return self.to_out(out.reshape(out.shape[0], out.shape[1], -1))


class DualPreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.normx, self.normy, self.fn = nn.LayerNorm(dim), nn.LayerNorm(dim), fn

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fn(self.normx(x), self.normy(y))


class TanhGELU(nn.Module):
    """GELU with the tanh approximation, as upstream writes it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)))


class PreNormFeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = nn.Module()
        self.fn.net = nn.Sequential(nn.Linear(dim, hidden), TanhGELU(), nn.Identity(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn.net(self.norm(x))


class Transformer(nn.Module):
    """Two layers of cross attention and feed-forward over the 12x12 feature tokens."""

    def __init__(self, dim: int = 512, depth: int = 2, heads: int = 4, dim_head: int = 64, mlp_dim: int = 256):
        super().__init__()
        self.layers = nn.ModuleList(nn.ModuleList([DualPreNorm(dim, Attention(dim, heads, dim_head)),
                                                   PreNormFeedForward(dim, mlp_dim)]) for _ in range(depth))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x, y = x.flatten(2).transpose(1, 2), y.flatten(2).transpose(1, 2)
        for attention, feed_forward in self.layers:
            x = attention(x, y) + x
            x = feed_forward(x) + x
        return x.transpose(1, 2).reshape(b, c, h, w)


def dft_matrices(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the n-point DFT's angles, scaled by 1/sqrt(n) (orthonormal)."""
    k = np.arange(n)
    angle = 2 * np.pi * np.outer(k, k) / n
    scale = 1 / math.sqrt(n)
    return (torch.from_numpy((np.cos(angle) * scale).astype(np.float32)),
            torch.from_numpy((np.sin(angle) * scale).astype(np.float32)))


def inverse_real_matrices(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Matrices taking the n//2+1 half-spectrum bins (real, imaginary) back to n real samples,
    orthonormal; the imaginary parts of the DC and Nyquist bins drop out, as in a C2R transform."""
    bins = n // 2 + 1
    k, t = np.arange(bins)[:, None], np.arange(n)[None, :]
    weight = np.full((bins, 1), 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    angle = 2 * np.pi * k * t / n
    scale = weight / math.sqrt(n)
    return (torch.from_numpy((np.cos(angle) * scale).astype(np.float32)),
            torch.from_numpy((-np.sin(angle) * scale).astype(np.float32)))


class FourierUnit(nn.Module):
    """A 1x1 convolution in the frequency domain: orthonormal rfft2, conv over (real, imag)
    channel pairs, batch norm, ReLU, inverse rfft2; the transforms are matrix products."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv_layer = nn.Conv2d(channels * 2, channels * 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        h, w = int(h), int(w)
        bins = w // 2 + 1
        cos_w, sin_w = (m[:, :bins] for m in dft_matrices(w))
        cos_h, sin_h = dft_matrices(h)
        a_re, a_im = x @ cos_w, -(x @ sin_w)
        y_re, y_im = cos_h @ a_re + sin_h @ a_im, cos_h @ a_im - sin_h @ a_re
        spectrum = torch.stack((y_re, y_im), dim=2).reshape(b, 2 * c, h, bins)
        spectrum = torch.relu(self.bn(self.conv_layer(spectrum))).reshape(b, c, 2, h, bins)
        y_re, y_im = spectrum[:, :, 0], spectrum[:, :, 1]
        z_re, z_im = cos_h @ y_re - sin_h @ y_im, cos_h @ y_im + sin_h @ y_re
        back_re, back_im = inverse_real_matrices(w)
        return z_re @ back_re + z_im @ back_im


class SpectralTransform(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(cin, cout // 2, 1, bias=False), nn.BatchNorm2d(cout // 2), nn.ReLU())
        self.fu = FourierUnit(cout // 2)
        self.conv2 = nn.Conv2d(cout // 2, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(x + self.fu(x))


class FFC(nn.Module):
    """Fast Fourier convolution: local and global channel groups, exchanged both ways."""

    def __init__(self, channels: int):
        super().__init__()
        global_channels = int(channels * GLOBAL_RATIO)
        local = channels - global_channels
        self.global_in_num = global_channels

        def conv(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, 3, 1, 1, bias=False, padding_mode="reflect")

        self.convl2l, self.convl2g = conv(local, local), conv(local, global_channels)
        self.convg2l = conv(global_channels, local)
        self.convg2g = SpectralTransform(global_channels, global_channels)

    def forward(self, x_l: torch.Tensor, x_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.convl2l(x_l) + self.convg2l(x_g), self.convl2g(x_l) + self.convg2g(x_g)


class ADAIN(nn.Module):
    """Instance norm whose scale and shift come from the audio descriptor."""

    def __init__(self, channels: int, feature: int, hidden: int = 128):
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Linear(feature, hidden), nn.ReLU())
        self.mlp_gamma = nn.Linear(hidden, channels)
        self.mlp_beta = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        actv = self.mlp_shared(feature.flatten(1))
        gamma, beta = self.mlp_gamma(actv)[:, :, None, None], self.mlp_beta(actv)[:, :, None, None]
        return F.instance_norm(x) * (1 + gamma) + beta


class FFCADAIN(nn.Module):
    def __init__(self, channels: int, feature: int):
        super().__init__()
        self.ffc = FFC(channels)
        self.bn_l = ADAIN(channels - self.ffc.global_in_num, feature)
        self.bn_g = ADAIN(self.ffc.global_in_num, feature)

    def forward(self, x_l: torch.Tensor, x_g: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_l, x_g = self.ffc(x_l, x_g)
        return (F.leaky_relu(self.bn_l(x_l, z), FFC_ACTIVATION_SLOPE),
                F.leaky_relu(self.bn_g(x_g, z), FFC_ACTIVATION_SLOPE))


class FFCResBlock(nn.Module):
    def __init__(self, channels: int, feature: int):
        super().__init__()
        self.conv1, self.conv2 = FFCADAIN(channels, feature), FFCADAIN(channels, feature)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        split = x.shape[1] - self.conv1.ffc.global_in_num
        id_l, id_g = x[:, :split], x[:, split:]
        x_l, x_g = self.conv1(id_l, id_g, z)
        x_l, x_g = self.conv2(x_l, x_g, z)
        return torch.cat((id_l + x_l, id_g + x_g), dim=1)


class FFCResBlocks(nn.Module):
    def __init__(self, count: int, channels: int, feature: int):
        super().__init__()
        self.count = count
        for i in range(count):
            setattr(self, f"res{i}", FFCResBlock(channels, feature))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        for i in range(self.count):
            x = getattr(self, f"res{i}")(x, z)
        return x


class VisualEncoder(nn.Module):
    """Two encoders (masked crop, reference), cross attention at the deepest level."""

    def __init__(self, base: int = 64, top: int = 512, layers: int = 3):
        super().__init__()
        self.layers = layers
        self.first_inp = Block(_normed_block(3, base, 7))
        self.first_ref = Block(_normed_block(3, base, 7))
        for i in range(layers):
            cin, cout = min(base * 2 ** i, top), min(base * 2 ** (i + 1), top)
            if i == layers - 1:
                self.ca2 = Transformer(2 ** (i + 1) * base, 2, 4, base, base * 4)
            setattr(self, f"ref_down{i}", Block(_normed_block(cin, cout, 3, nn.AvgPool2d(2))))
            setattr(self, f"inp_down{i}", Block(_normed_block(cin, cout, 3, nn.AvgPool2d(2))))

    def forward(self, masked: torch.Tensor, ref: torch.Tensor) -> list[torch.Tensor]:
        x, r = self.first_inp(masked), self.first_ref(ref)
        features = [x]
        for i in range(self.layers):
            x, r = getattr(self, f"inp_down{i}")(x), getattr(self, f"ref_down{i}")(r)
            if i == self.layers - 1:
                features.append(torch.cat((self.ca2(x, r), r), dim=1))
            else:
                features.append(x)
        return features


class Decoder(nn.Module):
    def __init__(self, base: int = 64, top: int = 512, layers: int = 3, blocks: int = 9):
        super().__init__()
        self.layers = layers
        for i in reversed(range(layers)):
            cin = base * 2 ** (i + 1) * 2 if i == layers - 1 else min(base * 2 ** (i + 1), top)
            cout = min(base * 2 ** i, top)
            setattr(self, f"up{i}", UpBlock(_normed_block(cin, cout, 3)))
            setattr(self, f"res{i}", FFCResBlocks(blocks, cin, DESCRIPTOR))
            setattr(self, f"jump{i}", Block(_normed_block(cout, cout, 3)))
        self.final = Block(nn.Sequential(spectral_norm(nn.Conv2d(cout, 3, 7, 1, 3)), nn.Sigmoid()))

    def forward(self, features: list[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        features = list(features)
        out = features.pop()
        for i in reversed(range(self.layers)):
            out = getattr(self, f"up{i}")(getattr(self, f"res{i}")(out, z))
            out = getattr(self, f"jump{i}")(features.pop()) + out
        return self.final(out)


class LNet(nn.Module):
    """VideoReTalking's 96x96 lip-sync generator (default upstream arguments)."""

    def __init__(self):
        super().__init__()
        self.encoder = VisualEncoder()
        self.decoder = Decoder()
        self.audio_encoder = nn.Sequential(
            Conv2d(1, 32, 3, 1, 1), Conv2d(32, 32, 3, 1, 1, True), Conv2d(32, 32, 3, 1, 1, True),
            Conv2d(32, 64, 3, (3, 1), 1), Conv2d(64, 64, 3, 1, 1, True), Conv2d(64, 64, 3, 1, 1, True),
            Conv2d(64, 128, 3, 3, 1), Conv2d(128, 128, 3, 1, 1, True), Conv2d(128, 128, 3, 1, 1, True),
            Conv2d(128, 256, 3, (3, 2), 1), Conv2d(256, 256, 3, 1, 1, True),
            Conv2d(256, 512, 3, 1, 0), Conv2d(512, DESCRIPTOR, 1, 1, 0),
        )

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(face[:, :3], face[:, 3:]), self.audio_encoder(mel))


def fold_spectral_norm(model: nn.Module) -> nn.Module:
    """Replace every spectral-normed weight by the plain weight it stands for (eval-mode maths:
    no power iteration), so exporters see ordinary convolutions. Load checkpoints before this."""
    for module in model.modules():
        if hasattr(module, "weight_orig"):
            torch.nn.utils.remove_spectral_norm(module)
    return model
