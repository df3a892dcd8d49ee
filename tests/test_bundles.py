"""An avatar bundle is checked whole when it is loaded: its loop video and landmarks are the ones
its description names (checksums), none of its files leads out of it, the loop's size, frame rate
and frame count agree with the description, and every landmark is finite. Tampering is one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from edge_retalk import EdgeRetalkError, prepare_avatar
from edge_retalk.avatar import Avatar
from edge_retalk.engines.manifest import sha256_of
from edge_retalk.models import model_path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bundle") / "avatar"
    prepare_avatar(model_path("demo_portrait.png"), folder, loop_seconds=1.0)
    return folder


@pytest.fixture(scope="module")
def other_loop(tmp_path_factory) -> Path:
    """Another face's loop: a real clip's bundle, or the portrait's still one (another video all the same)."""
    folder = tmp_path_factory.mktemp("other") / "avatar"
    prepare_avatar(model_path("demo_portrait.png"), folder, loop_seconds=1.0, still=True)
    return folder / "loop.mp4"


def tampered(bundle: Path, tmp_path: Path, change) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    change(copy)
    return copy


def describe(copy: Path, **fields) -> None:
    """Rewrite avatar.json as someone covering their tracks would (checksums made to match)."""
    path = copy / "avatar.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def swap_loop(other: Path):
    return lambda copy: shutil.copy(other, copy / "loop.mp4")


def link_out(copy: Path) -> None:
    outside = copy.parent / "elsewhere.mp4"
    shutil.copy(copy / "loop.mp4", outside)
    (copy / "loop.mp4").unlink()
    os.symlink(outside, copy / "loop.mp4")


def audio_only(copy: Path) -> None:
    shutil.copy(model_path("demo_speech.wav"), copy / "loop.mp4")
    describe(copy, loop_sha256=sha256_of(copy / "loop.mp4"))


def other_size(other: Path):
    def change(copy: Path) -> None:
        shutil.copy(other, copy / "loop.mp4")
        describe(copy, loop_sha256=sha256_of(copy / "loop.mp4"), width=256)
    return change


def bad_point(value: float):
    def change(copy: Path) -> None:
        points = np.load(copy / "landmarks.npy")
        points[3, 100, 1] = value
        np.save(copy / "landmarks.npy", points)
        describe(copy, landmarks_sha256=sha256_of(copy / "landmarks.npy"))
    return change


def test_an_untouched_bundle_loads(bundle):
    avatar = Avatar(bundle)
    assert avatar.info.frames == 25 and np.isfinite(avatar.landmarks).all()


@pytest.mark.parametrize("name, change, message", [
    ("swapped loop", "swap", "is not the loop this bundle was prepared with"),
    ("symlink out", link_out, "not a file of the bundle itself"),
    ("audio-only loop", audio_only, "has no video stream"),
    ("size disagrees", "size", "the bundle says 256x512"),
    ("one NaN point", bad_point(float("nan")), "frame 3 has NaN or infinite points"),
    ("one infinite point", bad_point(float("inf")), "frame 3 has NaN or infinite points"),
    ("landmarks swapped", lambda copy: np.save(copy / "landmarks.npy", np.load(copy / "landmarks.npy") + 1),
     "are not the landmarks this bundle was prepared with"),
])
def test_a_tampered_bundle_is_refused_in_one_line(bundle, other_loop, tmp_path, name, change, message):
    change = {"swap": swap_loop(other_loop), "size": other_size(other_loop)}.get(change, change)
    copy = tampered(bundle, tmp_path, change)
    with pytest.raises(EdgeRetalkError, match=message):
        Avatar(copy)


def test_live_says_so_in_one_line(bundle, other_loop, tmp_path):
    copy = tampered(bundle, tmp_path, swap_loop(other_loop))
    result = run_cli("live", "--avatar", copy, "--audio-source", str(model_path("demo_speech.wav")), "--no-serve",
                     "--no-window", timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "prepare it again" in result.stderr, result.stderr
