"""The manifest beside every exported model: what the runtime needs to run it, never guessed.

`model.onnx` has `model.onnx.json` beside it. Unknown fields are rejected, paths must stay inside
the manifest's folder, and the model file and its companions (an OpenVINO IR's .bin) must match
their recorded checksums.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import EdgeRetalkError
from ..io.schema import bounded, from_json, read_json
from .cache import cache_dir, load_cache, save_cache

MANIFEST_SUFFIX = ".json"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: list[int | str]
    dtype: str
    role: str = ""
    """What the tensor is to the runtime ("mel", "face", "style", "generated"), whatever the
    engine calls it; empty in manifests written before roles, whose inputs are in that order."""


@dataclass(frozen=True)
class Manifest:
    """One exported network: format, precision, tensors and the conventions of its inputs.
    `style_encoder` names the network a VideoReTalking generator needs once per reference (its
    file is among the checksummed companions); `metadata` holds our own models' constants."""

    arch: str
    format: str
    precision: str
    file: str
    sha256: str
    companions: dict[str, str]
    source_sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    layout: str
    colour_order: str
    value_range: list[float]
    face_size: int = bounded(0, 4096)
    mel_steps: int = bounded(0, 10_000)
    exporter: str
    style_encoder: str = ""
    metadata: dict = field(default_factory=dict)
    """Constants the runtime needs beside the network (a shape space, a crop geometry)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def matches_digest(path: Path, digest: str) -> bool:
    """Whether `path` hashes to `digest`. A file that matched before and is unchanged since (same
    device, inode, size, modification time and status-change time, which no one can set back) is
    not read again: hashing the 36 MB INT8 Wav2Lip took 45 ms of every start on the Xeon, and
    several times that on a board. Files that matched are remembered in the cache folder."""
    state = path.stat()
    identity = [str(path.resolve()), state.st_dev, state.st_ino, state.st_size, state.st_mtime_ns, state.st_ctime_ns]
    record = cache_dir() / "verified.json"
    verified = load_cache(record)
    if verified.get(digest) == identity:
        return True
    if sha256_of(path) != digest:
        return False
    save_cache({**verified, digest: identity}, record)
    return True


def manifest_path(model: Path) -> Path:
    return model.with_name(model.name + MANIFEST_SUFFIX)


def write_manifest(manifest: Manifest, folder: Path) -> Path:
    path = manifest_path(folder / manifest.file)
    path.write_text(manifest.to_json())
    return path


def load_manifest(path: Path) -> tuple[Manifest, Path]:
    """Read and validate a manifest (given itself or its model file); returns it and the model path."""
    if path.suffix != MANIFEST_SUFFIX:
        path = manifest_path(path)
    if not path.is_file():
        raise EdgeRetalkError(f"{path}: no manifest beside the model (export it with edge-retalk export)")
    manifest = from_json(Manifest, read_json(path, "manifest"), f"{path}: invalid manifest")
    model = (path.parent / manifest.file).resolve()
    if path.parent.resolve() not in model.parents:
        raise EdgeRetalkError(f"{path}: the model path {manifest.file!r} leaves the manifest's folder")
    if not model.is_file():
        raise EdgeRetalkError(f"{path}: model file {manifest.file} is missing")
    if not matches_digest(model, manifest.sha256):
        raise EdgeRetalkError(f"{model}: does not match its manifest (sha256 differs); refusing to load it")
    if manifest.style_encoder and manifest.style_encoder not in manifest.companions:
        raise EdgeRetalkError(f"{path}: its style encoder {manifest.style_encoder!r} is not among its checksummed files")
    for name, digest in manifest.companions.items():
        companion = (path.parent / name).resolve()
        if path.parent.resolve() not in companion.parents or not companion.is_file():
            raise EdgeRetalkError(f"{path}: companion file {name!r} is missing or outside the manifest's folder")
        if not matches_digest(companion, digest):
            raise EdgeRetalkError(f"{companion}: does not match its manifest (sha256 differs); refusing to load it")
    return manifest, model
