"""Build checkpoint files with the exact structure of the official Wav2Lip ones (legacy format,
cuda:0 storages, their key prefixes) and weights of our choosing, from the published headers."""

from __future__ import annotations

import collections
import io
import pickle
import struct
from pathlib import Path

import torch

LAYOUTS = Path(__file__).resolve().parents[2] / "shared" / "checkpoint_layouts"
DTYPES = {"FloatStorage": torch.float32, "LongStorage": torch.int64}


class _Storage:
    def __init__(self, kind: str, key: str, numel: int):
        self.kind, self.key, self.numel = kind, key, numel


class _HeaderReader(pickle.Unpickler):
    """Reads the header's pickles without importing anything: tensors become storage references."""

    storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        if name == "_rebuild_tensor_v2":
            return lambda storage, offset, size, stride, *rest: (storage, offset, tuple(size))
        if name == "OrderedDict":
            return collections.OrderedDict
        return name

    def persistent_load(self, pid):
        storage = _Storage(pid[1], pid[2], pid[4])
        self.storages[storage.key] = storage
        return storage


def write_official(header_name: str, state: dict[str, torch.Tensor], target: Path) -> Path:
    """Append `state`'s tensors (keys without prefix) to the official header as its storages;
    the other storages (the optimizer's state) are written as zeros."""
    header = (LAYOUTS / header_name).read_bytes()
    stream = io.BytesIO(header)
    for _ in range(3):
        _HeaderReader(stream).load()
    checkpoint = _HeaderReader(stream).load()
    order = _HeaderReader(stream).load()
    by_key = {}
    for name, (storage, offset, size) in checkpoint["state_dict"].items():
        value = state[name.removeprefix("module.")]
        if offset != 0 or tuple(value.shape) != size:
            raise ValueError(f"{name}: layout {size} at offset {offset} does not fit {tuple(value.shape)}")
        by_key[storage.key] = value.to(DTYPES[storage.kind]).contiguous()
    with open(target, "wb") as handle:
        handle.write(header)
        for key in order:
            storage = _HeaderReader.storages[key]
            values = by_key.get(key, torch.zeros(storage.numel, dtype=DTYPES[storage.kind]))
            handle.write(struct.pack("<q", values.numel()))
            handle.write(values.numpy().tobytes())
    return target
