"""Contact sheet of the lips beside their phones: "mama / papa / boo / fee / ah" said by the voice.

    python benchmarks/viseme_sheet.py --face models/demo_portrait.png -o visemes.png

Top row: lips steered by the voice's phones; bottom row: the same speech, audio alone. Each
column is the frame holding the middle of the phone named above it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from edge_retalk.face.tracker import FaceTracker
from edge_retalk.file_mode import RunOptions, lipsync
from edge_retalk.io.media import iter_video_frames
from edge_retalk.say import write_wav
from edge_retalk.tts import Speaker

TEXT = "Mama. Papa. Boo. Fee. Ah."
SHOWN = {"m": "m", "ɑː": "ah", "p": "p", "b": "b", "uː": "oo", "f": "f", "iː": "ee"}
"""Phones shown, with ASCII labels (OpenCV's font has no IPA)."""
SIZE = 160


def mouth_crops(video: Path, frames: list[int]) -> list[np.ndarray]:
    all_frames = list(iter_video_frames(video))
    points = FaceTracker(25.0, smooth=False)(all_frames[0])
    x, y = points[[61, 291, 0, 17], :2].mean(axis=0)
    half = int(np.ptp(points[[61, 291], 0]) * 0.9)
    return [cv2.resize(all_frames[i][int(y) - half:int(y) + half, int(x) - half:int(x) + half], (SIZE, SIZE))
            for i in frames]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--face", type=Path, required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    speech = Speaker().speech(TEXT)
    picked = [p for p in speech.phones if p.symbol in SHOWN]
    frames = [int((p.start + p.end) / 2 * 25) for p in picked]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        write_wav(wav, speech)
        for name, phones in (("phones", speech.phones), ("audio", ())):
            out = Path(folder) / f"{name}.mp4"
            lipsync(args.face, wav, out, RunOptions(label=False), phones=phones)
            crops = mouth_crops(out, frames)
            for crop, phone in zip(crops, picked):
                cv2.putText(crop, f"{SHOWN[phone.symbol]} {name}", (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
            rows.append(np.hstack(crops))
    cv2.imwrite(str(args.output), np.vstack(rows))
    print(f"wrote {args.output}: {', '.join(f'{p.symbol}@{f}' for p, f in zip(picked, frames))}")


if __name__ == "__main__":
    main()
