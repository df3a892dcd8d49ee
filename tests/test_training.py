"""The training recipes and `enroll` on real footage, with step budgets small enough for CI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_cli
from edge_retalk.manifest import load_manifest
from edge_retalk.media import load_audio
from test_run import video_facts

SMALL = ("clips/grid_*", "clips/lrs2_00004", "clips/lrs2_00008", "train/lrs3gt_gVfgkFaswn4*")


def module(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"edge_retalk.training.{name}", *map(str, args)],
                          capture_output=True, text=True, timeout=900)


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
                      "--minutes", 2)
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
                     "--renderer-steps", 6, "--shape-steps", 6, "-q")
    assert result.returncode == 0, result.stderr
    return folder, result


def test_enroll_writes_a_bundle_with_personal_networks_and_a_report(enrolled):
    folder, result = enrolled
    assert "held-out" in result.stdout and "Traceback" not in result.stderr
    for name in ("avatar.json", "loop.mp4", "landmarks.npy", "reference.png", "enroll.json",
                 "lip_shape.fp32.tflite", "mouth_renderer.fp32.tflite"):
        assert (folder / name).is_file(), name
    report = json.loads((folder / "enroll.json").read_text())
    assert report["held_out_frames"] > 20
    assert {"r_opening", "lmd", "psnr", "ssim"} <= set(report["personal"]) & set(report["generic"])
    shape, _ = load_manifest(folder / "lip_shape.fp32.tflite")
    assert np.abs(np.asarray(shape.metadata["rest"])).max() > 0, "the person's own rest shape"
    assert not list(folder.parent.glob(".person.enroll")), "work folder removed"


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


def test_enroll_refuses_bad_footage_with_one_line(data, tmp_path):
    cases = [(data / "portraits" / "photo_einstein.png", "not a photo"),
             (data / "clips" / "lrs2_00002.mp4", "too short")]
    for face, expected in cases:
        result = run_cli("enroll", "--face", face, "-o", tmp_path / "person", "-q")
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert expected in result.stderr, result.stderr
        assert not (tmp_path / "person").exists()
