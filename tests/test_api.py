"""The Python front door (`edge_retalk.LipSync`): the README's example as written, frames and live
speech in memory, and the same one-line errors as the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_retalk import EdgeRetalkError, LipSync
from edge_retalk.face.landmarks import LIPS
from edge_retalk.face.tracker import FaceTracker
from edge_retalk.io.media import load_audio
from edge_retalk.provenance import watermark

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) == 1, "the README has one Python example"
    return blocks[0]


def test_the_readme_python_example_runs_as_written(tmp_path):
    result = subprocess.run([sys.executable, "-c", readme_python()], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    frames, fps = re.match(r"(\d+) frames at (\d+) fps, 0 without a face", lines[0]).groups()
    assert int(frames) > 25 and int(fps) > 0
    assert lines[1] == "25 (512, 512, 3)"
    speaking, shown = map(int, re.match(r"(\d+) of (\d+) live frames showed speech", lines[2]).groups())
    assert shown == 50 and 10 <= speaking <= 30, "one second of speech in two seconds of live frames"
    assert (tmp_path / "talking.mp4").stat().st_size > 10_000 and (tmp_path / "avatar" / "avatar.json").is_file()
    assert "Traceback" not in result.stderr


def test_the_base_import_is_the_front_door_without_torch():
    code = "import sys; from edge_retalk import LipSync; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


def test_frames_in_memory_follow_the_speech_and_carry_the_watermark(face, data):
    """A photo given as an array and speech given as samples at another rate: one frame per 40 ms,
    the mouth moves with the speech, and every frame carries the invisible mark (or none when
    unlabelled)."""
    image = cv2.imread(str(face))
    speech = load_audio(data / "speech" / "unitychan_univ0003.wav", 22050)
    frames = list(LipSync().frames(image, speech, sample_rate=22050))
    assert len(frames) == round(speech.size / 22050 * 25) and frames[0].shape == image.shape
    lips = FaceTracker(25.0, smooth=False)(image)[list(LIPS), :2]
    (x0, y0), (x1, y1) = lips.min(axis=0).astype(int), lips.max(axis=0).astype(int)
    change = [float(np.abs(f[y0:y1, x0:x1].astype(int) - image[y0:y1, x0:x1]).mean()) for f in frames]
    # every frame's lips sit at the estimated closed mouth, not exactly the photo's, so the change
    # has a floor; the mouth moving with the speech is how far the change varies across frames
    assert max(change) - min(change) > 10, ("the mouth moves with the speech", change)
    assert watermark.detect_in_frames(frames[:25]).present
    plain = list(LipSync(label=False).frames(image, speech, sample_rate=22050))
    assert not watermark.detect_in_frames(plain[:25]).present


def test_bad_arguments_are_one_line_errors(face, tmp_path):
    sync = LipSync(renderer="painted")
    with pytest.raises(EdgeRetalkError, match="BGR uint8 array"):
        next(sync.frames(np.zeros((64, 64), np.uint8), np.zeros(16000, np.float32)))
    with pytest.raises(EdgeRetalkError, match="1-D float or int16"):
        next(sync.frames(face, np.zeros((2, 16000), np.float32)))
    with pytest.raises(EdgeRetalkError, match="unknown renderer"):
        LipSync(renderer="sketch")
    with pytest.raises(EdgeRetalkError, match="no such generator"):
        LipSync(generator=tmp_path / "missing.onnx")
    with pytest.raises(EdgeRetalkError, match="must be an .mp4"):
        sync.run(str(face), str(face), str(tmp_path / "out.avi"))


def test_wrong_types_and_values_are_one_line_errors(tmp_path):
    """What a caller may get wrong (None, bytes, lists, scalars, out-of-range or NaN numbers) is an
    EdgeRetalkError naming the argument, before anything deep (LiteRT, PyAV) sees it."""
    from edge_retalk.models import model_path

    portrait, speech = model_path("demo_portrait.png"), model_path("demo_speech.wav")
    for kwargs, message in [({"threads": -5}, "threads must be a whole number from 1 to 64"),
                            ({"threads": 2.5}, "threads must be a whole number"),
                            ({"amplitude": float("nan")}, "amplitude must be a number from 0 to 3"),
                            ({"amplitude": "1"}, "amplitude must be a number"),
                            ({"batch": 0}, "batch must be"), ({"renderer": None}, "unknown renderer"),
                            ({"generator": b"x.onnx"}, "generator must be a path"),
                            ({"device": 3}, "device must be")]:
        with pytest.raises(EdgeRetalkError, match=message):
            LipSync(**kwargs)
    sync = LipSync(renderer="painted")
    for args, kwargs, message in [((None, speech, tmp_path / "o.mp4"), {}, "face must be a path"),
                                  ((portrait, b"speech.wav", tmp_path / "o.mp4"), {}, "audio must be a path"),
                                  ((portrait, speech, None), {}, "output must be a path"),
                                  ((portrait, speech, tmp_path / "o.mp4"), {"crf": 99}, "crf must be"),
                                  ((portrait, speech, tmp_path / "o.mp4"), {"preset": "slow!"}, "unknown preset"),
                                  ((portrait, speech, tmp_path / "o.mp4"), {"photo_fps": float("inf")}, "photo_fps")]:
        with pytest.raises(EdgeRetalkError, match=message):
            sync.run(*args, **kwargs)
    for face, audio, message in [(portrait, 0.5, "audio must be a path or a numpy array"),
                                 (portrait, [0.1, 0.2], "audio must be a path or a numpy array"),
                                 ([[0]], speech, "face must be a path or a numpy array")]:
        with pytest.raises(EdgeRetalkError, match=message):
            next(sync.frames(face, audio))
    with pytest.raises(EdgeRetalkError, match="sample_rate must be"):
        next(sync.frames(portrait, np.zeros(1600, np.float32), sample_rate=1))
    with pytest.raises(EdgeRetalkError, match="avatar must be a path"):
        sync.live(None)


def test_a_closed_live_stream_refuses_push(tmp_path):
    from edge_retalk import prepare_avatar
    from edge_retalk.audio.visemes import Phone
    from edge_retalk.models import model_path

    prepare_avatar(model_path("demo_portrait.png"), tmp_path / "avatar", loop_seconds=1.0, still=True)
    speech = load_audio(model_path("demo_speech.wav"))[:16000]
    with LipSync(renderer="painted").live(tmp_path / "avatar") as avatar:
        avatar.push(speech)
        with pytest.raises(EdgeRetalkError, match="numpy array"):
            avatar.push(speech.tolist())
        with pytest.raises(EdgeRetalkError, match="finite start and end"):
            avatar.push(speech, phones=[Phone("m", float("nan"), 0.1)])
    with pytest.raises(EdgeRetalkError, match="live stream is closed"):
        avatar.push(speech)
