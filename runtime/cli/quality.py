"""How good and how honest the output is: `eval` (lip-sync quality on real clips) and `inspect`
(the marks that say a video is synthetic)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..errors import EdgeRetalkError
from ..file_mode import RunOptions
from ..generators.options import RENDERERS, RenderOptions
from ..provenance.labels import inspect_file
from ..quality.evaluate import PROTOCOLS, evaluate_clip, score_generated
from ..quality.report import summary_table, write_report
from .common import InputFile, stderr, table_console


@click.command()
@click.argument("file", type=InputFile)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
def inspect(file: Path, as_json: bool) -> None:
    """Say whether FILE is marked as made by edge-retalk: its metadata tag, Content Credentials
    (validated) and invisible watermark; list its streams."""
    found = inspect_file(file)
    if as_json:
        click.echo(json.dumps(found.as_dict()))
        return
    if found.labelled and found.synthetic:
        click.echo(f"synthetic: yes (edge-retalk {found.version}, generator {found.generator})")
    elif found.labelled:
        click.echo(f"synthetic: claims to be synthetic (unverified: only its metadata tag names edge-retalk "
                   f"{found.version}; no valid Content Credentials, no watermark)")
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


@click.command("eval")
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
        table_console().print(table)
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
    table_console().print(summary_table(reports, protocol))
    path = write_report(reports, protocol, output_dir, renderer)
    click.echo(f"report written to {path}", err=True)
