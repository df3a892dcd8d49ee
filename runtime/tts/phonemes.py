"""Text to espeak-ng IPA phonemes, sentence by sentence, as Piper voices were trained on.

espeak-ng (GPL-3.0) runs as a separate program, never linked: the text goes in on stdin (never
as arguments, so no text can be taken for an option), IPA comes out one line per clause. The
clause's punctuation, which the command line drops, is put back: Piper voices read it as pauses
and intonation.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache

from ..errors import EdgeRetalkError

ESPEAK = "espeak-ng"
MAX_TEXT = 5000
"""Characters one request may say (about 6 minutes of speech)."""
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_CLAUSE = re.compile(r"([^,;:.!?]+)([,;:.!?]*)")


@cache
def espeak_path() -> str:
    """The espeak-ng program, or a one-line error saying how to install it."""
    path = shutil.which(ESPEAK)
    if path is None:
        raise EdgeRetalkError("espeak-ng is not installed (text to speech needs it: apt-get install espeak-ng)")
    return path


def check_text(text: str) -> str:
    """The text with whitespace tidied, or a one-line error if there is nothing to say."""
    text = " ".join(text.split())
    if len(text) > MAX_TEXT:
        raise EdgeRetalkError(f"the text is {len(text)} characters long; at most {MAX_TEXT} are said at once")
    if not any(c.isalnum() for c in text):
        raise EdgeRetalkError("the text has no words to say")
    return text


def sentences(text: str) -> list[str]:
    """The text's sentences (each said, and streamed, on its own)."""
    return [s for s in _SENTENCE.split(check_text(text)) if any(c.isalnum() for c in s)]


def espeak(args: list[str], text: str) -> bytes:
    """Run espeak-ng with `args` on `text` (stdin) and return its stdout."""
    done = subprocess.run([espeak_path(), *args, "--stdin"], input=text.encode(), capture_output=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        raise EdgeRetalkError(f"espeak-ng failed: {done.stderr.decode(errors='replace').strip()[:200]}")
    return done.stdout


def phonemize(sentence: str, voice: str = "en-us") -> str:
    """One sentence as espeak-ng IPA (stress marks included), its clause punctuation kept."""
    parts = []
    for words, marks in _CLAUSE.findall(sentence):
        if not any(c.isalnum() for c in words):
            continue
        ipa = " ".join(espeak(["-q", "--ipa", "-v", voice], words).decode().split())
        parts.append(ipa + (marks[:1] or ""))
    return " ".join(parts)
