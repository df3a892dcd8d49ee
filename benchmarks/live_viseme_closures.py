"""Are the lips closed on m/b/p in live mode, when text is posted to a running kiosk?

A kiosk (`live --audio-source api`, recording) is sent the sentences through `POST /say` (the
voice's phone timing travels with the audio) and then the very same audio through `POST
/speech` (audio alone). The voice's output is kept as it is made, so both carry identical speech;
each sentence is found in the recording by cross-correlation, and the inner-lip gap is read back
from the drawn frames (`lip_reading.py`) on the frame holding each phone's middle.

    python benchmarks/live_viseme_closures.py --face models/demo_portrait.png
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import tempfile
import threading
import time
from fractions import Fraction
import urllib.request
from pathlib import Path
from typing import Callable

import numpy as np

from edge_retalk.audio.features import SAMPLE_RATE
from edge_retalk.audio.visemes import Phone
from edge_retalk.avatar import prepare_avatar
from edge_retalk.io.media import load_audio, pcm_samples
from edge_retalk.quality.lip_reading import CLOSED_WITHIN, at_phones, lip_measures
from edge_retalk.say import write_wav
from edge_retalk.tts import Piper, Speech

SENTENCES = ("Mama and papa bought a map of the bay.", "Bob put the maple box back by the pump.",
             "Five brave women moved over the warm water.", "Please bring my blue boots, Pam.")


def recording(say: Callable, into: list[Speech]) -> Callable:
    """`Piper.say` that also keeps every sentence it speaks, to find it in the recording."""
    def kept(self, sentence: str) -> Speech:
        into.append(say(self, sentence))
        return into[-1]
    return kept


def locate(recorded: np.ndarray, speech: np.ndarray) -> int:
    """Where `speech` begins inside `recorded` (samples): the peak of their cross-correlation."""
    size = 1 << int(np.ceil(np.log2(recorded.size + speech.size)))
    scores = np.fft.irfft(np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(speech, size)), size)
    return int(np.argmax(scores[: recorded.size]))


def placed(recorded: np.ndarray, said: list[Speech], start: int = 0) -> list[Phone]:
    """The phones of each sentence in `said`, timed where it plays in `recorded` (16 kHz), searched
    from sample `start` on."""
    phones = []
    for speech in said:
        samples = pcm_samples(speech.samples, speech.sample_rate)
        offset = (start + locate(recorded[start:], samples)) / SAMPLE_RATE
        phones += [Phone(p.symbol, p.start + offset, p.end + offset) for p in speech.phones]
    return phones


def closed_share(gaps: np.ndarray, phones: list[Phone], fps: float, closed_gap: float) -> tuple[float, int, float, float]:
    """Share of m/b/p drawn closed, how many, their gap median, and the gap median on a."""
    gap = at_phones(gaps, phones, fps)
    closed = np.array(gap["closed"])
    return (float(np.mean(closed < closed_gap + CLOSED_WITHIN)), closed.size, float(np.nanmedian(closed)),
            float(np.nanmedian(gap["open"])))


def _post(url: str, body: bytes) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, body, method="POST"), timeout=30) as answer:
        return json.loads(answer.read())


def _status(base: str) -> dict:
    with urllib.request.urlopen(base + "/status", timeout=5) as answer:
        return json.loads(answer.read())


def _wait_quiet(base: str) -> None:
    """Until the kiosk has played everything queued."""
    time.sleep(1.0)
    while (state := _status(base))["speaking"] or state["utterances_waiting"] or state["queued_seconds"] > 0:
        time.sleep(0.2)
    time.sleep(0.6)


def kiosk_run(avatar: Path, record: Path, text: str) -> tuple[list[Speech], float]:
    """Post `text` to /say, then the same audio to /speech, on a recording kiosk; the voice's
    sentences and the second (where /speech's audio starts at the earliest), in the recording."""
    from edge_retalk.live.session import LiveSetup, run_session

    said: list[Speech] = []
    Piper.say = recording(Piper.say, said)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base, stop = f"http://127.0.0.1:{port}", threading.Event()
    setup = LiveSetup(avatar, "api", serve=("127.0.0.1", port), window=False, record=record, label=False)
    kiosk = threading.Thread(target=run_session, args=(setup,), kwargs={"stop": stop})
    kiosk.start()
    try:
        for _ in range(300):
            try:
                _status(base)
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(1.5)  # idle, mouth closed, before the text
        _post(base + "/say", json.dumps({"text": text}).encode())
        _wait_quiet(base)
        wav = record.with_suffix(".wav")
        write_wav(wav, Speech.join(said))
        split = _status(base)["frames"] / avatar_fps(avatar)
        _post(base + "/speech", wav.read_bytes())
        _wait_quiet(base)
    finally:
        stop.set()
        kiosk.join()
    return said, split


def avatar_fps(avatar: Path) -> float:
    return float(Fraction(json.loads((avatar / "avatar.json").read_text())["fps"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--face", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        avatar, record = Path(folder) / "avatar", Path(folder) / "kiosk.mp4"
        prepare_avatar(args.face, avatar, loop_seconds=2.0)
        said, split = kiosk_run(avatar, record, " ".join(SENTENCES))
        recorded, (gaps, _) = load_audio(record), lip_measures(record)
        fps = avatar_fps(avatar)
        closed_gap = float(np.nanmedian(gaps[: int(fps)]))
        print(f"{platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}, voice joe, live kiosk "
              f"({args.face.name}), closed: gap within {CLOSED_WITHIN} IOD of the idle mouth ({closed_gap:.3f})")
        print("| lips | m/b/p closed | m/b/p gap median | a gap median |")
        print("|---|---|---|---|")
        at = int(split * SAMPLE_RATE)
        for label, phones in (("phones + audio (POST /say)", placed(recorded[:at], said)),
                              ("audio alone (POST /speech)", placed(recorded, said, at))):
            share, count, gap, open_gap = closed_share(gaps, phones, fps, closed_gap)
            print(f"| {label} | {share:.0%} of {count} | {gap:.3f} | {open_gap:.3f} |")


if __name__ == "__main__":
    main()
