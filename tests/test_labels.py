"""Generated video is labelled as synthetic, `inspect` reads the label back, `--watermark` shows one."""

import json

import numpy as np

from conftest import run_cli
from edge_retalk.media import iter_video_frames

SPEECH = "unitychan_univ0003.wav"


def make(data, tmp_path, name, *flags):
    out = tmp_path / name
    result = run_cli("run", "--face", data / "portraits" / "photo_einstein.png", "--audio", data / "speech" / SPEECH,
                     "-o", out, "-q", *flags)
    assert result.returncode == 0, result.stderr
    return out


def test_inspect_reads_the_label_of_a_run(data, tmp_path):
    out = make(data, tmp_path, "labelled.mp4")
    result = run_cli("inspect", out, "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["synthetic"] is True and found["generator"] == "learned" and found["version"]
    assert any(s.startswith("video h264") for s in found["streams"])
    lines = run_cli("inspect", out).stdout.splitlines()
    assert lines[0].startswith("synthetic: yes (edge-retalk")


def test_no_label_flag_leaves_the_label_out(data, tmp_path):
    out = make(data, tmp_path, "unlabelled.mp4", "--no-label")
    assert json.loads(run_cli("inspect", out, "--json").stdout)["synthetic"] is False


def test_real_clip_has_no_label(data):
    result = run_cli("inspect", data / "clips" / "lrs2_00006.mp4")
    assert result.returncode == 0 and result.stdout.startswith("synthetic: no edge-retalk label")


def test_demo_is_labelled(tmp_path):
    out = tmp_path / "demo.mp4"
    assert run_cli("demo", "-o", out, "-q").returncode == 0
    assert json.loads(run_cli("inspect", out, "--json").stdout)["synthetic"] is True


def test_watermark_marks_the_bottom_right_corner_only(data, tmp_path):
    plain = next(iter_video_frames(make(data, tmp_path, "plain.mp4"))).astype(float)
    marked = next(iter_video_frames(make(data, tmp_path, "marked.mp4", "--watermark"))).astype(float)
    height, width = plain.shape[:2]
    corner = np.abs(plain - marked)[int(height * 0.9):, int(width * 0.7):].mean()
    rest = np.abs(plain - marked)[: int(height * 0.8)].mean()
    assert corner > 10 and rest < 0.5


def test_inspect_refuses_a_non_media_file(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    result = run_cli("inspect", fake)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {fake}: not a readable media file"]
