"""All media I/O in one place: opening face videos and photos, decoding audio, writing the mp4.

PyAV (bundled FFmpeg) decodes and encodes; OpenCV reads still images. Every decoder or
container failure becomes one EdgeRetalkError line naming the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import av
import cv2
import numpy as np

from .errors import EdgeRetalkError
from .quiet import native_stderr_silenced
from .stream import mark_partial, partial_output, unmark_partial
from .timing import stage

if TYPE_CHECKING:
    from .labels import SyntheticLabel

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
PHOTO_FPS = Fraction(25)
AAC_RATES = (16000, 22050, 24000, 32000, 44100, 48000)
MAX_SIDE = 4096
MAX_CLAIMED_AUDIO_SECONDS = 2 * 3600
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


def _open_container(path: Path) -> av.container.InputContainer:
    check_readable(path)
    try:
        return av.open(str(path))
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


def probe_face(path: Path) -> FaceInfo:
    """Inspect a face video or photo without decoding all of it."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = read_image(path)
        return FaceInfo(path, True, image.shape[1], image.shape[0], PHOTO_FPS, None)
    with _open_container(path) as container:
        if not container.streams.video:
            raise EdgeRetalkError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
            raise EdgeRetalkError(f"{path}: unsupported video size {width}x{height}")
        if _quarter_turned(container, stream):
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


def _quarter_turned(container, stream) -> bool:
    """Whether the video is shown turned by 90 or 270 degrees (its first frame's display matrix)."""
    try:
        frame = next(container.decode(stream), None)
    except av.error.FFmpegError:
        return False
    return frame is not None and int(round(frame.rotation / 90)) % 2 == 1


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


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """A decoded frame as it is meant to be shown: turned by its display matrix's `rotation`
    (degrees counterclockwise; phones store portrait video sideways with -90)."""
    turns = int(round(rotation / 90)) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def iter_video_frames(path: Path) -> Iterator[np.ndarray]:
    """Decode a video's frames as BGR uint8 arrays, one at a time, upright (display matrix applied)."""
    with _open_container(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = container.decode(stream)
        try:
            while True:
                with stage("decode"):
                    frame = next(frames, None)
                    image = None if frame is None else upright(frame.to_ndarray(format="bgr24"), frame.rotation)
                if image is None:
                    return
                yield image
        except av.error.FFmpegError as exc:
            log.warning("%s: decoding stopped early (%s)", path, exc)


def _audio_seconds(path: Path) -> float:
    """The container's stated duration (0 when it states none); only a size hint."""
    with _open_container(path) as container:
        return max(0.0, (container.duration or 0) / av.time_base)


def _iter_audio(path: Path, rate: int, layout: str, fmt: str) -> Iterator[av.AudioFrame]:
    with _open_container(path) as container:
        if not container.streams.audio:
            raise EdgeRetalkError(f"{path}: has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        try:
            for frame in container.decode(stream):
                yield from resampler.resample(frame)
        except av.error.FFmpegError as exc:
            log.warning("%s: audio decoding stopped early (%s)", path, exc)
        yield from resampler.resample(None)


def load_audio(path: Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode any audio (or a video's audio track) to mono float32 PCM at `sample_rate`.

    Samples go into one buffer sized from the container's duration (grown if that was short),
    so an hour of speech takes its 230 MB once, not twice. A header's claim is believed up to
    `MAX_CLAIMED_AUDIO_SECONDS` only: pages of the buffer that are never written cost nothing."""
    claimed = min(_audio_seconds(path), MAX_CLAIMED_AUDIO_SECONDS)
    buffer = np.empty(int(claimed * sample_rate * 1.01) + sample_rate, np.float32)
    count = 0
    for frame in _iter_audio(path, sample_rate, "mono", "flt"):
        chunk = frame.to_ndarray().reshape(-1)
        if count + chunk.size > buffer.size:
            buffer = np.resize(buffer, max(count + chunk.size, int(buffer.size * 1.5)))
        buffer[count:count + chunk.size] = chunk
        count += chunk.size
    samples = buffer[:count] if count > buffer.size // 2 else buffer[:count].copy()
    if samples.size == 0:
        raise EdgeRetalkError(f"{path}: audio has no samples")
    if not np.all(np.isfinite(samples)):
        samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    return samples.astype(np.float32, copy=False)


def has_audio(path: Path) -> bool:
    """Whether a media file has an audio stream."""
    with _open_container(path) as container:
        return bool(container.streams.audio)


def audio_track_format(path: Path) -> tuple[int, str]:
    """Sample rate and channel layout to keep when muxing this audio into the output."""
    with _open_container(path) as container:
        if not container.streams.audio:
            raise EdgeRetalkError(f"{path}: has no audio stream")
        ctx = container.streams.audio[0].codec_context
        rate = ctx.sample_rate if ctx.sample_rate in AAC_RATES else 48000
        layout = "mono" if ctx.layout.nb_channels == 1 else "stereo"
        return rate, layout


def _finite_audio(frame: av.AudioFrame) -> av.AudioFrame:
    """The frame with NaN and infinite samples (seen in float WAVs) replaced, since encoders refuse them."""
    samples = frame.to_ndarray()
    if np.isfinite(samples).all():
        return frame
    fixed = av.AudioFrame.from_ndarray(np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0),
                                       format=frame.format.name, layout=frame.layout.name)
    fixed.sample_rate = frame.sample_rate
    return fixed


def apply_umask(path: Path, mode: int = 0o666) -> None:
    """Give a file made by mkstemp/mkdtemp (private) the permissions a normal new file would get."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


class VideoWriter:
    """H.264 mp4 writer with the driving audio muxed in, written atomically.

    Frames go to a temporary file beside the output; it is renamed into place only when
    `close()` succeeds, and removed on any error or interrupt, so an output appears whole
    or not at all.
    """

    def __init__(self, output: Path, width: int, height: int, fps: Fraction,
                 audio_path: Path | None, crf: int = 18, preset: str = "veryfast",
                 label: SyntheticLabel | None = None, audio_rate: int | None = None):
        """`audio_path` is muxed as the frames go; or, with `audio_rate`, each `write` brings its own
        mono float samples at that rate (live recordings). With a `label`, the video carries its
        metadata tag, every frame its watermark, and the finished file its Content Credentials."""
        self.output = output
        self.width, self.height = width - width % 2, height - height % 2
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{output.stem[:64]}.", suffix=".part.mp4", dir=output.parent)
        except OSError as exc:
            raise EdgeRetalkError(f"{output}: cannot write ({exc.strerror})") from None
        os.close(fd)
        self._tmp = Path(tmp)
        mark_partial(self._tmp)
        with self._write_errors():
            self._container = av.open(str(self._tmp), "w", format="mp4")
        self._label = label
        for key, value in (label.metadata() if label else {}).items():
            self._container.metadata[key] = value
        self._video = self._container.add_stream("libx264", rate=fps)
        self._video.width, self._video.height = self.width, self.height
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": str(crf), "preset": preset}
        self._video.thread_type = "AUTO"
        self._fps = fps
        self._frames = 0
        self._audio = None
        self._audio_samples = 0
        if audio_path is not None:
            rate, layout = audio_track_format(audio_path)
            self._audio = self._container.add_stream("aac", rate=rate, layout=layout)
            self._audio.bit_rate = 128000
            self._audio_frames = _iter_audio(audio_path, rate, layout, "fltp")
            self._audio_time = 0.0
        elif audio_rate is not None:
            self._audio = self._container.add_stream("aac", rate=audio_rate, layout="mono")
            self._audio.bit_rate = 64000
            self._audio_frames = iter(())
            self._audio_time = 0.0

    @contextlib.contextmanager
    def _write_errors(self) -> Iterator[None]:
        """Turn a failing write (disk full, file too large, I/O error) into one clear error."""
        try:
            yield
        except (OSError, av.error.FFmpegError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise EdgeRetalkError(f"{self.output}: cannot write ({reason})") from None

    def write(self, frame_bgr: np.ndarray, audio: np.ndarray | None = None) -> None:
        """Encode one BGR frame, and the audio up to its end time (or `audio`, the samples that
        go with this frame, for a writer made with `audio_rate`)."""
        picture = np.ascontiguousarray(frame_bgr[: self.height, : self.width])
        if self._label is not None:
            picture = self._label.mark(picture)
        frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
        with self._write_errors(), stage("encode"):
            self._container.mux(self._video.encode(frame))
            self._frames += 1
            if audio is not None and self._audio is not None:
                samples = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, np.float32)[None], format="flt",
                                                     layout="mono")
                samples.sample_rate = self._audio.rate
                self._encode_audio(samples)
            else:
                self._write_audio_until(self._frames / self._fps)

    def _write_audio_until(self, seconds: float | None) -> None:
        if self._audio is None:
            return
        while seconds is None or self._audio_time < seconds:
            frame = next(self._audio_frames, None)
            if frame is None:
                break
            self._encode_audio(_finite_audio(frame))

    def _encode_audio(self, frame: av.AudioFrame) -> None:
        """Encode with explicit timestamps: the encoder then marks its priming samples (1024 for AAC)
        as negative time, the muxer writes an edit list, and players start the sound in step with
        the picture instead of 64 ms late."""
        frame.pts = self._audio_samples
        frame.time_base = Fraction(1, frame.sample_rate)
        self._audio_samples += frame.samples
        self._audio_time = self._audio_samples / frame.sample_rate
        self._container.mux(self._audio.encode(frame))

    def close(self) -> Path:
        """Flush encoders and move the finished file into place."""
        with self._write_errors():
            self._write_audio_until(None)
            self._container.mux(self._video.encode(None))
            if self._audio is not None:
                self._container.mux(self._audio.encode(None))
            self._container.close()
            if self._label is not None:
                self._sign()
            apply_umask(self._tmp)
            os.replace(self._tmp, self.output)
        unmark_partial(self._tmp)
        return self.output

    def _sign(self) -> None:
        """Replace the finished temporary file by a signed copy (C2PA rewrites the whole file)."""
        signed = self._tmp.with_name(self._tmp.name.replace(".part.mp4", ".signed.part.mp4"))
        with partial_output(signed):
            try:
                self._label.sign(self._tmp, signed)
                os.replace(signed, self._tmp)
            finally:
                signed.unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop the partial output."""
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the partial file is deleted either way
            pass
        self._tmp.unlink(missing_ok=True)
        unmark_partial(self._tmp)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:
            self.abort()
            raise
