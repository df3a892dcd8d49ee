"""Shared fixtures: the real data in ../shared/data, and a runner for the installed CLI."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data_dir() -> Path:
    """../shared/data, skipping the test when it is absent (a failure under CI=true)."""
    if not SHARED_DATA.is_dir():
        message = f"real test data not found at {SHARED_DATA} (see ../shared/README.md)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


def manifest(folder: str) -> list[dict[str, str]]:
    """Rows of a shared data folder's manifest.csv (empty when the data is absent)."""
    path = SHARED_DATA / folder / "manifest.csv"
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(autouse=True, scope="session")
def own_config_and_cache_folders(tmp_path_factory) -> None:
    """Every test session makes its own test signing key and autotune measurements, and never
    touches the user's config or cache."""
    os.environ["EDGE_RETALK_CONFIG"] = str(tmp_path_factory.mktemp("config"))
    os.environ["EDGE_RETALK_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def data() -> Path:
    return shared_data_dir()


@pytest.fixture
def speech(data) -> Path:
    """A short real speech file (1.1 s)."""
    return data / "speech" / "unitychan_univ0003.wav"


@pytest.fixture
def face(data) -> Path:
    """A real one-face portrait."""
    return data / "portraits" / "photo_einstein.png"


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `edge-retalk ARGS` as a user would, capturing its output."""
    command = [sys.executable, "-c", "from edge_retalk.cli import main; main()", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
