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

from edge_retalk.audio.lip_shape import canonical_shape, shape_opening
from edge_retalk.audio.visemes import mouth_width, viseme_of
from edge_retalk.file_mode import RunOptions, lipsync
from edge_retalk.generators.learned import SHAPE_MODEL
from edge_retalk.engines.manifest import load_manifest
from edge_retalk.face.tracker import FaceDetector, FaceMesh, roi_from_detection, roi_from_landmarks
from edge_retalk.io.media import iter_video_frames, probe_face
from edge_retalk.models import model_path
from edge_retalk.say import write_wav
from edge_retalk.tts import Speaker, Speech

SENTENCES = ("Mama and papa bought a map of the bay.", "Bob put the maple box back by the pump.",
             "Five brave women moved over the warm water.", "Please bring my blue boots, Pam.")
CLOSED_WITHIN = 0.01
"""Lips count as closed when their inner gap is within this many inter-ocular distances of the
face's closed mouth as drawn (its gap through a second of silence: the mesh reads a closed mouth
as 0.02-0.04, not 0)."""


def openings(video: Path) -> tuple[np.ndarray, np.ndarray]:
    """Inner-lip gap and mouth width (canonical units) of every frame of `video`, each frame found
    on its own (the tracker's smoothing would lag behind a one-frame closure, and its crop follows
    the previous frame's mouth, which moves the mesh's reading by about 0.01)."""
    detector, mesh = FaceDetector(), FaceMesh()
    template = np.asarray(load_manifest(model_path(SHAPE_MODEL))[0].metadata["template"])
    gaps, widths = [], []
    for frame in iter_video_frames(video):
        faces = detector.detect(frame)
        points = mesh.landmarks(frame, roi_from_landmarks(mesh.landmarks(frame, roi_from_detection(faces[0]))[0]))[0] \
            if faces else None
        shape = canonical_shape(points, template) if points is not None else None
        gaps.append(np.nan if shape is None else shape_opening(shape))
        widths.append(np.nan if shape is None else mouth_width(shape))
    return np.array(gaps), np.array(widths)


def at_phones(values: np.ndarray, phones, fps: float) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for phone in phones:
        viseme = viseme_of(phone.symbol)
        frame = int((phone.start + phone.end) / 2 * fps)
        if viseme is not None and frame < len(values):
            found.setdefault(viseme, []).append(float(values[frame]))
    return found


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
            closed_gap = float(np.nanmedian(openings(Path(folder) / "closed.mp4")[0]))
            for label, phones in (("audio alone", ()), ("phones + audio", speech.phones)):
                out = Path(folder) / f"{face.stem}_{len(phones)}.mp4"
                lipsync(face, wav, out, RunOptions(label=False), phones=phones)
                gaps, widths = openings(out)
                fps = float(probe_face(out).fps)
                gap, width = at_phones(gaps, speech.phones, fps), at_phones(widths, speech.phones, fps)
                closed = np.array(gap["closed"])
                print(f"| {face.name} | {closed_gap:.3f} | {label} | "
                      f"{np.mean(closed < closed_gap + CLOSED_WITHIN):.0%} of {closed.size} | "
                      f"{np.nanmedian(closed):.3f} | {np.nanmedian(gap['open']):.3f} | "
                      f"{np.nanmedian(width['rounded']):.3f} |")


if __name__ == "__main__":
    main()
