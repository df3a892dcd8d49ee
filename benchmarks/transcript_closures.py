"""Does a transcript make the lips of recorded speech close on m/b/p, without making them worse?

1. Alignment against the truth: Piper speech whose phone timing the voice itself gives is aligned
   from its text alone (PocketSphinx); the error of each m/b/p middle is reported, and the lips
   drawn on each face with the aligned timing are read back (as `viseme_closures.py` does).
2. Real speech with known words: GRID clips (their sentence is in their name) and a VidTIMIT
   reading of TIMIT's sa1 under `eval`'s photo and dub protocols, and JFK's inaugural excerpt on the demo portrait, each drawn from the
   audio alone and with the transcript. Closed: the inner-lip gap at an aligned m/b/p middle is
   within CLOSED_WITHIN of the same video's gap through its silent frames (median); r and M-LMD
   are `edge-retalk eval`'s, against the real mouth.

    python benchmarks/transcript_closures.py --data ../shared/data --face models/demo_portrait.png \
        --face ../shared/data/clips/geneface_may_5s.mp4 --sheet transcript_sheet.png
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edge_retalk.audio.alignment import align
from edge_retalk.audio.features import SAMPLE_RATE
from edge_retalk.audio.mouth_opening import silence_mask
from edge_retalk.audio.visemes import Phone, viseme_of
from edge_retalk.face.tracker import FaceTracker
from edge_retalk.file_mode import RunOptions, lipsync
from edge_retalk.io.media import iter_video_frames, load_audio, probe_face
from edge_retalk.io.script import Cue
from edge_retalk.quality.evaluate import evaluate_clip
from edge_retalk.quality.lip_reading import CLOSED_WITHIN, at_phones, lip_measures
from edge_retalk.say import write_wav
from edge_retalk.tts import Speaker

SENTENCES = ("Mama and papa bought a map of the bay.", "Bob put the maple box back by the pump.",
             "Five brave women moved over the warm water.", "Please bring my blue boots, Pam.")
SIZE = 96
GRID = {"grid_bbaf2n.mpg": "bin blue at f two now", "grid_lbbc2a.mpg": "lay blue by c two again"}
VIDTIMIT = ("vidtimit_fadg0_sa1_5s.mp4", "She had your dark suit in greasy wash water all year.")
JFK = ("whisper_jfk.flac", "And so my fellow Americans, ask not what your country can do for you, "
                           "ask what you can do for your country.")


def silent_frames(samples: np.ndarray, fps: float) -> np.ndarray:
    return silence_mask(samples, fps, max(1, round(samples.size / SAMPLE_RATE * fps)))


def closed_share(video: Path, phones, silent: np.ndarray) -> tuple[float, int]:
    """Share of m/b/p middles drawn closed, against the video's own gap through silence."""
    gaps = lip_measures(video)[0]
    n = min(len(gaps), len(silent))
    closed_gap = float(np.nanmedian(gaps[:n][silent[:n]]))
    at = np.array(at_phones(gaps, phones, float(probe_face(video).fps)).get("closed", []))
    return float(np.mean(at < closed_gap + CLOSED_WITHIN)) if at.size else float("nan"), at.size


def mouth_crops(video: Path, frames: list[int]) -> list[np.ndarray]:
    """The mouth at each of `frames`, found on each frame (the real head moves)."""
    tracker, crops = FaceTracker(25.0, smooth=False), []
    for index, frame in enumerate(iter_video_frames(video)):
        if index in frames:
            points = tracker(frame)
            x, y = points[[61, 291, 0, 17], :2].mean(axis=0)
            half = int(np.ptp(points[[61, 291], 0]) * 0.9)
            crops.append(cv2.resize(frame[int(y) - half:int(y) + half, int(x) - half:int(x) + half], (SIZE, SIZE)))
    return crops


def write_sheet(path: Path, rows: dict[str, Path], phones: list[Phone]) -> None:
    """Rows of mouths (real, audio alone, transcript) at the middle of each phone the lips show."""
    shown = [p for p in phones if viseme_of(p.symbol) is not None]
    frames = [int((p.start + p.end) / 2 * 25) for p in shown]
    sheet = np.vstack([np.hstack(mouth_crops(video, frames)) for video in rows.values()])
    sheet = np.vstack([np.full((28, sheet.shape[1], 3), 255, np.uint8), sheet])
    for column, phone in enumerate(shown):
        cv2.putText(sheet, phone.symbol, (column * SIZE + 8, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    for row, label in enumerate(rows):
        cv2.putText(sheet, label, (6, 28 + row * SIZE + SIZE - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1)
    cv2.imwrite(str(path), sheet)


def piper_part(faces: list[Path], folder: Path) -> None:
    speech = Speaker().speech(" ".join(SENTENCES))
    wav = folder / "piper.wav"
    write_wav(wav, speech)
    aligned = align(load_audio(wav), [Cue(" ".join(SENTENCES))])
    truth = [p for p in speech.phones if viseme_of(p.symbol) == "closed"]
    found = [p for p in aligned.phones if viseme_of(p.symbol) == "closed"]
    errors = [min(abs((a.start + a.end) / 2 - (t.start + t.end) / 2) for a in found) for t in truth]
    print(f"Piper speech, {speech.seconds:.1f} s: {aligned.sure} of {aligned.words} words aligned; "
          f"{len(found)} of {len(truth)} m/b/p found; middle error median {np.median(errors) * 1000:.0f} ms, "
          f"max {np.max(errors) * 1000:.0f} ms")
    silent = silent_frames(load_audio(wav), 25.0)
    for face in faces:
        for label, phones in (("audio alone", ()), ("transcript", aligned.phones), ("voice's own timing", speech.phones)):
            out = folder / f"{face.stem}_{label[:5]}.mp4"
            lipsync(face, wav, out, RunOptions(label=False), phones=phones)
            shares = [closed_share(out, reference, silent) for reference in (speech.phones, aligned.phones)]
            print(f"| Piper, {face.name} | {label} | {shares[0][0]:.0%} of {shares[0][1]} (voice's middles), "
                  f"{shares[1][0]:.0%} (aligned middles) | | |")


def real_part(data: Path, face: Path, folder: Path, sheet: Path | None) -> None:
    for name, text in GRID.items():
        clip = data / "clips" / name
        samples = load_audio(clip)
        phones = align(samples, [Cue(text)]).phones
        fps = float(probe_face(clip).fps)
        silent = silent_frames(samples, fps)
        real, count = closed_share(clip, phones, silent)
        print(f"| {name} | real mouth | {real:.0%} of {count} | 1 | 0 |")
        for protocol in ("photo", "dub"):
            videos = {"real": clip}
            for label, script in (("audio alone", ()), ("transcript", [Cue(text)])):
                (folder / label).mkdir(exist_ok=True)
                report = evaluate_clip(clip, protocol, folder / label, script=script)
                videos[label] = report.generated_video
                share, count = closed_share(report.generated_video, phones, silent)
                row = report.rows["generated"]
                print(f"| {name} ({protocol}) | {label} | {share:.0%} of {count} | {row['r']:.2f} | {row['mlmd']:.3f} |")
            if sheet is not None:
                write_sheet(sheet.with_name(f"{sheet.stem}_{clip.stem}_{protocol}{sheet.suffix}"), videos, list(phones))
    clip = data / "train" / VIDTIMIT[0]
    for label, script in (("audio alone", ()), ("transcript", [Cue(VIDTIMIT[1])])):
        row = evaluate_clip(clip, "photo", folder, script=script).rows["generated"]
        print(f"| {clip.name} (photo) | {label} | no m/b/p | {row['r']:.2f} | {row['mlmd']:.3f} |")
    speech = data / "speech" / JFK[0]
    samples = load_audio(speech)
    phones = align(samples, [Cue(JFK[1])]).phones
    silent = silent_frames(samples, 25.0)
    for label, script in (("audio alone", ()), ("transcript", [Cue(JFK[1])])):
        out = folder / f"jfk_{label[:5]}.mp4"
        lipsync(face, speech, out, RunOptions(label=False), script=script)
        share, count = closed_share(out, phones, silent)
        print(f"| {JFK[0]} on {face.name} | {label} | {share:.0%} of {count} | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="../shared/data")
    parser.add_argument("--face", type=Path, action="append", required=True, help="faces for the Piper speech")
    parser.add_argument("--sheet", type=Path, help="also write mouth contact sheets of the GRID clips (PNG)")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}; closed: gap within "
          f"{CLOSED_WITHIN} IOD of the video's own gap through silence")
    print("| speech, face | lips | m/b/p drawn closed | r | M-LMD |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        real_part(args.data, args.face[0], Path(folder), args.sheet)
        piper_part(args.face, Path(folder))


if __name__ == "__main__":
    main()
