"""Text in, speech and mouth out, to a file: `edge-retalk say` and `LipSync.say`.

The text is spoken by a local voice (`tts`), the speech written as a WAV beside nothing but a
temporary folder, and file mode runs on it with the voice's phone timing steering the mouth.
"""

from __future__ import annotations

import logging
import tempfile
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np

from .avatar import Avatar
from .file_mode import RunOptions, RunReport, ProgressCallback, check_output, lipsync
from .generators.learned import is_enrolled
from .tts import Speaker, Speech

log = logging.getLogger(__name__)


def write_wav(path: Path, speech: Speech) -> None:
    """16-bit mono WAV of the speech."""
    pcm = (np.clip(speech.samples, -1, 1) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(speech.sample_rate)
        out.writeframes(pcm.tobytes())


def face_and_options(avatar: Path, options: RunOptions) -> tuple[Path, RunOptions]:
    """The face file an avatar stands for (a photo or video as it is; a bundle's idle loop) and the
    options (an enrolled bundle brings its own networks unless a generator was chosen)."""
    if not avatar.is_dir():
        return avatar, options
    bundle = Avatar(avatar)
    if options.generator is None and is_enrolled(avatar):
        options = replace(options, generator=avatar)
    return bundle.loop, options


def say_to_file(speaker: Speaker, avatar: Path, text: str, output: Path, options: RunOptions, voice: str | None = None,
                on_progress: ProgressCallback | None = None) -> tuple[RunReport, Speech]:
    """`avatar` saying `text` in `voice`, written to `output`; the report and the speech."""
    face, options = face_and_options(avatar, options)
    check_output(output, face)  # before the voice speaks: a bad output name costs no synthesis
    speech = speaker.speech(text, voice)
    if speech.phones is None:
        log.info("the voice %s gives no phone timing: the mouth follows the audio alone", speaker.resolve(voice))
    with tempfile.TemporaryDirectory(prefix="edge-retalk-say-") as folder:
        wav = Path(folder) / "speech.wav"
        write_wav(wav, speech)
        report = lipsync(face, wav, output, options, on_progress, speech.phones or ())
    return report, speech
