"""Reading media: opening face videos and photos, decoding audio (writing is `video_writer`).

PyAV (bundled FFmpeg) decodes and encodes; OpenCV reads still images. Every decoder or
container failure becomes one EdgeRetalkError line naming the file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np

from ..errors import EdgeRetalkError
from .quiet import native_stderr_silenced
from .timing import stage

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
PHOTO_FPS = Fraction(25)
MAX_SIDE = 4096
MIN_SIDE = 2
"""H.264 in 4:2:0 needs even sides: the writer drops an odd last row or column, so 1 pixel would leave none."""
MAX_CLAIMED_AUDIO_SECONDS = 2 * 3600
AUDIO_RATES = (4000, 192000)
MAX_FLOAT_PEAK = 32.0
"""Float samples beyond this (+30 dBFS) are not audio written with a scale (an encoder fails on them)."""
MAX_PIXELS = MAX_SIDE * MAX_SIDE


def check_readable(path: Path) -> None:
    """Fail with one clear line if `path` is missing, a folder, empty or unreadable."""
    if not path.exists():
        raise EdgeRetalkError(f"{path}: no such file")
    if path.is_dir():
        raise EdgeRetalkError(f"{path}: is a folder, not a media file")
    if path.stat().st_size == 0:
        raise EdgeRetalkError(f"{path}: file is empty")
    if not os.access(path, os.R_OK):
        raise EdgeRetalkError(f"{path}: permission denied")


def open_container(path: Path) -> av.container.InputContainer:
    """A media file opened as a file: through FFmpeg's `file:` protocol, so that a name such as
    `pipe:0.mp4` or `http://...` is never taken for another protocol."""
    check_readable(path)
    try:
        return av.open(f"file:{path.resolve()}")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise EdgeRetalkError(f"{path}: not a readable media file ({exc.__class__.__name__})") from None


@dataclass(frozen=True)
class FaceInfo:
    """What the pipeline needs to know about a face source before decoding it."""

    path: Path
    is_image: bool
    width: int
    height: int
    fps: Fraction
    duration: float | None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    """A photo given in memory instead of by path."""


def probe_face(path: Path) -> FaceInfo:
    """Inspect a face video or photo without decoding all of it."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = read_image(path)
        if min(image.shape[:2]) < MIN_SIDE:
            raise EdgeRetalkError(f"{path}: unsupported image size {image.shape[1]}x{image.shape[0]} "
                                  f"(at least {MIN_SIDE}x{MIN_SIDE})")
        return FaceInfo(path, True, image.shape[1], image.shape[0], PHOTO_FPS, None)
    with open_container(path) as container:
        if not container.streams.video:
            raise EdgeRetalkError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if min(width, height) < MIN_SIDE or width * height > MAX_PIXELS:
            raise EdgeRetalkError(f"{path}: unsupported video size {width}x{height} (at least {MIN_SIDE}x{MIN_SIDE}, "
                                  f"at most {MAX_PIXELS} pixels)")
        if _quarter_turned(container, stream, path):
            width, height = height, width
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not fps or fps <= 0 or fps > 240:
            raise EdgeRetalkError(f"{path}: cannot tell the frame rate")
        duration = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        return FaceInfo(path, False, width, height, Fraction(fps).limit_denominator(1001), duration)


def _quarter_turned(container, stream, path: Path) -> bool:
    """Whether the video is shown turned by 90 or 270 degrees (its first frame's display matrix);
    warns when that matrix turns by another angle, which is taken as the nearest quarter turn."""
    try:
        frame = next(container.decode(stream), None)
    except av.error.FFmpegError:
        return False
    if frame is None:
        return False
    matrix = _display_matrix(frame)
    off = 0.0 if matrix is None else _nearest_quarter_turn(matrix)[1]
    if off > MAX_DISPLAY_TURN_ERROR:
        log.warning("%s: its display matrix turns the picture %.0f degrees off a quarter turn; it is used "
                    "turned by the nearest quarter turn", path.name, off)
    return display_transform(frame)[0]


def read_image(path: Path) -> np.ndarray:
    """Read a still image as BGR uint8 (EXIF orientation applied)."""
    check_readable(path)
    try:
        with native_stderr_silenced():
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error:
        raise EdgeRetalkError(f"{path}: image larger than {MAX_SIDE}x{MAX_SIDE} pixels") from None
    if image is None:
        raise EdgeRetalkError(f"{path}: not a readable image")
    return image


QUARTER_TURNS = ((1, 0, 0, 1), (0, 1, -1, 0), (-1, 0, 0, -1), (0, -1, 1, 0),
                 (-1, 0, 0, 1), (1, 0, 0, -1), (0, 1, 1, 0), (0, -1, -1, 0))
"""(a, b, c, d) of the display matrices that turn by quarter turns, mirrored or not."""
MAX_DISPLAY_TURN_ERROR = 1.0
"""Degrees a display matrix may be off a quarter turn without a warning (FFmpeg's own tolerance)."""


def _display_matrix(frame: av.VideoFrame) -> np.ndarray | None:
    """(a, b, c, d) of a frame's display matrix, scaled to unit size; None where it has none."""
    matrix = next((np.frombuffer(bytes(data), "=i4") for data in frame.side_data
                   if data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX), None)
    if matrix is None or matrix.size < 9:
        return None
    turn = matrix[[0, 1, 3, 4]].astype(np.float64)
    size = np.sqrt((turn ** 2).sum() / 2)
    return turn / size if size else None


def _nearest_quarter_turn(matrix: np.ndarray) -> tuple[tuple[int, int, int, int], float]:
    """The quarter turn (mirrored or not) nearest to a unit display matrix, and by how many
    degrees the matrix turns away from it (a turn by t from it scores 2 cos t)."""
    turn = max(QUARTER_TURNS, key=lambda candidate: float(np.dot(candidate, matrix)))
    return turn, float(np.degrees(np.arccos(np.clip(np.dot(turn, matrix) / 2, -1.0, 1.0))))


def display_transform(frame: av.VideoFrame) -> tuple[bool, bool, bool]:
    """(transpose, mirror left-right, mirror top-bottom) that take a decoded frame to how its
    display matrix shows it. The matrix maps a stored pixel (x, y) to (a x + c y, b x + d y);
    for quarter turns and mirrors each of a, b, c, d is -1, 0 or 1. Mirrors matter: read as a
    rotation angle alone (`frame.rotation`), a left-right mirror is 180 degrees, upside down.
    A matrix that turns by another angle (an editor's tilt) is taken as the nearest quarter turn:
    a face is tracked as well a few degrees off, and no corner is cut or filled."""
    matrix = _display_matrix(frame)
    if matrix is None:
        return False, False, False
    a, b, c, d = _nearest_quarter_turn(matrix)[0]
    if a == 0 and d == 0:
        return True, c < 0, b < 0
    return False, a < 0, d < 0


def upright(image: np.ndarray, transform: tuple[bool, bool, bool]) -> np.ndarray:
    """A decoded frame's image as it is meant to be shown (phones store portrait video sideways,
    front cameras mirrored): its stream's `display_transform` applied."""
    transpose, mirror_x, mirror_y = transform
    if transpose:
        image = image.transpose(1, 0, 2)
    if mirror_x:
        image = image[:, ::-1]
    if mirror_y:
        image = image[::-1]
    return np.ascontiguousarray(image) if transpose or mirror_x or mirror_y else image


def iter_video_frames(path: Path) -> Iterator[np.ndarray]:
    """Decode a video's frames as BGR uint8 arrays, one at a time, upright (display matrix applied)."""
    with open_container(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = container.decode(stream)
        transform = None
        try:
            while True:
                with stage("decode"):
                    frame = next(frames, None)
                    if frame is None:
                        return
                    # The display matrix is read from the first frame only: reading a frame's side
                    # data kept every decoded 1080p frame alive until a garbage collection (+300 MB).
                    transform = display_transform(frame) if transform is None else transform
                    # One thread for the colour conversion: by default swscale starts (and ends) its
                    # slice threads for every frame, 400 thread starts in an 8 s clip.
                    image = upright(frame.to_ndarray(format="bgr24", threads=1), transform)
                yield image
        except av.error.FFmpegError as exc:
            log.warning("%s: decoding stopped early (%s)", path, exc)


def _audio_seconds(path: Path) -> float:
    """The container's stated duration (0 when it states none); only a size hint."""
    with open_container(path) as container:
        return max(0.0, (container.duration or 0) / av.time_base)


class AudioTooLong(EdgeRetalkError):
    """More audio than the caller's limit (a live kiosk's queue); decoding stopped there."""


def _check_audio_rate(path: Path, rate: int) -> None:
    """A header's sample rate outside what speech uses is refused: resampling a 64 kB WAV that
    claims 1 Hz to 16 kHz would make 8 GB of samples."""
    if not AUDIO_RATES[0] <= rate <= AUDIO_RATES[1]:
        raise EdgeRetalkError(f"{path}: audio sample rate {rate} Hz is outside {AUDIO_RATES[0]}..{AUDIO_RATES[1]}")


def iter_audio_frames(path: Path, rate: int, layout: str, fmt: str) -> Iterator[av.AudioFrame]:
    with open_container(path) as container:
        if not container.streams.audio:
            raise EdgeRetalkError(f"{path}: has no audio stream")
        stream = container.streams.audio[0]
        _check_audio_rate(path, stream.codec_context.sample_rate)
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        try:
            for frame in container.decode(stream):
                _check_audio_rate(path, frame.sample_rate)
                yield from resampler.resample(frame)
        except av.error.FFmpegError as exc:
            log.warning("%s: audio decoding stopped early (%s)", path, exc)
        yield from resampler.resample(None)


def load_audio(path: Path, sample_rate: int = 16000, max_seconds: float | None = None) -> np.ndarray:
    """Decode any audio (or a video's audio track) to mono float32 PCM at `sample_rate`; beyond
    `max_seconds` decoded, `AudioTooLong` (the header's claim is never what is checked).

    Samples go into one buffer sized from the container's duration (grown if that was short),
    so an hour of speech takes its 230 MB once, not twice. A header's claim is believed up to
    `MAX_CLAIMED_AUDIO_SECONDS` (or `max_seconds`) only: pages of the buffer that are never
    written cost nothing."""
    claimed = min(_audio_seconds(path), MAX_CLAIMED_AUDIO_SECONDS, max_seconds or MAX_CLAIMED_AUDIO_SECONDS)
    buffer = np.empty(int(claimed * sample_rate * 1.01) + sample_rate, np.float32)
    count = 0
    limit = None if max_seconds is None else int(max_seconds * sample_rate)
    for frame in iter_audio_frames(path, sample_rate, "mono", "flt"):
        chunk = frame.to_ndarray().reshape(-1)
        if limit is not None and count + chunk.size > limit:
            del buffer  # not kept alive by the exception's traceback until the next garbage collection
            raise AudioTooLong(f"{path}: speech longer than {max_seconds:g} s")
        if count + chunk.size > buffer.size:
            buffer = np.resize(buffer, max(count + chunk.size, int(buffer.size * 1.5)))
        buffer[count:count + chunk.size] = chunk
        count += chunk.size
    samples = buffer[:count] if count > buffer.size // 2 else buffer[:count].copy()
    if samples.size == 0:
        raise EdgeRetalkError(f"{path}: audio has no samples")
    if not np.all(np.isfinite(samples)):
        samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    peak = max(float(samples.max()), -float(samples.min()))  # no temporary the size of the audio
    if peak > MAX_FLOAT_PEAK:
        raise EdgeRetalkError(f"{path}: audio samples reach {peak:.3g}, far outside -1..1 (float audio written "
                              "without scaling?); normalise it first")
    if peak > 1.0:
        samples /= peak  # a float file that clips: analysed at full scale
    return samples.astype(np.float32, copy=False)


def pcm_samples(pcm: np.ndarray, sample_rate: int = 16000, target_rate: int = 16000) -> np.ndarray:
    """Speech given in memory as mono float32 at `target_rate`: `pcm` is mono float (-1..1) or
    int16 samples at `sample_rate`, resampled by FFmpeg's resampler (PyAV) where the rates differ."""
    pcm = np.asarray(pcm)
    if pcm.ndim != 1 or not (np.issubdtype(pcm.dtype, np.floating) or pcm.dtype == np.int16):
        raise EdgeRetalkError(f"speech must be a 1-D float or int16 array of mono samples, not {pcm.dtype} {pcm.shape}")
    if not 4000 <= sample_rate <= 192000:
        raise EdgeRetalkError(f"sample rate {sample_rate} Hz is outside 4000..192000")
    samples = (pcm.astype(np.float32) / 32768.0 if pcm.dtype == np.int16
               else np.nan_to_num(pcm.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0))
    if sample_rate == target_rate or samples.size == 0:
        return samples
    frame = av.AudioFrame.from_ndarray(samples[None], format="flt", layout="mono")
    frame.sample_rate = sample_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target_rate)
    parts = [f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def has_audio(path: Path) -> bool:
    """Whether a media file has an audio stream."""
    with open_container(path) as container:
        return bool(container.streams.audio)
