"""Calibration and check data from real video: per frame with a tracked face, the network's face
input (masked crop and reference, BGR in [0, 1]) and its mel window. INT8 converters calibrate on
these and the export checks every artefact on held-out ones, never on random data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio.features import log_mel
from ..errors import EdgeRetalkError
from ..io.media import iter_video_frames, load_audio, probe_face
from ..generators.neural import face_box, wav2lip_inputs
from ..face.tracker import FaceTracker

MEL_STEPS = 16


def real_inputs(video: Path, size: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs (mel windows and face crops at `size`) from the frames of a real talking-head video."""
    info = probe_face(video)
    fps = float(info.fps)
    mel = log_mel(load_audio(video))
    tracker = FaceTracker(fps)
    mels, faces = [], []
    for index, frame in enumerate(iter_video_frames(video)):
        points = tracker(frame)
        box = face_box(points, frame.shape) if points is not None else None
        if box is not None:
            m, f = wav2lip_inputs(frame, box, mel, index, fps, size, MEL_STEPS)
            mels.append(m)
            faces.append(f)
        if len(mels) == limit:
            break
    if len(mels) < 4:
        raise EdgeRetalkError(f"{video}: too few frames with a face for calibration ({len(mels)})")
    return np.stack(mels), np.stack(faces)


def tracked_frames(video: Path, limit: int):
    """(frame, landmarks) of the first `limit` frames of `video` with a tracked face, and its fps."""
    info = probe_face(video)
    tracker = FaceTracker(float(info.fps))
    found = []
    for index, frame in enumerate(iter_video_frames(video)):
        points = tracker(frame)
        if points is not None:
            found.append((index, frame, points))
        if len(found) == limit:
            break
    if len(found) < 4:
        raise EdgeRetalkError(f"{video}: too few frames with a face for calibration ({len(found)})")
    return found, float(info.fps)


def shape_inputs(video: Path, limit: int, speech: Path | None = None) -> np.ndarray:
    """Lip-shape network inputs (normalised log-mel windows) for the frames of a real video (its
    speech from its sound track, or `speech`)."""
    from ..audio.lip_shape import mel_windows

    info = probe_face(video)
    fps = float(info.fps)
    mel = log_mel(load_audio(speech or video))
    frames = min(limit, int(mel.shape[1] * fps / 80))
    if frames < 4:
        raise EdgeRetalkError(f"{video}: too short for calibration")
    return mel_windows(mel, fps, frames)


def renderer_inputs(video: Path, template: np.ndarray, crop, limit: int) -> np.ndarray:
    """Mouth-renderer inputs for real frames: each frame's crop with the area around its lips (and
    the first frame's) blanked, the first frame as reference, and the frame's own lip shape."""
    from ..audio.lip_shape import canonical_shape
    from ..generators.render_inputs import crop_of, network_input, repaint_mask, shape_raster

    found, _ = tracked_frames(video, limit)
    reference = crop_of(found[0][1], found[0][2], template, crop)[0]
    reference_shape = canonical_shape(found[0][2], template)
    inputs = []
    for _, frame, points in found:
        image = crop_of(frame, points, template, crop)[0]
        shape = canonical_shape(points, template)
        inputs.append(network_input(image, repaint_mask([shape, reference_shape], crop), reference,
                                    shape_raster(shape, crop)))
    return np.stack(inputs)


def speech_windows(video: Path, limit: int, speech: Path | None = None) -> np.ndarray:
    """Speech-encoder inputs (Whisper log-mel of 2 s windows, every half second) from a real
    video's speech (its sound track, or `speech`)."""
    from ..audio.speech_encoder import WINDOW_SAMPLES, cut, whisper_log_mel

    samples = load_audio(speech or video)
    starts = range(0, max(samples.size - WINDOW_SAMPLES // 2, 1), WINDOW_SAMPLES // 4)
    windows = [cut(samples, start) for start in starts][:limit]
    if len(windows) < 4:
        raise EdgeRetalkError(f"{speech or video}: too little speech for calibration (at least 2.5 s)")
    return whisper_log_mel(np.stack(windows))


def speech_encoder_inputs(video: Path, limit: int, speech: Path | None = None) -> np.ndarray:
    """Lip-shape network inputs from the shipped speech encoder (file mode's) for the frames of a
    real video (its speech from its sound track, or `speech`)."""
    from ..audio.speech_encoder import SpeechEncoder

    fps = float(probe_face(video).fps)
    samples = load_audio(speech or video)
    frames = min(limit, int(samples.size / 16000 * fps))
    if frames < 4:
        raise EdgeRetalkError(f"{video}: too short for calibration")
    return SpeechEncoder().for_file(samples, fps, frames)
