"""edge-retalk against a PyTorch-eager Wav2Lip pipeline of the same network, on the same clip.

    python benchmarks/wav2lip_side_by_side.py --checkpoint wav2lip.pt --exported exported/ \
        [--clip ../shared/data/clips/hdtf_wda_aoc_8s.mp4]

The reference does what the original Wav2Lip inference script does with a face box given
(`--box`): it decodes every frame into memory, crops the box, masks the lower half, runs the
network in PyTorch on batches of 128 frames with all cores, resizes each generated crop back and
pastes it into the full frame, and encodes the video with the speech (once, with libx264, where
the original encodes twice). edge-retalk runs `edge-retalk run --device auto --models EXPORTED`,
so the generator form is the one its autotune measured fastest on this machine. The first run on a
machine also times the forms (once; the choice is cached): that first run is printed on its own.
Then each side runs `--repeats` times, alternating, and the ratios use the medians: single runs of
the reference took 14.7 to 21.7 s on one machine within half an hour.

Each run is a fresh process; the script prints wall time, peak memory (RSS) and the ratios, with
the CPU named. Not a test: speed is never asserted.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import click

REFERENCE = r"""
import sys, time
from pathlib import Path
import av, cv2, numpy as np, torch
from edge_retalk.audio.features import log_mel, mel_window
from edge_retalk.export.checkpoints import load_checkpoint
from edge_retalk.export.models.wav2lip import FACE_SIZE, Wav2Lip
from edge_retalk.io.media import load_audio

clip, checkpoint, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
x0, y0, x1, y1 = map(int, sys.argv[4].split(","))
BATCH = 128
started = time.perf_counter()
with av.open(str(clip)) as container:
    stream = container.streams.video[0]
    fps = float(stream.average_rate)
    frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
speech = load_audio(clip)
mel = log_mel(speech)
model = load_checkpoint(Wav2Lip(), checkpoint, False).eval()
with av.open(str(out), "w") as container:
    video = container.add_stream("libx264", rate=round(fps))
    video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    audio = container.add_stream("aac", rate=16000)
    audio.layout = "mono"
    for start in range(0, len(frames), BATCH):
        batch = frames[start:start + BATCH]
        crops = np.stack([cv2.resize(f[y0:y1, x0:x1], (FACE_SIZE, FACE_SIZE)) for f in batch]).astype(np.float32) / 255.0
        masked = crops.copy()
        masked[:, FACE_SIZE // 2:] = 0.0
        faces = np.concatenate([masked, crops], axis=3).transpose(0, 3, 1, 2)
        mels = np.stack([mel_window(mel, start + i, fps)[None] for i in range(len(batch))]).astype(np.float32)
        with torch.no_grad():
            generated = model(torch.from_numpy(mels), torch.from_numpy(np.ascontiguousarray(faces))).numpy()
        for frame, crop in zip(batch, generated):
            picture = (crop.transpose(1, 2, 0) * 255.0).astype(np.uint8)
            frame[y0:y1, x0:x1] = cv2.resize(picture, (x1 - x0, y1 - y0))
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
    for packet in video.encode(None):
        container.mux(packet)
    pcm = av.AudioFrame.from_ndarray((speech * 32767).astype(np.int16)[None], format="s16", layout="mono")
    pcm.sample_rate = 16000
    for packet in [*audio.encode(pcm), *audio.encode(None)]:
        container.mux(packet)
print(len(frames), time.perf_counter() - started)
"""

MEASURED = r"""
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"seconds": time.perf_counter() - started, "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}))
"""


def cpu_description() -> str:
    from edge_retalk.devices.autotune import machine

    found = machine()
    return f"{found['cpu']} ({', '.join(found['isa']) or 'no INT8 instructions'}), {found['cores']} cores"


def measured(command: list[str]) -> dict:
    """Run `command` in a fresh process: wall seconds and its peak RSS."""
    result = json.loads(subprocess.run([sys.executable, "-c", MEASURED, *command], capture_output=True, text=True,
                                       check=True).stdout)
    if result["rc"] != 0:
        raise click.ClickException(f"{' '.join(command[:3])} failed: {result['stderr'].strip()[-400:]}")
    return result


def median_run(results: list[dict]) -> dict:
    """The run with the median wall time (the lower middle one of an even count)."""
    return sorted(results, key=lambda result: result["seconds"])[(len(results) - 1) // 2]


def edge_retalk_script() -> str:
    """The `edge-retalk` that pip installed beside this interpreter, as the reference runs this
    interpreter itself: a version manager's shim found first on PATH (pyenv's runs about 40
    processes) would add 0.06-0.1 s to every run of one side only."""
    beside = Path(sys.executable).parent / "edge-retalk"
    return str(beside) if beside.is_file() else "edge-retalk"


def face_box_of(clip: Path) -> tuple[int, int, int, int]:
    """The square face box of the clip's first frame, as the runtime cuts it (given to the reference)."""
    from edge_retalk.io.media import iter_video_frames
    from edge_retalk.generators.neural import face_box
    from edge_retalk.face.tracker import FaceTracker

    frame = next(iter(iter_video_frames(clip)))
    points = FaceTracker(25.0)(frame)
    if points is None:
        raise click.ClickException(f"{clip}: no face in the first frame")
    return face_box(points, frame.shape)


@click.command()
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Wav2Lip checkpoint (official layout) that the reference runs.")
@click.option("--exported", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Folder of that checkpoint's exports (`edge-retalk export`), for edge-retalk's --device auto.")
@click.option("--clip", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("../shared/data/clips/hdtf_wda_aoc_8s.mp4"), show_default=True)
@click.option("--repeats", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Runs of each side after the first use; the ratios use the medians.")
def main(checkpoint: Path, exported: Path, clip: Path, repeats: int) -> None:
    """Print both sides' time and peak memory and the ratios."""
    box = face_box_of(clip)
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp:
        ours_command = [edge_retalk_script(), "run", "--face", str(clip), "--audio", str(clip), "--device", "auto",
                        "--models", str(exported), "-o", f"{tmp}/ours.mp4", "-q"]
        reference_command = [sys.executable, "-c", REFERENCE, str(clip), str(checkpoint), f"{tmp}/reference.mp4",
                             ",".join(map(str, box))]
        first = measured(ours_command)
        runs = [(measured(reference_command), measured(ours_command)) for _ in range(repeats)]
    references, ourses = [r for r, _ in runs], [o for _, o in runs]
    reference, ours = (median_run(references), median_run(ourses))
    frames = int(reference["stdout"].split()[0])
    chosen = next((line for line in ours["stderr"].splitlines() if line.startswith("generator:")), "generator: ?")
    click.echo(f"machine: {cpu_description()}; clip {clip.name}, {frames} frames; python {platform.python_version()}")
    click.echo(f"edge-retalk run --device auto: {chosen.split(':', 1)[1].strip()}")
    for line in first["stderr"].splitlines():
        if line.startswith("measured here:"):
            click.echo(f"  {line}")

    def seconds(results: list[dict]) -> str:
        return ", ".join(f"{result['seconds']:.1f}" for result in results)

    click.echo(f"seconds of each run: reference {seconds(references)}; edge-retalk {seconds(ourses)}")
    click.echo(f"| pipeline (median of {repeats} runs) | seconds | fps | peak memory MB |")
    click.echo("|---|---|---|---|")
    for name, result in (("PyTorch eager Wav2Lip (batch 128, full-frame paste)", reference),
                         ("edge-retalk run --device auto, first use on this machine (times its forms; one run)", first),
                         ("edge-retalk run --device auto", ours)):
        click.echo(f"| {name} | {result['seconds']:.1f} | {frames / result['seconds']:.1f} | {result['peak_mb']:.0f} |")
    click.echo(f"edge-retalk is {reference['seconds'] / ours['seconds']:.1f}x faster end to end, with "
               f"{ours['peak_mb'] / reference['peak_mb']:.2f}x the peak memory")


if __name__ == "__main__":
    main()
