"""The Wav2Lip generator, written for edge-retalk with the official state-dict layout.

Keys and shapes equal those of the public `wav2lip.pth` / `wav2lip_gan.pth` (see
../shared/checkpoint_layouts/), so those files load into it unchanged. For litert-torch, which
cannot convert a transposed convolution with output padding, the stride-2 ones switch to padding
0 and a crop afterwards (the same maths; see `Conv2dTranspose.for_litert`).
"""

from __future__ import annotations

import torch
from torch import nn

FACE_SIZE = 96
MEL_STEPS = 16
MEL_BANDS = 80


class Conv2d(nn.Module):
    """Convolution + batch norm + ReLU, optionally residual (the official `conv.Conv2d`)."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, residual: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class Conv2dTranspose(nn.Module):
    """Transposed convolution + batch norm + ReLU (the official `conv.Conv2dTranspose`).

    With `for_litert` set (see `export.job.litert_form`), a layer with output padding computes
    padding 0 followed by a crop of `padding` pixels at the start of each axis: the same output,
    in a form litert-torch converts. Every other converter gets the layer as it is: OpenVINO then
    fuses it with its INT8 neighbours, where the crop left a slow slice and a float quantiser
    between them (Wav2Lip INT8 a quarter faster: 4.0 instead of 5.6 ms a frame on 2 Xeon threads)."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, output_padding: int = 0):
        super().__init__()
        conv = nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding=output_padding)
        self.conv_block = nn.Sequential(conv, nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.for_litert = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv_block[0]
        if self.for_litert and conv.output_padding[0]:
            padding, extra = conv.padding[0], conv.output_padding[0]
            out = nn.functional.conv_transpose2d(x, conv.weight, conv.bias, conv.stride)
            end = out.shape[-1] - padding + extra
            out = out[:, :, padding:end, padding:end]
        else:
            out = conv(x)
        return self.act(self.conv_block[1](out))


class FaceEncoderBlock(nn.Sequential):
    """One resolution of the face encoder (its own class only so that converters that name layers
    by class, such as litert-torch, tell encoder and decoder blocks apart)."""


class FaceDecoderBlock(nn.Sequential):
    """One resolution of the face decoder (see FaceEncoderBlock)."""


class Wav2Lip(nn.Module):
    """Inputs: mel (B, 1, 80, 16) and face (B, 6, 96, 96): the masked target crop and a reference
    crop, BGR in [0, 1]. Output: the generated crop (B, 3, 96, 96) in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList([
            FaceEncoderBlock(Conv2d(6, 16, 7, 1, 3)),
            FaceEncoderBlock(Conv2d(16, 32, 3, 2, 1), Conv2d(32, 32, 3, 1, 1, True), Conv2d(32, 32, 3, 1, 1, True)),
            FaceEncoderBlock(Conv2d(32, 64, 3, 2, 1), *[Conv2d(64, 64, 3, 1, 1, True) for _ in range(3)]),
            FaceEncoderBlock(Conv2d(64, 128, 3, 2, 1), *[Conv2d(128, 128, 3, 1, 1, True) for _ in range(2)]),
            FaceEncoderBlock(Conv2d(128, 256, 3, 2, 1), *[Conv2d(256, 256, 3, 1, 1, True) for _ in range(2)]),
            FaceEncoderBlock(Conv2d(256, 512, 3, 2, 1), Conv2d(512, 512, 3, 1, 1, True)),
            FaceEncoderBlock(Conv2d(512, 512, 3, 1, 0), Conv2d(512, 512, 1, 1, 0)),
        ])
        self.audio_encoder = nn.Sequential(
            Conv2d(1, 32, 3, 1, 1), Conv2d(32, 32, 3, 1, 1, True), Conv2d(32, 32, 3, 1, 1, True),
            Conv2d(32, 64, 3, (3, 1), 1), Conv2d(64, 64, 3, 1, 1, True), Conv2d(64, 64, 3, 1, 1, True),
            Conv2d(64, 128, 3, 3, 1), Conv2d(128, 128, 3, 1, 1, True), Conv2d(128, 128, 3, 1, 1, True),
            Conv2d(128, 256, 3, (3, 2), 1), Conv2d(256, 256, 3, 1, 1, True),
            Conv2d(256, 512, 3, 1, 0), Conv2d(512, 512, 1, 1, 0),
        )
        self.face_decoder_blocks = nn.ModuleList([
            FaceDecoderBlock(Conv2d(512, 512, 1, 1, 0)),
            FaceDecoderBlock(Conv2dTranspose(1024, 512, 3, 1, 0), Conv2d(512, 512, 3, 1, 1, True)),
            FaceDecoderBlock(Conv2dTranspose(1024, 512, 3, 2, 1, 1), *[Conv2d(512, 512, 3, 1, 1, True) for _ in range(2)]),
            FaceDecoderBlock(Conv2dTranspose(768, 384, 3, 2, 1, 1), *[Conv2d(384, 384, 3, 1, 1, True) for _ in range(2)]),
            FaceDecoderBlock(Conv2dTranspose(512, 256, 3, 2, 1, 1), *[Conv2d(256, 256, 3, 1, 1, True) for _ in range(2)]),
            FaceDecoderBlock(Conv2dTranspose(320, 128, 3, 2, 1, 1), *[Conv2d(128, 128, 3, 1, 1, True) for _ in range(2)]),
            FaceDecoderBlock(Conv2dTranspose(160, 64, 3, 2, 1, 1), *[Conv2d(64, 64, 3, 1, 1, True) for _ in range(2)]),
        ])
        self.output_block = nn.Sequential(Conv2d(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid())

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        x = self.audio_encoder(mel)
        skips = []
        y = face
        for block in self.face_encoder_blocks:
            y = block(y)
            skips.append(y)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), skips.pop()), dim=1)
        return self.output_block(x)
