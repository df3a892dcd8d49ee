"""`say`: an avatar speaking text, through a local voice, to an mp4."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..api import LipSync
from ..generators.options import RENDERERS
from ..tts import VOICES, TtsOptions
from .common import DEVICE_HELP, RENDERER_HELP, GeneratorPath, OutputFile, ProgressBar, device_of, say, signing_key

VOICE_HELP = (f"Voice: auto (the Piper voice joe where installed, else espeak), {', '.join(VOICES)}, "
              "or a Piper .onnx voice file.")
TTS_COMMAND_HELP = ("A program that writes speech as a WAV, as a template: {wav} is the file to write, {text} the "
                    "sentence (else given on stdin); e.g. 'mytts --out {wav} {text}'. It becomes the voice 'command'.")


@click.command("say")
@click.argument("text")
@click.option("--avatar", required=True, type=click.Path(exists=True, path_type=Path),
              help="Face: a photo, a video, or an avatar bundle folder (`prepare`, `enroll`).")
@click.option("-o", "--output", required=True, type=OutputFile, help="Output .mp4 (written atomically).")
@click.option("--voice", default="auto", show_default=True, help=VOICE_HELP)
@click.option("--tts-command", help=TTS_COMMAND_HELP)
@click.option("--threads", type=click.IntRange(1, 64), default=None, help="Threads for the models.")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--amplitude", type=click.FloatRange(0.0, 3.0), default=1.0, show_default=True,
              help="How wide the mouth opens, relative to a typical speaker.")
@click.option("--renderer", type=click.Choice(RENDERERS), default="learned", show_default=True, help=RENDERER_HELP)
@click.option("--generator", type=GeneratorPath, help="An exported generator or an enrolled avatar folder.")
@click.option("--fps", "photo_fps", type=click.FloatRange(1.0, 120.0), default=25.0, show_default=True,
              help="Frame rate of the output when the face is a photo.")
@click.option("--no-label", is_flag=True, help="Leave out the three marks that say the video is synthetic.")
@click.option("--watermark", is_flag=True, help="Also show a small visible 'AI-generated' label.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
@click.pass_context
def say_command(ctx: click.Context, text: str, avatar: Path, output: Path, voice: str, tts_command: str | None,
                threads: int | None, device: str | None, amplitude: float, renderer: str, generator: Path | None,
                photo_fps: float, no_label: bool, watermark: bool, quiet: bool) -> None:
    """AVATAR says TEXT ('-' reads it from stdin): speech from a local voice, lips timed by its phones."""
    text = sys.stdin.read() if text == "-" else text
    sync = LipSync(device_of(ctx, device), generator=generator, renderer=renderer, amplitude=amplitude,
                   threads=threads, label=not no_label, signing_key=signing_key(no_label, None, None), on_note=say,
                   tts=TtsOptions(voice, tts_command, threads or 1))
    bar = ProgressBar(enabled=not quiet)
    try:
        report = sync.say(avatar, text, output, photo_fps=photo_fps, watermark=watermark, on_progress=bar)
    finally:
        bar.close()
    if not quiet:
        say(f"wrote {report.output} ({report.frames} frames, {report.fps:.0f} fps)")
