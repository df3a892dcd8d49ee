"""Speech from a microphone through sounddevice (PortAudio, binary wheels on every board)."""

from __future__ import annotations

from ..audio.features import SAMPLE_RATE
from ..errors import EdgeRetalkError
from ..io.quiet import native_stderr_silenced
from .source_base import PcmDecoder, ThreadedSource
from .speech_queue import CHUNK_SECONDS
from .timeline import AudioTimeline

PORTAUDIO_HINT = "install it with: pip install 'edge-retalk[live]' and, on Debian/Ubuntu, apt install libportaudio2"


def _sounddevice():
    try:
        import sounddevice
    except ImportError:
        raise EdgeRetalkError(f"--audio-source mic needs sounddevice, which is not installed; {PORTAUDIO_HINT}") from None
    except OSError:
        raise EdgeRetalkError(f"--audio-source mic needs the PortAudio library, which was not found; {PORTAUDIO_HINT}") from None
    return sounddevice


def list_audio_devices() -> list[tuple[int, str, int, int]]:
    """(index, name, input channels, default sample rate) of every capture device PortAudio sees."""
    sounddevice = _sounddevice()
    with native_stderr_silenced():
        devices = sounddevice.query_devices()
    return [(int(d["index"]), str(d["name"]), int(d["max_input_channels"]), int(d["default_samplerate"]))
            for d in devices if d["max_input_channels"] > 0]


def find_audio_device(wanted: str | None) -> tuple[int | None, int]:
    """(index, sample rate) of the capture device given by index or (part of its) name; the
    default device (index None) when nothing is asked."""
    devices = list_audio_devices()
    if not devices:
        raise EdgeRetalkError("no audio capture device found (see --list-audio-devices)")
    if wanted is None:
        return None, SAMPLE_RATE
    matches = [d for d in devices if (wanted.isdigit() and d[0] == int(wanted)) or wanted.lower() in d[1].lower()]
    if not matches:
        names = ", ".join(f"{d[0]}: {d[1]}" for d in devices)
        raise EdgeRetalkError(f"no capture device matches {wanted!r}; available: {names}")
    return matches[0][0], matches[0][3]


class MicSource(ThreadedSource):
    """A capture device through sounddevice (PortAudio, binary wheels on every board), read in
    20 ms blocks."""

    continuous = True

    def __init__(self, device: str | None = None, sample_rate: int | None = None):
        sounddevice = _sounddevice()
        self._device, default_rate = find_audio_device(device)
        super().__init__(sample_rate or default_rate)
        self.name = f"mic {device or 'default'}"
        self._decoder = PcmDecoder(self.sample_rate)
        try:
            with native_stderr_silenced():
                self._stream = sounddevice.RawInputStream(samplerate=self.sample_rate, channels=1, dtype="int16",
                                                          device=self._device,
                                                          blocksize=int(self.sample_rate * CHUNK_SECONDS))
                self._stream.start()
        except (sounddevice.PortAudioError, ValueError) as exc:
            raise EdgeRetalkError(f"{self.name}: cannot open the capture device ({exc})") from None

    def _read(self, timeline: AudioTimeline) -> None:
        block = int(self.sample_rate * CHUNK_SECONDS)
        while not self._closing.is_set():
            data, _overflowed = self._stream.read(block)
            timeline.push(self._decoder.decode(bytes(data)))

    def close(self) -> None:
        super().close()
        self._stream.stop()
        self._stream.close()
