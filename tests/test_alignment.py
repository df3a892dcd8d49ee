"""Dubbing with a script: transcripts and subtitles read, their words aligned to real speech
(PocketSphinx, the `align` extra; espeak-ng spells words CMUdict lacks), and `run --transcript`.
Skipped with the reason without PocketSphinx or espeak-ng; a failure under CI=true, where
.ci/run installs both."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_cli
from edge_retalk.audio.alignment import align, arpabet
from edge_retalk.audio.visemes import viseme_of
from edge_retalk.errors import EdgeRetalkError
from edge_retalk.io.media import load_audio
from edge_retalk.io.script import Cue, read_subtitles, read_transcript
from edge_retalk.quality.lip_reading import at_phones, lip_measures
from edge_retalk.tts.phonemes import espeak

GRID = "bin blue at f two now"


def _need_aligner() -> None:
    try:
        import pocketsphinx  # noqa: F401
        missing = [] if shutil.which("espeak-ng") else ["espeak-ng (apt-get install espeak-ng)"]
    except ImportError:
        missing = ["PocketSphinx (pip install '.[align]')"]
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"alignment needs {missing[0]}")
        pytest.skip(f"alignment needs {missing[0]}")


@pytest.fixture
def grid(data):
    return data / "clips" / "grid_bbaf2n.mpg"


def test_subtitles_and_transcripts_keep_only_spoken_words(tmp_path):
    srt = tmp_path / "a.srt"
    srt.write_text("1\r\n00:00:01,500 --> 00:00:03,250\r\n<i>Bin blue</i> {\\an8}at F-2\r\n\r\n"
                   "2\r\n00:00:04,000 --> 00:00:05,000\r\n[MUSIC]\r\n\r\n"
                   "3\r\n00:00:03,300 --> 00:00:04,000\r\nANNOUNCER: Don’t go (laughs)\r\n", encoding="utf-8-sig")
    vtt = tmp_path / "a.vtt"
    vtt.write_text("WEBVTT\n\nNOTE a comment\n\ncue-1\n00:01.500 --> 00:03.250 align:start\n<v Sam>Bin blue at F-2\n\n"
                   "00:00:03.300 --> 00:00:04.000\n- Don't go\n")
    expected = [Cue("Bin blue at F-2", 1.5, 3.25), Cue("Don't go", 3.3, 4.0)]
    assert read_subtitles(srt) == [Cue("Bin blue at F-2", 1.5, 3.25), Cue("Don’t go", 3.3, 4.0)]
    assert read_subtitles(vtt) == expected
    assert [c.words for c in expected] == [["bin", "blue", "at", "f", "2"], ["don't", "go"]]
    text = tmp_path / "t.txt"
    text.write_text("JFK: And so, my fellow Americans [applause]\nask not.\n")
    assert read_transcript(text)[0].words == ["and", "so", "my", "fellow", "americans", "ask", "not"]
    for body, message in (("1\n00:00:02,000 --> 00:00:01,000\nhi\n", "ends before it starts"),
                          ("1\n00:00:xx --> 00:00:01,000\nhi\n", "unreadable cue timing"),
                          ("just words\n", "no subtitle cues")):
        srt.write_text(body)
        with pytest.raises(EdgeRetalkError, match=message):
            read_subtitles(srt)
    text.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(EdgeRetalkError, match="not UTF-8"):
        read_transcript(text)


def test_espeak_spells_words_as_cmudict_does():
    """Letter-to-sound for words the dictionary lacks: checked on words it has (most agree
    phone for phone; the rest differ by a reduced vowel)."""
    _need_aligner()
    from pocketsphinx import Decoder

    decoder = Decoder(lm=None, loglevel="FATAL")
    words = ["mama", "papa", "maple", "button", "little", "father", "thought", "bird", "ahead", "boots", "judge",
             "church", "sing", "vision", "where", "boy", "now", "five", "water", "women"]
    same = [arpabet(espeak(["-q", "--ipa", "-v", "en-us"], w).decode()) == decoder.lookup_word(w).split()
            for w in words]
    assert np.mean(same) >= 0.6, [w for w, ok in zip(words, same) if not ok]


def test_the_script_aligns_to_real_speech_where_the_real_lips_close(grid):
    """GRID's sentence aligns whole, and on the frame of each aligned /b/ the real speaker's lips
    are near their closed position, unlike on the vowels; a sentence not said aligns nothing."""
    _need_aligner()
    samples = load_audio(grid)
    aligned = align(samples, [Cue(GRID)])
    assert (aligned.words, aligned.sure) == (6, 6)
    assert [p.symbol for p in aligned.phones][:3] == ["B", "IH", "N"]
    gaps = lip_measures(grid)[0]
    at = at_phones(gaps, aligned.phones, 25.0)
    speaking = gaps[int(aligned.phones[0].start * 25):int(aligned.phones[-1].end * 25)]
    assert max(at["closed"]) < np.nanpercentile(speaking, 25) < np.median(at["open"]), at
    assert align(samples, [Cue("lay green by c seven again")]).phones == ()


def test_a_cue_that_is_not_said_is_left_to_the_audio(grid):
    """Subtitles whose second cue is wrong: the first is aligned in its own span, the second left out."""
    _need_aligner()
    aligned = align(load_audio(grid), [Cue("bin blue at", 0.8, 1.45), Cue("seven green please", 1.45, 2.2)])
    assert aligned.sure == 3 and aligned.phones[-1].end <= 1.45 + 0.3
    assert [viseme_of(p.symbol) for p in aligned.phones].count("closed") == 2


def test_run_with_subtitles_and_bad_scripts(grid, tmp_path):
    _need_aligner()
    subtitles = tmp_path / "grid.vtt"
    subtitles.write_text("WEBVTT\n\n00:00.900 --> 00:02.100\nBin blue at F two now.\n")
    out = tmp_path / "out.mp4"
    done = run_cli("run", "--face", grid, "--audio", grid, "-o", out, "--subtitles", subtitles, "-q")
    assert done.returncode == 0 and out.is_file(), done.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("[silence]\n")
    for args, message in ((["--transcript", subtitles, "--subtitles", subtitles], "not both"),
                          (["--transcript", empty], "no words"), (["--subtitles", empty], "no subtitle cues")):
        done = run_cli("run", "--face", grid, "--audio", grid, "-o", tmp_path / "x.mp4", *args)
        assert done.returncode == 1 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    without = subprocess.run([sys.executable, "-c", "import sys; sys.modules['pocketsphinx'] = None; "
                              "from edge_retalk.cli import main; main()", "run", "--face", str(grid), "--audio",
                              str(grid), "-o", str(tmp_path / "x.mp4"), "--subtitles", str(subtitles)],
                             capture_output=True, text=True, timeout=300)
    assert without.returncode == 1 and without.stderr.strip() == (
        "error: aligning a transcript or subtitles needs PocketSphinx: pip install 'edge-retalk[align]'")
    assert not (tmp_path / "x.mp4").exists()
