"""Writing the mp4: H.264 video with the driving audio muxed in, labelled, and written atomically."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import av
import cv2
import numpy as np

from .timing import stage
from ..errors import EdgeRetalkError
from .media import iter_audio_frames, open_container
from .workers import mark_partial, partial_output, unmark_partial

if TYPE_CHECKING:
    from ..provenance.labels import SyntheticLabel

log = logging.getLogger(__name__)

AAC_RATES = (16000, 22050, 24000, 32000, 44100, 48000)


def audio_track_format(path: Path) -> tuple[int, str]:
    """Sample rate and channel layout to keep when muxing this audio into the output."""
    with open_container(path) as container:
        if not container.streams.audio:
            raise EdgeRetalkError(f"{path}: has no audio stream")
        ctx = container.streams.audio[0].codec_context
        rate = ctx.sample_rate if ctx.sample_rate in AAC_RATES else 48000
        layout = "mono" if ctx.layout.nb_channels == 1 else "stereo"
        return rate, layout


class CopiedAudio:
    """The speech's AAC packets copied into the output as they are, where the speech is AAC in an
    MP4/M4A file (a talking-head clip's own track, usually): no decoding, resampling or
    re-encoding (0.16 s of CPU for 8 s of speech on a 2-core Xeon), and no second generation loss.
    Timestamps keep their priming (negative at the start, so the muxer writes the same edit list
    as the encoder would) and move by the stream's start time: the speech starts at the output's
    time 0, where its decoded samples, which drove the mouth, start."""

    def __init__(self, container: av.container.InputContainer):
        self._container = container
        self.stream = container.streams.audio[0]
        self._packets = container.demux(self.stream)
        self._shift = self.stream.start_time or 0
        self._pending: av.Packet | None = None

    @classmethod
    def open(cls, path: Path) -> CopiedAudio | None:
        """The copier for `path`, or None where its audio must be decoded and encoded again."""
        container = open_container(path)
        stream = container.streams.audio[0] if container.streams.audio else None
        ctx = stream.codec_context if stream is not None else None
        if (ctx is not None and "mp4" in container.format.name.split(",") and ctx.name == "aac"
                and ctx.sample_rate in AAC_RATES and ctx.layout.nb_channels in (1, 2) and ctx.extradata):
            return cls(container)
        container.close()
        return None

    def _next(self) -> av.Packet | None:
        try:
            for packet in self._packets:
                if packet.size and packet.pts is not None:
                    packet.pts -= self._shift
                    packet.dts = packet.pts
                    return packet
        except av.error.FFmpegError as exc:
            log.warning("%s: audio copying stopped early (%s)", self._container.name, exc)
        return None

    def packets_until(self, seconds: float | None) -> Iterator[av.Packet]:
        """The packets that start before `seconds` (all that are left for None), in order."""
        while True:
            packet = self._pending or self._next()
            self._pending = None
            if packet is None:
                return
            if seconds is not None and packet.pts * packet.time_base >= seconds:
                self._pending = packet
                return
            yield packet

    def close(self) -> None:
        self._container.close()


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


def to_yuv420(picture: np.ndarray) -> np.ndarray:
    """A BGR frame as the encoder's planar YUV 4:2:0 (BT.601, limited range: what swscale makes of
    bgr24 by default), converted by OpenCV: a quarter of swscale's time (0.23 vs 0.9 ms at
    512x512, 1.5 vs 7.9 ms with the frame made at 1080p) and closer to the picture once decoded
    (mean error 1.2 vs 2.0 grey levels)."""
    return cv2.cvtColor(picture, cv2.COLOR_BGR2YUV_I420)


DEFAULT_PRESET = "superfast"
"""x264's speed/size trade-off by default: on a 2-core board the encoder is otherwise the largest
consumer of CPU after the generator. With `PRESET_SETTINGS` it keeps veryfast's picture and file
size in about 60 % of its encoding time; `benchmarks/encoder_presets.py` measures every preset."""
PRESET_SETTINGS = {"superfast": "mbtree=1:rc-lookahead=10"}
"""x264 settings added to a preset. superfast alone leaves out the macroblock tree: a still picture
then pulses from frame to frame (steps of up to 0.26 grey levels, where veryfast has 0.03) and a
talking head's file grows by a quarter; with veryfast's tree and look-ahead back, neither happens."""
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")


class VideoWriter:
    """H.264 mp4 writer with the driving audio muxed in, written atomically.

    Frames go to a temporary file beside the output; it is renamed into place only when
    `close()` succeeds, and removed on any error or interrupt, so an output appears whole
    or not at all.
    """

    def __init__(self, output: Path, width: int, height: int, fps: Fraction,
                 audio_path: Path | None, crf: int = 18, preset: str = DEFAULT_PRESET,
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
        self._video.options = {"crf": str(crf), "preset": preset,
                               **({"x264-params": PRESET_SETTINGS[preset]} if preset in PRESET_SETTINGS else {})}
        self._video.thread_type = "AUTO"
        self._fps = fps
        self._frames = 0
        self._audio = None
        self._audio_samples = 0
        self._copied_audio = CopiedAudio.open(audio_path) if audio_path is not None else None
        if self._copied_audio is not None:
            self._audio = self._container.add_stream_from_template(self._copied_audio.stream)
        elif audio_path is not None:
            rate, layout = audio_track_format(audio_path)
            self._audio = self._container.add_stream("aac", rate=rate, layout=layout)
            self._audio.bit_rate = 128000
            self._audio_frames = iter_audio_frames(audio_path, rate, layout, "fltp")
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
        frame = av.VideoFrame.from_ndarray(to_yuv420(picture), format="yuv420p")
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
        if self._copied_audio is not None:
            for packet in self._copied_audio.packets_until(seconds):
                packet.stream = self._audio
                self._container.mux(packet)
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
            if self._audio is not None and self._copied_audio is None:
                self._container.mux(self._audio.encode(None))
            self._container.close()
            self._close_copied_audio()
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

    def _close_copied_audio(self) -> None:
        if self._copied_audio is not None:
            self._copied_audio.close()
            self._copied_audio = None

    def abort(self) -> None:
        """Drop the partial output."""
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the partial file is deleted either way
            pass
        self._close_copied_audio()
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
