"""The cache folder: what edge-retalk measured or compiled on this machine (the autotune's choices,
the digests of model files that matched, OpenVINO's compiled models), in small JSON files written
atomically. It lives in $EDGE_RETALK_CACHE, else $XDG_CACHE_HOME/edge-retalk, else
~/.cache/edge-retalk."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """Where edge-retalk keeps what it measured or compiled on this machine."""
    if os.environ.get("EDGE_RETALK_CACHE"):
        return Path(os.environ["EDGE_RETALK_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge-retalk"


def load_cache(path: Path) -> dict:
    """A JSON cache file; empty if absent or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def save_cache(cache: dict, path: Path) -> None:
    """Write a cache file atomically; a cache that cannot be written only means working it out again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.stem}-", delete=False) as handle:
            json.dump(cache, handle, indent=1)
        os.replace(handle.name, path)
    except OSError:
        pass
