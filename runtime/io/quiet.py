"""Silencing native libraries (LiteRT, libpng) that write straight to file descriptor 2, and
converters that log every step."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send fd 2 to /dev/null for the duration, so only our own one-line errors reach the user."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def logger_level(level: int, name: str | None = None) -> Iterator[None]:
    """Raise a logger (the root logger by default) to `level` for the duration, then restore it."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)
