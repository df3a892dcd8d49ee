"""One `edge-retalk live` run: open the avatar, the speech source and the outputs, run the live
loop until the source ends, the duration passes or the user stops it, and close everything so a
recording is complete even after Ctrl-C."""

from __future__ import annotations

import ipaddress
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .audio_sources import open_audio_source
from .speech_queue import MAX_QUEUED_SECONDS, SpeechQueue
from ..avatar import Avatar
from ..provenance.content_credentials import SigningKey
from ..errors import EdgeRetalkError
from ..tts import Speaker, TtsOptions
from ..provenance.labels import SyntheticLabel
from .loop import LiveOptions, LiveReport, live_driver, require_frames, run_live, with_avatar_networks
from .outputs import Recorder, Window
from ..file_mode import check_output
from ..io.workers import force_stop_later


@dataclass(frozen=True)
class LiveSetup:
    """Where speech comes from and where frames go."""

    avatar: Path
    audio_source: str = "mic"
    sample_rate: int | None = None
    audio_device: str | None = None
    serve: tuple[str, int] | None = ("127.0.0.1", 8080)
    serve_token: str | None = None
    window: bool | None = None
    record: Path | None = None
    label: bool = True
    signing_key: SigningKey | None = None
    options: LiveOptions = field(default_factory=LiveOptions)
    tts: TtsOptions = field(default_factory=TtsOptions)
    """The voices of POST /say (named ones only: no voice file is taken from a request)."""
    max_queued_seconds: float = MAX_QUEUED_SECONDS


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def check_recording(record: Path, avatar: Path, audio_source: str) -> None:
    """A recording is an .mp4 in an existing folder, as for `run`, never inside the avatar bundle
    and never the speech file it plays."""
    check_output(record, *([Path(audio_source)] if Path(audio_source).is_file() else []))
    if record.resolve().is_relative_to(avatar.resolve()):
        raise EdgeRetalkError(f"{record}: would write inside the avatar bundle")


def status(report: LiveReport, source: str) -> dict:
    """The live run's figures for GET /status."""
    return {"source": source, "seconds": round(report.seconds, 2), "frames": report.frames,
            "speech_frames": report.speech_frames, "dropped_frames": report.dropped,
            "latency_ms": {"p50": report.latency.percentile(50), "p95": report.latency.percentile(95)}}


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Ctrl-C and SIGTERM end the run cleanly (outputs are closed, the recording finished);
    returns a function that restores the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop_on_signal(*_) -> None:
        stop.set()
        force_stop_later()

    previous = {sig: signal.signal(sig, stop_on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(sig, handler) for sig, handler in previous.items()]


def run_session(setup: LiveSetup, on_ready: Callable[[str], None] | None = None,
                on_stats: Callable[[LiveReport], None] | None = None,
                stop: threading.Event | None = None) -> tuple[LiveReport, float]:
    """Run live mode as `setup` says; returns the report and how long loading the avatar took."""
    started = time.perf_counter()
    avatar = Avatar(setup.avatar)
    load_seconds = time.perf_counter() - started
    if setup.record is not None:
        check_recording(setup.record, setup.avatar, setup.audio_source)
    options = setup.options
    options = with_avatar_networks(options, setup.avatar)
    driver = live_driver(options, float(avatar.fps))
    source = open_audio_source(setup.audio_source, setup.sample_rate, setup.audio_device, setup.max_queued_seconds)
    if isinstance(source, SpeechQueue) and setup.serve is None:
        raise EdgeRetalkError("--audio-source api takes speech through the web server; drop --no-serve")
    outputs = []
    report = LiveReport()
    said = None
    recorder: Recorder | None = None
    stop = stop or threading.Event()
    restore = _stop_on_signals(stop)
    try:
        if setup.serve is not None:
            from .server import AvatarServer  # aiohttp: imported only when serving, not by every command
            from .say_route import SayService

            if isinstance(source, SpeechQueue):
                said = SayService(Speaker(setup.tts, allow_files=False), source)

            server = AvatarServer(*setup.serve, setup.serve_token, float(avatar.fps),
                                  source if isinstance(source, SpeechQueue) else None,
                                  lambda: status(report, source.name), said)
            outputs.append(server)
            if on_ready is not None:
                on_ready(f"avatar page: {server.url}")
                if not is_loopback(setup.serve[0]) and not setup.serve_token:
                    on_ready(f"warning: the avatar is served to the network on {setup.serve[0]} to anyone who "
                             "can reach this machine; --serve-token TOKEN makes the page and stream need it")
        if setup.window or setup.window is None:
            try:
                outputs.append(Window())
            except EdgeRetalkError as exc:
                if setup.window:
                    raise
                if on_ready is not None and "DISPLAY" not in str(exc):
                    on_ready(f"no window: {exc}")
        if setup.record is not None:
            label = SyntheticLabel(driver.generator.name, setup.signing_key) if setup.label else None
            recorder = Recorder(setup.record, avatar.info.width, avatar.info.height, avatar.fps, label)
            outputs.append(recorder)
        if on_ready is not None:
            on_ready(f"listening to {source.name}")
        run_live(avatar, source, outputs, driver, options, stop=stop, on_stats=on_stats, report=report)
        require_frames(report)
    except BaseException:
        if recorder is not None:
            outputs.remove(recorder)
            recorder.abort()
        raise
    finally:
        restore()
        if said is not None:
            said.close()
        source.close()
        for output in outputs:
            output.close()
    return report, load_seconds
