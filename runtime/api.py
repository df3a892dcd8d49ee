"""The front door for Python: `LipSync` does what the `edge-retalk` command does, in process.

    from edge_retalk import LipSync

    sync = LipSync(device="auto")                          # board profile, generator, threads: chosen once
    report = sync.run("talk.mp4", "speech.wav", "out.mp4")  # a labelled mp4, written atomically
    for frame in sync.frames("photo.png", samples):        # BGR frames in memory (speech as an array)
        ...
    with sync.live("avatar/") as avatar:                   # real time: push speech, take frames
        avatar.push(pcm)
        for frame in avatar.frames(): ...

Paths may be `str` or `Path`; errors are `EdgeRetalkError` with a one-line message. The CLI is a
thin layer over this class.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .audio.visemes import Phone
from .avatar import Avatar
from .devices.profiles import DeviceSettings, device_settings
from .errors import EdgeRetalkError
from .file_mode import ProgressCallback, RunOptions, RunReport, SyncedFrames, face_info, lipsync
from .generators.options import RENDERERS, RenderOptions
from .io.media import check_readable, load_audio, pcm_samples
from .io.script import read_subtitles, read_transcript
from .io.video_writer import DEFAULT_PRESET, PRESETS
from .live.speech_queue import SpeechQueue
from .live.loop import LiveOptions, LiveReport, live_driver, run_live, with_avatar_networks
from .provenance import watermark
from .provenance.content_credentials import SigningKey
from .say import say_to_file
from .tts import Speaker, TtsOptions

log = logging.getLogger(__name__)


def _path(value, what: str) -> Path:
    """`value` as a Path; anything but a non-empty str or Path is refused in one line."""
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes) and str(value):
        return Path(value)
    raise EdgeRetalkError(f"{what} must be a path (str or Path), not {type(value).__name__} {value!r:.40}")


def _number(value, what: str, low: float, high: float, whole: bool = False):
    """`value` checked as the CLI checks its option: a finite number (whole where `whole`) in [low, high]."""
    numeric = isinstance(value, (np.integer, int) if whole else (np.integer, np.floating, int, float))
    if not numeric or isinstance(value, bool) or not math.isfinite(value) or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise EdgeRetalkError(f"{what} must be {kind} from {low:g} to {high:g}, not {value!r:.40}")
    return int(value) if whole else float(value)


def _choice(value, what: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise EdgeRetalkError(f"unknown {what} {value!r:.40}; choose from {', '.join(choices)}")
    return value


def _samples_or_path(value, what: str) -> np.ndarray | Path:
    """Speech or a face given as an array, or the path of a file holding it."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple, int, float, np.generic)):
        raise EdgeRetalkError(f"{what} must be a path or a numpy array, not {type(value).__name__}")
    return _path(value, what)


class LipSync:
    """Lip sync with one set of choices: the board profile (`device`: a profile name, "auto" to
    recognise this machine, or None for the built-in generator), or an explicit `generator` (an
    exported network or an enrolled avatar folder), the built-in `renderer` and its `amplitude`,
    `threads` and `batch`. `label` marks every output as synthetic (metadata, Content Credentials
    and the invisible watermark in files; the watermark in frames given in memory). Each choice a
    profile makes is passed to `on_note` (default: the log)."""

    def __init__(self, device: str | None = None, *, generator: str | Path | None = None,
                 renderer: str = "learned", amplitude: float = 1.0, models: str | Path = "exported",
                 threads: int | None = None, batch: int | None = None, label: bool = True,
                 signing_key: SigningKey | None = None, on_note: Callable[[str], None] | None = None,
                 tts: TtsOptions | None = None):
        _choice(renderer, "renderer", RENDERERS)
        if device is not None and not isinstance(device, str):
            raise EdgeRetalkError(f"device must be a board profile's name or \"auto\", not {type(device).__name__}")
        if generator is not None:
            generator = _path(generator, "generator")
            if not generator.exists():
                raise EdgeRetalkError(f"{generator}: no such generator file or avatar folder")
        threads = None if threads is None else _number(threads, "threads", 1, 64, whole=True)
        batch = None if batch is None else _number(batch, "batch", 1, 64, whole=True)
        amplitude = _number(amplitude, "amplitude", 0.0, 3.0)
        if on_note is not None and not callable(on_note):
            raise EdgeRetalkError(f"on_note must be a function taking one line, not {type(on_note).__name__}")
        self.settings: DeviceSettings = device_settings(device, threads, generator, _path(models, "models"),
                                                        on_note or log.info)
        if batch is not None:
            self.settings = replace(self.settings, batch=batch)
        self.render = RenderOptions(amplitude, renderer)
        self.label = label
        self.signing_key = signing_key
        self.speaker = Speaker(tts or TtsOptions(threads=self.settings.threads))
        """The text-to-speech voices of `say`, each loaded on first use."""

    def options(self, **overrides) -> RunOptions:
        """The file-mode options this object stands for, with `overrides` (e.g. crf, preset)."""
        return RunOptions(render=self.render, label=self.label, signing_key=self.signing_key,
                          **vars(self.settings) | overrides)

    def run(self, face: str | Path, audio: str | Path, output: str | Path, *, crf: int = 18,
            preset: str = DEFAULT_PRESET, photo_fps: float = 25.0, watermark: bool = False,
            on_progress: ProgressCallback | None = None, transcript: str | Path | None = None,
            subtitles: str | Path | None = None) -> RunReport:
        """Rewrite the mouth of `face` (video or photo) to match `audio` and write `output` (.mp4).
        The words of a `transcript` (plain text) or `subtitles` (SRT or WebVTT), aligned to the
        speech, close the lips on m/b/p and shape them where the aligner is sure (`align` extra)."""
        face, audio, output = _path(face, "face"), _path(audio, "audio"), _path(output, "output")
        if transcript is not None and subtitles is not None:
            raise EdgeRetalkError("give a transcript or subtitles, not both")
        script = (read_transcript(_path(transcript, "transcript")) if transcript is not None
                  else read_subtitles(_path(subtitles, "subtitles")) if subtitles is not None else ())
        if on_progress is not None and not callable(on_progress):
            raise EdgeRetalkError(f"on_progress must be a function of (done, total), not {type(on_progress).__name__}")
        options = self.options(crf=_number(crf, "crf", 0, 51, whole=True), preset=_choice(preset, "preset", PRESETS),
                               watermark=bool(watermark), photo_fps=_fps(photo_fps))
        return lipsync(face, audio, output, options, on_progress, script=script)

    def say(self, avatar: str | Path, text: str, output: str | Path, *, voice: str | None = None, crf: int = 18,
            preset: str = DEFAULT_PRESET, photo_fps: float = 25.0, watermark: bool = False,
            on_progress: ProgressCallback | None = None) -> RunReport:
        """`avatar` (a photo, video or avatar bundle) saying `text` in `voice` (see `edge_retalk.tts`),
        written to `output` (.mp4); where the voice times its phones, they steer the mouth."""
        options = self.options(crf=crf, preset=preset, watermark=watermark,
                               photo_fps=Fraction(photo_fps).limit_denominator(1001))
        return say_to_file(self.speaker, Path(avatar), text, Path(output), options, voice, on_progress)[0]

    def frames(self, face: str | Path | np.ndarray, audio: str | Path | np.ndarray, *, sample_rate: int = 16000,
               photo_fps: float = 25.0) -> Iterator[np.ndarray]:
        """The lip-synced frames (BGR uint8) of `face` (a video or photo file, or a photo as a BGR
        array) speaking `audio` (a file, or mono samples at `sample_rate`), one per video frame,
        without writing anything."""
        face, audio = _samples_or_path(face, "face"), _samples_or_path(audio, "audio")
        info = face_info(face, _fps(photo_fps))
        if isinstance(audio, np.ndarray):
            samples = pcm_samples(audio, _number(sample_rate, "sample_rate", 4000, 192000, whole=True))
            if samples.size == 0:
                raise EdgeRetalkError("the speech array is empty")
        else:
            check_readable(audio)
            samples = load_audio(audio)
        for frame in SyncedFrames(info, samples, self.options(photo_fps=info.fps)):
            yield watermark.embed(frame) if self.label else frame

    def live(self, avatar: str | Path, *, duration: float | None = None) -> LiveStream:
        """A live avatar fed from Python (use it in a `with` block): the bundle `prepare` or
        `enroll` wrote, animated in real time by the speech you `push`."""
        avatar = _path(avatar, "avatar")
        duration = None if duration is None else _number(duration, "duration", 0.1, math.inf)
        options = LiveOptions(duration=duration, render=self.render, threads=self.settings.threads,
                              generator=self.settings.generator, provider=self.settings.provider,
                              provider_options=self.settings.provider_options)
        return LiveStream(avatar, options, self.label)


def _fps(photo_fps) -> Fraction:
    return Fraction(_number(photo_fps, "photo_fps", 1.0, 120.0)).limit_denominator(1001)


@dataclass(frozen=True)
class LiveFrame:
    """One live frame: the picture (BGR uint8), its 40 ms or so of speech (16 kHz float32,
    silence where none came), and whether it shows speech."""

    index: int
    image: np.ndarray
    audio: np.ndarray
    speaking: bool


class LiveStream:
    """A live avatar run in a background thread at real-time pace: `push` speech (whole
    utterances, one after another; `interrupt` drops what is queued), take frames from
    `frames()`. Frames nobody takes are dropped beyond `buffer` (the avatar never waits for its
    viewer). Leaving the `with` block stops it; `report` holds its figures."""

    def __init__(self, avatar: Path, options: LiveOptions, label: bool = True, buffer: int = 50):
        self.avatar = Avatar(avatar)
        options = with_avatar_networks(options, avatar)
        self._options = options
        self._driver = live_driver(options, float(self.avatar.fps))
        self._label = label
        self._speech = SpeechQueue()
        self._frames: queue.Queue[LiveFrame] = queue.Queue(maxsize=buffer)
        self._stop = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.report = LiveReport()

    @property
    def fps(self) -> float:
        return float(self.avatar.fps)

    def __enter__(self) -> LiveStream:
        self._thread = threading.Thread(target=self._run, name="edge-retalk-live", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        try:
            run_live(self.avatar, self._speech, [self], self._driver, self._options, stop=self._stop,
                     report=self.report)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._error = exc
        finally:
            self._stop.set()

    def show(self, frame: np.ndarray, audio: np.ndarray, dropped: bool, delay: float | None) -> None:
        """The live loop's output: keep the frame for `frames()`, dropping the oldest when full."""
        item = LiveFrame(self.report.frames, watermark.embed(frame) if self._label else frame, audio,
                         delay is not None)
        while True:
            try:
                self._frames.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._frames.get_nowait()
                except queue.Empty:
                    pass

    def push(self, pcm: np.ndarray, sample_rate: int = 16000, interrupt: bool = False,
             phones: Sequence[Phone] = ()) -> None:
        """Queue one utterance (mono float or int16 samples at `sample_rate`); with `interrupt`,
        what is playing and queued is dropped first. Its timed `phones` (`edge_retalk.audio.visemes.Phone`,
        seconds from its start), where a TTS gives them, steer the mouth as in file mode."""
        if self._closed:
            raise EdgeRetalkError("this live stream is closed: push speech inside its `with` block")
        self._raise_if_failed()
        if not isinstance(pcm, np.ndarray):
            raise EdgeRetalkError(f"speech must be a numpy array of mono samples, not {type(pcm).__name__}")
        rate = _number(sample_rate, "sample_rate", 4000, 192000, whole=True)
        if not all(isinstance(p, Phone) and math.isfinite(p.start) and math.isfinite(p.end) for p in phones):
            raise EdgeRetalkError("phones must be edge_retalk.audio.visemes.Phone items with finite start and end")
        self._speech.add(pcm_samples(pcm, rate), bool(interrupt), tuple(phones))

    def interrupt(self) -> None:
        """Stop speaking now and drop the queued speech."""
        self._speech.interrupt()

    def speaking(self) -> bool:
        return self._speech.state()["speaking"] or self._speech.queued_seconds() > 0

    def frames(self, timeout: float | None = None) -> Iterator[LiveFrame]:
        """Frames as they are made, until the stream is closed (or nothing comes for `timeout` s)."""
        if self._thread is None:
            raise EdgeRetalkError("a live stream runs inside a `with` block")
        while True:
            try:
                yield self._frames.get(timeout=0.05 if timeout is None else timeout)
            except queue.Empty:
                self._raise_if_failed()
                if timeout is not None or self._stop.is_set():
                    return

    def close(self) -> None:
        """Stop the avatar (the live loop ends within a frame) and re-raise its error, if any."""
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._speech.close()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
