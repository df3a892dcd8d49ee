"""Phone timing of recorded speech whose words are known: forced alignment with PocketSphinx.

A dubbing user has the script or subtitles; PocketSphinx 5 (BSD-style licence; the `align`
extra) ships a US-English acoustic model and CMUdict and aligns known words to audio in two
passes (words, then phones in 10 ms frames). Words missing from the dictionary are spelled by
espeak-ng's letter-to-sound rules, its IPA mapped to ARPAbet. The phones then steer the mouth
exactly as a TTS voice's own timing does (`visemes.steer`).

Only what the aligner is sure of is used: a word whose acoustic score is poor (the words said are
not the words written, or the aligner squeezed a word in where there is none) is left out, and a
cue of which most words are unsure is left out whole, so there the lips follow the audio alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import EdgeRetalkError
from ..io.script import Cue
from .features import SAMPLE_RATE
from .visemes import Phone

log = logging.getLogger(__name__)

FRAMES_PER_SECOND = 100
"""PocketSphinx's feature frame rate (10 ms)."""
SURE = -45.0
"""A word is used when its acoustic score per 10 ms frame is at least this (PocketSphinx's
scaled log units, relative to the best-scoring state of each frame). On GRID and JFK speech,
correct words scored -4 to -39 (one outlier -94); words written but not said, -45 to -81."""
MOSTLY = 0.5
"""A cue with fewer sure words than this share does not match its speech and is left out whole."""
PAD_SECONDS = 0.3
"""Subtitle cues are aligned on their span widened by this much (subtitle timing is loose)."""
IPA_TO_ARPABET = {
    "tʃ": "CH", "dʒ": "JH", "eɪ": "EY", "aɪ": "AY", "aʊ": "AW", "ɔɪ": "OY", "oʊ": "OW", "əʊ": "OW",
    "i": "IY", "ɪ": "IH", "ᵻ": "IH", "e": "EH", "ɛ": "EH", "æ": "AE", "a": "AE", "ɑ": "AA", "ɒ": "AA",
    "ɔ": "AO", "o": "AO", "ʊ": "UH", "u": "UW", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɚ": "ER", "ɜ": "ER",
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G", "g": "G", "f": "F", "v": "V",
    "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "m": "M", "n": "N",
    "ŋ": "NG", "l": "L", "ɹ": "R", "r": "R", "w": "W", "ʍ": "W", "j": "Y", "ɾ": "T", "ʔ": "T", "x": "K",
}
"""espeak-ng en-us IPA -> CMUdict ARPAbet (the flap and glottal stop as T, as CMUdict spells
"little" and "button"); length, stress, ties and syllabic marks are dropped."""
_DROPPED = dict.fromkeys(map(ord, "ˈˌːˑ\u200d\u0361\u0329-"))


@dataclass(frozen=True)
class Alignment:
    """Timed phones (ARPAbet, seconds) of the words the aligner was sure of, and word counts."""

    phones: tuple[Phone, ...]
    words: int
    sure: int


def arpabet(ipa: str) -> list[str]:
    """espeak-ng IPA as ARPAbet phones, longest symbol first; unknown symbols are skipped."""
    text, phones, i = ipa.translate(_DROPPED), [], 0
    while i < len(text):
        for size in (2, 1):
            symbol = IPA_TO_ARPABET.get(text[i:i + size])
            if symbol is not None:
                phones.append(symbol)
                i += size
                break
        else:
            i += 1
    return phones


def _decoder():
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise EdgeRetalkError("aligning a transcript or subtitles needs PocketSphinx: pip install 'edge-retalk[align]'") from None
    return Decoder(lm=None, loglevel="FATAL", samprate=SAMPLE_RATE)


def _spell(decoder, words: set[str]) -> None:
    """Add the words CMUdict lacks, spelled by espeak-ng (numbers too: "42" -> forty-two)."""
    from ..tts.phonemes import espeak

    missing = sorted(w for w in words if decoder.lookup_word(w) is None)
    if not missing:
        return
    lines = espeak(["-q", "--ipa", "-v", "en-us"], "\n\n".join(missing)).decode().strip().split("\n")
    spelled = dict(zip(missing, lines)) if len(lines) == len(missing) else {
        w: espeak(["-q", "--ipa", "-v", "en-us"], w).decode() for w in missing}
    for word, ipa in spelled.items():
        phones = arpabet(ipa)
        if phones:
            decoder.add_word(word, " ".join(phones))
            log.info("%s is not in the dictionary; espeak-ng spells it %s", word, " ".join(phones))


@dataclass(frozen=True)
class _Word:
    score_per_frame: float
    phones: tuple[tuple[str, int, int], ...]
    """(ARPAbet, first frame, frames)"""


def _align_words(decoder, samples: np.ndarray, words: list[str]) -> list[_Word] | None:
    """PocketSphinx's word and phone alignment of `words` to 16 kHz `samples` (None: no path),
    copied out (its entries point into the alignment, which is freed with it)."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    try:
        decoder.set_align_text(" ".join(words))
        for second_pass in (False, True):
            if second_pass:
                decoder.set_alignment()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
    except RuntimeError:  # no path through the words (far too many for the speech, or none of them said)
        return None
    alignment = decoder.get_alignment()
    return [_Word(w.score / max(w.duration, 1), tuple((p.name, p.start, p.duration) for p in w))
            for w in alignment if not w.name.startswith("<")]


def align(samples: np.ndarray, cues: Sequence[Cue]) -> Alignment:
    """Timed phones of `cues` in 16 kHz `samples`: each timed cue on its own span, an untimed one
    over all of it; only the words aligned surely."""
    decoder = _decoder()
    _spell(decoder, {w for cue in cues for w in cue.words})
    duration = samples.size / SAMPLE_RATE
    phones: list[Phone] = []
    total = sure_total = 0
    for cue in cues:
        words = [w for w in cue.words if decoder.lookup_word(w) is not None]
        total += len(cue.words)
        start = 0.0 if cue.start is None else max(0.0, cue.start - PAD_SECONDS)
        end = duration if cue.end is None else min(duration, cue.end + PAD_SECONDS)
        if not words or end - start < 0.1:
            continue
        aligned = _align_words(decoder, samples[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)], words) or []
        sure = [w for w in aligned if w.score_per_frame >= SURE]
        where = "" if cue.start is None else f" at {cue.start:.1f} s"
        if len(sure) < MOSTLY * len(cue.words):
            log.warning("the words %r%s do not match the speech; the lips follow the audio there",
                        cue.text[:40] + ("..." if len(cue.text) > 40 else ""), where)
            continue
        sure_total += len(sure)
        phones += [Phone(name, start + first / FRAMES_PER_SECOND, start + (first + frames) / FRAMES_PER_SECOND)
                   for w in sure for name, first, frames in w.phones]
    log.info("aligned %d of %d words to the speech", sure_total, total)
    return Alignment(tuple(phones), total, sure_total)
