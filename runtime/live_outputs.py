"""Where live frames go: an MJPEG stream over HTTP (with a page a kiosk browser can show), a
window when a display and an OpenCV build with GUI support exist, and a recording to an mp4 that
carries the audio actually received, in step with the picture."""

from __future__ import annotations

import hmac
import html
import os
import sys
import threading
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import cv2
import numpy as np

from .audio import SAMPLE_RATE
from .errors import EdgeRetalkError
from .media import VideoWriter
from .stream import WriteBehind

JPEG_QUALITY = 85
BOUNDARY = "edge-retalk-frame"
CLIENT_TIMEOUT_SECONDS = 10.0
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edge-retalk avatar</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>html,body{margin:0;height:100%;background:#000}
img{display:block;width:100%;height:100%;object-fit:contain}</style></head>
<body><img id="avatar" src="/stream.mjpg{query}" alt="avatar"></body></html>
"""


class _BoundedHttpServer(ThreadingHTTPServer):
    """An HTTP server that serves at most `MAX_CLIENTS` connections at once (more are closed at
    once) and treats clients that vanish or time out as routine, not as errors to print."""

    daemon_threads = True
    MAX_CLIENTS = 64

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(self.MAX_CLIENTS)

    def verify_request(self, request, client_address) -> bool:
        return self._slots.acquire(blocking=False)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class MjpegServer:
    """Serves the newest frame as an MJPEG stream at /stream.mjpg, one JPEG at /frame.jpg and a
    full-screen page at /. Each frame is JPEG-encoded once, when a client asks for it. With a
    `token`, every path needs `?token=TOKEN` (the page passes it on to its stream)."""

    def __init__(self, host: str, port: int, token: str | None = None):
        self._token = token
        self._condition = threading.Condition()
        self._frame: np.ndarray | None = None
        self._sequence = 0
        self._jpeg: tuple[int, bytes] = (-1, b"")
        self._closed = False
        try:
            self._server = _BoundedHttpServer((host, port), self._handler())
        except OSError as exc:
            raise EdgeRetalkError(f"http://{host}:{port}: cannot serve ({exc.strerror or exc})") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="mjpeg", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{self._query}"

    @property
    def _query(self) -> str:
        return f"?{urlencode({'token': self._token})}" if self._token else ""

    def _allowed(self, path: str) -> bool:
        if not self._token:
            return True
        given = parse_qs(urlsplit(path).query).get("token", [""])[0]
        return hmac.compare_digest(given.encode(), self._token.encode())

    def show(self, frame: np.ndarray, audio: np.ndarray, dropped: bool) -> None:
        with self._condition:
            self._frame, self._sequence = frame, self._sequence + 1
            self._condition.notify_all()

    def _next_jpeg(self, after: int) -> tuple[int, bytes] | None:
        """The first frame newer than `after`, as JPEG; None once the server closes."""
        with self._condition:
            self._condition.wait_for(lambda: self._closed or (self._frame is not None and self._sequence > after))
            if self._closed:
                return None
            sequence, frame = self._sequence, self._frame
            if self._jpeg[0] == sequence:
                return self._jpeg
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        jpeg = (sequence, data.tobytes())
        with self._condition:
            if jpeg[0] > self._jpeg[0]:
                self._jpeg = jpeg
        return jpeg

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = CLIENT_TIMEOUT_SECONDS

            def log_message(self, *args) -> None:
                """Quiet: a kiosk polls all day."""

            def _send(self, content_type: str, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if not server._allowed(self.path):
                    self.send_error(403, "this avatar needs ?token=")
                elif path in ("/", "/index.html"):
                    self._send("text/html; charset=utf-8", PAGE.replace("{query}", html.escape(server._query)).encode())
                elif path == "/frame.jpg":
                    jpeg = server._next_jpeg(-1)
                    if jpeg is not None:
                        self._send("image/jpeg", jpeg[1])
                elif path == "/stream.mjpg":
                    self._stream()
                else:
                    self.send_error(404)

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                sequence = -1
                try:
                    while (jpeg := server._next_jpeg(sequence)) is not None:
                        sequence, data = jpeg
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                except (ConnectionError, TimeoutError):
                    return

        return Handler

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._server.shutdown()
        self._server.server_close()


class Window:
    """An OpenCV window; needs a display and an OpenCV build with GUI support."""

    TITLE = "edge-retalk"

    def __init__(self) -> None:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise EdgeRetalkError("--window needs a display (DISPLAY is not set); use the --serve page instead")
        try:
            cv2.namedWindow(self.TITLE, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise EdgeRetalkError("--window needs OpenCV with GUI support (pip install opencv-python instead of "
                                  "opencv-python-headless); use the --serve page instead") from None

    def show(self, frame: np.ndarray, audio: np.ndarray, dropped: bool) -> None:
        if not dropped:
            cv2.imshow(self.TITLE, frame)
            cv2.waitKey(1)

    def close(self) -> None:
        cv2.destroyWindow(self.TITLE)


class Recorder:
    """An mp4 of what was shown, with the received audio (silence where none came) in step; encoded
    in a background thread, written atomically when the run ends."""

    def __init__(self, output: Path, width: int, height: int, fps: Fraction, metadata: dict[str, str] | None):
        self._writer = VideoWriter(output, width, height, fps, None, metadata=metadata, audio_rate=SAMPLE_RATE)
        self._encoder = WriteBehind(lambda item: self._writer.write(*item), depth=8)
        self.output = output

    def show(self, frame: np.ndarray, audio: np.ndarray, dropped: bool) -> None:
        self._encoder.put((frame, audio))

    def close(self) -> None:
        try:
            self._encoder.finish()
            self._writer.close()
        except BaseException:
            self._writer.abort()
            raise

    def abort(self) -> None:
        try:
            self._encoder.finish()
        except BaseException:  # noqa: BLE001 - the partial recording is dropped either way
            pass
        self._writer.abort()
