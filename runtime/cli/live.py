"""`edge-retalk live`: the avatar animated by speech as it arrives."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ..devices.profiles import device_settings
from ..errors import EdgeRetalkError
from ..generators.options import RENDERERS, RenderOptions
from ..live.microphone import list_audio_devices as audio_devices
from ..live.loop import LiveOptions
from ..live.session import LiveSetup, run_session
from ..tts import TtsOptions
from .text import TTS_COMMAND_HELP
from .common import (DEVICE_HELP, RENDERER_HELP, SIGNING_HELP, GeneratorPath, InputFile, OutputFile, Seconds, device_of,
                     say, signing_key)


def _address(value: str) -> tuple[str, int]:
    """HOST:PORT or PORT (on 127.0.0.1)."""
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise EdgeRetalkError(f"--serve {value}: expected PORT or HOST:PORT, e.g. 127.0.0.1:8080")
    return host or "127.0.0.1", int(port)


@click.command()
@click.option("--avatar", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Avatar bundle made by `edge-retalk prepare`.")
@click.option("--audio-source", default="mic", show_default=True,
              help="mic, api (POST /speech and the /pcm WebSocket of the --serve page), stdin, tcp://HOST:PORT "
                   "(raw 16-bit mono PCM), or a speech file played in real time.")
@click.option("--sample-rate", type=click.IntRange(4000, 192000), default=None,
              help="Sample rate of raw PCM from stdin or TCP [default: 16000], or of the microphone "
                   "[default: the device's].")
@click.option("--audio-device", default=None, help="Microphone by index or (part of its) name.")
@click.option("--list-audio-devices", is_flag=True, help="List capture devices and exit.")
@click.option("--serve", default="127.0.0.1:8080", show_default=True,
              help="Serve the avatar page (picture and sound), the MJPEG stream and the control API at [HOST:]PORT.")
@click.option("--no-serve", is_flag=True, help="No HTTP page or stream.")
@click.option("--serve-token", default=None, envvar="EDGE_RETALK_SERVE_TOKEN",
              help="Require ?token=TOKEN (or Authorization: Bearer TOKEN) on every path of the server "
                   "(also from EDGE_RETALK_SERVE_TOKEN).")
@click.option("--max-queued-seconds", type=Seconds(1.0, 3600.0), default=600.0, show_default=True,
              help="Speech that may wait in the control API's queue (64 kB a second); more is answered 413 or 429.")
@click.option("--max-ahead-seconds", type=Seconds(1.0, 3600.0), default=120.0, show_default=True,
              help="Speech from stdin, TCP or a microphone that may wait ahead of the frames (64 kB a second); "
                   "a faster sender waits.")
@click.option("--voice", default="auto", show_default=True, help="Default voice of POST /say: auto, joe, espeak or command.")
@click.option("--tts-command", help=TTS_COMMAND_HELP)
@click.option("--window/--no-window", default=None, help="Show a window [default: when a display exists].")
@click.option("--record", type=OutputFile, default=None, help="Also record what is shown, with the audio, to this .mp4.")
@click.option("--duration", type=Seconds(0.1, None), default=None, help="Stop after this many seconds.")
@click.option("--stats", is_flag=True, help="Print latency (p50/p95), dropped frames and memory every 10 s and at the end.")
@click.option("--generator", type=GeneratorPath, help="An exported generator (with its manifest), or an enrolled "
              "avatar folder, instead of the built-in one [default: the avatar's own networks if it is enrolled].")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--models", type=click.Path(file_okay=False, path_type=Path), default=Path("exported"), show_default=True,
              help="Folder of exported generators that --device may pick from.")
@click.option("--threads", type=click.IntRange(1, 64), default=None, help="Threads for the models [default: 1].")
@click.option("--amplitude", type=click.FloatRange(0.0, 3.0), default=1.0, show_default=True,
              help="How wide the built-in generator opens the mouth.")
@click.option("--renderer", type=click.Choice(RENDERERS), default="learned", show_default=True,
              help=RENDERER_HELP)
@click.option("--no-label", is_flag=True, help="Leave out all three marks that say the recording is synthetic "
              "(metadata tag, Content Credentials, invisible watermark).")
@click.option("--sign-cert", type=InputFile, help=SIGNING_HELP)
@click.option("--sign-key", type=InputFile, help="Private key (PEM) of --sign-cert.")
@click.option("--watermark", is_flag=True, help="Show a small visible 'AI-generated' label.")
@click.pass_context
def live(ctx: click.Context, avatar: Path | None, audio_source: str, sample_rate: int | None, audio_device: str | None,
         list_audio_devices: bool, serve: str, no_serve: bool, serve_token: str | None, max_queued_seconds: float,
         max_ahead_seconds: float, window: bool | None,
         record: Path | None,
         duration: float | None, stats: bool, generator: Path | None, device: str | None, models: Path,
         threads: int | None, amplitude: float, renderer: str, no_label: bool, sign_cert: Path | None,
         sign_key: Path | None, watermark: bool, voice: str, tts_command: str | None) -> None:
    """Animate the --avatar bundle with speech as it arrives, in real time (see it at --serve)."""
    if list_audio_devices:
        for index, name, channels, rate in audio_devices():
            click.echo(f"{index}: {name} ({channels} channels, {rate} Hz)")
        return
    if avatar is None:
        raise EdgeRetalkError("--avatar is required (make one with `edge-retalk prepare --face VIDEO -o DIR`)")
    settings = device_settings(device_of(ctx, device), threads, generator, models, say)
    options = LiveOptions(duration=duration, render=RenderOptions(amplitude, renderer),
                          stats_every=10.0 if stats else None, watermark=watermark, threads=settings.threads,
                          generator=settings.generator, provider=settings.provider,
                          provider_options=settings.provider_options, max_ahead_seconds=max_ahead_seconds)
    setup = LiveSetup(avatar, audio_source, sample_rate, audio_device, None if no_serve else _address(serve),
                      serve_token, window, record, not no_label,
                      signing_key(no_label, sign_cert, sign_key, writes_video=record is not None), options,
                      max_queued_seconds=max_queued_seconds)
    setup = replace(setup, tts=TtsOptions(voice, tts_command, settings.threads))
    report, load_seconds = run_session(setup, on_ready=say,
                                       on_stats=lambda r: click.echo(f"stats: {r.line()}", err=True))
    if stats:
        click.echo(f"avatar loaded in {load_seconds * 1000:.0f} ms", err=True)
    click.echo(f"live: {report.line()}", err=True)
    if record is not None:
        click.echo(f"recording written to {record}", err=True)
