"""`edge-retalk export`: checkpoint in, checked artefacts with manifests and a report out.

An architecture is exported as one or more parts (Wav2Lip: the generator; VideoReTalking: the
generator and the style encoder it needs once per reference). Every target is converted part by
part, then the chained artefacts are checked against PyTorch on held-out real inputs before
anything is kept. A target that fails is reported with its reason and the others go on.

Longer than most modules (about 360 lines) on purpose: it is the export's one plan, read top to
bottom (parts per architecture, convert, check parity, keep or refuse, write manifests and the
report); split, the order of those steps would have to be pieced together from several files.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..engines import open_engine
from ..errors import EdgeRetalkError
from ..engines.manifest import Manifest, TensorSpec, sha256_of, write_manifest
from ..quant.calibration import MEL_STEPS, real_inputs
from ..io.workers import partial_output
from .checkpoints import load_checkpoint, read_state_dict
from ..engines.formats import BOARD_ONLY_FORMATS, FORMATS, ExportFormat
from .job import ExportJob
from .report import ArtefactReport, TargetFailure, median_latency_ms, psnr_db, write_report
from .sensitivity import keep_sensitive_in_float

log = logging.getLogger(__name__)

# INT8 recipes leave LNet (inside ENet) in float: quantised, its convolutions between layer and
# instance norms took the whole network to 14-15 dB against PyTorch in every runtime, while
# ENet's upsampling convolutions, most of the compute, quantise cleanly.
LNET_FLOAT_MODULES = ("low_res",)
def converter(name: str):
    """The converter function a format row names, e.g. "onnx.onnx_fp16" (imported only when used)."""
    module, function = name.rsplit(".", 1)
    return getattr(importlib.import_module(f"{__package__}.{module}"), function)


def artefact_files(target: Path) -> list[Path]:
    """The model file and the files it needs beside it (an OpenVINO IR's weights, an ONNX model's
    external data), so that the manifest checksums every file the engine will load."""
    if target.suffix == ".xml":
        weights = target.with_suffix(".bin")
        return [target, weights] if weights.exists() else [target]
    if target.suffix == ".onnx":
        import onnx
        from onnx.external_data_helper import ExternalDataInfo, uses_external_data

        model = onnx.load(target, load_external_data=False)
        locations = {ExternalDataInfo(t).location for t in model.graph.initializer if uses_external_data(t)}
        return [target, *(target.parent / name for name in sorted(locations))]
    return [target]


@dataclass
class Part:
    """One network of an architecture, exported to its own file with its own manifest."""

    arch: str
    job: ExportJob
    shapes: dict[str, list[int]]
    face_size: int
    style_encoder: str = ""
    """The part (exported beside it) whose output this one needs once per reference."""
    mel_steps: int = MEL_STEPS
    metadata: dict = field(default_factory=dict)


@dataclass
class Plan:
    """What to export for one checkpoint: its parts, held-out inputs, the PyTorch reference
    outputs on them, how the parts chain into the generated crop, and what runs per frame once
    per-reference work is done (for latency)."""

    parts: list[Part]
    held_out: dict[str, np.ndarray]
    reference: np.ndarray
    chain: Callable[[dict[str, Callable], dict[str, np.ndarray]], np.ndarray]
    per_frame: Callable[[dict[str, Callable], dict[str, np.ndarray]], Callable[[], np.ndarray]]
    peak: float = 1.0
    """The output's value range, against which parity (PSNR) is measured."""
    scratch: tempfile.TemporaryDirectory = field(default_factory=lambda: tempfile.TemporaryDirectory(
        prefix="edge-retalk-export-"))

    def job_dir(self, name: str) -> Path:
        folder = Path(self.scratch.name) / name
        folder.mkdir(exist_ok=True)
        return folder


def wav2lip_plan(checkpoint: Path, calib: Path, allow_partial: bool, enet_checkpoint: Path | None,
                 speech: Path | None) -> Plan:
    from .models.wav2lip import FACE_SIZE, Wav2Lip

    model = load_checkpoint(Wav2Lip(), checkpoint, allow_partial)
    mels, faces = real_inputs(calib, FACE_SIZE, limit=64)
    held_out = {"mel": mels[1::2], "face": faces[1::2]}
    with torch.no_grad():
        reference = model(torch.from_numpy(held_out["mel"]), torch.from_numpy(held_out["face"])).numpy()
    def chain(run: dict[str, Callable], x: dict[str, np.ndarray]) -> np.ndarray:
        return run["wav2lip"](x["mel"], x["face"])

    plan = Plan([], held_out, reference, chain, lambda run, x: lambda: chain(run, x))
    job = ExportJob(model, (torch.from_numpy(mels[:1]), torch.from_numpy(faces[:1])), ["mel", "face"],
                    ["generated"], {"mel": mels[::2], "face": faces[::2]}, plan.job_dir("wav2lip"))
    plan.parts.append(Part("wav2lip", job, {"mel": [1, 80, MEL_STEPS], "face": [6, FACE_SIZE, FACE_SIZE],
                                            "generated": [3, FACE_SIZE, FACE_SIZE]}, FACE_SIZE))
    return plan


def videoretalking_plan(checkpoint: Path, calib: Path, allow_partial: bool, enet_checkpoint: Path | None,
                        speech: Path | None) -> Plan:
    from .models.enet import FACE_SIZE, STYLE_FEATURES, ENet, StyleEncoder
    from .models.lnet import LNet, fold_spectral_norm

    if enet_checkpoint is None:
        raise EdgeRetalkError("--arch videoretalking needs --enet ENet.pth beside --checkpoint LNet.pth")
    lnet = load_checkpoint(LNet(), checkpoint, allow_partial)
    model = fold_spectral_norm(load_checkpoint(ENet(lnet), enet_checkpoint, allow_partial, exclude=("low_res.",)))
    mels, faces = real_inputs(calib, FACE_SIZE, limit=12)
    with torch.no_grad():
        styles = model.style_code(torch.from_numpy(faces[:, 3:])).numpy()
        held_out = {"mel": mels[1::2], "face": faces[1::2]}
        reference = model(torch.from_numpy(held_out["mel"]), torch.from_numpy(held_out["face"]),
                          torch.from_numpy(styles[1::2])).numpy()

    def chain(run: dict[str, Callable], x: dict[str, np.ndarray]) -> np.ndarray:
        return run["videoretalking"](x["mel"], x["face"], run["videoretalking_style"](x["face"][:, 3:]))

    def per_frame(run: dict[str, Callable], x: dict[str, np.ndarray]) -> Callable[[], np.ndarray]:
        style = run["videoretalking_style"](x["face"][:, 3:])
        return lambda: run["videoretalking"](x["mel"], x["face"], style)

    plan = Plan([], held_out, reference, chain, per_frame)
    style_job = ExportJob(StyleEncoder(model).eval(), (torch.from_numpy(faces[:1, 3:]),), ["reference"], ["style"],
                          {"reference": np.ascontiguousarray(faces[::2, 3:])}, plan.job_dir("style"))
    generator_job = ExportJob(model, (torch.from_numpy(mels[:1]), torch.from_numpy(faces[:1]),
                                      torch.from_numpy(styles[:1])), ["mel", "face", "style"], ["generated"],
                              {"mel": mels[::2], "face": faces[::2], "style": styles[::2]}, plan.job_dir("generator"),
                              float_modules=LNET_FLOAT_MODULES)
    plan.parts += [
        Part("videoretalking_style", style_job, {"reference": [3, FACE_SIZE, FACE_SIZE], "style": [STYLE_FEATURES]},
             FACE_SIZE),
        Part("videoretalking", generator_job, {"mel": [1, 80, MEL_STEPS], "face": [6, FACE_SIZE, FACE_SIZE],
                                               "style": [STYLE_FEATURES], "generated": [3, FACE_SIZE, FACE_SIZE]},
             FACE_SIZE, style_encoder="videoretalking_style"),
    ]
    return plan


def _single_part_plan(arch: str, model: torch.nn.Module, inputs: np.ndarray, input_name: str, output_name: str,
                      face_size: int, mel_steps: int, metadata: dict) -> Plan:
    """A plan for a one-network architecture with one input: calibrate on the even rows of
    `inputs`, check on the odd ones, parity measured against the output's range."""
    held_out = {input_name: inputs[1::2]}
    with torch.no_grad():
        reference = model(torch.from_numpy(held_out[input_name])).numpy()
        example = model(torch.from_numpy(inputs[:1])).numpy()

    def chain(run: dict[str, Callable], x: dict[str, np.ndarray]) -> np.ndarray:
        return run[arch](x[input_name])

    peak = float(reference.max() - reference.min()) or 1.0
    plan = Plan([], held_out, reference, chain, lambda run, x: lambda: chain(run, x), peak=peak)
    job = ExportJob(model, (torch.from_numpy(inputs[:1]),), [input_name], [output_name],
                    {input_name: inputs[::2]}, plan.job_dir(arch))
    plan.parts.append(Part(arch, job, {input_name: list(inputs.shape[1:]), output_name: list(example.shape[1:])},
                           face_size, mel_steps=mel_steps, metadata=metadata))
    return plan


def lip_shape_plan(checkpoint: Path, calib: Path, allow_partial: bool, enet_checkpoint: Path | None,
                   speech: Path | None) -> Plan:
    from ..audio.lip_shape import MEL_STEPS as SHAPE_MEL_STEPS
    from ..quant.calibration import shape_inputs, speech_encoder_inputs
    from .models.lip_shape import LipShapeNet

    model = load_checkpoint(LipShapeNet.for_state(read_state_dict(checkpoint)), checkpoint, allow_partial)
    metadata = {name: getattr(model, name).numpy().round(7).tolist()
                for name in ("template", "basis", "rest_weights", "silent", "typical_spectrum", "rest", "gain")}
    if model.reads_speech_encoder:
        metadata["audio_features"] = "speech_encoder"
        inputs = speech_encoder_inputs(calib, limit=128, speech=speech)
        return _single_part_plan("lip_shape", model, inputs, "features", "coefficients", 0, 0, metadata)
    return _single_part_plan("lip_shape", model, shape_inputs(calib, limit=128, speech=speech), "mel", "coefficients",
                             0, SHAPE_MEL_STEPS, metadata)


def mouth_renderer_plan(checkpoint: Path, calib: Path, allow_partial: bool, enet_checkpoint: Path | None,
                        speech: Path | None) -> Plan:
    from ..face.frame import CropBox
    from ..quant.calibration import renderer_inputs
    from .models.mouth_renderer import MouthRenderer

    model = load_checkpoint(MouthRenderer(), checkpoint, allow_partial)
    template = model.template.numpy()
    centre_x, centre_y, side, size = model.crop.tolist()
    crop = CropBox(centre_x, centre_y, side, int(size))
    metadata = {"template": template.round(7).tolist(), "crop": [centre_x, centre_y, side, int(size)]}
    return _single_part_plan("mouth_renderer", model, renderer_inputs(calib, template, crop, limit=48), "face",
                             "generated", crop.size, 0, metadata)


def whisper_encoder_plan(checkpoint: Path, calib: Path, allow_partial: bool, enet_checkpoint: Path | None,
                         speech: Path | None) -> Plan:
    """Whisper's encoder from a CTranslate2 model (its folder or model.bin), on 2 s windows."""
    from ..quant.calibration import speech_windows
    from .models.whisper_encoder import whisper_encoder_from_ctranslate2

    model = whisper_encoder_from_ctranslate2(checkpoint)
    metadata = {"licence": "MIT (OpenAI Whisper)", "model": "whisper tiny.en encoder"}
    return _single_part_plan("whisper_encoder", model, speech_windows(calib, limit=32, speech=speech), "mel",
                             "features", 0, 0, metadata)


PLANS: dict[str, Callable[[Path, Path, bool, Path | None, Path | None], Plan]] = {
    "wav2lip": wav2lip_plan, "videoretalking": videoretalking_plan, "lip_shape": lip_shape_plan,
    "mouth_renderer": mouth_renderer_plan, "whisper_encoder": whisper_encoder_plan,
}
ARCHES = tuple(PLANS)


def _engine_call(engine) -> Callable:
    """A function of the engine's inputs, in the exported order, returning its first output."""
    names, output = engine.input_names, engine.output_names[0]
    return lambda *inputs: engine.run(dict(zip(names, inputs)))[output]


def _write_manifest(part: Part, spec: ExportFormat, target: Path, engine, source_sha: str, out_dir: Path,
                    style_encoder: Path | None) -> None:
    batch = 1 if spec.static_batch else "batch"
    own = [part.job.input_names, part.job.output_names]
    companions = {f.name: sha256_of(f) for f in artefact_files(target)[1:]}
    if style_encoder is not None:
        companions.update({f.name: sha256_of(f) for f in artefact_files(style_encoder)})
    manifest = Manifest(
        arch=part.arch, format=spec.format, precision=spec.precision, file=target.name, sha256=sha256_of(target),
        companions=companions, source_sha256=source_sha,
        inputs=[TensorSpec(name, [batch, *part.shapes[ours]], "float32", ours)
                for name, ours in zip(engine.input_names, own[0])],
        outputs=[TensorSpec(name, [batch, *part.shapes[ours]], "float32", ours)
                 for name, ours in zip(engine.output_names, own[1])],
        layout="NCHW", colour_order="BGR", value_range=[0.0, 1.0], face_size=part.face_size, mel_steps=part.mel_steps,
        exporter=f"edge-retalk export (torch {torch.__version__})",
        style_encoder=style_encoder.name if style_encoder is not None else "", metadata=part.metadata)
    write_manifest(manifest, out_dir)


def _export_target(plan: Plan, spec: ExportFormat, out_dir: Path, source_sha: str, latency: bool,
                   progress: Callable[[str], None]) -> ArtefactReport:
    """Convert, check and time one target in a hidden staging folder inside `out_dir`; only a
    target that passed is moved in (replacing an earlier export's files whole); a failure or an
    interruption leaves `out_dir` as it was."""
    stage = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    try:
        with partial_output(stage):
            report = _export_staged(plan, spec, stage, source_sha, latency, progress)
            staged = sorted(stage.iterdir(), key=lambda f: f.name.endswith(".json"))
            for file in staged:
                os.replace(file, out_dir / file.name)
            return report
    finally:
        shutil.rmtree(stage, ignore_errors=True)


CANDIDATE_ENGINE_OPTIONS = {"openvino": {"CACHE_DIR": ""}}
"""Engine options for the networks an export converts and checks: OpenVINO keeps no compiled copy
of a candidate in the user's cache (a search may try many, and most are thrown away)."""


def _convert_and_check(plan: Plan, spec: ExportFormat, folder: Path) -> tuple[dict, dict, np.ndarray, float]:
    """Convert every part into `folder` and run the chain on the held-out inputs: the targets,
    their engines, the outputs and their parity (PSNR against PyTorch)."""
    targets = {part.arch: folder / spec.file_name(part.arch) for part in plan.parts}
    for part in plan.parts:
        converter(spec.converter)(part.job, targets[part.arch])
    engines = {part.arch: part.job.host_engines.pop(targets[part.arch], None)
               or open_engine(targets[part.arch], options=CANDIDATE_ENGINE_OPTIONS.get(spec.engine))
               for part in plan.parts}
    run = {arch: _engine_call(engine) for arch, engine in engines.items()}
    produced = np.concatenate([plan.chain(run, {k: v[i:i + 1] for k, v in plan.held_out.items()})
                               for i in range(len(plan.reference))])
    if not np.isfinite(produced).all():
        raise EdgeRetalkError("the exported network gives NaN or infinite outputs on real inputs")
    return targets, engines, produced, psnr_db(plan.reference / plan.peak, produced / plan.peak)


def _keep_sensitive_in_float(plan: Plan, spec: ExportFormat, folder: Path, quality: float,
                             progress: Callable[[str], None]) -> tuple[tuple[str, ...], tuple]:
    """After a plain INT8 recipe failed parity: the modules of the main network to leave in float
    so that it passes, and the conversion with them (its job is left keeping them; the caller
    restores it), or the failure."""
    part = plan.parts[-1]
    base = part.job
    progress(f"{spec.key}: {quality:.1f} dB against PyTorch with every layer in INT8 (needs "
             f"{spec.min_psnr_db:.0f}); looking for the layers to keep in float")
    last: dict[tuple[str, ...], tuple] = {}

    def parity(modules: tuple[str, ...]) -> float:
        part.job = replace(base, float_modules=modules)
        last.clear()
        last[modules] = _convert_and_check(plan, spec, folder)
        return last[modules][3]

    found = keep_sensitive_in_float(parity, base.model, base.float_modules, spec.min_psnr_db, progress)
    if found is None:
        raise EdgeRetalkError(f"the export changed the numbers (PSNR {quality:.1f} dB against PyTorch in INT8, "
                              f"needs {spec.min_psnr_db:.0f} dB, and keeping any of its layers in float did not help)")
    part.job = replace(base, float_modules=found)
    return found, last.get(found) or _convert_and_check(plan, spec, folder)


def _export_staged(plan: Plan, spec: ExportFormat, folder: Path, source_sha: str, latency: bool,
                   progress: Callable[[str], None]) -> ArtefactReport:
    targets, engines, produced, quality = _convert_and_check(plan, spec, folder)
    try:
        main_job = plan.parts[-1].job
        in_float = main_job.float_modules if spec.precision == "int8" else ()
        if quality < spec.min_psnr_db and spec.precision == "int8" and spec.mixed_precision:
            try:
                in_float, (targets, engines, produced, quality) = _keep_sensitive_in_float(
                    plan, spec, folder, quality, progress)
            finally:
                plan.parts[-1].job = main_job
        if not quality >= spec.min_psnr_db:
            raise EdgeRetalkError(f"the export changed the numbers (PSNR {quality:.1f} dB against PyTorch, "
                                  f"needs {spec.min_psnr_db:.0f} dB"
                                  + ("" if spec.mixed_precision else "; this target cannot keep layers in float") + ")")
        for part in plan.parts:
            _write_manifest(part, spec, targets[part.arch], engines[part.arch], source_sha, folder,
                            targets[part.style_encoder] if part.style_encoder else None)
        written = [file for target in targets.values() for file in artefact_files(target)]
        run = {arch: _engine_call(engine) for arch, engine in engines.items()}
        first = {k: v[:1] for k, v in plan.held_out.items()}
        batch8 = {k: np.repeat(v, 8, axis=0) for k, v in first.items()}
        main = targets[plan.parts[-1].arch]
        latency = latency and spec.format not in BOARD_ONLY_FORMATS
        batch1_ms = median_latency_ms(plan.per_frame(run, first)) if latency else float("nan")
        batch8_ms = median_latency_ms(plan.per_frame(run, batch8)) \
            if latency and not spec.static_batch else float("nan")
        return ArtefactReport(spec.key, main.name, sum(f.stat().st_size for f in written) / 1e6, quality,
                              float(np.abs(plan.reference - produced).max()), batch1_ms, batch8_ms, in_float)
    finally:
        for engine in engines.values():
            getattr(engine, "close", lambda: None)()


def export_model(arch: str, checkpoint: Path, targets: list[str], calib: Path, out_dir: Path,
                 enet_checkpoint: Path | None = None,
                 allow_partial: bool = False, latency: bool = True,
                 speech: Path | None = None,
                 progress: Callable[[str], None] = lambda line: None,
                 ) -> tuple[list[ArtefactReport], list[TargetFailure]]:
    """Export a checkpoint to each target, checking every artefact against PyTorch first, and
    (unless `latency` is off) timing each at batch 1 and 8.

    `speech` is the calibration video's speech when it is not its sound track. An INT8 target that
    fails parity is retried with its most sensitive layers in float (`sensitivity`), each trial
    told to `progress`. Returns the report rows of the targets written and the failures (target
    and reason) of the others."""
    unknown = [t for t in targets if t not in FORMATS]
    if unknown:
        raise EdgeRetalkError(f"unknown export target {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    if arch not in ARCHES:
        raise EdgeRetalkError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHES)}")
    plan = PLANS[arch](checkpoint, calib, allow_partial, enet_checkpoint, speech)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = checkpoint / "model.bin" if checkpoint.is_dir() else checkpoint
    source_sha = sha256_of(checkpoint) if enet_checkpoint is None else \
        sha256_of(checkpoint) + "+" + sha256_of(enet_checkpoint)
    rows, failures = [], []
    with plan.scratch:
        for key in targets:
            try:
                rows.append(_export_target(plan, FORMATS[key], out_dir, source_sha, latency, progress))
            except EdgeRetalkError as exc:
                failures.append(TargetFailure(key, str(exc)))
            except (RuntimeError, ValueError, TypeError, NotImplementedError, AttributeError, KeyError) as exc:
                reason = (str(exc).strip().splitlines() or [""])[0][:200]
                failures.append(TargetFailure(key, f"{type(exc).__name__} in the converter: {reason}"))
    write_report(rows, failures, out_dir)
    return rows, failures
