"""The live avatar's web server (aiohttp, in its own thread): the kiosk page with picture and
sound, an MJPEG stream for clients that only take images, and the control API for TTS engines
and apps.

    GET  /            the page: frames and speech over the /av WebSocket, played in step
    GET  /av          WebSocket: one binary message per shown frame (see `frame_message`)
    GET  /stream.mjpg MJPEG stream; GET /frame.jpg the newest frame
    POST /speech      queue an utterance: an audio file, or raw PCM (audio/L16;rate=N or ?rate=N);
                      ?interrupt=1 stops what is playing first
    GET  /pcm         WebSocket: binary messages of raw PCM (?rate=N) form one utterance, until closed
    POST /say         text spoken by a local voice, queued like /speech (`say_route.py`)
    POST /stop        stop the utterance playing and drop the queue
    GET  /status      JSON: speaking or idle, queue, frames, dropped frames, latency

With a token, every path needs `?token=TOKEN` or `Authorization: Bearer TOKEN`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import struct
import tempfile
from email.message import Message
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
from aiohttp import HttpVersion11, WSCloseCode, WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError

from ..audio.features import SAMPLE_RATE
from .source_base import PcmDecoder
from .say_route import SayService, post_say
from .speech_queue import QueueFull, SpeechQueue
from ..errors import EdgeRetalkError
from ..io.media import AUDIO_RATES, AudioTooLong, load_audio

log = logging.getLogger(__name__)

JPEG_QUALITY = 85
BOUNDARY = "edge-retalk-frame"
MAX_CLIENTS = 64
CLIENT_TIMEOUT_SECONDS = 10.0  # a connection that sends no request for this long is closed
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_PCM_MESSAGE_BYTES = 1024 * 1024
BODY_CHUNK_BYTES = 64 * 1024
CLIENT_BACKLOG_FRAMES = 50
HEADER = struct.Struct("<IfI")


def frame_message(index: int, delay_ms: float | None, audio: np.ndarray, jpeg: bytes) -> bytes:
    """One /av message: uint32 frame index, float32 delay from the speech's arrival to this frame
    in ms (NaN in silence), uint32 sample count, that many int16 samples at 16 kHz, then the
    frame as JPEG (empty when the frame repeats the previous one)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    return HEADER.pack(index, math.nan if delay_ms is None else delay_ms, pcm.size) + pcm.tobytes() + jpeg


def _page() -> bytes:
    return resources.files(__package__).joinpath("avatar_page.html").read_bytes()


class AvatarServer:
    """Serves what the live loop shows (it is an `Output`) and, with a `SpeechQueue`, takes speech
    for it. `status` gives the live run's figures for GET /status."""

    def __init__(self, host: str, port: int, token: str | None = None, fps: float = 25.0,
                 speech: SpeechQueue | None = None, status: Callable[[], dict] | None = None,
                 say: SayService | None = None):
        self._say = say
        self._token, self._fps, self._speech, self._status = token, fps, speech, status or dict
        self._loop = asyncio.new_event_loop()
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="jpeg")
        self._clients = 0
        self._held = 0.0  # seconds of speech that uploads being decoded may take, counted against the queue's limit
        self._av: set[asyncio.Queue] = set()
        self._newest: tuple[int, np.ndarray | None, bytes | None] = (-1, None, None)
        self._changed = asyncio.Condition()
        self._index = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop.run_forever, name="avatar-server", daemon=True)
        self._thread.start()
        try:
            self._runner, self._address = asyncio.run_coroutine_threadsafe(self._start(host, port), self._loop).result()
        except OSError as exc:
            self._stop_loop()
            raise EdgeRetalkError(f"http://{host}:{port}: cannot serve ({exc.strerror or exc})") from None

    async def _start(self, host: str, port: int):
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES, middlewares=[self._guard])
        routes = [web.get("/", self._index_page), web.get("/index.html", self._index_page),
                  web.get("/av", self._av_socket), web.get("/stream.mjpg", self._mjpeg),
                  web.get("/frame.jpg", self._frame), web.post("/speech", self._post_speech),
                  web.get("/pcm", self._pcm_socket), web.post("/stop", self._stop),
                  web.get("/status", self._get_status), web.post("/say", self._post_say)]
        # every other path and method here too, so that no request meets aiohttp's own Expect handler
        routes.append(web.route("*", "/{path:.*}", _no_route(routes)))
        app.add_routes([web.route(route.method, route.path, route.handler, expect_handler=_expect, **route.kwargs)
                        for route in routes])
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                               keepalive_timeout=CLIENT_TIMEOUT_SECONDS, logger=_ProtocolErrorsInOneLine(log))
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        return runner, runner.addresses[0][:2]

    @property
    def url(self) -> str:
        host, port = self._address
        return f"http://{host}:{port}/" + (f"?token={self._token}" if self._token else "")

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        """Headers that are text, the token check and the client limit, for every path."""
        if not all(value.isascii() or _is_utf8(value) for value in request.headers.values()):
            # aiohttp quotes some headers in its own answers (a failed WebSocket handshake) and
            # fails with 500 on bytes that are not UTF-8, kept as surrogates
            raise web.HTTPBadRequest(text="a request header holds bytes that are not UTF-8\n")
        if self._token:
            given = request.query.get("token") or request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), self._token.encode()):
                raise web.HTTPForbidden(text="this avatar needs ?token=TOKEN or Authorization: Bearer TOKEN\n")
        if self._clients >= MAX_CLIENTS:
            raise web.HTTPServiceUnavailable(text="too many clients\n")
        self._clients += 1
        try:
            return await handler(request)
        finally:
            self._clients -= 1

    # frames in

    def show(self, frame: np.ndarray, audio: np.ndarray, dropped: bool, delay: float | None = None) -> None:
        """Called by the live loop for every frame; hands it to the server's thread."""
        self._loop.call_soon_threadsafe(self._publish, frame, audio, dropped, delay)

    def _publish(self, frame: np.ndarray, audio: np.ndarray, dropped: bool, delay: float | None) -> None:
        index, self._index = self._index, self._index + 1
        self._newest = (index, frame, None)
        asyncio.ensure_future(self._announce(), loop=self._loop)
        if self._av:
            repeat = dropped and index > 0
            future = None if repeat else self._loop.run_in_executor(self._encoder, _jpeg, frame)
            for queue in list(self._av):
                if queue.qsize() >= CLIENT_BACKLOG_FRAMES:
                    self._av.discard(queue)
                    queue.put_nowait(None)  # a client this far behind is dropped
                else:
                    queue.put_nowait((index, delay, time.monotonic(), audio, future))

    async def _announce(self) -> None:
        """Wake the MJPEG clients waiting for a newer frame."""
        async with self._changed:
            self._changed.notify_all()

    async def _newest_jpeg(self, after: int) -> tuple[int, bytes] | None:
        """The first frame newer than `after`, as JPEG (encoded once); None once closing."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or self._newest[0] > after)
        if self._closed:
            return None
        index, frame, jpeg = self._newest
        if jpeg is None:
            jpeg = await self._loop.run_in_executor(self._encoder, _jpeg, frame)
            if self._newest[0] == index:
                self._newest = (index, frame, jpeg)
        return index, jpeg

    # pages and streams

    async def _index_page(self, request: web.Request) -> web.Response:
        return web.Response(body=_page(), content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    async def _frame(self, request: web.Request) -> web.Response:
        newest = await self._newest_jpeg(-1)
        if newest is None:
            raise web.HTTPServiceUnavailable()
        return web.Response(body=newest[1], content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _mjpeg(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        index = -1
        try:
            while (newest := await self._newest_jpeg(index)) is not None:
                index, jpeg = newest
                await response.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                                     "\r\n\r\n".encode() + jpeg + b"\r\n")
        except ConnectionError:
            pass  # the client went away
        return response

    async def _av_socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=10.0)
        await socket.prepare(request)
        await socket.send_str(json.dumps({"fps": self._fps, "sample_rate": SAMPLE_RATE}))
        queue: asyncio.Queue = asyncio.Queue()
        self._av.add(queue)
        try:
            while (item := await queue.get()) is not None and not socket.closed:
                index, delay, shown_at, audio, jpeg = item
                data = b"" if jpeg is None else await jpeg
                delay_ms = None if delay is None else 1000 * (delay + time.monotonic() - shown_at)
                await socket.send_bytes(frame_message(index, delay_ms, audio, data))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._av.discard(queue)
            await socket.close()
        return socket

    # the control API

    def _queue(self) -> SpeechQueue:
        if self._speech is None:
            raise web.HTTPConflict(text="this avatar takes speech from another source; start it with "
                                        "--audio-source api to send speech here\n")
        return self._speech

    async def _post_speech(self, request: web.Request) -> web.Response:
        """The body is read in chunks and decoded only as far as the queue has room: the queue and
        every upload being decoded together hold at most the queue's limit, whatever a body or its
        header claims."""
        queue = self._queue()
        rate = _pcm_rate(request)
        interrupt = _flag(request, "interrupt")
        try:
            with tempfile.TemporaryDirectory(prefix=".speech-") as folder:
                path = None if rate is not None else await _save_body(request, Path(folder) / "speech")
                wanted = None if rate is None or request.content_length is None else request.content_length / 2 / rate
                with self._room(queue, interrupt, wanted) as room:
                    try:
                        if rate is not None:
                            samples = await _read_pcm(request, rate, room)
                        else:
                            samples = await self._loop.run_in_executor(None, _decode_file, path, room)
                    except AudioTooLong as exc:
                        if room < queue.max_seconds:
                            raise QueueFull(f"the speech queue has room for {max(room, 0):.1f} s more "
                                            f"(limit {queue.max_seconds:g} s)") from None
                        raise web.HTTPRequestEntityTooLarge(room, 0, text=f"{exc}\n") from None
                    utterance = queue.add(samples, interrupt)
        except QueueFull as exc:
            raise web.HTTPTooManyRequests(text=f"{exc}\n") from None
        except EdgeRetalkError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        return web.json_response({"id": utterance.id, "seconds": round(samples.size / SAMPLE_RATE, 3),
                                  **queue.state()}, status=202)

    @contextlib.contextmanager
    def _room(self, queue: SpeechQueue, interrupt: bool, wanted: float | None) -> Iterator[float]:
        """Seconds an upload may decode: the queue's room less what uploads in flight hold. It holds
        that much (at most `wanted`) until it is queued or refused."""
        room = queue.max_seconds - (0.0 if interrupt else queue.queued_seconds()) - self._held
        held = max(0.0, room if wanted is None else min(room, wanted))
        self._held += held
        try:
            yield room
        finally:
            self._held -= held

    async def _pcm_socket(self, request: web.Request) -> web.WebSocketResponse:
        queue = self._queue()
        try:
            decoder = PcmDecoder(_pcm_rate(request) or SAMPLE_RATE)
        except EdgeRetalkError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        try:
            utterance = queue.open(interrupt=_flag(request, "interrupt"))
        except QueueFull as exc:
            raise web.HTTPTooManyRequests(text=f"{exc}\n") from None
        socket = web.WebSocketResponse(heartbeat=10.0, max_msg_size=MAX_PCM_MESSAGE_BYTES)
        await socket.prepare(request)
        try:
            async for message in socket:
                if message.type == WSMsgType.BINARY:
                    queue.extend(utterance, decoder.decode(message.data))
        except QueueFull:
            # a close reason has at most 123 bytes
            await socket.close(code=WSCloseCode.MESSAGE_TOO_BIG,
                               message=f"speech queue full ({queue.max_seconds:g} s)".encode())
        finally:
            queue.close_utterance(utterance)
        return socket

    async def _post_say(self, request: web.Request) -> web.Response:
        return await post_say(request, self._say if self._speech is not None else None, _flag(request, "interrupt"))

    async def _stop(self, request: web.Request) -> web.Response:
        return web.json_response({"stopped": self._queue().interrupt()})

    async def _get_status(self, request: web.Request) -> web.Response:
        speech = self._speech.state() if self._speech is not None else {}
        return web.json_response({**self._status(), **speech, "page_clients": len(self._av)})

    def close(self) -> None:
        async def closing():
            self._closed = True
            async with self._changed:
                self._changed.notify_all()
            for queue in list(self._av):
                queue.put_nowait(None)
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(closing(), self._loop).result(timeout=10)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._encoder.shutdown(wait=False)


def _jpeg(frame: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return data.tobytes()


async def _expect(request: web.Request) -> None:
    """The Expect header: aiohttp's own handler quotes an unknown one in its answer and fails
    (500) on bytes that are not UTF-8."""
    if request.headers.get("Expect", "").lower() != "100-continue":
        raise web.HTTPExpectationFailed(text="only Expect: 100-continue is understood\n")
    if request.version == HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # what is sent next is still the response's start


def _no_route(routes: list[web.RouteDef]) -> Callable:
    """404 for a path not served, 405 for a method a served path does not take."""
    methods: dict[str, set[str]] = {}
    for route in routes:
        methods.setdefault(route.path, {"HEAD"} if route.method == "GET" else set()).add(route.method)

    async def answer(request: web.Request) -> web.Response:
        if request.path in methods:
            raise web.HTTPMethodNotAllowed(request.method, methods[request.path],
                                           text=f"{request.path} takes {' or '.join(sorted(methods[request.path]))}\n")
        raise web.HTTPNotFound(text="no such path\n")

    return answer


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def _pcm_rate(request: web.Request) -> int | None:
    """The sample rate of a raw-PCM body (audio/L16;rate=N or ?rate=N); None for an audio file."""
    rate = request.query.get("rate")
    header = Message()
    header["Content-Type"] = request.headers.get("Content-Type", "")
    if header.get_content_type() == "audio/l16":
        rate = rate or str(header.get_param("rate") or SAMPLE_RATE)
    if rate is None:
        return None
    # ASCII digits only: str.isdigit() also takes superscripts, which int() refuses
    if not (rate.isascii() and rate.isdigit() and AUDIO_RATES[0] <= int(rate[:7]) <= AUDIO_RATES[1]):
        raise web.HTTPBadRequest(text=f"rate {rate[:20]!r} is not a number of samples per second in "
                                      f"{AUDIO_RATES[0]}..{AUDIO_RATES[1]}\n")
    return int(rate)


async def _body_chunks(request: web.Request, limit: int):
    """The request body in chunks; 413 once it passes `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(limit, request.content_length,
                                            text=f"the body is larger than {limit} bytes\n")
    received = 0
    async for chunk in request.content.iter_chunked(BODY_CHUNK_BYTES):
        received += len(chunk)
        if received > limit:
            raise web.HTTPRequestEntityTooLarge(limit, received, text=f"the body is larger than {limit} bytes\n")
        yield chunk
    if not received:
        raise web.HTTPBadRequest(text="no audio in the request body\n")


async def _read_pcm(request: web.Request, rate: int, seconds: float) -> np.ndarray:
    """16 kHz mono float32 from a body of raw 16-bit PCM at `rate`, decoded as it arrives;
    `AudioTooLong` past `seconds`."""
    too_long = AudioTooLong(f"speech longer than the queue's limit of {seconds:g} s")
    limit = int(max(seconds, 0) * rate) * 2
    if request.content_length is not None and request.content_length > limit:
        raise too_long
    decoder, parts = PcmDecoder(rate), []
    try:
        async for chunk in _body_chunks(request, limit):
            parts.append(decoder.decode(chunk))
    except web.HTTPRequestEntityTooLarge:
        parts.clear()  # not kept alive by the exception's traceback until the next garbage collection
        raise too_long from None
    return np.concatenate(parts)


async def _save_body(request: web.Request, path: Path) -> Path:
    """The body of an audio file, written to `path` as it arrives (never held whole)."""
    with open(path, "wb") as file:
        async for chunk in _body_chunks(request, MAX_UPLOAD_BYTES):
            file.write(chunk)
    return path


def _decode_file(path: Path, seconds: float) -> np.ndarray:
    """16 kHz mono float32 from any audio file PyAV reads, at most `seconds` of it."""
    if seconds <= 0:
        raise AudioTooLong("no room")
    try:
        return load_audio(path, max_seconds=seconds)
    except EdgeRetalkError as exc:
        raise type(exc)(str(exc).replace(f"{path}: ", "")) from None


class _ProtocolErrorsInOneLine(logging.LoggerAdapter):
    """aiohttp's server log: a malformed request (bad HTTP, oversized headers) or a client gone
    mid-request is the client's doing and is logged as one line; anything else keeps its traceback."""

    def exception(self, msg, *args, exc_info=True, **kwargs) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else None
        if isinstance(error, (HttpProcessingError, ConnectionError)):
            self.warning(msg + ": %s", *args, str(error).replace("\n", " ")[:200])
        else:
            super().exception(msg, *args, exc_info=exc_info, **kwargs)
