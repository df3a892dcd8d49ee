"""Does the runtime (plus its microphone extra) install on Linux aarch64 from binary wheels alone?

    python benchmarks/arm64_wheels.py [--python 3.10 --python 3.11 --python 3.12]

For each Python version, pip resolves the dependencies that pyproject.toml declares (the base
install and the `live` extra) for a manylinux aarch64 machine with `--only-binary=:all:` and
`--dry-run` (it reads the wheels' metadata, not the wheels), so a dependency that would need a
compiler on a Raspberry Pi, an RK3588 board or a Jetson fails here. Needs the package index.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import click

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")


def requirements() -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["live"]]


def resolve(python: str, work: Path) -> list[tuple[str, str, str]]:
    """(name, version, wheel file) of every package pip would install, or an error naming the problem."""
    report = work / f"report-{python}.json"
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--only-binary=:all:", *platforms, "--python-version", python, "--implementation", "cp",
               "--target", str(work / "target"), "--report", str(report), *requirements()]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise click.ClickException(f"Python {python}: no binary-only install on aarch64:\n{result.stderr.strip()}")
    installs = json.loads(report.read_text())["install"]
    return sorted((item["metadata"]["name"], item["metadata"]["version"],
                   item["download_info"]["url"].rsplit("/", 1)[1]) for item in installs)


@click.command()
@click.option("--python", "versions", multiple=True, default=("3.10", "3.11", "3.12"), show_default=True)
def main(versions: tuple[str, ...]) -> None:
    with tempfile.TemporaryDirectory(prefix="edge-retalk-arm64-") as tmp:
        for python in versions:
            wheels = resolve(python, Path(tmp))
            native = [file for _, _, file in wheels if "aarch64" in file]
            click.echo(f"Python {python}: {len(wheels)} wheels, {len(native)} of them built for aarch64, none from source")
            for name, version, file in wheels:
                if "aarch64" in file:
                    click.echo(f"  {name} {version}: {file}")


if __name__ == "__main__":
    main()
