"""Reading what the machine says about itself (/proc, /sys, the device tree), for the board
detection and the autotune's machine key."""

from __future__ import annotations

from pathlib import Path


def read_system_file(path: str, keep_nul: bool = False) -> str:
    """A /proc or /sys file as text (empty where it does not exist); device-tree strings end in
    NUL, which is dropped unless `keep_nul` (a list of strings separated by it)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return text if keep_nul else text.replace("\x00", "")
