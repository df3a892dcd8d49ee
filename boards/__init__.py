"""Board profiles (one TOML data file per device) live in this folder; runtime/profiles.py reads them."""

from pathlib import Path

BOARDS_DIR = Path(__file__).resolve().parent
