"""What the commands share: argument types, help texts, the progress bar, the signing-key check."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from ..errors import EdgeRetalkError
from ..provenance.content_credentials import SigningKey, operator_signing_key
from ..provenance.labels import UNLABELLED_NOTE

stderr = Console(stderr=True)
TABLE_WIDTH = 240
PROGRESS_AFTER_SECONDS = 1.0

InputFile = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
OutputFile = click.Path(dir_okay=False, path_type=Path)
GeneratorPath = click.Path(exists=True, readable=True, path_type=Path)


class Seconds(click.FloatRange):
    """A duration within bounds that is a number: click's FloatRange lets NaN through (every
    comparison with it is false), and a NaN limit or duration never triggers."""

    name = "seconds"

    def convert(self, value, param, ctx):
        seconds = super().convert(value, param, ctx)
        if seconds != seconds:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds
DEVICE_HELP = "Board profile (see `edge-retalk devices`), or auto to recognise this machine."
RENDERER_HELP = ("Built-in mouth renderer: learned (the face's own lips moved to the learned lip shape, the network "
                 "painting the open mouth), network (the network painting the whole lip area; softer), or painted "
                 "(no network, for the smallest boards).")
SIGNING_HELP = ("Certificate chain (PEM, signer first) that signs the Content Credentials, with --sign-key "
                "[default: the [signing] table of the config file, else a self-signed TEST certificate].")


def say(line: str) -> None:
    """One line on stderr (what was chosen, what stepped down)."""
    click.echo(line, err=True)


def table_console() -> Console:
    """Tables at the terminal's width, or wide enough not to wrap when piped."""
    return Console(width=None if sys.stdout.isatty() else TABLE_WIDTH)


def device_of(ctx: click.Context, device: str | None) -> str | None:
    """--device after the command, else before it (`edge-retalk --device jetson run ...`)."""
    return device or (ctx.obj or {}).get("device")


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


class LoggedProgress:
    """Progress as a log line at every tenth of the work, for a long job whose stderr is a log file
    or a service's journal rather than a terminal (where rich draws nothing)."""

    def __init__(self, name: str, enabled: bool):
        self.name, self.enabled = name, enabled
        self.total: int | None = None
        self._done, self._next, self._started = 0, 0.1, time.monotonic()

    def advance(self, n: int) -> None:
        self._done += n
        if not self.enabled or not self.total or self._done < self._next * self.total:
            return
        elapsed = time.monotonic() - self._started
        left = elapsed * max(self.total - self._done, 0) / max(self._done, 1)
        click.echo(f"{self.name}: {min(100 * self._done / self.total, 100):.0f} % after {elapsed / 60:.1f} min, "
                   f"about {left / 60:.0f} min left", err=True)
        while self._next * self.total <= self._done:
            self._next += 0.1


def signing_key(no_label: bool, cert: Path | None, key: Path | None, writes_video: bool = True) -> SigningKey | None:
    """The operator's key for the Content Credentials, checked before the run (None: unlabelled, no
    video written, or no key configured, in which case the run signs with the test key once its
    inputs are known to be good); says when marks are left out."""
    if (cert is not None or key is not None) and (no_label or not writes_video):
        raise EdgeRetalkError("--sign-cert/--sign-key sign a written video's label: they need a labelled output"
                              + (" (drop --no-label)" if no_label else " (--record)"))
    if not writes_video:
        return None
    if no_label:
        say(UNLABELLED_NOTE)
        return None
    return operator_signing_key(cert, key)
