"""Face sources: a still photo or a video looped back and forth (ping-pong), with landmarks.

A video plays forward once while being tracked; when the audio is longer than the video, the
frames and their landmarks are kept in a temporary file on disk (not in memory) and replayed
backwards and forwards, so there is no jump and memory stays flat. A video that may end only a
few frames before the speech keeps just its last frames, in memory.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections import deque
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import EdgeRetalkError
from ..io.media import FaceInfo, iter_video_frames, read_image
from ..io.timing import stage
from .tracker import FaceTracker

TrackedFrame = tuple[np.ndarray, "np.ndarray | None"]


def ping_pong_index(k: int, length: int) -> int:
    """Index into a clip of `length` frames for output frame `k` when playing back and forth."""
    if length <= 1:
        return 0
    period = 2 * length - 2
    position = k % period
    return position if position < length else period - position


def photo_frames(info: FaceInfo, n_frames: int, threads: int) -> Iterator[TrackedFrame]:
    """The photo `n_frames` times, with its landmarks found once."""
    image = info.image if info.image is not None else read_image(info.path)
    points = FaceTracker(float(info.fps), threads, smooth=False)(image)
    if points is None:
        raise EdgeRetalkError(f"{info.path}: no face found in the image")
    for _ in range(n_frames):
        yield image, points


class FrameCache:
    """Frames and landmarks written once to a temporary file, read back by index."""

    def __init__(self, frame_shape: tuple[int, ...]):
        self._dir = tempfile.TemporaryDirectory(prefix="edge-retalk-")
        self._path = Path(self._dir.name) / "frames.raw"
        self._file = open(self._path, "wb")
        self._shape = frame_shape
        self._points: list[np.ndarray | None] = []
        self._frames: np.ndarray | None = None

    def append(self, frame: np.ndarray, points: np.ndarray | None) -> None:
        try:
            self._file.write(np.ascontiguousarray(frame).tobytes())
        except OSError as exc:
            raise EdgeRetalkError(f"cannot write the frame cache in {self._dir.name} ({exc.strerror})") from None
        self._points.append(points)

    def __len__(self) -> int:
        return len(self._points)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one frame."""
        return self._shape

    def __getitem__(self, index: int) -> TrackedFrame:
        if self._frames is None:
            self._file.close()
            self._frames = np.memmap(self._path, np.uint8, "r", shape=(len(self), *self._shape))
        return np.array(self._frames[index]), self._points[index]

    def close(self) -> None:
        self._file.close()
        self._frames = None
        self._dir.cleanup()


class FrameTail:
    """The last `keep` frames and their landmarks, in memory, read back by index like a
    `FrameCache`: replaying a video that ends a few frames before the speech needs only those.
    An index before them (a video much shorter than its stated duration) gives the oldest kept."""

    def __init__(self, keep: int):
        self._kept: deque[TrackedFrame] = deque(maxlen=keep)
        self._count = 0

    def append(self, frame: np.ndarray, points: np.ndarray | None) -> None:
        self._kept.append((frame, points))
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> TrackedFrame:
        return self._kept[max(0, index - (self._count - len(self._kept)))]

    def close(self) -> None:
        self._kept.clear()


REPLAY_IN_MEMORY_BYTES = 32 << 20
"""A replay that needs at most this much of a video's last frames keeps them in memory
(a `FrameTail`) instead of writing every frame to disk."""


def replay_store(info: FaceInfo, n_frames: int, frame_shape: tuple[int, ...]) -> FrameCache | FrameTail | None:
    """Where `video_frames` keeps frames for replaying: nowhere when the video (by its stated
    duration, with 2 frames to spare) covers the speech; its last frames in memory when only a
    few are missing; else all of them on disk."""
    if info.duration is None:
        return FrameCache(frame_shape)
    video_frames_expected = info.duration * float(info.fps)
    missing = n_frames + 2 - video_frames_expected
    if missing <= 0:
        return None
    keep = math.ceil(missing) + 2
    if keep < video_frames_expected / 2 and keep * math.prod(frame_shape) <= REPLAY_IN_MEMORY_BYTES:
        return FrameTail(keep)
    return FrameCache(frame_shape)


def tracked(frames: Iterable[np.ndarray], tracker: FaceTracker, interval: int = 1) -> Iterator[TrackedFrame]:
    """Each frame with its landmarks. With an `interval` of N the tracker runs on every Nth frame
    and on the last (the tracker's smoothing set for that rate); between two such keyframes that
    both show the face the landmarks are interpolated, which on the shared clips stays within
    0.1-0.4 % of the face height of tracking every frame (about what the tracker's own jitter
    is); where only one of them shows it, the frames between are tracked themselves."""
    def track(frame: np.ndarray) -> np.ndarray | None:
        with stage("track"):
            return tracker(frame)

    def between(before: np.ndarray | None, after: np.ndarray | None,
                waiting: list[np.ndarray]) -> Iterator[TrackedFrame]:
        for step, frame in enumerate(waiting, 1):
            if before is None and after is None:
                yield frame, None
            elif before is None or after is None:
                yield frame, track(frame)
            else:
                t = step / (len(waiting) + 1)
                yield frame, (1 - t) * before + t * after

    previous: np.ndarray | None = None
    waiting: list[np.ndarray] = []
    for position, frame in enumerate(frames):
        if position % interval:
            waiting.append(frame)
            continue
        points = track(frame)
        yield from between(previous, points, waiting)
        yield frame, points
        previous, waiting = points, []
    if waiting:
        last = waiting.pop()
        points = track(last)
        yield from between(previous, points, waiting)
        yield last, points


def video_frames(info: FaceInfo, n_frames: int, threads: int, tracking_interval: int = 1) -> Iterator[TrackedFrame]:
    """`n_frames` tracked frames of the video: cut if it is longer, ping-pong if shorter. With a
    `tracking_interval` of N, landmarks are found on every Nth frame and interpolated in between
    (see `tracked`)."""
    tracker = FaceTracker(float(info.fps) / tracking_interval, threads)
    cache: FrameCache | FrameTail | None = None
    produced = 0
    last: TrackedFrame | None = None
    try:
        for last in tracked(itertools.islice(iter_video_frames(info.path), n_frames), tracker, tracking_interval):
            if produced == 0:
                cache = replay_store(info, n_frames, last[0].shape)
            if cache is not None:
                cache.append(*last)
            yield last
            produced += 1
        if last is None:
            raise EdgeRetalkError(f"{info.path}: no video frames could be decoded")
        for k in range(produced, n_frames):
            yield cache[ping_pong_index(k, len(cache))] if cache is not None else last
    finally:
        if cache is not None:
            cache.close()


def face_frames(info: FaceInfo, n_frames: int, threads: int = 1, tracking_interval: int = 1) -> Iterator[TrackedFrame]:
    """Frames with landmarks (None where no face) for a photo or a video face source."""
    if info.is_image:
        return photo_frames(info, n_frames, threads)
    return video_frames(info, n_frames, threads, tracking_interval)
