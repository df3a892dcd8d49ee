"""Board profiles (one TOML data file per device) live in this folder; runtime/devices/profiles.py reads them (`edge_retalk.devices.profiles`)."""

from pathlib import Path

BOARDS_DIR = Path(__file__).resolve().parent
