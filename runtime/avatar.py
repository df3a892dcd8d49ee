"""Avatar bundles: everything about a face that does not depend on the audio, computed once.

`prepare_avatar` tracks the face video (or photo) once and writes a folder:

    avatar.json     what the bundle is (version, fps, size, frames, source and its sha256, and the
                    sha256 of the loop and the landmarks, so that neither can be swapped)
    loop.mp4        the idle loop, already played forward then backward, so it repeats seamlessly
                    (from a photo: the photo blinking and moving slightly, also seamless)
    landmarks.npy   (frames, 468, 3) float32 face-mesh points per loop frame, NaN where no face

A live run reads this instead of running the face detector and mesh: loading is a JSON file, a
small array and opening a video, well under a second. Loading checks the bundle whole: its files
are its own (no symlink out of it), the loop and landmarks are the ones described, the loop's
size, frame rate and frame count agree with the description, and every landmark is finite.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import __version__
from .errors import EdgeRetalkError
from .face.idle_motion import animate_photo
from .engines.manifest import matches_digest, sha256_of
from .io.media import (MAX_SIDE, FaceInfo, check_readable, iter_video_frames, open_container, probe_face,
                       read_image)
from .io.schema import bounded, from_json, read_json
from .io.video_writer import VideoWriter, apply_umask
from .face.sources import FrameCache, ping_pong_index
from .io.workers import partial_output, raise_if_interrupted
from .face.tracker import FaceTracker

BUNDLE_VERSION = 2
DEFAULT_LOOP_SECONDS = 10.0
LOOP_CRF = 12
N_POINTS = 468
MAX_FPS = 240
MAX_LOOP_FRAMES = 2 * 600 * MAX_FPS
"""`prepare` loops at most 600 s, played forward then backward."""

TrackedFrame = tuple[np.ndarray, "np.ndarray | None"]


@dataclass(frozen=True)
class AvatarInfo:
    """The contents of avatar.json."""

    version: int
    fps: Fraction = bounded(1, MAX_FPS)
    width: int = bounded(1, MAX_SIDE)
    height: int = bounded(1, MAX_SIDE)
    frames: int = bounded(1, MAX_LOOP_FRAMES)
    frames_with_face: int = bounded(0, MAX_LOOP_FRAMES)
    source: str
    source_sha256: str
    made_by: str
    loop_sha256: str
    landmarks_sha256: str

    def to_json(self) -> str:
        fields = dict(self.__dict__, fps=str(self.fps))
        return json.dumps(fields, indent=2) + "\n"


def _tracked_source(info: FaceInfo, max_frames: int, threads: int) -> FrameCache:
    """The face source's frames (at most `max_frames`) and landmarks, in a temporary on-disk cache."""
    if info.is_image:
        image = read_image(info.path)
        cache = FrameCache(image.shape)
        cache.append(image, FaceTracker(float(info.fps), threads, smooth=False)(image))
        return cache
    tracker = FaceTracker(float(info.fps), threads)
    cache: FrameCache | None = None
    try:
        for frame in iter_video_frames(info.path):
            if cache is not None and len(cache) >= max_frames:
                break
            cache = cache or FrameCache(frame.shape)
            cache.append(frame, tracker(frame))
    except BaseException:
        if cache is not None:
            cache.close()
        raise
    if cache is None:
        raise EdgeRetalkError(f"{info.path}: no video frames could be decoded")
    return cache


def _loop_frames(cache: FrameCache, fps: float, photo_frames: int | None) -> tuple[int, Iterator[TrackedFrame]]:
    """The idle loop's length and its frames with their points: a video played forward then
    backward, or a photo brought to life over `photo_frames` frames (None: the photo, still)."""
    if photo_frames is not None and len(cache) == 1 and cache[0][1] is not None:
        return photo_frames, animate_photo(*cache[0], photo_frames, fps)
    length = 1 if len(cache) == 1 else 2 * len(cache) - 2
    return length, (cache[ping_pong_index(k, len(cache))] for k in range(length))


def prepare_avatar(face: Path | str, output: Path | str, loop_seconds: float = DEFAULT_LOOP_SECONDS, threads: int = 1,
                   on_progress: Callable[[int, int], None] | None = None, still: bool = False) -> AvatarInfo:
    """Track `face` once and write an avatar bundle folder at `output` (whole or not at all). A
    photo's loop blinks and moves slightly (`idle_motion`) unless `still`; a video's is as recorded."""
    face, output = Path(face), Path(output)
    check_readable(face)
    if output.exists():
        raise EdgeRetalkError(f"{output}: already exists; choose a new folder for the avatar")
    if not output.parent.is_dir():
        raise EdgeRetalkError(f"{output.parent}: folder does not exist")
    if loop_seconds <= 0:
        raise EdgeRetalkError("the idle loop must be longer than 0 seconds")
    info = probe_face(face)
    fps = Fraction(25) if info.is_image else info.fps
    cache = _tracked_source(info, max(1, round(loop_seconds * float(fps))), threads)
    try:
        with_face = sum(cache[i][1] is not None for i in range(len(cache)))
        if with_face == 0:
            raise EdgeRetalkError(f"{face}: no face found in {'the image' if info.is_image else 'any frame'}")
        photo_frames = None if still or not info.is_image else max(1, round(loop_seconds * float(fps)))
        loop_length, loop = _loop_frames(cache, float(fps), photo_frames)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
        except OSError as exc:
            raise EdgeRetalkError(f"{output.parent}: cannot write ({exc.strerror})") from None
        with partial_output(staging):
            try:
                landmarks = np.full((loop_length, N_POINTS, 3), np.nan, np.float32)
                height, width = cache.shape[:2]
                with VideoWriter(staging / "loop.mp4", width, height, fps, None, crf=LOOP_CRF) as writer:
                    for k, (frame, points) in enumerate(loop):
                        raise_if_interrupted()
                        writer.write(frame)
                        if points is not None:
                            landmarks[k] = points
                        if on_progress is not None:
                            on_progress(k + 1, loop_length)
                np.save(staging / "landmarks.npy", landmarks)
                avatar = AvatarInfo(BUNDLE_VERSION, fps, writer.width, writer.height, loop_length,
                                    int(np.isfinite(landmarks[:, 0, 0]).sum()), face.name, sha256_of(face),
                                    f"edge-retalk {__version__}", sha256_of(staging / "loop.mp4"),
                                    sha256_of(staging / "landmarks.npy"))
                (staging / "avatar.json").write_text(avatar.to_json())
                apply_umask(staging, 0o777)
                staging.rename(output)
            except OSError as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise EdgeRetalkError(f"{output}: cannot write ({exc.strerror})") from None
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    finally:
        cache.close()
    return avatar


def _landmarks(path: Path, frames: int, sha256: str) -> np.ndarray:
    """The bundle's (frames, 468, 3) float landmarks: shape and type are read from the .npy header
    (memory-mapped) and checked before any of it is loaded, so a header claiming billions of
    frames costs nothing; then the file must be the one described (`sha256`)."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise EdgeRetalkError(f"{path}: cannot be read ({exc})") from None
    if mapped.shape != (frames, N_POINTS, 3) or mapped.dtype.kind != "f":
        raise EdgeRetalkError(f"{path}: expected ({frames}, {N_POINTS}, 3) floating-point landmarks for the loop's "
                              f"{frames} frames, found {mapped.shape} {mapped.dtype}; prepare it again")
    if not matches_digest(path, sha256):
        raise EdgeRetalkError(f"{path}: are not the landmarks this bundle was prepared with (their checksum "
                              "differs); prepare it again")
    points = np.array(mapped, dtype=np.float32)
    # a frame has a face (every point finite) or none (every point NaN); anything between breaks drawing
    face, none = np.isfinite(points).all(axis=(1, 2)), np.isnan(points).all(axis=(1, 2))
    if not (face | none).all():
        raise EdgeRetalkError(f"{path}: frame {int(np.argmin(face | none))} has NaN or infinite points among "
                              "finite ones; prepare it again")
    return points


def _own_file(folder: Path, name: str) -> Path:
    """A file of the bundle, refused if it is missing or leads out of the bundle (a symlink)."""
    path = folder / name
    if path.is_symlink() or not path.is_file() or path.resolve().parent != folder.resolve():
        raise EdgeRetalkError(f"{path}: missing, or not a file of the bundle itself (a link out of it?); "
                              "prepare it again")
    return path


def _check_loop(loop: Path, info: AvatarInfo) -> None:
    """The loop video is the one described: its checksum, size and frame rate."""
    if not matches_digest(loop, info.loop_sha256):
        raise EdgeRetalkError(f"{loop}: is not the loop this bundle was prepared with (its checksum differs); "
                              "prepare it again")
    with open_container(loop) as container:
        if not container.streams.video:
            raise EdgeRetalkError(f"{loop}: has no video stream; prepare it again")
        stream = container.streams.video[0]
        found = (stream.codec_context.width, stream.codec_context.height, stream.average_rate, stream.frames)
    if found != (info.width, info.height, info.fps, info.frames):
        raise EdgeRetalkError(f"{loop}: is {found[0]}x{found[1]} at {float(found[2] or 0):g} fps, {found[3]} frames; "
                              f"the bundle says {info.width}x{info.height} at {float(info.fps):g} fps, {info.frames} "
                              "frames; prepare it again")


class Avatar:
    """A loaded avatar bundle: its description, landmarks, and the idle loop's frames on demand."""

    def __init__(self, folder: Path):
        self.folder = folder
        description = folder / "avatar.json"
        if not folder.is_dir() or not description.is_file() or description.is_symlink():
            raise EdgeRetalkError(f"{folder}: not an avatar bundle (make one with `edge-retalk prepare`)")
        self.info = from_json(AvatarInfo, read_json(description, "avatar description"), str(description))
        if self.info.version != BUNDLE_VERSION:
            raise EdgeRetalkError(f"{folder}: avatar bundle version {self.info.version} is not supported "
                                  f"(this edge-retalk reads version {BUNDLE_VERSION}); prepare it again")
        self.landmarks = _landmarks(_own_file(folder, "landmarks.npy"), self.info.frames, self.info.landmarks_sha256)
        if int(np.isfinite(self.landmarks[:, 0, 0]).sum()) != self.info.frames_with_face:
            raise EdgeRetalkError(f"{description}: frames_with_face disagrees with the landmarks; prepare it again")
        self.loop = _own_file(folder, "loop.mp4")
        _check_loop(self.loop, self.info)

    @property
    def fps(self) -> Fraction:
        return self.info.fps

    def points(self, index: int) -> np.ndarray | None:
        """Landmarks of loop frame `index` (wrapping), None where that frame has no face."""
        points = self.landmarks[index % self.info.frames]
        return None if np.isnan(points[0, 0]) else points

    def frames(self) -> Iterator[TrackedFrame]:
        """The idle loop's frames with their landmarks, repeated for ever."""
        if self.info.frames == 1:
            frame = next(iter_video_frames(self.loop))
            while True:
                yield frame, self.points(0)
        while True:
            count = 0
            for frame in iter_video_frames(self.loop):
                if count == self.info.frames:
                    break
                yield frame, self.points(count)
                count += 1
            if count != self.info.frames:
                raise EdgeRetalkError(f"{self.loop}: has {count} frames, the bundle says {self.info.frames}")
