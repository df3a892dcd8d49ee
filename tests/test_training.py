"""The training recipes and `enroll` on real footage, with step budgets small enough for CI."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import run_cli
from edge_retalk.engines.manifest import load_manifest
from edge_retalk.io.media import iter_video_frames, load_audio
from test_broken_inputs import write_audio, write_video
from test_run import video_facts

SMALL = ("clips/grid_*", "clips/lrs2_00004", "clips/lrs2_00008", "train/lrs3gt_gVfgkFaswn4*")


def module(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"edge_retalk.training.{name}", *map(str, args)],
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_recipes_train_score_held_out_speakers_and_export(data, tmp_path):
    """Footage cache, shape network with held-out folds, renderer: each runs, reports, and its
    checkpoint goes through `export` with its parity check."""
    cache = tmp_path / "cache"
    footage = module("footage", "--data", data, "--cache", cache, *[a for p in SMALL for a in ("--only", p)])
    assert footage.returncode == 0, footage.stderr
    index = json.loads((cache / "index.json").read_text())
    assert len(index["clips"]) == 5 and len(index["template"]) == 10
    shape = module("lip_shape", "--cache", cache, "-o", tmp_path / "lip_shape.pt", "--folds", 2, "--steps", 30)
    assert shape.returncode == 0, shape.stderr
    report = json.loads((tmp_path / "lip_shape.report.json").read_text())
    assert set(report["held_out"]) == {c["name"] for c in index["clips"]}, "every speaker scored while held out"
    assert np.isfinite(report["held_out_median"]["r_opening"])
    renderer = module("renderer", "--cache", cache, "-o", tmp_path / "mouth_renderer.pt", "--steps", 4,
                      "--minutes", 2, "--adversarial", 0.05)
    assert renderer.returncode == 0, renderer.stderr
    for arch in ("lip_shape", "mouth_renderer"):
        result = run_cli("export", "--arch", arch, "--checkpoint", tmp_path / f"{arch}.pt", "--to", "onnx:fp32",
                         "--calib", data / "clips" / "grid_bbaf2n.mpg", "-o", tmp_path / "exported", "--no-latency")
        assert result.returncode == 0, result.stderr
        manifest, _ = load_manifest(tmp_path / "exported" / f"{arch}.fp32.onnx")
        assert manifest.arch == arch and manifest.metadata["template"]


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory):
    from conftest import shared_data_dir

    folder = tmp_path_factory.mktemp("enroll") / "person"
    result = run_cli("enroll", "--face", shared_data_dir() / "clips" / "mimictalk_trump_10s.mp4", "-o", folder,
                     "--renderer-steps", 6, "--shape-steps", 6)
    assert result.returncode == 0, result.stderr
    return folder, result


@pytest.mark.xdist_group("enrolled")  # one worker enrolls once for both
def test_enroll_writes_a_bundle_with_personal_networks_and_a_report(enrolled):
    folder, result = enrolled
    assert "held-out" in result.stdout and "Traceback" not in result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("enroll: ")]
    assert len(progress) >= 3 and "100 %" in progress[-1], result.stderr  # a log, not a terminal: lines
    for name in ("avatar.json", "loop.mp4", "landmarks.npy", "reference.png", "enroll.json",
                 "lip_shape.fp32.tflite", "mouth_renderer.fp32.tflite"):
        assert (folder / name).is_file(), name
    report = json.loads((folder / "enroll.json").read_text())
    assert report["held_out_frames"] > 20
    assert {"r_opening", "lmd", "psnr", "ssim"} <= set(report["personal"]) & set(report["generic"])
    shape, _ = load_manifest(folder / "lip_shape.fp32.tflite")
    assert np.abs(np.asarray(shape.metadata["rest"])).max() > 0, "the person's own rest shape"
    if report["personal"]["r_opening"] < report["generic"]["r_opening"]:  # as a few steps of fine-tuning leave it
        assert any("keeps the generic one" in note for note in report["notes"]), report["notes"]
    assert not list(folder.parent.glob(".person.enroll")), "work folder removed"


@pytest.mark.xdist_group("enrolled")  # one worker enrolls once for both
def test_enrolled_bundle_drives_run_and_live(enrolled, data, tmp_path):
    folder, _ = enrolled
    out = tmp_path / "run.mp4"
    result = run_cli("run", "--generator", folder, "--face", data / "clips" / "mimictalk_trump_10s.mp4",
                     "--audio", data / "speech" / "unitychan_univ0003.wav", "-o", out, "-q")
    assert result.returncode == 0, result.stderr
    assert video_facts(out)["frames"] == round(load_audio(data / "speech" / "unitychan_univ0003.wav").size / 16000 * 25)
    record = tmp_path / "live.mp4"
    result = run_cli("live", "--avatar", folder, "--audio-source", data / "speech" / "unitychan_univ0003.wav",
                     "--record", record, "--no-serve", "--no-window")
    assert result.returncode == 0, result.stderr
    assert video_facts(record)["frames"] > 25


def clip_frames(path, count: int) -> list[np.ndarray]:
    """The first `count` frames of a clip, played back and forth when it is shorter."""
    frames = list(itertools.islice(iter_video_frames(path), count))
    while len(frames) < count:
        frames += frames[::-1][: count - len(frames)]
    return frames


def refusal(face, tmp_path, *extra) -> subprocess.CompletedProcess:
    result = run_cli("enroll", "--face", face, "-o", tmp_path / "person", *extra, "-q")
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "person").exists() and not list(tmp_path.glob(".person.enroll"))
    return result


def test_enroll_refuses_a_photo_and_short_footage(data, tmp_path):
    assert "not a photo" in refusal(data / "portraits" / "photo_einstein.png", tmp_path).stderr
    assert "too short" in refusal(data / "clips" / "lrs2_00002.mp4", tmp_path).stderr


def test_enroll_refuses_several_people(data, tmp_path):
    """Two real speakers side by side for 10 s."""
    left = clip_frames(data / "clips" / "mimictalk_trump_10s.mp4", 250)
    right = clip_frames(data / "clips" / "hdtf_wda_aoc_8s.mp4", 250)
    frames = [np.hstack([cv2.resize(a, (256, 256)), cv2.resize(b, (256, 256))]) for a, b in zip(left, right)]
    face = write_video(tmp_path / "two.mp4", frames)
    assert "several people" in refusal(face, tmp_path, "--audio", data / "clips" / "mimictalk_trump_10s.mp4").stderr


def test_enroll_refuses_a_face_too_small(data, tmp_path):
    """A real speaker filmed from far away: the 512-px clip shrunk to 120 px in a 640x480 frame
    (about 34 px between the eyes: the detector still finds the face)."""
    frames = []
    for frame in clip_frames(data / "clips" / "mimictalk_trump_10s.mp4", 250):
        canvas = np.full((480, 640, 3), 90, np.uint8)
        canvas[180:300, 260:380] = cv2.resize(frame, (120, 120), interpolation=cv2.INTER_AREA)
        frames.append(canvas)
    face = write_video(tmp_path / "far.mp4", frames)
    assert "no sound track" in refusal(face, tmp_path).stderr
    speech = data / "clips" / "mimictalk_trump_10s.mp4"
    assert "too small" in refusal(face, tmp_path, "--audio", speech).stderr


def test_enroll_refuses_footage_without_speech(data, tmp_path):
    """The real footage with a silent sound track beside it."""
    silence = write_audio(tmp_path / "silence.wav", np.zeros(16000 * 10, np.float32), 16000)
    result = refusal(data / "clips" / "mimictalk_trump_10s.mp4", tmp_path, "--audio", silence)
    assert "no speech" in result.stderr


@pytest.mark.slow
def test_enroll_of_a_mouth_that_never_opens_still_works_and_says_so(data, tmp_path):
    """A real face held still for 10 s beside real speech: the bundle is written and runs, with a
    note that no open mouth could be learned from it."""
    still = clip_frames(data / "clips" / "mimictalk_trump_10s.mp4", 1) * 250
    face = write_video(tmp_path / "still.mp4", still)
    folder = tmp_path / "person"
    result = run_cli("enroll", "--face", face, "--audio", data / "clips" / "mimictalk_trump_10s.mp4", "-o", folder,
                     "--renderer-steps", 4, "--shape-steps", 4, "-q")
    assert result.returncode == 0, result.stderr
    assert "hardly opens" in result.stderr
    assert any("hardly opens" in note for note in json.loads((folder / "enroll.json").read_text())["notes"])
    out = tmp_path / "run.mp4"
    result = run_cli("run", "--generator", folder, "--face", face, "--audio", data / "speech" / "unitychan_univ0003.wav",
                     "-o", out, "-q")
    assert result.returncode == 0, result.stderr
