"""The `edge-retalk` command's entry point. It imports the command (numpy, OpenCV, PyAV, the
engines: a quarter of a second) inside a guard, so that a Ctrl-C while they load ends like one at
any later moment: one line and exit 130, not a KeyboardInterrupt traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .cli import main as command

        command()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
