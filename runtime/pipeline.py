"""File mode: a face (video or photo) and speech in, a lip-synced H.264 mp4 out, as a stream."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable

from .audio import SAMPLE_RATE
from .content_credentials import SigningKey
from .errors import EdgeRetalkError
from .generator import RenderOptions
from .generators import open_generator
from .labels import SyntheticLabel, draw_watermark
from .media import PHOTO_FPS, VideoWriter, check_readable, load_audio, probe_face
from .sources import face_frames
from .stream import WriteBehind, raise_if_interrupted, read_ahead
from .timing import stage

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class RunOptions:
    """Settings of one file-mode run; the CLI and board profiles fill them."""

    threads: int = 1
    crf: int = 18
    preset: str = "veryfast"
    render: RenderOptions = field(default_factory=RenderOptions)
    label: bool = True
    signing_key: SigningKey | None = None
    watermark: bool = False
    generator: Path | None = None
    provider: str | None = None
    provider_options: dict[str, str] = field(default_factory=dict)
    photo_fps: Fraction = PHOTO_FPS
    tracking_interval: int = 1
    batch: int = 1


@dataclass(frozen=True)
class RunReport:
    """What a run did: where it wrote, how many frames, how many showed no face, how long it took."""

    output: Path
    frames: int
    frames_without_face: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def check_output(output: Path, *inputs: Path) -> None:
    """The output must go to an existing folder, as .mp4, and never overwrite an input."""
    if output.suffix.lower() != ".mp4":
        raise EdgeRetalkError(f"{output}: the output must be an .mp4 file")
    if not output.parent.is_dir():
        raise EdgeRetalkError(f"{output.parent}: output folder does not exist")
    if output.is_dir():
        raise EdgeRetalkError(f"{output}: is a folder")
    for path in inputs:
        if same_file(output, path):
            raise EdgeRetalkError(f"{output}: the output would overwrite an input ({path})")


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same path, a symlink to it or a hard link (same inode)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def lipsync(face: Path | str, audio: Path | str, output: Path | str, options: RunOptions | None = None,
            on_progress: ProgressCallback | None = None) -> RunReport:
    """Rewrite the mouth of `face` to match `audio` and write `output` (video plus that audio)."""
    face, audio, output = Path(face), Path(audio), Path(output)
    options = options or RunOptions()
    started = time.perf_counter()
    check_readable(face)
    check_readable(audio)
    check_output(output, face, audio)
    info = probe_face(face)
    if info.is_image:
        info = replace(info, fps=Fraction(options.photo_fps))
    samples = load_audio(audio)
    fps = float(info.fps)
    n_frames = max(1, round(samples.size / SAMPLE_RATE * fps))
    generator = open_generator(options.generator, options.render, options.threads, options.provider,
                               options.provider_options)
    with stage("audio"):
        generator.prepare(samples, fps, n_frames)
    label = SyntheticLabel(generator.name, options.signing_key) if options.label else None
    without_face = 0
    with VideoWriter(output, info.width, info.height, info.fps, audio, options.crf, options.preset,
                     label) as writer:
        encoder = WriteBehind(writer.write)
        pending: list[tuple] = []

        def flush() -> None:
            with stage("generate"):
                results = generator.generate_batch(pending)
            for (frame, _, index), result in zip(pending, results):
                encoder.put(draw_watermark(result.copy() if result is frame else result) if options.watermark
                            else result)
                if on_progress is not None:
                    on_progress(index + 1, n_frames)
            pending.clear()

        try:
            for index, (frame, points) in enumerate(read_ahead(face_frames(info, n_frames, options.threads,
                                                                           options.tracking_interval))):
                raise_if_interrupted()
                without_face += points is None
                pending.append((frame, points, index))
                if len(pending) >= options.batch:
                    flush()
            if pending:
                flush()
        finally:
            encoder.finish()
        if without_face == n_frames:
            raise EdgeRetalkError(f"{face}: no face found in any frame")
    return RunReport(output, n_frames, without_face, time.perf_counter() - started)
