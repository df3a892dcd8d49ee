"""Per-stage timing for `edge-retalk bench`: off (and free) unless a bench switches it on."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterator

STAGES = ("decode", "track", "audio", "generate", "blend", "encode")

_lock = threading.Lock()
_samples: dict[str, list[float]] | None = None


def enable() -> None:
    """Start collecting (clears earlier samples)."""
    global _samples
    with _lock:
        _samples = defaultdict(list)


def collected() -> dict[str, list[float]]:
    """Milliseconds per call, by stage, since `enable()`; stops collecting."""
    global _samples
    with _lock:
        samples, _samples = dict(_samples or {}), None
    return samples


@contextlib.contextmanager
def stage(name: str, frames: int = 1) -> Iterator[None]:
    """Time the enclosed block under `name` when collecting (per frame, for a block that handles
    `frames` frames at once); otherwise do nothing."""
    if _samples is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = (time.perf_counter() - start) * 1000 / frames
        with _lock:
            if _samples is not None:
                _samples[name].append(elapsed)


def peak_memory_mb() -> float:
    """This process's peak resident memory (VmHWM), which, unlike ru_maxrss, is not inherited
    from the parent that forked it."""
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def memory_mb() -> float:
    """This process's resident memory now (VmRSS), for watching a long run stay flat."""
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
