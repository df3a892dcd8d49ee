"""An ARM64 run we have seen: edge-retalk installed offline into an emulated arm64 Debian and run
there, its output compared with the same run on this (x86-64) machine.

    python benchmarks/arm64_emulated.py --clip ../shared/data/clips/lrs2_00019.mp4 [--work DIR]

Needs root, Debian's debootstrap and qemu-user-static (`apt-get install debootstrap
qemu-user-static`) and the package indexes (Debian's and PyPI); slow (tens of minutes), so not a
test. What it does:
1. `debootstrap --foreign` fetches an arm64 Debian 12 (Python 3.11, python3-pip) into WORK/root and
   `dpkg-deb -x` unpacks every package (the second stage, which would need an arm64 chroot, is not
   run); no chroot and no binfmt registration are needed: every arm64 program runs as
   `qemu-aarch64-static -L WORK/root PROGRAM`, which finds the arm64 libraries in that folder;
2. downloads the runtime's aarch64 wheels (`pip download --only-binary=:all:`, as a board's user
   would get them) and builds edge-retalk's own wheel, then installs them inside the emulation
   with `--no-index` (nothing else reaches the network there);
3. gives the emulation the /proc/cpuinfo of a Cortex-A76 board (LiteRT's XNNPACK reads the
   running CPU's features from it and crashes on the host's x86 one);
4. runs `run` on the clip (its own speech), `prepare` + `live --audio-source FILE --record`, and
   `bench`, each on arm64, then `run` again natively, and prints the PSNR between the two videos.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arm64_wheels import PLATFORMS, requirements  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MIRROR = "http://deb.debian.org/debian"
PACKAGES = "python3,python3-pip,python3-venv,libportaudio2"
CORTEX_A76 = "".join(f"""processor\t: {core}
BogoMIPS\t: 48.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1

""" for core in range(4))
CLI = "from edge_retalk.cli import main; main()"


def step(title: str) -> float:
    click.echo(f"== {title}", err=True)
    return time.perf_counter()


def arm64_root(work: Path) -> Path:
    """An unpacked arm64 Debian 12 with Python (made once; reused by later runs)."""
    root = work / "root"
    if not (root / "usr" / "bin" / "python3").exists():
        subprocess.run(["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase", f"--include={PACKAGES}",
                        "bookworm", str(root), MIRROR], check=True, stdout=subprocess.DEVNULL)
        for package in sorted((root / "var" / "cache" / "apt" / "archives").glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(package), str(root)], check=True)
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc" / "cpuinfo").write_text(CORTEX_A76)
    return root


def python_wrapper(root: Path) -> Path:
    """A host script that runs the arm64 Python under qemu-user and names itself as that Python's
    executable (qemu's -0), so that commands which start Python again (`bench` measures in fresh
    processes) start it under qemu too: without binfmt the kernel cannot run an arm64 file."""
    wrapper = root.parent / "python3-arm64"
    command = f'exec qemu-aarch64-static -L "{root}" -0 "{wrapper}" "{root}/usr/bin/python3" "$@"'
    wrapper.write_text(f"#!/bin/sh\n{command}\n")
    wrapper.chmod(0o755)
    return wrapper


def emulated(root: Path, site: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run the arm64 Python of `root` under qemu-user, with `site` on its path."""
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(site.parent / "home"),
           "EDGE_RETALK_CACHE": str(site.parent / "cache"), "EDGE_RETALK_CONFIG": str(site.parent / "config"),
           "LANG": "C.UTF-8"}
    return subprocess.run([str(python_wrapper(root)), *args], env=env, check=True, **kwargs)


def install(root: Path, work: Path) -> Path:
    """edge-retalk and its aarch64 wheels, installed inside the emulation from local files only."""
    wheels, site = work / "wheels", work / "site"
    wheels.mkdir(exist_ok=True)
    platforms = [arg for name in PLATFORMS for arg in ("--platform", name)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", *platforms,
                    "--python-version", "3.11", "--implementation", "cp", "-d", str(wheels), *requirements()],
                   check=True)
    for old in wheels.glob("edge_retalk-*.whl"):
        old.unlink()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(REPO)],
                   check=True)
    shutil.rmtree(site, ignore_errors=True)
    emulated(root, site, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(wheels),
             "--target", str(site), "edge-retalk")
    return site


def mean_psnr(first: Path, second: Path) -> tuple[float, int]:
    """Mean PSNR over the frames of two videos of the same length, and that length."""
    from edge_retalk.io.media import iter_video_frames
    from edge_retalk.quality.metrics import psnr

    values = [psnr(a, b) for a, b in zip(iter_video_frames(first), iter_video_frames(second))]
    return float(np.mean(values)), len(values)


@click.command()
@click.option("--clip", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="A short real talking-head clip, driven by its own speech.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the arm64 root, wheels and outputs go (kept for reruns); default a temporary folder.")
@click.option("--skip-bench", is_flag=True, help="Leave out `bench` (the longest step under emulation).")
def main(clip: Path, work: Path | None, skip_bench: bool) -> None:
    work = work or Path(tempfile.mkdtemp(prefix="edge-retalk-arm64-"))
    work.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    timings = {}
    started = step("arm64 Debian 12 root (debootstrap --foreign)")
    root = arm64_root(work)
    machine = emulated(root, work / "site", "-c", "import platform; print(platform.machine())",
                       capture_output=True, text=True).stdout.strip()
    timings["root"] = time.perf_counter() - started
    started = step(f"offline install of the aarch64 wheels inside the emulation (it reports {machine})")
    site = install(root, work)
    timings["install"] = time.perf_counter() - started
    arm_video, x86_video = out / "arm64.mp4", out / "x86_64.mp4"
    started = step("run on arm64")
    emulated(root, site, "-c", CLI, "run", "--face", str(clip), "--audio", str(clip), "-o", str(arm_video))
    timings["run"] = time.perf_counter() - started
    started = step("prepare + live --audio-source FILE --record on arm64")
    emulated(root, site, "-c", CLI, "prepare", "--face", str(clip), "-o", str(out / "avatar"))
    emulated(root, site, "-c", CLI, "live", "--avatar", str(out / "avatar"), "--audio-source", str(clip),
             "--record", str(out / "live.mp4"), "--stats")
    timings["live"] = time.perf_counter() - started
    if not skip_bench:
        started = step("bench on arm64")
        emulated(root, site, "-c", CLI, "bench", "-o", str(out / "bench.json"))
        timings["bench"] = time.perf_counter() - started
    step("run on x86-64, natively")
    subprocess.run([sys.executable, "-c", CLI, "run", "--face", str(clip), "--audio", str(clip), "-o", str(x86_video)],
                   check=True)
    psnr, frames = mean_psnr(arm_video, x86_video)
    result = {"date": date.today().isoformat(), "clip": clip.name, "frames": frames,
              "psnr_arm64_vs_x86_db": round(psnr, 1), "live_recording": (out / "live.mp4").is_file(),
              "seconds": {k: round(v) for k, v in timings.items()}}
    if (out / "bench.json").is_file():
        result["bench"] = json.loads((out / "bench.json").read_text())
    (work / "result.json").write_text(json.dumps(result, indent=1))
    click.echo(f"{result['date']}: emulated arm64 Debian 12, Python 3.11: run, prepare + live and "
               f"{'bench' if not skip_bench else '(bench skipped)'} finished; {frames} frames of {clip.name}, "
               f"arm64 vs x86-64 output {psnr:.1f} dB PSNR; seconds {result['seconds']}; {work / 'result.json'}")


if __name__ == "__main__":
    main()
