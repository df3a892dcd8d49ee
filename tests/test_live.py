"""Live mode on real speech and a real talking-head clip: avatar bundles, every audio source
(socket, stdin, file, and the microphone through a real ALSA capture device), idle and
transitions, the MJPEG page in a real browser, and labelled recordings."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli
from edge_retalk.audio.features import SAMPLE_RATE
from edge_retalk.quality.evaluate import score_generated
from edge_retalk.face.landmarks import face_height, mouth_opening
from edge_retalk.io.media import iter_video_frames, load_audio, probe_face
from edge_retalk.face.idle_motion import LEFT_EYE, RIGHT_EYE
from edge_retalk.face.tracker import FaceTracker
from edge_retalk.live.clock import SimulatedClock
from edge_retalk.live.timeline import AudioTimeline, Loudness

AVATAR_CLIP = "geneface_may_5s.mp4"
LONG_SPEECH = "musetalk_eng_60s.wav"
SHORT_SPEECH = "echomimic_en.wav"
FPS = 25
MAX_REPEATS = 12  # frames in a row (half a second) that live mode may drop, repeating the last, when both cores are busy elsewhere


def live_command(*args) -> list[str]:
    return [sys.executable, "-c", "from edge_retalk.cli import main; main()", "live", *map(str, args)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def connect(port: int, within: float = 30.0) -> socket.socket:
    deadline = time.monotonic() + within
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def speech_start(recorded: np.ndarray, speech: np.ndarray) -> int:
    """Where `speech` begins inside `recorded` (samples): the peak of their cross-correlation."""
    size = 1 << int(np.ceil(np.log2(recorded.size + speech.size)))
    scores = np.fft.irfft(np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(speech, size)), size)
    return int(np.argmax(scores[: recorded.size]))


def openings(video: Path) -> np.ndarray:
    tracker = FaceTracker(FPS, smooth=False)
    return np.array([np.nan if (p := tracker(f)) is None else float(mouth_opening(p)) for f in iter_video_frames(video)])


@pytest.fixture(scope="module")
def avatar(tmp_path_factory) -> Path:
    from conftest import shared_data_dir
    folder = tmp_path_factory.mktemp("avatar") / "may"
    result = run_cli("prepare", "--face", shared_data_dir() / "clips" / AVATAR_CLIP, "-o", folder)
    assert result.returncode == 0, result.stderr
    return folder


def test_prepare_writes_a_seamless_loop_with_its_landmarks(avatar, data):
    description = json.loads((avatar / "avatar.json").read_text())
    source_frames = sum(1 for _ in iter_video_frames(data / "clips" / AVATAR_CLIP))
    assert description["frames"] == 2 * source_frames - 2, "forward then backward, ends not repeated"
    assert description["frames_with_face"] == description["frames"]
    landmarks = np.load(avatar / "landmarks.npy")
    loop = list(iter_video_frames(avatar / "loop.mp4"))
    assert len(loop) == landmarks.shape[0] == description["frames"]
    # played back and forth: frame k and frame (2n-2-k) are the same source frame
    n = source_frames
    assert np.abs(landmarks[1] - landmarks[2 * n - 3]).max() < 1e-4
    assert np.abs(loop[1].astype(int) - loop[2 * n - 3].astype(int)).mean() < 2.0
    # the stored landmarks are the (temporally smoothed) mesh on that frame
    measured = FaceTracker(FPS, smooth=False)(loop[10])
    assert np.abs(measured[:, :2] - landmarks[10, :, :2]).mean() < 0.03 * face_height(landmarks[10])


def test_prepare_refuses_to_overwrite_and_faceless_input(avatar, tmp_path, data):
    again = run_cli("prepare", "--face", data / "clips" / AVATAR_CLIP, "-o", avatar)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "already exists" in again.stderr
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    result = run_cli("prepare", "--face", blank, "-o", tmp_path / "none")
    assert result.returncode == 1 and "no face" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "none").exists() and not list(tmp_path.glob(".none*"))


def test_a_minute_queued_at_once_reads_back_in_order_and_its_silence_is_judged_frame_by_frame(data):
    """A source far ahead of real time (a capture device faster than the clock, a TTS engine sending
    a minute at once) queues thousands of 20 ms stretches; the timeline must still read, drop and
    date them exactly (it finds them by bisection, so the live loop keeps pace)."""
    speech = load_audio(data / "speech" / LONG_SPEECH)
    clock = SimulatedClock()
    timeline = AudioTimeline(clock, clock.now())
    for k in range(0, speech.size, 320):
        timeline.push(speech[k:k + 320], arrival=float(k))
    timeline.drop(100_000, 50_000)
    expected = np.concatenate([speech[:100_000], speech[150_000:]])
    assert timeline.end == expected.size
    assert np.array_equal(timeline.read(0, timeline.end), expected)
    assert np.array_equal(timeline.read(99_000, 101_000), expected[99_000:101_000])
    assert timeline.arrival(100_000) == 149_760.0, "what moved earlier keeps its arrival"
    assert timeline.arrival(99_999) == 99_840.0
    timeline.played(600_000)
    assert not timeline.read(0, 100).any() and np.array_equal(timeline.read(600_000, 601_000), expected[600_000:601_000])
    loudness = Loudness()
    frames = expected[: expected.size // 640 * 640].reshape(-1, 640)
    for frame in frames[:250]:
        loudness.is_silent(frame)
    silent = [loudness.is_silent(frame, remember=False) for frame in frames]
    pauses = [i for i in range(1, len(silent)) if silent[i] and not silent[i - 1]]
    assert len(pauses) > 10, "real speech has pauses"
    for start in pauses:
        run = next((i for i in range(start, len(silent)) if not silent[i]), len(silent)) - start
        assert loudness.leading_silent_frames(frames[start:].ravel(), 640) == run
        assert loudness.leading_silent_frames(frames[start - 1:].ravel(), 640) == 0


def test_live_never_runs_face_detection(avatar, data, tmp_path, monkeypatch):
    from edge_retalk.face import tracker
    from edge_retalk.live.loop import LiveOptions
    from edge_retalk.live.session import LiveSetup, run_session

    def refuse(*_args, **_kwargs):
        raise AssertionError("live mode ran the face tracker")

    monkeypatch.setattr(tracker.FaceDetector, "detect", refuse)
    monkeypatch.setattr(tracker.FaceMesh, "landmarks", refuse)
    setup = LiveSetup(avatar, str(data / "speech" / "unitychan_univ0003.wav"), serve=None, window=False,
                      record=tmp_path / "r.mp4", options=LiveOptions(duration=1.0))
    report, _ = run_session(setup)
    assert report.frames == 25


@pytest.mark.slow
def test_sixty_seconds_through_the_socket_at_real_time_pace(avatar, data, tmp_path):
    speech = load_audio(data / "speech" / LONG_SPEECH)[: 60 * SAMPLE_RATE]
    assert speech.size == 60 * SAMPLE_RATE
    port, record, duration = free_port(), tmp_path / "socket.mp4", 62.0
    process = subprocess.Popen(live_command("--avatar", avatar, "--audio-source", f"tcp://127.0.0.1:{port}",
                                            "--record", record, "--duration", duration, "--stats", "--no-serve"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with connect(port) as sender:
            chunk = SAMPLE_RATE // 50
            began = time.monotonic()
            for k in range(0, speech.size, chunk):
                delay = began + k / SAMPLE_RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sender.sendall(pcm16(speech[k:k + chunk]))
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "latency p50" in stderr and "p95" in stderr and "dropped" in stderr
    assert stderr.count("stats:") >= 5, "a statistics line every 10 s"
    assert sum(1 for _ in iter_video_frames(record)) == round(duration * FPS)
    recorded = load_audio(record)
    assert abs(recorded.size - duration * SAMPLE_RATE) < 0.05 * SAMPLE_RATE
    # the speech is all there, in order, at its own pace: each 10 s piece is found where it belongs
    # (late chunks may each have added a short gap of silence, never more than 0.3 s in all)
    starts = []
    for piece in range(6):
        part = speech[piece * 10 * SAMPLE_RATE:(piece + 1) * 10 * SAMPLE_RATE]
        found = speech_start(recorded, part)
        heard = recorded[found:found + part.size]
        assert heard.size == part.size and np.corrcoef(heard, part)[0, 1] > 0.9, (piece, stderr)
        starts.append(found)
    assert starts[0] < 3 * SAMPLE_RATE, "the speech starts when it arrived, not later"
    steps = np.diff(starts) - 10 * SAMPLE_RATE
    assert np.all(steps >= 0) and steps.sum() < 0.3 * SAMPLE_RATE, (steps, stderr)
    scores = score_generated(record)
    assert abs(scores["offset"]) <= 1, scores
    # mouth opening against speech energy: real footage's median is 0.23 (eval's real row), a
    # frozen mouth's 0.12-0.14; the speech-encoder network articulates rather than follows loudness
    assert scores["av_peak"] > 0.2, scores


def test_a_silent_tcp_client_does_not_starve_the_next_sender(avatar, data, tmp_path):
    """Port 0 is announced as the port actually bound; a client that connects and sends nothing is
    dropped once another sender waits, whose speech is then heard."""
    speech = load_audio(data / "speech" / SHORT_SPEECH)
    record = tmp_path / "tcp.mp4"
    process = subprocess.Popen(live_command("--avatar", avatar, "--audio-source", "tcp://127.0.0.1:0",
                                            "--record", record, "--duration", speech.size / SAMPLE_RATE + 6,
                                            "--no-serve"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "listening to" not in line:
            line = process.stderr.readline()
            assert line, "live ended before listening"
        port = int(line.strip().rsplit(":", 1)[1])
        assert port > 0, line
        with connect(port), connect(port) as sender:
            sender.sendall(pcm16(speech))
            sender.shutdown(socket.SHUT_WR)
            _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    recorded = load_audio(record)
    found = speech_start(recorded, speech)
    heard = recorded[found:found + speech.size]
    assert heard.size == speech.size and np.corrcoef(heard, speech)[0, 1] > 0.9


def test_stdin_burst_is_played_at_real_time_and_resampled(avatar, data, tmp_path):
    speech = load_audio(data / "speech" / SHORT_SPEECH)
    resampled = load_audio(data / "speech" / SHORT_SPEECH, sample_rate=48000)
    record = tmp_path / "stdin.mp4"
    result = subprocess.run(live_command("--avatar", avatar, "--audio-source", "stdin", "--sample-rate", 48000,
                                         "--record", record, "--no-serve"),
                            input=pcm16(resampled), capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    recorded = load_audio(record)
    start = speech_start(recorded, speech)
    heard = recorded[start:start + speech.size]
    assert heard.size == speech.size, "all of the speech is in the recording"
    assert np.corrcoef(heard, speech)[0, 1] > 0.95
    frames = sum(1 for _ in iter_video_frames(record))
    assert frames * SAMPLE_RATE / FPS >= start + speech.size, "the run ends after the speech has been shown"
    assert frames * SAMPLE_RATE / FPS <= start + speech.size + 1.5 * SAMPLE_RATE


@pytest.mark.parametrize("renderer", ["painted", "learned"])
def test_idle_keeps_the_loop_moving_with_the_mouth_closed_then_speech_blends_in(avatar, data, tmp_path, renderer):
    speech = load_audio(data / "speech" / SHORT_SPEECH)[: 3 * SAMPLE_RATE]
    port, record = free_port(), tmp_path / "idle.mp4"
    process = subprocess.Popen(live_command("--avatar", avatar, "--audio-source", f"tcp://127.0.0.1:{port}",
                                            "--record", record, "--duration", 7, "--no-serve",
                                            "--renderer", renderer),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with connect(port) as sender:
            time.sleep(2.5)
            began = time.monotonic()
            for k in range(0, speech.size, 320):
                time.sleep(max(0.0, began + k / SAMPLE_RATE - time.monotonic()))
                sender.sendall(pcm16(speech[k:k + 320]))
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    frames = list(iter_video_frames(record))
    loop = list(iter_video_frames(avatar / "loop.mp4"))
    onset = speech_start(load_audio(record), speech) * FPS // SAMPLE_RATE
    assert 40 <= onset <= 100
    # idle: the loop plays on (no freeze); only the mouth region differs from it. A frame dropped
    # under load repeats the one before it, so frame k shows loop frame k or one just before it.
    upper = slice(0, 300)
    for k in range(0, onset - 5, 7):
        nearest = min(np.abs(frames[k][upper].astype(int) - loop[j % len(loop)][upper].astype(int)).mean()
                      for j in range(max(0, k - MAX_REPEATS), k + 1))
        assert nearest < 3.0
    assert np.abs(frames[10].astype(int) - frames[30].astype(int)).mean() > 1.0, "the idle loop moves"
    measured = openings(record)
    source = openings(avatar / "loop.mp4")
    idle, talking = measured[5:onset - 3], measured[onset + 3:onset + 70]
    assert np.nanmedian(idle) < 0.5 * np.nanmedian(source), "mouth closed while idle (the speaker's own is open)"
    assert np.nanpercentile(idle, 90) < 0.6 * np.nanpercentile(talking, 90), "the mouth opens with speech"
    assert np.nanstd(talking) > 2 * np.nanstd(idle), "and moves with it"
    # no jump at the transition: no step larger than the source speaker's own largest step
    steps = np.abs(np.diff(measured[onset - 5:onset + 10]))
    assert np.nanmax(steps) <= np.nanmax(np.abs(np.diff(source))) + 0.01


def test_file_source_recording_is_labelled_and_watermarked(avatar, data, tmp_path):
    record = tmp_path / "file.mp4"
    result = run_cli("live", "--avatar", avatar, "--audio-source", data / "speech" / "unitychan_univ0003.wav",
                     "--record", record, "--no-serve", "--watermark")
    assert result.returncode == 0, result.stderr
    found = json.loads(run_cli("inspect", record, "--json").stdout)
    assert found["labelled"] and found["generator"] == "learned"
    assert found["content_credentials"]["state"] == "valid" and found["watermark"]["present"]
    first = next(iter_video_frames(record))
    plain = next(iter_video_frames(avatar / "loop.mp4"))
    corner = (slice(first.shape[0] - 40, None), slice(first.shape[1] - 200, None))
    assert np.abs(first[corner].astype(int) - plain[corner].astype(int)).mean() > 5, "visible label drawn"
    unlabelled = tmp_path / "plain.mp4"
    assert run_cli("live", "--avatar", avatar, "--audio-source", data / "speech" / "unitychan_univ0003.wav",
                   "--record", unlabelled, "--no-serve", "--no-label").returncode == 0
    found = json.loads(run_cli("inspect", unlabelled, "--json").stdout)
    assert found["synthetic"] is False and found["content_credentials"]["state"] == "none"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Chromium not installed (Debian: apt install chromium) for the browser check"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@contextlib.contextmanager
def serving_live(avatar, speech, address: str, *extra):
    """A `live` process serving its page at `address` (its port accepting connections when
    entered); on leaving it is stopped and its stderr is left in the yielded dict."""
    process = subprocess.Popen(live_command("--avatar", avatar, "--audio-source", speech, "--serve", address,
                                            "--duration", 40, "--no-window", *extra),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result = {"process": process, "stderr": ""}
    try:
        connect(int(address.rsplit(":", 1)[1])).close()
        yield result
        process.terminate()
        result["stderr"] = process.communicate(timeout=60)[1]
    finally:
        process.kill()


def test_idle_and_vanishing_stream_clients_cannot_pile_up(avatar, data, tmp_path):
    """150 clients that connect and send nothing take no thread each and are timed out; a client
    that resets mid-stream leaves no traceback; afterwards a normal client is served."""
    from edge_retalk.live.server import CLIENT_TIMEOUT_SECONDS

    port = free_port()
    with serving_live(avatar, data / "speech" / LONG_SPEECH, f"127.0.0.1:{port}") as live:
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(150)]
        time.sleep(2)
        threads = int(next(line.split()[1] for line in Path(f"/proc/{live['process'].pid}/status").read_text()
                           .splitlines() if line.startswith("Threads:")))
        assert threads < 40, threads
        for _ in range(3):
            with connect(port) as vanishing:
                vanishing.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
                vanishing.recv(4096)
                vanishing.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(CLIENT_TIMEOUT_SECONDS + 2)
        frame = urllib.request.urlopen(f"http://127.0.0.1:{port}/frame.jpg", timeout=10).read()
        assert cv2.imdecode(np.frombuffer(frame, np.uint8), cv2.IMREAD_COLOR) is not None
        idle[0].settimeout(5)
        assert idle[0].recv(100) == b"", "the server closed the idle connection"
        for client in idle:
            client.close()
    assert "Traceback" not in live["stderr"], live["stderr"]


def test_serving_to_the_network_warns_and_a_token_guards_the_page(avatar, data):
    with serving_live(avatar, data / "speech" / SHORT_SPEECH, f"0.0.0.0:{free_port()}") as live:
        pass
    assert "warning: the avatar is served to the network" in live["stderr"], live["stderr"]

    port = free_port()
    with serving_live(avatar, data / "speech" / SHORT_SPEECH, f"127.0.0.1:{port}", "--serve-token", "s3cret&x") as live:
        base = f"http://127.0.0.1:{port}"
        for path in ("/", "/frame.jpg", "/stream.mjpg", "/av", "/status", "/?token=wrong"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(base + path, timeout=10)
            assert refused.value.code == 403
        page = urllib.request.urlopen(f"{base}/?token=s3cret%26x", timeout=10).read().decode()
        assert 'get("token")' in page, "the page passes its token on to its streams"
        frame = urllib.request.urlopen(f"{base}/frame.jpg?token=s3cret%26x", timeout=10).read()
        assert cv2.imdecode(np.frombuffer(frame, np.uint8), cv2.IMREAD_COLOR) is not None
        bearer = urllib.request.Request(f"{base}/status", headers={"Authorization": "Bearer s3cret&x"})
        assert json.load(urllib.request.urlopen(bearer, timeout=10))["frames"] > 0
        with pytest.raises(urllib.error.HTTPError) as refused:
            post(f"{base}/speech?token=s3cret%26x", b"RIFF")
        assert refused.value.code == 409 and "--audio-source api" in refused.value.read().decode()
    assert "warning" not in live["stderr"] and "Traceback" not in live["stderr"], live["stderr"]


def wait_for_server(base: str, process: subprocess.Popen, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            urllib.request.urlopen(f"{base}/status", timeout=5).read()
            return
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "the server never came up"
            time.sleep(0.1)


def post(url: str, body: bytes = b"", content_type: str | None = None) -> dict:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type} if content_type else {})
    return json.load(urllib.request.urlopen(request, timeout=30))


def status(base: str) -> dict:
    return json.load(urllib.request.urlopen(f"{base}/status", timeout=10))


def test_kiosk_page_plays_picture_and_sound_in_a_real_browser(avatar, data):
    """Headless Chromium, autoplay allowed as in kiosk mode, opens the page; speech posted to the
    API is heard by the page's AnalyserNode while frames arrive and are drawn, and the page shows
    the avatar's face. The MJPEG stream serves clients that only take images. The painted
    renderer keeps the server in real time on a 2-core machine while another test runs beside
    it: the page is under test here, not the renderer (the learned one's live timing is `bench`'s)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from kiosk_page import KioskPage

    browser, port = chromium(), free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(live_command("--avatar", avatar, "--audio-source", "api", "--serve",
                                            f"127.0.0.1:{port}", "--duration", 40, "--no-window",
                                            "--renderer", "painted"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_server(base, process)
        with KioskPage(browser, base + "/") as page:
            # a second of frames; on a starved machine they may take longer than a second to come
            deadline, quiet = time.monotonic() + 30, None
            while (quiet is None or quiet["drawn"] < 25) and time.monotonic() < deadline:
                time.sleep(0.5)
                quiet = page.stats()
            assert quiet and quiet["frames"] >= 25 and quiet["drawn"] >= 25, quiet
            assert quiet["sound"] == "running", quiet
            assert quiet["level"] < 0.005, "silence while idle"
            post(f"{base}/speech", (data / "speech" / LONG_SPEECH).read_bytes())
            levels = []
            for _ in range(8):
                time.sleep(0.5)
                levels.append(page.stats()["level"])
            talking = page.stats()
            assert max(levels) > 0.02, ("the page plays the speech", levels)
            assert talking["drawn"] > quiet["drawn"] + 50, "frames keep arriving and being drawn"
            assert talking["audioChunks"] > quiet["audioChunks"] + 50
            assert len(talking["delaysMs"]) > 20, "the page measures speech-in to sound-out"
            points = FaceTracker(FPS, smooth=False)(page.screenshot())
            assert points is not None, "the browser shows the avatar's face"
        with urllib.request.urlopen(f"{base}/stream.mjpg", timeout=5) as stream:
            assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            body = stream.read(200_000)
        assert body.count(b"Content-Type: image/jpeg") >= 2, "the stream sends frame after frame"
        frame = cv2.imdecode(np.frombuffer(urllib.request.urlopen(f"{base}/frame.jpg").read(), np.uint8),
                             cv2.IMREAD_COLOR)
        info = probe_face(avatar / "loop.mp4")
        assert frame.shape == (info.height, info.width, 3)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr


@pytest.mark.slow
def test_speech_api_plays_utterances_in_order_and_stop_interrupts(avatar, data, tmp_path):
    """A WAV and an MP3 posted back to back, then 22.05 kHz PCM (audio/L16) and a stream over the
    /pcm WebSocket, are each heard whole and in order in the recording, with the mouth in step;
    POST /stop silences a long utterance at once; bad bodies get a 400 with one line. With the
    painted renderer, which keeps up on a 2-core machine that runs another test beside this one:
    where frames must be dropped, the mouth shown for them is the last one drawn, behind the sound."""
    import aiohttp
    import asyncio

    port, record = free_port(), tmp_path / "api.mp4"
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(live_command("--avatar", avatar, "--audio-source", "api", "--serve",
                                            f"127.0.0.1:{port}", "--record", record, "--duration", 30,
                                            "--no-window", "--renderer", "painted"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = load_audio(data / "speech" / SHORT_SPEECH)
    second = load_audio(data / "speech" / "fw_hotwords.mp3")
    third = load_audio(data / "speech" / "unitychan_univ0003.wav")
    streamed = load_audio(data / "speech" / "musetalk_speech_like_2s.wav")
    try:
        wait_for_server(base, process)
        time.sleep(1)
        assert status(base)["speaking"] is False
        accepted = post(f"{base}/speech", (data / "speech" / SHORT_SPEECH).read_bytes())
        assert abs(accepted["seconds"] - first.size / SAMPLE_RATE) < 0.05
        post(f"{base}/speech", (data / "speech" / "fw_hotwords.mp3").read_bytes())
        rate = 22050
        post(f"{base}/speech", pcm16(load_audio(data / "speech" / "unitychan_univ0003.wav", sample_rate=rate)),
             f"audio/L16; rate={rate}")

        async def stream():
            async with aiohttp.ClientSession() as session, session.ws_connect(f"ws://127.0.0.1:{port}/pcm") as ws:
                for k in range(0, streamed.size, 1600):
                    await ws.send_bytes(pcm16(streamed[k:k + 1600]))
                    await asyncio.sleep(0.02)

        asyncio.run(stream())
        queued = status(base)
        assert queued["speaking"] and queued["utterances_waiting"] >= 2, queued
        for problem, content_type in ((b"not audio at all", None), (b"", None), (b"ab", "audio/L16;rate=abc")):
            with pytest.raises(urllib.error.HTTPError) as refused:
                post(f"{base}/speech", problem, content_type)
            assert refused.value.code == 400 and refused.value.read().decode().count("\n") == 1
        total = (first.size + second.size + third.size + streamed.size) / SAMPLE_RATE
        deadline = time.monotonic() + total + 10
        while status(base)["speaking"]:
            time.sleep(0.2)
            assert time.monotonic() < deadline, "the queue plays at real-time pace"
        post(f"{base}/speech", (data / "speech" / LONG_SPEECH).read_bytes())
        time.sleep(1.5)
        assert post(f"{base}/stop")["stopped"] == 1
        stopped_at = status(base)["seconds"]
        assert status(base)["speaking"] is False and status(base)["queued_seconds"] == 0
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
    recorded = load_audio(record)
    starts = []
    for name, utterance in (("wav", first), ("mp3", second), ("L16", third), ("stream", streamed)):
        found = speech_start(recorded, utterance)
        heard = recorded[found:found + utterance.size]
        assert heard.size == utterance.size and np.corrcoef(heard, utterance)[0, 1] > 0.9, name
        starts.append(found)
    ends = np.array(starts) + [u.size for u in (first, second, third, streamed)]
    assert np.all(np.array(starts[1:]) >= ends[:-1] - 0.05 * SAMPLE_RATE), "in order, one after another"
    after_stop = recorded[int((stopped_at + 0.3) * SAMPLE_RATE):]
    assert after_stop.size > SAMPLE_RATE and np.abs(after_stop).max() < 0.01, "silent after POST /stop"
    scores = score_generated(record)
    assert abs(scores["offset"]) <= 1 and scores["av_peak"] > 0.3, scores


def eye_likeness(video: Path) -> np.ndarray:
    """Per frame, how much both eyes look like they do in most frames (normalised correlation of
    the eye regions, located by the face mesh, with their median): it dips when the lids close.
    (The 468-point mesh itself barely moves its lids for a shut eye: 0.30 to 0.29 of eye width.)"""
    tracker, patches = FaceTracker(FPS, smooth=False), []
    for frame in iter_video_frames(video):
        points, gray, pair = tracker(frame), cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32), []
        for outer, _, _, inner in (RIGHT_EYE, LEFT_EYE):
            a, b = points[outer, :2], points[inner, :2]
            centre, width = (a + b) / 2, np.linalg.norm(a - b)
            corners = np.float32([centre + [-0.6 * width, -0.3 * width], centre + [0.6 * width, -0.3 * width],
                                  centre + [-0.6 * width, 0.3 * width]])
            pair.append(cv2.warpAffine(gray, cv2.getAffineTransform(corners, np.float32([[0, 0], [48, 0], [0, 24]])),
                                       (48, 24)))
        patch = np.concatenate(pair, axis=1)
        patches.append((patch - patch.mean()) / (patch.std() + 1e-6))
    patches = patches[1:]  # the first frame's mesh comes from the detector, later ones from tracking
    typical = np.median(patches, axis=0)
    typical = (typical - typical.mean()) / (typical.std() + 1e-6)
    return np.array([float((patch * typical).mean()) for patch in patches])


@pytest.mark.slow
def test_photo_avatar_blinks_and_moves_slightly_when_idle_and_still_stays_still(data, tmp_path):
    photo = data / "portraits" / "photo_einstein.png"
    recordings = {}
    for name, extra in (("alive", ()), ("still", ("--still",))):
        bundle = tmp_path / name
        assert run_cli("prepare", "--face", photo, "-o", bundle, "--loop-seconds", 6, *extra).returncode == 0
        recordings[name] = tmp_path / f"{name}.mp4"
        result = run_cli("live", "--avatar", bundle, "--audio-source", "api", "--serve", f"127.0.0.1:{free_port()}",
                         "--duration", 8, "--record", recordings[name], "--no-window")
        assert result.returncode == 0, result.stderr
    loop = list(iter_video_frames(tmp_path / "alive" / "loop.mp4"))
    assert max(np.abs(b.astype(int) - a.astype(int)).mean() for a, b in zip(loop, loop[1:])) < 0.6, "no jumps"
    points = np.load(tmp_path / "alive" / "landmarks.npy")[..., :2]
    moves = np.abs(np.diff(np.concatenate([points, points[:1]]), axis=0)).max(axis=(1, 2))
    assert moves[-1] <= 1.5 * moves[:-1].max(), "where the loop wraps, the face moves as between any two frames"
    alive = list(iter_video_frames(recordings["alive"]))
    assert np.abs(alive[0].astype(int) - alive[75].astype(int)).mean() > 0.2, "the head moves"
    likeness = eye_likeness(recordings["alive"])
    closed = likeness < 0.8
    blinks = np.count_nonzero(closed[1:] & ~closed[:-1]) + closed[0]
    assert 2 <= blinks <= 5 and closed.sum() <= 5 * blinks, ("a short blink every few seconds", np.round(likeness, 2))
    still = list(iter_video_frames(recordings["still"]))
    assert max(np.abs(b.astype(int) - a.astype(int)).mean() for a, b in zip(still, still[1:])) < 0.1, "--still"
    outline = [index for outer, upper, lower, inner in (RIGHT_EYE, LEFT_EYE)
               for index in (outer, *upper, *lower, inner)]
    eyes = FaceTracker(FPS, smooth=False)(still[0])[outline, :2]
    (x0, y0), (x1, y1) = eyes.min(axis=0).astype(int) - 8, eyes.max(axis=0).astype(int) + 8
    assert max(np.abs(f[y0:y1, x0:x1].astype(int) - still[0][y0:y1, x0:x1]).mean() for f in still) < 1.0, (
        "--still never blinks (a blink changes the eye region by tens of grey levels)")


def test_microphone_path_through_a_real_alsa_capture_device(avatar, data, tmp_path):
    if importlib.util.find_spec("sounddevice") is None:
        message = "sounddevice not installed (pip install 'edge-retalk[live]', with libportaudio2)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    speech = load_audio(data / "speech" / SHORT_SPEECH)
    raw = tmp_path / "speech.raw"
    raw.write_bytes(pcm16(speech))
    (tmp_path / ".asoundrc").write_text(
        f'pcm.speechfile {{\n  type file\n  slave.pcm "null"\n  file "/dev/null"\n  infile "{raw}"\n  format "raw"\n}}\n')
    env = dict(os.environ, HOME=str(tmp_path))
    listed = subprocess.run(live_command("--list-audio-devices"), capture_output=True, text=True, env=env, timeout=60)
    assert listed.returncode == 0 and "speechfile" in listed.stdout, listed.stderr
    record = tmp_path / "mic.mp4"
    result = subprocess.run(live_command("--avatar", avatar, "--audio-source", "mic", "--audio-device", "speechfile",
                                         "--sample-rate", SAMPLE_RATE, "--record", record, "--duration", 4,
                                         "--no-serve", "--stats"),
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "listening to mic speechfile" in result.stderr
    # the file plugin delivers the whole file at once, so queued pauses may be shortened: compare
    # the first half second of voice
    recorded = load_audio(record)
    voiced = int(np.argmax(np.abs(speech) > 0.1))
    snippet = speech[voiced:voiced + SAMPLE_RATE // 2]
    start = speech_start(recorded, snippet)
    heard = recorded[start:start + snippet.size]
    assert np.corrcoef(heard, snippet)[0, 1] > 0.95, "the microphone's samples reach the recording"
    assert np.nanstd(openings(record)) > 0.005, "the mouth moves with the captured speech"


def test_live_bad_inputs_give_one_line(avatar, tmp_path, data):
    cases = [
        (["--avatar", tmp_path], "not an avatar bundle"),
        (["--avatar", avatar, "--audio-source", "tcp://nohost"], "expected tcp://HOST:PORT"),
        (["--avatar", avatar, "--audio-source", "nosuch.wav"], "no such file"),
        (["--avatar", avatar, "--audio-source", data / "speech" / SHORT_SPEECH, "--record", tmp_path / "x.avi"],
         ".mp4"),
        (["--avatar", avatar, "--audio-source", data / "speech" / SHORT_SPEECH, "--record", avatar / "in.mp4"],
         "inside the avatar bundle"),
        (["--avatar", avatar, "--serve", "notaport"], "expected PORT or HOST:PORT"),
        (["--audio-source", "stdin"], "--avatar is required"),
        (["--avatar", avatar, "--audio-source", "api", "--no-serve"], "drop --no-serve"),
    ]
    for args, message in cases:
        result = run_cli("live", *args, "--no-window")
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run_cli("live", "--avatar", avatar, "--audio-source", f"tcp://127.0.0.1:{busy.getsockname()[1]}",
                         "--no-serve")
        assert result.returncode == 1 and "cannot listen" in result.stderr


def test_microphone_without_sounddevice_says_what_to_install(avatar, tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sounddevice.py").write_text("raise ImportError('blocked for the test')\n")
    env = dict(os.environ, PYTHONPATH=f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result = subprocess.run(live_command("--avatar", avatar, "--audio-source", "mic", "--no-serve"),
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1 and "libportaudio2" in result.stderr and "edge-retalk[live]" in result.stderr
    assert "Traceback" not in result.stderr
