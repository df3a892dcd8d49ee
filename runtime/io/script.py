"""The words of recorded speech, from a plain transcript or timed subtitles (SRT or WebVTT).

Both formats are read by the one small parser here (a cue is a block with a `start --> end`
line), since SRT and WebVTT differ only in a header, a decimal mark and optional hours; the `srt`
package reads SRT alone. Markup (`<i>`, `{\\an8}`, `<v Name>`) and what is not said
(`[music]`, `(laughs)`, a speaker's `NAME:`) are dropped, so only spoken words remain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgeRetalkError

MAX_SCRIPT_BYTES = 4 << 20
_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_MARKUP = re.compile(r"<[^>]*>|\{[^}]*\}")
_UNSPOKEN = re.compile(r"\[[^\]]*\]|\([^)]*\)|^\s*-\s*|^[A-Z][A-Z .'-]*:\s*", re.MULTILINE)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


@dataclass(frozen=True)
class Cue:
    """Words said from `start` to `end` (seconds; None: anywhere in the speech)."""

    text: str
    start: float | None = None
    end: float | None = None

    @property
    def words(self) -> list[str]:
        """The cue's words, lower case, apostrophes kept (don't), hyphens split (well-known)."""
        return [w.replace("’", "'").lower() for w in _WORD.findall(self.text)]


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_SCRIPT_BYTES:
            raise EdgeRetalkError(f"{path}: larger than {MAX_SCRIPT_BYTES >> 20} MB, not a script")
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise EdgeRetalkError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise EdgeRetalkError(f"{path}: cannot be read ({exc.strerror})") from None


def read_transcript(path: Path) -> list[Cue]:
    """The whole text of a plain transcript, as one cue said anywhere in the speech."""
    cue = Cue(" ".join(_UNSPOKEN.sub(" ", _read(path)).split()))
    if not cue.words:
        raise EdgeRetalkError(f"{path}: the transcript has no words")
    return [cue]


def _seconds(hours: str | None, minutes: str, seconds: str, fraction: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction.ljust(3, "0")) / 1000


def read_subtitles(path: Path) -> list[Cue]:
    """The cues of an SRT or WebVTT file, in time order; cues without words are left out."""
    cues = []
    for block in re.split(r"\n\s*\n", _read(path).replace("\r\n", "\n").replace("\r", "\n")):
        lines = block.strip("\n").split("\n")
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue  # WEBVTT header, NOTE, STYLE, REGION
        match = _TIMING.match(lines[timing])
        if match is None:
            raise EdgeRetalkError(f"{path}: unreadable cue timing {lines[timing].strip()[:60]!r}")
        start, end = _seconds(*match.groups()[:4]), _seconds(*match.groups()[4:])
        if end <= start:
            raise EdgeRetalkError(f"{path}: a cue ends before it starts ({lines[timing].strip()[:60]})")
        text = _UNSPOKEN.sub(" ", _MARKUP.sub("", "\n".join(lines[timing + 1:])))
        cue = Cue(" ".join(text.split()), start, end)
        if cue.words:
            cues.append(cue)
    if not cues:
        raise EdgeRetalkError(f"{path}: no subtitle cues with words (SRT or WebVTT: 'start --> end' lines)")
    return sorted(cues, key=lambda cue: cue.start)
