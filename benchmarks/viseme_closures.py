"""Are the lips closed on m/b/p, rounded on oo/w, open on a, in the video `say` draws?

For each face, the same Piper speech is drawn twice: with the voice's phone timing steering the
mouth, and from the audio alone. Each output is tracked again (the runtime's face mesh) and the
inner-lip gap is read on the frame holding each phone's middle, in inter-ocular distances.

    python benchmarks/viseme_closures.py --face models/demo_portrait.png --face ../shared/data/clips/geneface_may_5s.mp4
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_retalk.file_mode import RunOptions, lipsync
from edge_retalk.io.media import probe_face
from edge_retalk.quality.lip_reading import CLOSED_WITHIN, at_phones, lip_measures
from edge_retalk.say import write_wav
from edge_retalk.tts import Speaker, Speech

SENTENCES = ("Mama and papa bought a map of the bay.", "Bob put the maple box back by the pump.",
             "Five brave women moved over the warm water.", "Please bring my blue boots, Pam.")

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--face", type=Path, action="append", required=True)
    args = parser.parse_args()
    speaker = Speaker()
    print(f"{platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}, voice joe, "
          f"closed: gap within {CLOSED_WITHIN} IOD of the face's drawn closed mouth")
    print("| face | closed gap | lips | m/b/p closed | m/b/p gap median | open (a) gap median | rounded width median |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        speech = speaker.speech(" ".join(SENTENCES))
        wav = Path(folder) / "speech.wav"
        write_wav(wav, speech)
        silence = Path(folder) / "silence.wav"
        write_wav(silence, Speech(np.zeros(speech.sample_rate, np.float32), speech.sample_rate, None))
        for face in args.face:
            lipsync(face, silence, Path(folder) / "closed.mp4", RunOptions(label=False))
            closed_gap = float(np.nanmedian(lip_measures(Path(folder) / "closed.mp4")[0]))
            for label, phones in (("audio alone", ()), ("phones + audio", speech.phones)):
                out = Path(folder) / f"{face.stem}_{len(phones)}.mp4"
                lipsync(face, wav, out, RunOptions(label=False), phones=phones)
                gaps, widths = lip_measures(out)
                fps = float(probe_face(out).fps)
                gap, width = at_phones(gaps, speech.phones, fps), at_phones(widths, speech.phones, fps)
                closed = np.array(gap["closed"])
                print(f"| {face.name} | {closed_gap:.3f} | {label} | "
                      f"{np.mean(closed < closed_gap + CLOSED_WITHIN):.0%} of {closed.size} | "
                      f"{np.nanmedian(closed):.3f} | {np.nanmedian(gap['open']):.3f} | "
                      f"{np.nanmedian(width['rounded']):.3f} |")


if __name__ == "__main__":
    main()
