"""The audio-to-lip-shape network: a window of audio features in, the lip shape's motion
coefficients out. The features are the speech encoder's (`audio/speech_encoder.py`, 384 channels)
or, in the first generic and in personal models, a normalised log-mel window (80 bands).

A stack of 1-D convolutions over time (strided, so the window shrinks to a few steps), then a
linear head. About 0.3 M parameters. The shape space (template, basis, rest estimator), the
coefficients of the closed mouth (shown in silence), the typical mean spectrum (a live stream's stand-in until its
own is known), the gain that undoes the regression's shrinkage of the motion (measured on
held-out speakers) and, for a personal model, the person's rest shape (zeros in a generic one)
ride along as buffers, so one checkpoint file holds everything the runtime needs.
"""

from __future__ import annotations

import torch
from torch import nn

from ...audio.lip_shape import MEL_STEPS
from ...audio.speech_encoder import FEATURE_STEPS
from ...face.landmarks import SHAPE_POINTS, STABLE_POINTS

N_MELS = 80
COMPONENTS = 8
WIDTH = 128


class LipShapeNet(nn.Module):
    def __init__(self, components: int = COMPONENTS, width: int = WIDTH, channels: int = N_MELS,
                 steps: int = MEL_STEPS):
        super().__init__()
        layers = []
        for stride in (1, 2, 2, 2):
            layers += [nn.Conv1d(channels, width, 3, stride=stride, padding=1), nn.GELU()]
            channels = width
            steps = (steps - 1) // stride + 1
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(width * steps, 256), nn.GELU(),
                                  nn.Dropout(0.3), nn.Linear(256, components))
        points = len(SHAPE_POINTS) * 2
        self.register_buffer("template", torch.zeros(len(STABLE_POINTS), 2))
        self.register_buffer("basis", torch.zeros(components, points))
        self.register_buffer("scale", torch.ones(components))
        self.register_buffer("rest_weights", torch.zeros(points + 1, components))
        self.register_buffer("silent", torch.zeros(components))
        self.register_buffer("rest", torch.zeros(len(SHAPE_POINTS), 2))
        self.register_buffer("gain", torch.ones(components))
        self.register_buffer("typical_spectrum", torch.zeros(N_MELS))

    @classmethod
    def for_state(cls, state: dict[str, torch.Tensor]) -> LipShapeNet:
        """A network shaped for a checkpoint's weights (its width, input channels and window)."""
        first = state["encoder.0.weight"]
        width, channels = first.shape[:2]
        steps = MEL_STEPS if channels == N_MELS else FEATURE_STEPS
        return cls(state["basis"].shape[0], width, channels, steps)

    @property
    def reads_speech_encoder(self) -> bool:
        return self.encoder[0].in_channels != N_MELS

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(batch, channels, steps) audio features -> (batch, K) motion coefficients (inter-ocular units)."""
        return self.head(self.encoder(features)) * self.scale
