"""Odd but valid media, from the bundled portrait and speech: tiny frames, display matrices that
mirror, float audio far beyond full scale, file names that FFmpeg would take for a protocol, and
output names longer than the file system allows."""

from __future__ import annotations

import itertools
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from conftest import run_cli
from edge_retalk.io.media import iter_video_frames, load_audio
from edge_retalk.models import model_path
from edge_retalk.provenance import watermark

PORTRAIT, SPEECH = model_path("demo_portrait.png"), model_path("demo_speech.wav")
IDENTITY = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
MATRICES = {"mirrored left-right": (0xFFFF0000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000),
            "mirrored top-bottom": (0x10000, 0, 0, 0, 0xFFFF0000, 0, 0, 0, 0x40000000)}


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def video(path: Path, frames: list[np.ndarray], codec: str = "libx264", pix_fmt: str = "yuv420p") -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    return path


def speech_clip(tmp_path: Path) -> Path:
    """The bundled speech's first second."""
    samples = load_audio(SPEECH)[:16000]
    path = tmp_path / "second.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray((samples * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_a_one_pixel_video_is_refused_and_tiny_frames_are_marked(tmp_path):
    grey = np.full((1, 1, 3), 128, np.uint8)
    tiny = video(tmp_path / "tiny.mkv", [grey] * 10, "ffv1", "yuv444p")
    assert "unsupported video size 1x1 (at least 2x2" in one_line_error(
        run_cli("run", "--face", tiny, "--audio", speech_clip(tmp_path), "-o", tmp_path / "o.mp4", "-q"))
    small = video(tmp_path / "small.mkv", [np.full((3, 3, 3), 128, np.uint8)] * 10, "ffv1", "yuv444p")
    assert "no face found" in one_line_error(
        run_cli("run", "--face", small, "--audio", speech_clip(tmp_path), "-o", tmp_path / "o.mp4", "-q"))
    for side in (1, 2, 3):  # what the writer gets of such a frame (an even part) is marked like any other
        assert watermark.embed(np.full((side, side, 3), 128, np.uint8)).shape == (side, side, 3)


@pytest.mark.parametrize("mirror", MATRICES)
def test_a_display_matrix_that_mirrors_comes_out_as_players_show_it(tmp_path, mirror):
    """The portrait stored mirrored, with a display matrix that mirrors it back (as front cameras
    record): read as a rotation alone, a left-right mirror was 180 degrees, upside down."""
    portrait = cv2.imread(str(PORTRAIT))
    stored = portrait[:, ::-1] if mirror == "mirrored left-right" else portrait[::-1]
    movie = bytearray(video(tmp_path / "stored.mp4", [np.ascontiguousarray(stored)] * 25).read_bytes())
    at = movie.find(IDENTITY, movie.find(b"tkhd"))
    movie[at:at + len(IDENTITY)] = struct.pack(">9I", *MATRICES[mirror])
    (tmp_path / "camera.mp4").write_bytes(bytes(movie))
    shown = next(iter_video_frames(tmp_path / "camera.mp4"))
    assert np.abs(shown.astype(int) - portrait).mean() < 8 < np.abs(shown.astype(int) - portrait[::-1, ::-1]).mean()
    result = run_cli("run", "--face", tmp_path / "camera.mp4", "--audio", speech_clip(tmp_path),
                     "-o", tmp_path / "out.mp4", "-q")
    assert result.returncode == 0, result.stderr
    top = slice(0, portrait.shape[0] // 3)  # above the mouth: as shown, never upside down
    for frame in itertools.islice(iter_video_frames(tmp_path / "out.mp4"), 10):
        assert np.abs(frame[top].astype(int) - portrait[top]).mean() < 8


@pytest.mark.parametrize("peak", [30.0, 1e30])
def test_float_audio_beyond_full_scale_is_normalised_or_refused_naming_the_audio(tmp_path, peak):
    samples = load_audio(SPEECH)[:16000]
    loud = tmp_path / "loud.wav"
    with av.open(str(loud), "w") as container:
        stream = container.add_stream("pcm_f32le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray((samples / np.abs(samples).max() * peak)[None].astype(np.float32),
                                           format="flt", layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    result = run_cli("run", "--face", PORTRAIT, "--audio", loud, "-o", tmp_path / "out.mp4", "-q")
    if peak < 32:
        assert result.returncode == 0, result.stderr
        assert np.abs(load_audio(loud)).max() == pytest.approx(1.0)
    else:
        assert "loud.wav: audio samples reach 1e+30, far outside -1..1" in one_line_error(result)


def test_an_input_named_like_an_ffmpeg_protocol_is_read_as_a_file(tmp_path):
    shutil.copy(speech_clip(tmp_path), tmp_path / "pipe:0.mp4")
    result = subprocess.run([sys.executable, "-c", "from edge_retalk.cli import main; main()", "run", "--face", PORTRAIT,
                             "--audio", "pipe:0.mp4", "-o", "out.mp4", "-q"], cwd=tmp_path, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert result.returncode == 0, result.stderr
    assert load_audio(tmp_path / "out.mp4").size == pytest.approx(16000, abs=1600)


def test_an_output_name_longer_than_the_file_system_allows_is_one_line(tmp_path):
    result = run_cli("run", "--face", PORTRAIT, "--audio", SPEECH, "-o", tmp_path / ("x" * 300 + ".mp4"), "-q")
    assert "cannot be an output (File name too long)" in one_line_error(result)


def turned(source: Path, path: Path, degrees: float) -> Path:
    """`source` (an mp4) with every track's display matrix turning it by `degrees`."""
    movie, at = bytearray(source.read_bytes()), 0
    cos, sin = (round(f(np.radians(degrees)) * 0x10000) for f in (np.cos, np.sin))
    while (at := movie.find(b"tkhd", at + 1)) >= 0:
        matrix = movie.find(IDENTITY, at)
        movie[matrix:matrix + len(IDENTITY)] = struct.pack(">9i", cos, sin, 0, -sin, cos, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(movie))
    return path


@pytest.mark.parametrize("degrees, nearest", [(30, 0), (60, 90), (-100, 270), (180.5, 180)])
def test_a_display_matrix_off_quarter_turns_is_taken_as_the_nearest_with_a_warning(tmp_path, data, degrees, nearest):
    """A real clip whose display matrix turns it by an angle that is not a quarter turn is read as
    the same clip turned by the nearest quarter turn, and `run` says so in one line (180.5 degrees,
    within FFmpeg's 1-degree tolerance of a half turn, without a word)."""
    clip = data / "clips" / "geneface_may_5s.mp4"
    odd, exact = turned(clip, tmp_path / "odd.mp4", degrees), turned(clip, tmp_path / "exact.mp4", nearest)
    for shown, expected in zip(itertools.islice(iter_video_frames(odd), 3), iter_video_frames(exact)):
        assert np.array_equal(shown, expected)
    result = run_cli("run", "--face", odd, "--audio", speech_clip(tmp_path), "-o", tmp_path / "out.mp4", "-q")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "off a quarter turn" in line]
    if degrees == 180.5:
        assert not warnings, result.stderr
    else:
        assert len(warnings) == 1 and f"{abs(degrees - nearest) % 360:.0f} degrees off" in warnings[0], result.stderr
    first = next(iter_video_frames(tmp_path / "out.mp4"))
    assert first.shape == next(iter_video_frames(exact)).shape


DECODE_PEAK = """
import resource, sys
from pathlib import Path
from edge_retalk.io.media import iter_video_frames
frames = iter_video_frames(Path(sys.argv[1]))
next(frames)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
count = 1 + sum(1 for _ in frames)
print(count, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_decoding_a_video_holds_a_few_frames_not_all_of_them(data):
    """Decoded frames are freed as they are passed on: reading every frame's display matrix once
    kept each 1080p frame (6 MB) alive until a garbage collection, +300 MB on a 7 s clip."""
    done = subprocess.run([sys.executable, "-c", DECODE_PEAK, str(data / "clips" / "gfpgan_kim_7s.mp4")],
                          capture_output=True, text=True, timeout=120)
    count, grown_mb = done.stdout.split()
    assert int(count) > 200 and float(grown_mb) < 60, done.stdout  # 10 frames' worth (22 MB now, 478 before)
