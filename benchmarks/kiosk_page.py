"""The live page as a kiosk shows it: headless Chromium (autoplay allowed, as in kiosk mode)
opens it, speech is posted to the control API, and the page's own figures are read back through
the Chrome DevTools Protocol: frames received and drawn, the sound level its AnalyserNode hears,
and the delay from speech reaching the server to its sound leaving the page.

    python benchmarks/kiosk_page.py --avatar AVATAR --speech SPEECH.wav [--seconds 20]

prints that delay (median and 95th percentile over the speech). The tests use `KioskPage`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import cv2
import numpy as np

BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
                 "--window-size=800,600"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class KioskPage:
    """Chromium showing `url`; `evaluate` runs JavaScript in the page and returns its value."""

    def __init__(self, browser: str, url: str):
        # Chromium's helper processes may still write to the profile as it closes
        self._profile = tempfile.TemporaryDirectory(prefix="kiosk-", ignore_cleanup_errors=True)
        port = free_port()
        self._process = subprocess.Popen([browser, *BROWSER_FLAGS, f"--remote-debugging-port={port}",
                                          f"--user-data-dir={self._profile.name}", url],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5))
                self._target = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
                break
            except (OSError, StopIteration, ValueError):
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.close()
                    raise RuntimeError("Chromium's DevTools endpoint never came up") from None
                time.sleep(0.2)

    def _call(self, method: str, **params) -> dict:
        """One DevTools command's result."""
        async def ask():
            async with aiohttp.ClientSession() as session, session.ws_connect(self._target, max_msg_size=0) as ws:
                await ws.send_json({"id": 1, "method": method, "params": params})
                while True:
                    reply = await ws.receive_json(timeout=30)
                    if reply.get("id") == 1:
                        return reply["result"]

        return asyncio.run(ask())

    def evaluate(self, expression: str):
        return self._call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self) -> np.ndarray:
        """What the page shows now, as a BGR image."""
        png = base64.b64decode(self._call("Page.captureScreenshot", format="png")["data"])
        return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)

    def stats(self) -> dict | None:
        """The page's `avatarStats` (None before its script ran)."""
        found = self.evaluate("JSON.stringify(window.avatarStats || null)")
        return json.loads(found) if found else None

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._profile.cleanup()

    def __enter__(self) -> "KioskPage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--avatar", type=Path, required=True)
    parser.add_argument("--speech", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("Chromium is needed (Debian: apt install chromium)")
    port = free_port()
    live = subprocess.Popen([sys.executable, "-m", "edge_retalk", "live", "--avatar", str(args.avatar),
                             "--audio-source", "api", "--serve", f"127.0.0.1:{port}", "--no-window",
                             "--duration", str(args.seconds + 15)], stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/status", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("live never served its page")
                time.sleep(0.2)
        with KioskPage(browser, base + "/") as page:
            time.sleep(3)
            request = urllib.request.Request(f"{base}/speech", data=args.speech.read_bytes(), method="POST")
            urllib.request.urlopen(request, timeout=30).read()
            time.sleep(args.seconds)
            stats = page.stats()
        status = json.load(urllib.request.urlopen(f"{base}/status", timeout=5))
    finally:
        live.terminate()
        live.communicate(timeout=30)
    delays = np.array(stats["delaysMs"])
    print(f"page: {stats['frames']} frames received, {stats['drawn']} drawn, sound {stats['sound']}, "
          f"{stats['resyncs']} resyncs; live: {status['dropped_frames']} dropped, "
          f"server latency p50 {status['latency_ms']['p50']:.0f} ms")
    print(f"speech in to sound and lips out: median {np.median(delays):.0f} ms, "
          f"p95 {np.percentile(delays, 95):.0f} ms over the last {delays.size} speech frames "
          f"(median parts: server {np.median(stats['serverMs']):.0f} ms, page buffer "
          f"{np.median(stats['bufferMs']):.0f} ms, audio output {stats['outputMs']:.0f} ms)")


if __name__ == "__main__":
    main()
