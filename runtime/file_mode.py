"""File mode: a face (video or photo) and speech in, a lip-synced H.264 mp4 out, as a stream."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .audio.features import SAMPLE_RATE
from .audio.alignment import align
from .audio.visemes import Phone
from .provenance.content_credentials import SigningKey
from .errors import EdgeRetalkError
from .generators.options import RenderOptions
from .generators import open_generator, tracking_interval_of
from .generators.learned import LearnedGenerator
from .provenance.labels import SyntheticLabel, draw_watermark
from .io.script import Cue
from .io.media import PHOTO_FPS, FaceInfo, check_readable, load_audio, probe_face
from .devices.profiles import DEFAULT_BATCH
from .io.video_writer import DEFAULT_PRESET, VideoWriter
from .face.sources import face_frames
from .io.workers import ReadAhead, WriteBehind, raise_if_interrupted
from .io.timing import stage

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class RunOptions:
    """Settings of one file-mode run; the CLI and board profiles fill them."""

    threads: int = 1
    crf: int = 18
    preset: str = DEFAULT_PRESET
    render: RenderOptions = field(default_factory=RenderOptions)
    label: bool = True
    signing_key: SigningKey | None = None
    watermark: bool = False
    generator: Path | None = None
    provider: str | None = None
    provider_options: dict[str, str] = field(default_factory=dict)
    photo_fps: Fraction = PHOTO_FPS
    tracking_interval: int = 1
    batch: int = DEFAULT_BATCH


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
    try:
        if not output.parent.is_dir():
            raise EdgeRetalkError(f"{output.parent}: output folder does not exist")
        if output.is_dir():
            raise EdgeRetalkError(f"{output}: is a folder")
    except OSError as exc:  # a name longer than the file system allows (ENAMETOOLONG), a loop of links
        shown = str(output) if len(str(output)) <= 80 else f"{str(output)[:40]}...{str(output)[-20:]}"
        raise EdgeRetalkError(f"{shown}: cannot be an output ({exc.strerror})") from None
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


READ_AHEAD_BYTES = 48 << 20
"""Decoded, tracked frames may wait this much memory for the generator (4 to 64 frames): while
the generator loads, decoding and tracking get that far ahead on the other core."""


class SyncedFrames:
    """The frames of one file-mode run, in order, as an iterator: the face source tracked, the
    speech prepared once, the mouth generated batch by batch. Counts the frames without a face;
    ends with an error if no frame had one. Decoding and tracking start at once, in a thread,
    while the generator loads; iterate it, or `close()` it."""

    def __init__(self, info: FaceInfo, samples: np.ndarray, options: RunOptions, phones: Sequence[Phone] = ()):
        self.info = info
        self.options = options
        self.n_frames = max(1, round(samples.size / SAMPLE_RATE * float(info.fps)))
        self.frames_without_face = 0
        interval = max(options.tracking_interval, tracking_interval_of(options.generator, options.render))
        depth = min(64, max(4, READ_AHEAD_BYTES // (3 * info.width * info.height)))
        self._source = ReadAhead(face_frames(info, self.n_frames, options.threads, interval), depth)
        try:
            self.generator = open_generator(options.generator, options.render, options.threads, options.provider,
                                            options.provider_options)
            with stage("audio"):
                if phones and isinstance(self.generator, LearnedGenerator):
                    self.generator.prepare(samples, float(info.fps), self.n_frames, phones)
                else:
                    if phones:
                        log.warning("phone timing steers the learned generator only; %s follows the audio alone",
                                    self.generator.name)
                    self.generator.prepare(samples, float(info.fps), self.n_frames)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop decoding and tracking (when the frames are not all taken)."""
        self._source.close()

    def _generate(self, pending: list[tuple]) -> Iterator[np.ndarray]:
        if not pending:
            return
        with stage("generate", len(pending)):
            results = self.generator.generate_batch(pending)
        for (frame, _, _), result in zip(pending, results):
            yield (draw_watermark(result.copy() if result is frame else result) if self.options.watermark
                   else result)
        pending.clear()

    def __iter__(self) -> Iterator[np.ndarray]:
        pending: list[tuple] = []
        try:
            for index, (frame, points) in enumerate(self._source):
                raise_if_interrupted()
                self.frames_without_face += points is None
                pending.append((frame, points, index))
                if len(pending) >= self.options.batch:
                    yield from self._generate(pending)
            yield from self._generate(pending)
        finally:
            self.close()
        if self.frames_without_face == self.n_frames:
            raise EdgeRetalkError(f"{self.info.path}: no face found in any frame")


def face_info(face: Path | np.ndarray, photo_fps: Fraction = PHOTO_FPS) -> FaceInfo:
    """What a run needs to know about its face: a video or photo file, or a photo in memory
    (a BGR uint8 array)."""
    if isinstance(face, np.ndarray):
        if face.ndim != 3 or face.shape[2] != 3 or face.dtype != np.uint8 or min(face.shape[:2]) < 16:
            raise EdgeRetalkError(f"a face image must be a BGR uint8 array of shape (H, W, 3), not {face.dtype} "
                                  f"{face.shape}")
        return FaceInfo(Path("<image>"), True, face.shape[1], face.shape[0], Fraction(photo_fps), None,
                        np.ascontiguousarray(face))
    check_readable(face)
    info = probe_face(face)
    return replace(info, fps=Fraction(photo_fps)) if info.is_image else info


def lipsync(face: Path | str, audio: Path | str, output: Path | str, options: RunOptions | None = None,
            on_progress: ProgressCallback | None = None, phones: Sequence[Phone] = (),
            script: Sequence[Cue] = ()) -> RunReport:
    """Rewrite the mouth of `face` to match `audio` and write `output` (video plus that audio);
    timed `phones` of the speech, where known, steer the mouth to their shapes; so do the words
    of a `script` (transcript or subtitles), aligned to the speech."""
    face, audio, output = Path(face), Path(audio), Path(output)
    options = options or RunOptions()
    started = time.perf_counter()
    check_readable(face)
    check_readable(audio)
    check_output(output, face, audio)
    info = face_info(face, options.photo_fps)
    samples = load_audio(audio)
    if script:
        with stage("align"):
            phones = align(samples, script).phones
    frames = SyncedFrames(info, samples, options, phones)
    try:
        label = SyntheticLabel(frames.generator.name, options.signing_key) if options.label else None
        with VideoWriter(output, info.width, info.height, info.fps, audio, options.crf, options.preset,
                         label) as writer:
            encoder = WriteBehind(writer.write)
            try:
                for index, frame in enumerate(frames):
                    encoder.put(frame)
                    if on_progress is not None:
                        on_progress(index + 1, frames.n_frames)
            finally:
                encoder.finish()
    finally:
        frames.close()
    return RunReport(output, frames.n_frames, frames.frames_without_face, time.perf_counter() - started)
