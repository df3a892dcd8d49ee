"""The kiosk's web server against hostile clients: bodies built to blow up memory, parameters and
headers that parse oddly, malformed HTTP, and a bounded random fuzz of every route. The server
runs in a process of its own with the real speech queue, so its peak memory (VmHWM) can be read."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from edge_retalk import prepare_avatar
from edge_retalk.audio.features import SAMPLE_RATE
from edge_retalk.errors import EdgeRetalkError
from edge_retalk.io.media import AudioTooLong, load_audio
from edge_retalk.live.speech_queue import MAX_QUEUED_SECONDS, QueueFull, SpeechQueue
from edge_retalk.models import model_path

MEMORY_BUDGET_MB = 100
AHEAD_SECONDS = 20
AHEAD_BUDGET_MB = 20
"""What a stdin or TCP sender may raise live mode's peak memory by: --max-ahead-seconds 20 queues
1.3 MB of float32, the rest is the loop's working set settling (measured: 2.2 MB). The half hour a
flood offers would be 115 MB of float32 if the source did not wait."""
"""The default queue's 600 s (38 MB of float32), one upload decoded up to that limit before it is
refused (38 MB more), and the decoders' working set; measured: about 75 MB."""

KIOSK = """
import logging, sys, time
import cv2, numpy as np
from edge_retalk.live.server import AvatarServer
from edge_retalk.live.speech_queue import SpeechQueue
from edge_retalk.models import model_path
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
server = AvatarServer("127.0.0.1", 0, sys.argv[2] or None, 25.0, SpeechQueue(float(sys.argv[1])))
frame, silence = cv2.imread(str(model_path("demo_portrait.png"))), np.zeros(640, np.float32)
print(server.url, flush=True)
for _ in range(25 * 600):
    server.show(frame, silence, False)
    time.sleep(0.04)
"""


class Kiosk:
    """The live server with a speech queue, in a process of its own."""

    def __init__(self, max_seconds: float = MAX_QUEUED_SECONDS, token: str = ""):
        self.process = subprocess.Popen([sys.executable, "-c", KIOSK, str(max_seconds), token],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        url = self.process.stdout.readline().strip()
        assert url, self.process.stderr.read()
        self.base = url.split("?")[0].rstrip("/")
        self.port = int(self.base.rsplit(":", 1)[1])

    def peak_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024

    def log(self) -> str:
        self.process.terminate()
        return self.process.communicate(timeout=10)[1]

    def request(self, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path, data=body, headers=headers or {},
                                         method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


@pytest.fixture
def kiosk():
    server = Kiosk()
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1


def demo_speech() -> np.ndarray:
    return load_audio(model_path("demo_speech.wav"))


def wav_claiming(path: Path, rate: int, samples: np.ndarray) -> Path:
    """Real speech samples under a header that claims `rate` samples per second."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def silent_flac(path: Path, seconds: int, rate: int = 8000) -> Path:
    """Digital silence, which FLAC packs into almost nothing (an hour in under 1 MB)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        block = np.zeros((1, rate * 60), np.int16)
        for minute in range(seconds // 60):
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, minute * rate * 60
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_a_header_claiming_one_hertz_is_refused_before_decoding(tmp_path):
    """A 64 kB WAV claiming 1 Hz would be 9 hours of audio, 2 GB once resampled (23 GB in `run`)."""
    wav = wav_claiming(tmp_path / "one_hz.wav", 1, demo_speech()[:32000])
    with pytest.raises(EdgeRetalkError, match="sample rate 1 Hz is outside 4000..192000"):
        load_audio(wav)
    result = subprocess.run([sys.executable, "-c", "from edge_retalk.cli import main; main()", "run", "--face", str(model_path("demo_portrait.png")),
                             "--audio", str(wav), "-o", str(tmp_path / "out.mp4"), "-q"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and one_line(result.stderr) and "1 Hz" in result.stderr, result.stderr


def test_decoding_stops_at_the_limit_not_at_the_headers_claim(tmp_path):
    flac = silent_flac(tmp_path / "hour.flac", 3600)
    assert flac.stat().st_size < 2_000_000
    with pytest.raises(AudioTooLong, match="longer than 30 s"):
        load_audio(flac, max_seconds=30)


def test_the_queue_limit_counts_what_is_being_added():
    queue = SpeechQueue(max_seconds=10)
    speech = demo_speech()[: 8 * SAMPLE_RATE]
    queue.add(speech)
    with pytest.raises(QueueFull, match="limit of 10 s"):
        queue.add(speech)
    with pytest.raises(AudioTooLong):
        queue.add(np.zeros(11 * SAMPLE_RATE, np.float32), interrupt=True)
    assert queue.state()["queued_seconds"] == 8.0  # a refused interrupt drops nothing
    stream = queue.open(interrupt=True)
    queue.extend(stream, speech)
    with pytest.raises(QueueFull):
        queue.extend(stream, speech)
    assert queue.queued_seconds() == 8.0


def test_hostile_bodies_cannot_raise_the_kiosks_memory_beyond_the_budget(kiosk, tmp_path):
    """Each body is answered 4xx in one line, and the server's peak memory grows by less than
    MEMORY_BUDGET_MB over all of them together."""
    speech = demo_speech()
    idle_mb = kiosk.peak_mb()
    one_hz = wav_claiming(tmp_path / "one_hz.wav", 1, speech[:32000]).read_bytes()
    code, text = kiosk.request("/speech", one_hz)
    assert code == 400 and "1 Hz" in text and one_line(text), (code, text)

    code, text = kiosk.request("/speech", silent_flac(tmp_path / "hour.flac", 3600).read_bytes())
    assert code == 413 and "600 s" in text and one_line(text), (code, text)

    pcm = np.zeros(int(MAX_QUEUED_SECONDS + 1) * 4000, "<i2").tobytes()  # 601 s at 4 kHz: 38 MB once resampled
    code, text = kiosk.request("/speech?rate=4000", pcm)
    assert code == 413 and one_line(text), (code, text)
    chunked = (pcm[i:i + 65536] for i in range(0, len(pcm), 65536))  # no Content-Length: decoded as it comes
    code, text = kiosk.request("/speech?rate=4000", chunked)
    assert code == 413 and "600 s" in text and one_line(text), (code, text)

    nine_minutes = (np.resize(speech, 540 * SAMPLE_RATE) * 32767).astype("<i2").tobytes()
    code, _ = kiosk.request("/speech?rate=16000", nine_minutes)
    assert code == 202
    code, text = kiosk.request("/speech?rate=16000", nine_minutes)
    assert code == 429 and "room for 60.0 s" in text and one_line(text), (code, text)
    kiosk.request("/stop", b"")

    async def flood() -> tuple[int, int]:
        from aiohttp import ClientSession

        sent = 0
        async with ClientSession() as session:
            async with session.ws_connect(f"{kiosk.base}/pcm?rate=16000") as socket:
                message = (np.resize(speech, SAMPLE_RATE * 30) * 32767).astype("<i2").tobytes()  # 30 s, 960 kB
                try:
                    while sent < 40:  # 20 minutes of speech, twice the limit
                        await socket.send_bytes(message)
                        sent += 1
                    await socket.receive(timeout=10)
                except ConnectionError:
                    pass
                return socket.close_code, sent

    close_code, sent = asyncio.run(flood())
    assert close_code == 1009
    state = json.loads(kiosk.request("/status")[1])
    assert state["queued_seconds"] <= MAX_QUEUED_SECONDS
    grown = kiosk.peak_mb() - idle_mb
    assert grown < MEMORY_BUDGET_MB, grown
    assert "Traceback" not in kiosk.log()


def test_odd_parameters_and_headers_get_one_line_4xx():
    kiosk = Kiosk(token="s3cret")
    try:
        auth = {"Authorization": "Bearer s3cret"}
        for rate in ["\u00b2", "\u0661\u0666\u0660\u0660\u0660", "9" * 5000, "-1", "16000.0", "0", "99999999"]:
            code, text = kiosk.request(f"/speech?token=s3cret&rate={urllib.parse.quote(rate)}", b"\0\0" * 100)
            assert 400 <= code < 500 and one_line(text), (rate, code, text)
        for content_type in ["audio/L16; rate=\u00b3", "audio/L16; rate=" + "7" * 5000, "audio/L16; rate=\"x",
                             "audio/L16; rate*=utf-8''%FF"]:
            code, text = kiosk.request("/speech", b"\0\0" * 100, {**auth, "Content-Type": content_type})
            assert 400 <= code < 500 and one_line(text), (content_type, code, text)
        with socket.create_connection(("127.0.0.1", kiosk.port), timeout=10) as raw:
            raw.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\x80\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 400"), "an undecodable token is refused"
    finally:
        log = kiosk.log()
    assert "Traceback" not in log and " 500" not in log, log


MALFORMED = [
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    b"POST /speech HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    b"POST /speech HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /speech HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            raw.sendall(data)
            return raw.recv(200)
        except (ConnectionError, socket.timeout):
            return b""


def fuzz_request(rng: random.Random, body: bytes) -> bytes:
    method = rng.choice([b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"G\xffT"])
    path = rng.choice([b"/", b"/index.html", b"/av", b"/stream.mjpg", b"/frame.jpg", b"/speech", b"/pcm",
                       b"/stop", b"/status", b"/say", b"/%ff", b"/..%2f..", b"//speech", b"/speech/"])
    def value() -> bytes:
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(6)))
        if rng.random() < 0.1:  # unencoded: refused by aiohttp's parser
            return raw.replace(b" ", b"").replace(b"\r", b"").replace(b"\n", b"")
        return rng.choice([b"", b"1", b"16000", b"22050"]) + urllib.parse.quote_from_bytes(raw).encode()

    query = b"&".join(rng.choice([b"rate=", b"interrupt=", b"token=", b"x="]) + value()
                      for _ in range(rng.randrange(4)))
    headers = [b"Host: 127.0.0.1"]
    for _ in range(rng.randrange(4)):
        name = rng.choice([b"Content-Type", b"Authorization", b"Upgrade", b"Connection", b"Sec-WebSocket-Key",
                           b"Sec-WebSocket-Version", b"Accept", b"Range", b"Expect"])
        value = rng.choice([b"audio/L16; rate=", b"Bearer ", b"websocket", b"Upgrade", b"13", b"100-continue",
                            b"bytes=5-1", b""]) + bytes(rng.randrange(32, 256 if rng.random() < 0.2 else 127)
                                                                for _ in range(rng.randrange(8)))
        headers.append(name + b": " + value.replace(b"\x7f", b""))
    chunk = body[: rng.choice([0, 1, 7, 100, 5000])]
    headers.append(b"Content-Length: %d" % len(chunk))
    target = path + (b"?" + query if query else b"")
    return method + b" " + target + b" HTTP/1.1\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + chunk


def test_malformed_http_and_a_bounded_fuzz_never_get_5xx_or_a_traceback(kiosk):
    """Protocol errors are answered 400 and logged in one line; 300 random requests over every
    route (at most 60 s, loopback only) get no 5xx and leave no traceback."""
    for data in MALFORMED:
        answer = raw_exchange(kiosk.port, data)
        assert not answer.startswith(b"HTTP/1.1 5"), (data[:60], answer)
    rng = random.Random(35)
    body = model_path("demo_speech.wav").read_bytes()
    deadline = time.monotonic() + 60
    statuses = []
    for _ in range(300):
        if time.monotonic() > deadline:
            break
        answer = raw_exchange(kiosk.port, fuzz_request(rng, body))
        statuses.append(answer[:12])
        assert not answer.startswith(b"HTTP/1.1 5"), kiosk.log()
    assert len(statuses) >= 100
    log = kiosk.log()
    assert "Traceback" not in log, log
    assert all(one_line(line) for line in log.splitlines())


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bundle") / "still"
    prepare_avatar(model_path("demo_portrait.png"), folder, loop_seconds=1.0, still=True)
    return folder


def peak_mb(pid: int) -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


@pytest.mark.parametrize("source", ["stdin", "tcp"])
def test_a_sender_far_faster_than_real_time_waits_and_cannot_raise_live_memory(bundle, data, source):
    """A sender offers half an hour of real speech as fast as it can: live mode reads it only
    --max-ahead-seconds ahead of the frames (the sender is slowed to real time), and its peak
    memory grows by less than AHEAD_BUDGET_MB."""
    speech = np.resize(load_audio(data / "speech" / "musetalk_eng_60s.wav"), 1800 * SAMPLE_RATE)
    pcm = (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes()
    spec = "stdin" if source == "stdin" else "tcp://127.0.0.1:0"
    process = subprocess.Popen([sys.executable, "-c", "from edge_retalk.cli import main; main()", "live",
                                "--avatar", str(bundle), "--audio-source", spec, "--no-serve", "--no-window",
                                "--renderer", "painted", "--max-ahead-seconds", str(AHEAD_SECONDS),
                                "--duration", "30"],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        line = b""
        while b"listening to" not in line:
            line = process.stderr.readline()
            assert line, "live ended before listening"
        if source == "stdin":
            sender = process.stdin
            os.set_blocking(sender.fileno(), False)
            send = functools.partial(os.write, sender.fileno())
        else:
            sender = socket.create_connection(("127.0.0.1", int(line.strip().rsplit(b":", 1)[1])))
            sender.setblocking(False)
            send = sender.send
        sent = 0
        while sent < 2 * SAMPLE_RATE * 2:  # two seconds, then the loop settles before its memory is read
            sent += send(pcm[sent:sent + 4096])
        time.sleep(4)
        assert process.poll() is None, process.stderr.read().decode()
        settled_mb, began = peak_mb(process.pid), time.monotonic()
        while time.monotonic() - began < 10 and sent < len(pcm):
            try:
                sent += send(pcm[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.01)
        elapsed = time.monotonic() - began
        grown = peak_mb(process.pid) - settled_mb
        if source == "tcp":
            sender.close()
    finally:
        process.kill()
        process.wait(timeout=30)
    log = process.stderr.read().decode()
    print(f"{source}: {sent / 2 / SAMPLE_RATE:.0f} s taken in {elapsed:.1f} s, peak +{grown:.1f} MB")
    sent_seconds = sent / 2 / SAMPLE_RATE
    # a pipe holds 64 kB (2 s); a loopback socket's buffers a few MB more
    slack = 3 if source == "stdin" else 8 * 2**20 / 2 / SAMPLE_RATE
    assert sent_seconds < AHEAD_SECONDS + 6 + elapsed + slack, (sent_seconds, elapsed)
    assert grown < AHEAD_BUDGET_MB, grown
    assert "Traceback" not in log, log


def ws_frame(rng: random.Random, opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One client frame, masked as a client must (now and then not, or with reserved bits set)."""
    masked, rsv = rng.random() > 0.05, (rng.randrange(1, 8) if rng.random() < 0.05 else 0)
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    size, bit = len(payload), 0x80 if masked else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 65536:
        head += bytes([bit | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + size.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = rng.randbytes(4)
    data = np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(key, np.uint8), size)
    return head + key + data.tobytes()


def ws_message(rng: random.Random, speech: bytes) -> bytes:
    """A random message: PCM of odd sizes (past the 1 MB limit too), text valid or not, a message
    in fragments (with a ping between, or a data frame breaking in), a stray continuation,
    reserved opcodes, oversized or fragmented control frames, closes with odd codes and reasons,
    a length claiming exabytes, a frame cut short."""
    size = rng.choice([0, 1, 3, 641, 4096, 65535, 65536, 2**20, 2**20 + 1])
    pcm = np.resize(np.frombuffer(speech, np.uint8), size).tobytes()
    kind = rng.randrange(9)
    if kind == 0:
        return ws_frame(rng, 2, pcm)
    if kind == 1:
        text = rng.choice(["16000", "{\"rate\": 8000}", "é" * 300, ""]).encode()
        return ws_frame(rng, 1, rng.choice([text, b"\xff\xfe\xc3(", text[:-1]]))
    if kind == 2:
        cuts = sorted(rng.sample(range(len(pcm) + 1), min(3, len(pcm) + 1)))
        parts = [pcm[a:b] for a, b in zip([0] + cuts, cuts + [len(pcm)])]
        frames = [ws_frame(rng, 2 if i == 0 else 0, part, fin=i == len(parts) - 1) for i, part in enumerate(parts)]
        if rng.random() < 0.5:
            frames.insert(1, ws_frame(rng, rng.choice([9, 10, 2, 1]), b"between"))
        return b"".join(frames)
    if kind == 3:
        return ws_frame(rng, 0, pcm[:100], fin=rng.random() < 0.5)
    if kind == 4:
        return ws_frame(rng, rng.choice([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), pcm[:50])
    if kind == 5:
        return ws_frame(rng, rng.choice([9, 10]), rng.randbytes(rng.choice([0, 5, 125, 126, 300])),
                        fin=rng.random() < 0.7)
    if kind == 6:
        code = rng.choice([0, 999, 1000, 1004, 1005, 1006, 1011, 2999, 3000, 4999, 5000, 65535])
        reason = rng.choice([b"", b"bye", b"\xff\xfe", b"x" * 200])
        return ws_frame(rng, 8, rng.choice([code.to_bytes(2, "big") + reason, b"\x03"]))
    if kind == 7:
        return bytes([0x82, 0xFF]) + (2**63 - 1).to_bytes(8, "big") + rng.randbytes(4) + pcm[:10]
    return ws_frame(rng, 2, pcm)[: rng.randrange(1, 20)]


def close_codes(data: bytes) -> list[int]:
    """Close codes in the server's (unmasked) frames."""
    codes, at = [], 0
    while at + 2 <= len(data):
        opcode, size, at = data[at] & 0x0F, data[at + 1] & 0x7F, at + 2
        if size >= 126:
            width = 2 if size == 126 else 8
            size, at = int.from_bytes(data[at:at + width], "big"), at + width
        if opcode == 8 and at + 2 <= len(data):
            codes.append(int.from_bytes(data[at:at + 2], "big"))
        at += size
    return codes


def ws_exchange(port: int, path: str, messages: list[bytes], within: float = 3.0) -> tuple[bytes, bytes]:
    """The handshake's status line and the frames that came back, read for at most `within` s."""
    with socket.create_connection(("127.0.0.1", port), timeout=within) as raw:
        raw.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        received, deadline = b"", time.monotonic() + within
        try:
            while b"\r\n\r\n" not in received:
                if not (chunk := raw.recv(4096)):
                    break
                received += chunk
            for message in messages:
                raw.sendall(message)
            while time.monotonic() < deadline and len(received) < 4 * 2**20:
                if not (chunk := raw.recv(65536)):
                    break
                received += chunk
        except (ConnectionError, socket.timeout):
            pass
    head, _, frames = received.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], frames


def test_a_bounded_websocket_fuzz_never_gets_5xx_an_internal_error_or_a_traceback(kiosk):
    """150 connections to /pcm and /av (at most 90 s, loopback only) send random frames; none is
    answered 5xx or closed with 1011 (internal error), the log has no traceback, and afterwards
    the server still answers and takes a stream of real speech."""
    rng = random.Random(3535)
    speech = (demo_speech() * 32767).astype("<i2").tobytes()
    deadline, answers = time.monotonic() + 90, []
    for _ in range(150):
        if time.monotonic() > deadline:
            break
        path = rng.choice(["/pcm", "/pcm?rate=22050", "/pcm?rate=4000&interrupt=1", "/pcm?rate=x", "/av"])
        status_line, frames = ws_exchange(kiosk.port, path, [ws_message(rng, speech)
                                                           for _ in range(rng.randrange(1, 6))], within=0.5)
        answers.append(status_line)
        assert not status_line.startswith(b"HTTP/1.1 5"), (path, status_line)
        if status_line.startswith(b"HTTP/1.1 101"):
            assert 1011 not in close_codes(frames), (path, close_codes(frames))
    assert len(answers) >= 60 and answers.count(b"HTTP/1.1 101 Switching Protocols") > len(answers) // 2, answers
    kiosk.request("/stop", b"")

    async def stream() -> None:
        from aiohttp import ClientSession

        async with ClientSession() as session:
            async with session.ws_connect(f"{kiosk.base}/pcm?rate=16000") as pcm:
                await pcm.send_bytes(speech)

    asyncio.run(stream())
    code, text = kiosk.request("/status")
    assert code == 200 and json.loads(text)["queued_seconds"] == pytest.approx(len(speech) / 2 / SAMPLE_RATE, abs=0.05)
    log = kiosk.log()
    assert "Traceback" not in log, log
    assert all(one_line(line) for line in log.splitlines())
