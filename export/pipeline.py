"""`edge-retalk export`: checkpoint in, checked artefacts with manifests and a report out."""

from __future__ import annotations

import importlib
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..engines import open_engine
from ..errors import EdgeRetalkError
from ..manifest import Manifest, TensorSpec, sha256_of, write_manifest
from ..media import iter_video_frames, load_audio, probe_face
from ..audio import log_mel
from ..neural_generator import face_box, wav2lip_inputs
from ..tracker import FaceTracker
from .checkpoints import load_checkpoint
from .formats import FORMATS
from .job import ExportJob
from .models.wav2lip import FACE_SIZE, MEL_STEPS, Wav2Lip
from .report import ArtefactReport, median_latency_ms, psnr_db, write_report

log = logging.getLogger(__name__)

INPUTS, OUTPUTS = ["mel", "face"], ["generated"]
STATIC_BATCH_FORMATS = {"tflite"}


def converter(name: str):
    """The converter function a format row names, e.g. "onnx.onnx_fp16" (imported only when used)."""
    module, function = name.rsplit(".", 1)
    return getattr(importlib.import_module(f"{__package__}.{module}"), function)


def real_inputs(video: Path, limit: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Wav2Lip inputs (mel windows and face crops) from the frames of a real talking-head video."""
    info = probe_face(video)
    fps = float(info.fps)
    mel = log_mel(load_audio(video))
    tracker = FaceTracker(fps)
    mels, faces = [], []
    for index, frame in enumerate(iter_video_frames(video)):
        points = tracker(frame)
        box = face_box(points, frame.shape) if points is not None else None
        if box is not None:
            m, f = wav2lip_inputs(frame, box, mel, index, fps, FACE_SIZE, MEL_STEPS)
            mels.append(m)
            faces.append(f)
        if len(mels) == limit:
            break
    if len(mels) < 8:
        raise EdgeRetalkError(f"{video}: too few frames with a face for calibration ({len(mels)})")
    return np.stack(mels), np.stack(faces)


def artefact_files(target: Path) -> list[Path]:
    """The model file and the files it needs beside it (an OpenVINO IR's weights)."""
    weights = target.with_suffix(".bin")
    return [target, weights] if target.suffix == ".xml" and weights.exists() else [target]


def companions_of(target: Path) -> dict[str, str]:
    """Checksums of the files a model needs beside it."""
    return {f.name: sha256_of(f) for f in artefact_files(target)[1:]}


def export_wav2lip(checkpoint: Path, targets: list[str], calib: Path, out_dir: Path,
                   allow_partial: bool = False) -> list[ArtefactReport]:
    """Export a Wav2Lip checkpoint to each target, checking every artefact against PyTorch first."""
    unknown = [t for t in targets if t not in FORMATS]
    if unknown:
        raise EdgeRetalkError(f"unknown export target {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    model = load_checkpoint(Wav2Lip(), checkpoint, allow_partial)
    mels, faces = real_inputs(calib)
    held_out = (mels[1::2], faces[1::2])
    with torch.no_grad():
        reference = model(torch.from_numpy(held_out[0]), torch.from_numpy(held_out[1])).numpy()
    out_dir.mkdir(parents=True, exist_ok=True)
    source_sha = sha256_of(checkpoint)
    rows = []
    scratch = tempfile.TemporaryDirectory(prefix="edge-retalk-export-")
    job = ExportJob(model, (torch.from_numpy(mels[:1]), torch.from_numpy(faces[:1])), INPUTS, OUTPUTS,
                    {"mel": mels[::2], "face": faces[::2]}, Path(scratch.name))
    for key in targets:
        spec = FORMATS[key]
        target = out_dir / spec.file_name()
        converter(spec.converter)(job, target)
        engine = open_engine(target)
        mel_name, face_name = engine.input_names
        output_name = engine.output_names[0]

        def infer(mel: np.ndarray, face: np.ndarray) -> np.ndarray:
            return engine.run({mel_name: mel, face_name: face})[output_name]

        produced = np.concatenate([infer(m[None], f[None]) for m, f in zip(*held_out)])
        quality = psnr_db(reference, produced)
        if quality < spec.min_psnr_db:
            for file in artefact_files(target):
                file.unlink(missing_ok=True)
            raise EdgeRetalkError(f"{key}: the export changed the numbers (PSNR {quality:.1f} dB against PyTorch, "
                                  f"needs {spec.min_psnr_db:.0f} dB); nothing written")
        batch = 1 if spec.format in STATIC_BATCH_FORMATS else "batch"
        manifest = Manifest(
            arch="wav2lip", format=spec.format, precision=spec.precision, file=target.name,
            sha256=sha256_of(target), companions=companions_of(target), source_sha256=source_sha,
            inputs=[TensorSpec(mel_name, [batch, 1, 80, MEL_STEPS], "float32"),
                    TensorSpec(face_name, [batch, 6, FACE_SIZE, FACE_SIZE], "float32")],
            outputs=[TensorSpec(output_name, [batch, 3, FACE_SIZE, FACE_SIZE], "float32")],
            layout="NCHW", colour_order="BGR", value_range=[0.0, 1.0], face_size=FACE_SIZE, mel_steps=MEL_STEPS,
            exporter=f"edge-retalk export (torch {torch.__version__})")
        write_manifest(manifest, out_dir)
        batch8 = (np.repeat(mels[:1], 8, axis=0), np.repeat(faces[:1], 8, axis=0))
        rows.append(ArtefactReport(
            key, target.name, sum(f.stat().st_size for f in artefact_files(target)) / 1e6, quality,
            float(np.abs(reference - produced).max()),
            median_latency_ms(lambda: infer(mels[:1], faces[:1])),
            float("nan") if batch == 1 else median_latency_ms(lambda: infer(*batch8))))
    scratch.cleanup()
    write_report(rows, out_dir)
    return rows
