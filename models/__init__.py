"""Model files shipped with edge-retalk (see NOTICE for their sources and licences)."""

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent


def model_path(name: str) -> Path:
    """Path of a shipped model or asset file, by file name."""
    return MODELS_DIR / name
