"""Loading user-supplied checkpoints safely, and auditing their keys against our model code.

Only `torch.load(..., weights_only=True)` is used: a checkpoint that would run code when
unpickled is refused. Legacy and zip formats, tensors saved on `cuda:0`, `module.` prefixes and
`{"state_dict": ...}` containers are all accepted.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import EdgeRetalkError
from ..io.media import check_readable

IGNORED_KEY_PARTS = ("low_res",)
MAX_CHECKPOINT_BYTES = 4 * 10 ** 9


def unpacked_size(path: Path) -> int:
    """How many bytes loading the checkpoint unpacks: a zip-format file's entries as stored in
    its directory (a small file of compressed entries can claim gigabytes), else its own size."""
    if not zipfile.is_zipfile(path):
        return path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        return path.stat().st_size


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, on the CPU, with DataParallel prefixes removed; refuses
    one that would unpack to more than `MAX_CHECKPOINT_BYTES`, one whose keys collide once the
    prefixes are removed, and one holding NaN or infinite weights (they fail deep in the export)."""
    check_readable(path)
    size = unpacked_size(path)
    if size > MAX_CHECKPOINT_BYTES:
        raise EdgeRetalkError(f"{path}: refused: it would unpack to {size / 1e9:.1f} GB "
                              f"(at most {MAX_CHECKPOINT_BYTES / 1e9:.0f} GB)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise EdgeRetalkError(f"{path}: refused: the checkpoint holds more than weights and could run code "
                              f"when loaded ({str(exc).splitlines()[0][:120]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise EdgeRetalkError(f"{path}: not a readable PyTorch checkpoint ({str(exc).splitlines()[0][:120]})") from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EdgeRetalkError(f"{path}: holds no state dict of tensors")
    kept = [key for key in state if not any(part in key for part in IGNORED_KEY_PARTS)]
    names = [key.removeprefix("module.") for key in kept]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise EdgeRetalkError(f"{path}: ambiguous: {twice[0]!r} is in it both with and without the 'module.' prefix"
                              + (f" ({len(twice) - 1} more keys too)" if len(twice) > 1 else ""))
    state = dict(zip(names, (state[key] for key in kept)))
    broken = [name for name, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if broken:
        raise EdgeRetalkError(f"{path}: refused: {len(broken)} tensor(s) hold NaN or infinite weights "
                              f"({broken[0]!r} first); a training run that diverged?")
    return state


@dataclass(frozen=True)
class KeyAudit:
    """How a checkpoint's keys compare with a model's."""

    missing: list[str]
    unexpected: list[str]
    misshaped: list[str]

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.misshaped)

    def describe(self, limit: int = 5) -> str:
        parts = []
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected), ("mis-shaped", self.misshaped)):
            if keys:
                more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
                parts.append(f"{len(keys)} {label} ({', '.join(keys[:limit])}{more})")
        return "; ".join(parts)


def expected_keys(model: nn.Module, exclude: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The model's state dict without the keys under `exclude` (parts loaded from elsewhere)."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(exclude)}


def audit_keys(model: nn.Module, state: dict[str, torch.Tensor], exclude: tuple[str, ...] = ()) -> KeyAudit:
    expected = expected_keys(model, exclude)
    return KeyAudit(
        missing=sorted(set(expected) - set(state)),
        unexpected=sorted(set(state) - set(expected)),
        misshaped=sorted(f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                         if k in state and state[k].shape != v.shape),
    )


def load_checkpoint(model: nn.Module, path: Path, allow_partial: bool = False,
                    exclude: tuple[str, ...] = ()) -> nn.Module:
    """Load `path` into `model` (eval mode); any key mismatch fails unless `allow_partial`.
    Keys under `exclude` are neither expected nor loaded (e.g. ENet's copy of LNet)."""
    state = read_state_dict(path)
    audit = audit_keys(model, state, exclude)
    if not audit.clean and not allow_partial:
        raise EdgeRetalkError(f"{path}: does not match the {type(model).__name__} layout: {audit.describe()}")
    expected = expected_keys(model, exclude)
    usable = {k: v for k, v in state.items() if k in expected and v.shape == expected[k].shape}
    model.load_state_dict(usable, strict=False)
    return model.eval()
