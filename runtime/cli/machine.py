"""What this machine can do: `bench` (a fixed workload against a board profile's targets) and
`devices` (the profiles, what runs here, and what the autotune measured)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
from rich.table import Table

from ..devices import autotune
from ..bench import bench_table, make_workload, run_case_isolated, save
from ..devices.profiles import (available_providers, choose_generator, compare_candidates, detect, profiles,
                                provider_options, resolve)
from ..errors import EdgeRetalkError
from .common import DEVICE_HELP, InputFile, OutputFile, device_of, say, table_console


@click.command()
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
    profile, reason = resolve(device_of(ctx, device) or "auto")
    click.echo(f"device: {profile.name} ({reason})", err=True)
    cases: list[tuple[Path | None, str | None]] = []
    if compare:
        cases = [(None, None), *compare_candidates(profile, models)]
    elif generator is not None:
        cases.append((generator, None))
    else:
        choice = choose_generator(profile, models)
        for note in choice.notes:
            say(note)
        cases.append((choice.artefact, choice.provider))
    with tempfile.TemporaryDirectory(prefix="edge-retalk-bench-") as tmp:
        face, audio = make_workload(Path(tmp))
        results = []
        for artefact, provider in cases:
            click.echo(f"benching {artefact or 'default'}" + (f" on {provider}" if provider else ""), err=True)
            results.append(run_case_isolated(face, audio, Path(tmp) / "out.mp4", artefact, provider, profile.threads,
                                             provider_options(profile, provider)))
    table_console().print(bench_table(results, profile))
    written = save(results, profile.name, output)
    click.echo(f"wrote {written}", err=True)
    if save_result:
        click.echo(f"saved {save(results, profile.name, Path('boards') / 'results' / f'{profile.name}.json')}", err=True)


@click.command()
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
    table_console().print(table)
    click.echo(f"auto picks: {picked.name if picked else 'none'} ({reason})")
    measured = autotune.choices()
    click.echo(f"measured on this machine ({autotune.machine_key()}; cache {autotune.cache_file()}):"
               if measured else "nothing measured on this machine yet (the built-in renderer, and --device with "
                                "several exported forms of a generator, measure them on first use)")
    for choice in measured:
        click.echo(f"  {choice.line}")
