"""Bad input: one clear line on stderr, a non-zero exit, no traceback, and no output left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import run_cli
from edge_retalk.io.media import read_image
from edge_retalk.io.quiet import native_stderr_silenced


def assert_refused(result, tmp_path: Path, expected: str, keep: set[str] = frozenset()) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert {p.name for p in tmp_path.iterdir()} <= set(keep), list(tmp_path.iterdir())


def test_missing_file(tmp_path, speech):
    result = run_cli("run", "--face", tmp_path / "nope.mp4", "--audio", speech, "-o", tmp_path / "o.mp4")
    assert_refused(result, tmp_path, "does not exist")


def test_folder_as_input(tmp_path, speech):
    (tmp_path / "dir.mp4").mkdir()
    result = run_cli("run", "--face", tmp_path / "dir.mp4", "--audio", speech, "-o", tmp_path / "o.mp4")
    assert_refused(result, tmp_path, "directory", keep={"dir.mp4"})


def test_file_that_is_not_media(tmp_path, face):
    fake = tmp_path / "notes.wav"
    fake.write_text("this is not audio\n" * 50)
    result = run_cli("run", "--face", face, "--audio", fake, "-o", tmp_path / "o.mp4")
    assert_refused(result, tmp_path, "not a readable media file", keep={"notes.wav"})


def test_zero_byte_video(tmp_path, speech):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    result = run_cli("run", "--face", empty, "--audio", speech, "-o", tmp_path / "o.mp4")
    assert_refused(result, tmp_path, "empty", keep={"empty.mp4"})


def test_audio_with_no_samples(tmp_path, face):
    empty = tmp_path / "silent.wav"
    with wave.open(str(empty), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
    result = run_cli("run", "--face", face, "--audio", empty, "-o", tmp_path / "o.mp4")
    assert_refused(result, tmp_path, "no samples", keep={"silent.wav"})


def test_image_with_no_face(data, tmp_path, speech):
    result = run_cli("run", "--face", data / "portraits" / "nonhuman_chelsea.png", "--audio", speech,
                     "-o", tmp_path / "o.mp4")
    assert_refused(result, tmp_path, "no face found in the image")


def test_video_without_any_face(data, tmp_path, speech):
    cat = read_image(data / "portraits" / "nonhuman_chelsea.png")[:300, :450]
    video = tmp_path / "cat.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 450, 300, "yuv420p"
        for shift in range(30):
            frame = av.VideoFrame.from_ndarray(np.roll(cat, shift, axis=1), format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    result = run_cli("run", "--face", video, "--audio", speech, "-o", tmp_path / "o.mp4")
    assert_refused(result, tmp_path, "no face found in any frame", keep={"cat.mp4"})


def test_output_in_missing_folder(tmp_path, face, speech):
    result = run_cli("run", "--face", face, "--audio", speech, "-o", tmp_path / "missing" / "o.mp4")
    assert_refused(result, tmp_path, "output folder does not exist")


def test_output_equal_to_input(data, tmp_path, speech):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes((data / "clips" / "lrs2_00006.mp4").read_bytes())
    before = clip.read_bytes()
    result = run_cli("run", "--face", clip, "--audio", speech, "-o", clip)
    assert_refused(result, tmp_path, "overwrite an input", keep={"clip.mp4"})
    assert clip.read_bytes() == before


def test_output_that_is_a_hard_or_symbolic_link_to_an_input(data, tmp_path, speech):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes((data / "clips" / "lrs2_00006.mp4").read_bytes())
    before = clip.read_bytes()
    (tmp_path / "hard.mp4").hardlink_to(clip)
    (tmp_path / "soft.mp4").symlink_to(clip)
    for name in ("hard.mp4", "soft.mp4"):
        result = run_cli("run", "--face", clip, "--audio", speech, "-o", tmp_path / name)
        assert_refused(result, tmp_path, "overwrite an input", keep={"clip.mp4", "hard.mp4", "soft.mp4"})
    assert clip.read_bytes() == before


def test_live_recording_onto_its_own_speech_file(data, tmp_path, face):
    """`live --record X` where X is the file played as speech (or a link to it) is refused."""
    avatar = tmp_path / "avatar"
    assert run_cli("prepare", "--face", face, "-o", avatar).returncode == 0
    speech = tmp_path / "speech.mp4"
    speech.write_bytes((data / "clips" / "lrs2_00006.mp4").read_bytes())
    before = speech.read_bytes()
    (tmp_path / "hard.mp4").hardlink_to(speech)
    for record in (speech, tmp_path / "hard.mp4"):
        result = run_cli("live", "--avatar", avatar, "--audio-source", speech, "--record", record, "--no-serve",
                         "--no-window")
        assert_refused(result, tmp_path, "overwrite an input", keep={"avatar", "speech.mp4", "hard.mp4"})
    assert speech.read_bytes() == before


def test_huge_photo_is_refused_from_its_header(tmp_path, speech):
    """A 6000x6000 JPEG (a few hundred KB, 108 MB once decoded) is refused before decoding."""
    import cv2

    photo = tmp_path / "huge.jpg"
    cv2.imwrite(str(photo), np.full((6000, 6000, 3), 128, np.uint8))
    result = run_cli("run", "--face", photo, "--audio", speech, "-o", tmp_path / "o.mp4")
    assert_refused(result, tmp_path, "larger than 4096x4096", keep={"huge.jpg"})


def test_output_name_of_the_longest_length_a_folder_allows(tmp_path, face, speech):
    """A 250-character file name works: the hidden temporary file beside it has a shorter name."""
    out = tmp_path / ("o" * 246 + ".mp4")
    result = run_cli("run", "--face", face, "--audio", speech, "-o", out, "-q")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_unknown_option_value(tmp_path, face, speech):
    result = run_cli("run", "--face", face, "--audio", speech, "-o", tmp_path / "o.mp4", "--preset", "warp")
    assert_refused(result, tmp_path, "Invalid value for '--preset'")
    assert result.returncode == 2


def test_unknown_option(tmp_path, face, speech):
    result = run_cli("run", "--face", face, "--audio", speech, "-o", tmp_path / "o.mp4", "--colour", "red")
    assert_refused(result, tmp_path, "No such option")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_leaves_no_partial_output(data, tmp_path, stop):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    command = [sys.executable, "-c", "from edge_retalk.cli import main; main()", "run",
               "--face", str(data / "clips" / "gfpgan_kim_7s.mp4"),
               "--audio", str(data / "speech" / "musetalk_eng_60s.wav"), "-o", str(out_dir / "o.mp4"), "-q"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any(out_dir.iterdir()):
        time.sleep(0.1)
    assert any(out_dir.iterdir()), "the run never started writing"
    time.sleep(0.5)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip() == "interrupted"
    assert list(out_dir.iterdir()) == []


STUCK_RUN = """
import signal, sys, time
from pathlib import Path
from edge_retalk.io.workers import force_stop_later, mark_partial
partial = Path(sys.argv[1])
partial.write_bytes(b"half a video")
mark_partial(partial)
signal.signal(signal.SIGTERM, lambda *_: force_stop_later())
print("writing", flush=True)
while True:
    time.sleep(0.05)
"""


def test_a_run_that_swallows_the_interrupt_still_stops(tmp_path):
    """Native code can swallow the KeyboardInterrupt or wait for ever on its own lock: the first
    signal must still end the process, without its partial output."""
    partial = tmp_path / ".o.part.mp4"
    process = subprocess.Popen([sys.executable, "-c", STUCK_RUN, str(partial)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "writing"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not partial.exists()


def test_overlapping_native_silences_give_stderr_back(tmp_path):
    """The tracker (one thread) and the generator (another) silence native logs while they load,
    and their silences can end in either order: stderr must come back either way, or the run's
    one-line error is never seen."""
    silences = [native_stderr_silenced(), native_stderr_silenced()]
    before = os.fstat(2)
    silences[0].__enter__()
    silences[1].__enter__()
    assert os.path.samefile("/proc/self/fd/2", os.devnull)
    silences[0].__exit__(None, None, None)
    assert os.path.samefile("/proc/self/fd/2", os.devnull), "still silenced while the other loads"
    silences[1].__exit__(None, None, None)
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


@pytest.mark.parametrize("after", [0.02, 0.1, 0.2])
def test_ctrl_c_while_modules_import_is_one_line_and_exit_130(after):
    """The command as installed (`edge_retalk.launcher:main`), interrupted while numpy, OpenCV
    and PyAV load (they take a quarter of a second): one line, exit 130, no traceback."""
    code = ("import sys; sys.stderr.write('started\\n'); sys.stderr.flush(); "
            "from edge_retalk.launcher import main; sys.argv[1:] = ['devices']; main()")
    # as from a shell: test runners' workers (pytest-xdist) ignore SIGINT, which a child inherits,
    # and Python only turns SIGINT into KeyboardInterrupt where it was not ignored at start
    process = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stderr.readline() == "started\n"
    time.sleep(after)
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130, rest
    assert rest.strip() == "interrupted", rest
