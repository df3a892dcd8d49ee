"""Silencing native libraries (LiteRT, libpng) that write straight to file descriptor 2, and
converters that log every step."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import Iterator


_silencing = threading.Lock()
_silenced_depth = 0
_saved_stderr: int | None = None


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send fd 2 to /dev/null for the duration, so only our own one-line errors reach the user.

    Threads share fd 2: file mode loads the tracker in one thread while the generator loads in
    another, and their silences may end in either order. The first to start saves fd 2 and the
    last to end restores it; saving and restoring per call would leave fd 2 on /dev/null for good
    (and the run's error message unseen) whenever the outer silence ended first."""
    global _silenced_depth, _saved_stderr
    with _silencing:
        if _silenced_depth == 0:
            sys.stderr.flush()
            _saved_stderr = os.dup(2)
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
        _silenced_depth += 1
    try:
        yield
    finally:
        with _silencing:
            _silenced_depth -= 1
            if _silenced_depth == 0:
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)
                _saved_stderr = None


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
