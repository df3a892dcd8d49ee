"""Fuzzing the media entry points with mutated real files: only EdgeRetalkError may escape.

CI runs a small, fixed (derandomised) budget, so its result is reproducible; for a deeper, random
run: FUZZ_RANDOM=1 FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz_media.py
"""

from __future__ import annotations

import os
import tempfile
from itertools import islice
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHARED_DATA
from edge_retalk.errors import EdgeRetalkError
from edge_retalk.io.media import iter_video_frames, load_audio, probe_face, read_image

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"
SEEDS = {
    "clip.mp4": SHARED_DATA / "clips" / "lrs2_00006.mp4",
    "clip.mpg": SHARED_DATA / "clips" / "grid_bbaf2n.mpg",
    "speech.wav": SHARED_DATA / "speech" / "unitychan_univ0003.wav",
    "speech.mp3": SHARED_DATA / "speech" / "fw_hotwords.mp3",
    "face.png": SHARED_DATA / "portraits" / "photo_einstein.png",
}

mutations = st.lists(st.tuples(st.floats(0.0, 1.0), st.binary(min_size=1, max_size=64)), min_size=1, max_size=8)


def mutate(data: bytes, edits: list[tuple[float, bytes]], cut: float) -> bytes:
    out = bytearray(data[: max(1, int(len(data) * cut))])
    for where, patch in edits:
        at = int(where * (len(out) - 1))
        out[at:at + len(patch)] = patch
    return bytes(out)


def open_everything(path: Path) -> None:
    """What a run may do with an input: read it as an image, probe it and decode some frames, decode its audio."""
    steps = [lambda: read_image(path)] if path.suffix == ".png" else [
        lambda: list(islice(iter_video_frames(path), 10)) if probe_face(path) else None,
        lambda: load_audio(path),
    ]
    for step in steps:
        try:
            step()
        except EdgeRetalkError:
            pass


@pytest.mark.parametrize("name", list(SEEDS))
def test_mutated_media_fail_cleanly(data, name):
    seed = SEEDS[name].read_bytes()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=not RANDOM)
    @given(edits=mutations, cut=st.floats(0.05, 1.0))
    def check(edits, cut):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(mutate(seed, edits, cut))
            open_everything(path)

    check()
