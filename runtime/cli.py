"""The `edge-retalk` command: thin click commands that fill option dataclasses and call the library."""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from . import __version__, autotune
from .errors import EdgeRetalkError
from .eval_report import summary_table, write_report
from .content_credentials import SigningKey, operator_signing_key
from .labels import UNLABELLED_NOTE, inspect_file
from .evaluate import PROTOCOLS, evaluate_clip, score_generated
from .generator import RENDERERS, RenderOptions
from .models import model_path
from .export.formats import FORMATS as EXPORT_FORMATS
from .pipeline import RunOptions, RunReport, lipsync
from .audio_sources import list_audio_devices as audio_devices
from .avatar import prepare_avatar
from .live import LiveOptions
from .live_session import LiveSetup, run_session
from .bench import make_workload, run_case_isolated, save
from .profiles import (available_providers, choose_generator, compare_candidates, detect, profiles, provider_options,
                       resolve)
from .stream import force_stop_later, interrupted
from .timing import STAGES

stderr = Console(stderr=True)
TABLE_WIDTH = 240
PROGRESS_AFTER_SECONDS = 1.0

InputFile = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
SIGNING_HELP = ("Certificate chain (PEM, signer first) that signs the Content Credentials, with --sign-key "
                "[default: the [signing] table of the config file, else a self-signed TEST certificate].")
OutputFile = click.Path(dir_okay=False, path_type=Path)
GeneratorPath = click.Path(exists=True, readable=True, path_type=Path)


class ProgressBar:
    """A rich progress bar with frames per second, shown only once a run has lasted a second."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._started = time.perf_counter()
        self._progress: Progress | None = None
        self._task = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            if time.perf_counter() - self._started < PROGRESS_AFTER_SECONDS:
                return
            self._progress = Progress(
                TextColumn("lip-sync"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                TextColumn("{task.fields[fps]:.0f} fps"), TimeRemainingColumn(), console=stderr, transient=True)
            self._progress.start()
            self._task = self._progress.add_task("frames", total=total, fps=0.0)
        elapsed = time.perf_counter() - self._started
        self._progress.update(self._task, completed=done, fps=done / max(elapsed, 1e-6))

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _report(report: RunReport, quiet: bool) -> None:
    if report.frames_without_face:
        click.echo(f"{report.frames_without_face} of {report.frames} frames had no face and were left unchanged",
                   err=True)
    if not quiet:
        click.echo(f"wrote {report.output} ({report.frames} frames, {report.fps:.0f} fps)", err=True)


def _run(face: Path, audio: Path, output: Path, options: RunOptions, quiet: bool) -> RunReport:
    bar = ProgressBar(enabled=not quiet)
    try:
        report = lipsync(face, audio, output, options, on_progress=bar)
    finally:
        bar.close()
    _report(report, quiet)
    return report


DEVICE_HELP = "Board profile (see `edge-retalk devices`), or auto to recognise this machine."


def _device_settings(ctx: click.Context, device: str | None, threads: int | None, generator: Path | None,
                     models: Path) -> dict:
    """Threads, generator, execution provider and its options, tracking interval and batch from the
    board profile named by --device (if any), saying what was picked and why; explicit options win."""
    settings = {"threads": threads or 1, "generator": generator, "provider": None, "provider_options": {},
                "tracking_interval": 1, "batch": 1}
    device = device or (ctx.obj or {}).get("device")
    if device is None:
        return settings
    profile, reason = resolve(device)
    click.echo(f"device: {profile.name} ({reason})", err=True)
    settings.update(threads=threads or profile.threads, tracking_interval=profile.tracking_interval,
                    batch=profile.batch)
    if generator is None:
        choice = choose_generator(profile, models, settings["threads"])
        for note in choice.notes:
            click.echo(note, err=True)
        settings.update(generator=choice.artefact, provider=choice.provider, provider_options=choice.options)
    provider = settings["provider"]
    click.echo(f"generator: {settings['generator'] or 'default (built-in)'}" + (f" on {provider}" if provider else ""),
               err=True)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge-retalk")
@click.option("-v", "--verbose", is_flag=True, help="Log what each stage does.")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.pass_context
def cli(ctx: click.Context, verbose: bool, device: str | None) -> None:
    """Offline audio-driven lip sync for kiosk and robot avatars."""
    ctx.obj = {"device": device}
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@cli.command()
@click.option("--face", required=True, type=InputFile, help="Face video (mp4, mov, mkv, mpg) or photo (png, jpg).")
@click.option("--audio", required=True, type=InputFile, help="Speech: wav, flac, mp3, m4a, or a video's audio track.")
@click.option("-o", "--output", required=True, type=OutputFile, help="Output .mp4 (written atomically).")
@click.option("--threads", type=click.IntRange(1, 64), default=None, help="Threads for the models [default: the "
              "device profile's, else 1].")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--models", type=click.Path(file_okay=False, path_type=Path), default=Path("exported"), show_default=True,
              help="Folder of exported generators that a device profile may pick from.")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True, help="H.264 quality (lower is better).")
@click.option("--preset", type=click.Choice(["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"]),
              default="veryfast", show_default=True, help="H.264 speed/size trade-off.")
@click.option("--amplitude", type=click.FloatRange(0.0, 3.0), default=1.0, show_default=True,
              help="How wide the mouth opens, relative to a typical speaker.")
@click.option("--renderer", type=click.Choice(RENDERERS), default="learned", show_default=True,
              help="Built-in mouth renderer: learned (the face's own lips moved to the learned lip shape, the "
                   "network painting the open mouth), network (the network painting the whole lip area; softer), "
                   "or painted (no network, for the smallest boards).")
@click.option("--fps", "photo_fps", type=click.FloatRange(1.0, 120.0), default=25.0, show_default=True,
              help="Frame rate of the output when the face is a photo.")
@click.option("--generator", type=GeneratorPath, help="An exported generator (.onnx, .xml or .tflite, with its "
              "manifest), or an enrolled avatar folder (its personal networks), instead of the built-in one.")
@click.option("--batch", type=click.IntRange(1, 64), default=None,
              help="Frames per call of an exported generator [default: 1, or the --device profile's].")
@click.option("--no-label", is_flag=True, help="Leave out all three marks that say the video is synthetic "
              "(metadata tag, Content Credentials, invisible watermark).")
@click.option("--sign-cert", type=InputFile, help=SIGNING_HELP)
@click.option("--sign-key", type=InputFile, help="Private key (PEM) of --sign-cert.")
@click.option("--watermark", is_flag=True, help="Also show a small visible 'AI-generated' label.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
@click.pass_context
def run(ctx: click.Context, face: Path, audio: Path, output: Path, threads: int | None, device: str | None,
        models: Path, crf: int, preset: str, amplitude: float, renderer: str, photo_fps: float,
        generator: Path | None, batch: int | None, no_label: bool, sign_cert: Path | None, sign_key: Path | None,
        watermark: bool, quiet: bool) -> None:
    """Lip-sync FACE to AUDIO and write OUTPUT."""
    settings = _device_settings(ctx, device, threads, generator, models)
    settings["batch"] = batch or settings["batch"]
    options = RunOptions(crf=crf, preset=preset, render=RenderOptions(amplitude, renderer), label=not no_label,
                         signing_key=_signing_key(no_label, sign_cert, sign_key), watermark=watermark,
                         photo_fps=Fraction(photo_fps).limit_denominator(1001), **settings)
    _run(face, audio, output, options, quiet)


@cli.command()
@click.option("--arch", type=click.Choice(["wav2lip", "videoretalking", "lip_shape", "mouth_renderer"]), required=True,
              help="Architecture of the checkpoint.")
@click.option("--checkpoint", type=InputFile, required=True,
              help="PyTorch checkpoint: wav2lip.pth / wav2lip_gan.pth, VideoReTalking's LNet.pth, or one "
                   "trained by edge_retalk.training (lip_shape.pt, mouth_renderer.pt).")
@click.option("--enet", type=InputFile, help="VideoReTalking's ENet.pth (with --arch videoretalking).")
@click.option("--to", "targets", default=",".join(EXPORT_FORMATS), show_default=True,
              help="Comma-separated targets: " + ", ".join(EXPORT_FORMATS) + ".")
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
        from .export.pipeline import export_model
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


@cli.command()
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--generator", type=InputFile, help="Bench this exported generator instead of the profile's choice.")
@click.option("--models", type=click.Path(file_okay=False, path_type=Path), default=Path("exported"), show_default=True)
@click.option("--compare", is_flag=True, help="Bench the built-in generator and every exported one that runs here.")
@click.option("--save", "save_result", is_flag=True, help="Also store the result as boards/results/PROFILE.json.")
@click.option("-o", "--output", type=OutputFile, default=Path("bench.json"), show_default=True)
@click.pass_context
def bench(ctx: click.Context, device: str | None, generator: Path | None, models: Path, compare: bool,
          save_result: bool, output: Path) -> None:
    """Measure this machine on a fixed workload (bundled inputs) against a board profile's targets."""
    profile, reason = resolve(device or (ctx.obj or {}).get("device") or "auto")
    click.echo(f"device: {profile.name} ({reason})", err=True)
    cases: list[tuple[Path | None, str | None]] = []
    if compare:
        cases = [(None, None), *compare_candidates(profile, models)]
    elif generator is not None:
        cases.append((generator, None))
    else:
        choice = choose_generator(profile, models)
        for note in choice.notes:
            click.echo(note, err=True)
        cases.append((choice.artefact, choice.provider))
    with tempfile.TemporaryDirectory(prefix="edge-retalk-bench-") as tmp:
        face, audio = make_workload(Path(tmp))
        results = []
        for artefact, provider in cases:
            click.echo(f"benching {artefact or 'default'}" + (f" on {provider}" if provider else ""), err=True)
            results.append(run_case_isolated(face, audio, Path(tmp) / "out.mp4", artefact, provider, profile.threads,
                                             provider_options(profile, provider)))
    table = Table(title=f"edge-retalk bench on {profile.name}: target {profile.target_fps:g} fps, "
                        f"{profile.target_latency_ms:g} ms live latency; median (p95) ms per frame")
    for column in ("generator", "fps", "meets fps target", "live latency p50 (p95) ms", "meets latency target",
                   "first frame s", "peak MB", *STAGES):
        table.add_column(column, justify="right")
    for r in results:
        cells = [f"{r.stages[s]['median_ms']:.2f} ({r.stages[s]['p95_ms']:.2f})" if s in r.stages else "-"
                 for s in STAGES]
        latency = (f"{r.live_latency_p50_ms:.0f} ({r.live_latency_p95_ms:.0f}), {r.live_dropped} dropped"
                   if r.live_latency_p95_ms is not None
                   else "-")
        meets_latency = ("-" if r.live_latency_p95_ms is None
                         else "yes" if r.live_latency_p95_ms <= profile.target_latency_ms and not r.live_dropped else "no")
        table.add_row(r.generator, f"{r.fps:.0f}", "yes" if r.fps >= profile.target_fps else "no", latency,
                      meets_latency, f"{r.first_frame_s:.2f}", f"{r.peak_mb:.0f}", *cells)
    Console(width=None if sys.stdout.isatty() else TABLE_WIDTH).print(table)
    written = save(results, profile.name, output)
    click.echo(f"wrote {written}", err=True)
    if save_result:
        click.echo(f"saved {save(results, profile.name, Path('boards') / 'results' / f'{profile.name}.json')}", err=True)


@cli.command()
def devices() -> None:
    """List the board profiles and what this machine can run."""
    have = available_providers()
    try:
        picked, reason = detect()
    except EdgeRetalkError:
        picked, reason = None, "no profile fits"
    table = Table(title=f"board profiles (installed here: {', '.join(sorted(have)) or 'none'})")
    for column in ("profile", "aliases", "generators, in order", "accelerators, in order", "runs here", "targets"):
        table.add_column(column)
    for profile in profiles().values():
        runnable = [p for p in profile.providers if p in have]
        mark = " (auto)" if picked is not None and profile.name == picked.name else ""
        table.add_row(profile.name + mark, ", ".join(profile.aliases), ", ".join(profile.generators),
                      ", ".join(f"{p}{'' if p in have else ' (missing)'}" for p in profile.providers),
                      ", ".join(runnable) if runnable else "default generator only",
                      f"{profile.target_fps:g} fps, {profile.target_latency_ms:g} ms")
    Console(width=None if sys.stdout.isatty() else TABLE_WIDTH).print(table)
    click.echo(f"auto picks: {picked.name if picked else 'none'} ({reason})")
    measured = autotune.choices()
    click.echo(f"measured on this machine ({autotune.machine_key()}; cache {autotune.cache_file()}):"
               if measured else "nothing measured on this machine yet (the built-in renderer, and --device with "
                                "several exported forms of a generator, measure them on first use)")
    for choice in measured:
        click.echo(f"  {choice.line}")


@cli.command()
@click.argument("file", type=InputFile)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
def inspect(file: Path, as_json: bool) -> None:
    """Say whether FILE is marked as made by edge-retalk: its metadata tag, Content Credentials
    (validated) and invisible watermark; list its streams."""
    found = inspect_file(file)
    if as_json:
        click.echo(json.dumps(found.as_dict()))
        return
    if found.labelled:
        click.echo(f"synthetic: yes (edge-retalk {found.version}, generator {found.generator})")
    elif found.synthetic:
        click.echo("synthetic: yes (its metadata tag is gone; the marks below remain)")
    else:
        click.echo("synthetic: no edge-retalk label")
    credentials = found.credentials
    if credentials.state == "none":
        click.echo("content credentials: none")
    else:
        signer = ("signed with edge-retalk's self-signed TEST certificate (it proves nothing about who made it)"
                  if credentials.test_certificate
                  else f"signed by {credentials.signer} (certificate not checked against a trust list)")
        click.echo(f"content credentials: {credentials.state}, {signer}" if credentials.state == "valid"
                   else f"content credentials: INVALID ({'; '.join(credentials.problems)})")
        for action in credentials.actions:
            click.echo(f"  action: {action}")
    if found.watermark is not None:
        mark = found.watermark
        click.echo(f"watermark: {'present' if mark.present else 'none found'} (score {mark.score:.1f}, "
                   f"threshold {mark.threshold:.1f}, {mark.frames} frames)")
    for stream in found.streams:
        click.echo(stream)
    for key, value in found.metadata.items():
        click.echo(f"{key}: {value}")


@cli.command("eval")
@click.argument("clips", nargs=-1, type=InputFile)
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="photo", show_default=True,
              help="photo: the clip's first frame as the face; dub: the clip played backwards.")
@click.option("--renderer", type=click.Choice(RENDERERS), default="learned", show_default=True,
              help="The built-in renderer to measure.")
@click.option("--amplitude", type=click.FloatRange(0.0, 3.0), default=1.0, show_default=True,
              help="How wide the mouth opens, as for `run`.")
@click.option("--generated", type=InputFile, help="Score this video alone (no reference clip).")
@click.option("--audio", type=InputFile, help="Speech for --generated (default: its own sound track).")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("eval-report"),
              show_default=True, help="Where report.json, plots and contact sheets go.")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True)
def evaluate(clips: tuple[Path, ...], protocol: str, renderer: str, amplitude: float, generated: Path | None,
             audio: Path | None, output_dir: Path, threads: int) -> None:
    """Measure lip-sync quality of the generator on real CLIPS (their own speech), or of one --generated video."""
    if bool(clips) == bool(generated):
        raise EdgeRetalkError("give either CLIP files or --generated VIDEO")
    output_dir.mkdir(parents=True, exist_ok=True)
    if generated is not None:
        scores = score_generated(generated, audio)
        (output_dir / "report.json").write_text(json.dumps({"generated": str(generated), "scores": scores}, indent=2))
        table = Table(title=f"{generated.name} (no reference)")
        for key in scores:
            table.add_column(key, justify="right")
        table.add_row(*(f"{value:.3g}" for value in scores.values()))
        Console(width=None if sys.stdout.isatty() else TABLE_WIDTH).print(table)
        return
    reports = []
    with Progress(TextColumn("eval {task.fields[clip]}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=stderr, transient=True) as progress:
        task = progress.add_task("clips", total=len(clips), clip="")
        for clip in clips:
            progress.update(task, clip=clip.name)
            reports.append(evaluate_clip(clip, protocol, output_dir,
                                         RunOptions(threads=threads, render=RenderOptions(amplitude, renderer))))
            progress.advance(task)
    Console(width=None if sys.stdout.isatty() else TABLE_WIDTH).print(summary_table(reports, protocol))
    path = write_report(reports, protocol, output_dir, renderer)
    click.echo(f"report written to {path}", err=True)


def _address(value: str) -> tuple[str, int]:
    """HOST:PORT or PORT (on 127.0.0.1)."""
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise EdgeRetalkError(f"--serve {value}: expected PORT or HOST:PORT, e.g. 127.0.0.1:8080")
    return host or "127.0.0.1", int(port)


@cli.command()
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


@cli.command()
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
        from .training.enroll import EnrollOptions, enroll as enroll_person
    except ImportError as exc:
        raise EdgeRetalkError(f"enroll trains networks and needs PyTorch ({exc.name} is missing): "
                              "pip install 'edge-retalk[export]'") from None
    progress = Progress(TextColumn("enroll"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                        console=stderr, disable=quiet)
    with progress:
        task = progress.add_task("enroll", total=None)
        report = enroll_person(face, output, audio, EnrollOptions(renderer_steps, shape_steps, threads, resume),
                               on_start=lambda total: progress.update(task, total=total),
                               advance=lambda n: progress.advance(task, n))
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    figures = lambda r: ", ".join(f"{k} {r[k]:.3f}" for k in ("r_opening", "lmd", "psnr", "ssim") if k in r)  # noqa: E731
    click.echo(f"held-out {report.held_out_frames} frames: generic {figures(report.generic)}; "
               f"personal {figures(report.personal)}")
    click.echo(f"personal avatar written to {output} in {report.minutes:.1f} min")


@cli.command()
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
@click.option("--window/--no-window", default=None, help="Show a window [default: when a display exists].")
@click.option("--record", type=OutputFile, default=None, help="Also record what is shown, with the audio, to this .mp4.")
@click.option("--duration", type=click.FloatRange(0.1, None), default=None, help="Stop after this many seconds.")
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
              help="Built-in mouth renderer: learned (the face's own lips moved to the learned lip shape, the "
                   "network painting the open mouth), network (the network painting the whole lip area; softer), "
                   "or painted (no network, for the smallest boards).")
@click.option("--no-label", is_flag=True, help="Leave out all three marks that say the recording is synthetic "
              "(metadata tag, Content Credentials, invisible watermark).")
@click.option("--sign-cert", type=InputFile, help=SIGNING_HELP)
@click.option("--sign-key", type=InputFile, help="Private key (PEM) of --sign-cert.")
@click.option("--watermark", is_flag=True, help="Show a small visible 'AI-generated' label.")
@click.pass_context
def live(ctx: click.Context, avatar: Path | None, audio_source: str, sample_rate: int | None, audio_device: str | None,
         list_audio_devices: bool, serve: str, no_serve: bool, serve_token: str | None, window: bool | None,
         record: Path | None,
         duration: float | None, stats: bool, generator: Path | None, device: str | None, models: Path,
         threads: int | None, amplitude: float, renderer: str, no_label: bool, sign_cert: Path | None,
         sign_key: Path | None, watermark: bool) -> None:
    """Animate the --avatar bundle with speech as it arrives, in real time (see it at --serve)."""
    if list_audio_devices:
        for index, name, channels, rate in audio_devices():
            click.echo(f"{index}: {name} ({channels} channels, {rate} Hz)")
        return
    if avatar is None:
        raise EdgeRetalkError("--avatar is required (make one with `edge-retalk prepare --face VIDEO -o DIR`)")
    settings = _device_settings(ctx, device, threads, generator, models)
    del settings["tracking_interval"], settings["batch"]
    options = LiveOptions(duration=duration, render=RenderOptions(amplitude, renderer),
                          stats_every=10.0 if stats else None, watermark=watermark, **settings)
    setup = LiveSetup(avatar, audio_source, sample_rate, audio_device, None if no_serve else _address(serve),
                      serve_token, window, record, not no_label,
                      _signing_key(no_label, sign_cert, sign_key, writes_video=record is not None), options)
    report, load_seconds = run_session(setup, on_ready=lambda line: click.echo(line, err=True),
                                       on_stats=lambda r: click.echo(f"stats: {r.line()}", err=True))
    if stats:
        click.echo(f"avatar loaded in {load_seconds * 1000:.0f} ms", err=True)
    click.echo(f"live: {report.line()}", err=True)
    if record is not None:
        click.echo(f"recording written to {record}", err=True)


@cli.command()
@click.option("-o", "--output", type=OutputFile, default=Path("edge-retalk-demo.mp4"), show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def demo(output: Path, quiet: bool) -> None:
    """Make a demo video from the bundled portrait and speech."""
    report = _run(model_path("demo_portrait.png"), model_path("demo_speech.wav"), output, RunOptions(), quiet=True)
    if not quiet:
        click.echo(f"demo video written to {report.output.resolve()}")


def _signing_key(no_label: bool, cert: Path | None, key: Path | None, writes_video: bool = True) -> SigningKey | None:
    """The operator's key for the Content Credentials, checked before the run (None: unlabelled, no
    video written, or no key configured, in which case the run signs with the test key once its
    inputs are known to be good); says when marks are left out."""
    if (cert is not None or key is not None) and (no_label or not writes_video):
        raise EdgeRetalkError("--sign-cert/--sign-key sign a written video's label: they need a labelled output"
                              + (" (drop --no-label)" if no_label else " (--record)"))
    if not writes_video:
        return None
    if no_label:
        click.echo(UNLABELLED_NOTE, err=True)
        return None
    return operator_signing_key(cert, key)


def _interrupt(signum: int, frame) -> None:
    interrupted.set()
    force_stop_later()
    raise KeyboardInterrupt


def main() -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit, never a traceback.
    Ctrl-C and SIGTERM (a service being stopped) end a run without leaving a partial output."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        cli.main(standalone_mode=False)
    except EdgeRetalkError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
