"""`edge-retalk enroll`: a personal avatar from one to ten minutes of one person talking.

The footage is tracked once; its last `HELD_OUT` is kept aside. The generic lip-shape network is
fine-tuned on the person's speech and lip shapes (their own rest shape and how far they move;
a gain measured on a split of the training part undoes the shrinkage of its motion), and the
generic mouth renderer on their face (their lips, teeth and tongue). On the held-out part both
personal models are scored against the generic ones, each as the runtime uses it (the generic
shape network with its gain and motion scale, the personal one as fitted); where the personal
shape network follows the speech less well (opening r), the bundle keeps the generic one and
the report says so. A contact sheet (real / generic / personal) is written. The bundle holds everything `prepare` writes plus the two
personal networks (exported and checked like any model), a reference crop and the report. It is
built in a work folder beside the output, which `--resume` continues after a stop, and appears
whole or not at all.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from ..avatar import prepare_avatar
from ..errors import EdgeRetalkError
from ..export.checkpoints import load_checkpoint, read_state_dict
from ..export.models.lip_shape import LipShapeNet
from ..export.models.mouth_renderer import MouthRenderer
from ..export.pipeline import export_model
from ..face.frame import CropBox
from ..audio.lip_shape import ShapeSpace, canonical_shape, shape_opening
from ..io.media import check_readable, has_audio, probe_face, iter_video_frames
from ..models import model_path
from ..audio.mouth_opening import silence_mask, smooth_track
from ..generators.learned import SHIPPED_MOTION_SCALE
from ..io.workers import raise_if_interrupted
from ..face.tracker import FaceDetector
from .footage import Clip, measure
from .lip_shape import MAX_GAIN, closed_offset, predict, recording_of, score, targets
from .state import resume_state, save_state
from .renderer import BATCH, footage_of, make_batch, reconstruction, region_scores, renderer_loss, torch_runner

HELD_OUT = 0.15
MIN_SECONDS = 8.0
MIN_FACE_SHARE = 0.8
MIN_EYE_DISTANCE_PX = 40.0
MIN_SPEECH_SHARE = 0.15
MIN_OPENING_SPREAD = 0.004
SAVE_EVERY = 100
PEOPLE_CHECK_FRAMES = 500
RENDERER_STEP_COST = 12
SHAPE_STEP_COST = 1
EXPORT_COST = 600
TARGETS = ["tflite:fp32"]

Advance = Callable[[int], None]


@dataclass(frozen=True)
class EnrollOptions:
    """How much to train (defaults: about 25 minutes for 3 minutes of footage on a 2-core CPU)."""

    renderer_steps: int = 1500
    shape_steps: int = 600
    threads: int = 2
    resume: bool = False


@dataclass
class EnrollReport:
    """What `enroll` measured on the held-out part of the footage, generic against personal."""

    output: str
    frames: int
    held_out_frames: int
    generic: dict[str, float]
    personal: dict[str, float]
    notes: list[str] = field(default_factory=list)
    minutes: float = 0.0


def check_footage(face: Path, audio: Path | None) -> float:
    """One clear error for footage that cannot be enrolled; returns its frame rate."""
    check_readable(face)
    info = probe_face(face)
    if info.is_image:
        raise EdgeRetalkError(f"{face}: enroll needs video of the person talking, not a photo (use `prepare`)")
    if audio is None and not has_audio(face):
        raise EdgeRetalkError(f"{face}: has no sound track; give the person's speech with --audio")
    if info.duration is not None and info.duration < MIN_SECONDS:
        raise EdgeRetalkError(f"{face}: too short to enroll ({info.duration:.1f} s; at least {MIN_SECONDS:.0f} s, "
                              "better 1 to 10 minutes)")
    detector = FaceDetector()
    several = 0
    for index, frame in enumerate(iter_video_frames(face)):
        if index >= PEOPLE_CHECK_FRAMES:
            break
        if index % 25 == 0:
            faces = detector.detect(frame)
            several += len(faces) > 1 and faces[1].area > 0.3 * faces[0].area
    if several >= 3:
        raise EdgeRetalkError(f"{face}: several people are in the footage; enroll needs one person alone")
    return float(info.fps)


def check_measured(face: Path, points: np.ndarray, silent: np.ndarray, opening: np.ndarray) -> list[str]:
    """Errors for footage without enough face or speech; notes for a mouth that never opens."""
    has_face = np.isfinite(points[:, 0, 0])
    if has_face.mean() < MIN_FACE_SHARE:
        raise EdgeRetalkError(f"{face}: a face was found in only {has_face.mean():.0%} of the frames "
                              f"(needs {MIN_FACE_SHARE:.0%}); one person, facing the camera")
    eyes = np.linalg.norm(points[has_face, 33, :2] - points[has_face, 263, :2], axis=1)
    if np.median(eyes) < MIN_EYE_DISTANCE_PX:
        raise EdgeRetalkError(f"{face}: the face is too small ({np.median(eyes):.0f} px between the eyes; "
                              f"needs {MIN_EYE_DISTANCE_PX:.0f}, or the mouth is learned from an upscaled blur); "
                              "film closer or at a higher resolution")
    if (~silent).mean() < MIN_SPEECH_SHARE:
        raise EdgeRetalkError(f"{face}: there is almost no speech in the footage ({(~silent).mean():.0%} of it); "
                              "enroll needs the person talking (their speech in the video, or --audio)")
    if np.std(opening) < MIN_OPENING_SPREAD:
        return ["the mouth hardly opens in this footage: the personal renderer could not learn an open mouth, "
                "so open mouths rely on the generic model"]
    return []


def fine_tune_shape(model: LipShapeNet, recording, space: ShapeSpace, steps: int, state_file: Path, resume: bool,
                    advance: Advance) -> LipShapeNet:
    """The generic shape network adapted to one person: their motion, in their own scale, around
    their own closed mouth (no shrinkage gain: it learns their range)."""
    usable = recording.usable
    y = targets(recording, space)[usable]
    spread = torch.from_numpy(y.std(axis=0) + 1e-6)
    windows = [w[usable] for w in recording.windows]
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-2)
    start, rng = resume_state(state_file, np.random.default_rng(0), model, optimiser) if resume \
        else (0, np.random.default_rng(0))
    advance(start * SHAPE_STEP_COST)
    model.train()
    for step in range(start, steps):
        raise_if_interrupted()
        rows, version = rng.integers(0, len(y), 128), rng.integers(0, len(windows), 128)
        batch = torch.from_numpy(np.stack([windows[v][r] for v, r in zip(version, rows)]).astype(np.float32))
        loss = (((model(batch) - torch.from_numpy(y[rows])) / spread) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        advance(SHAPE_STEP_COST)
        if (step + 1) % SAVE_EVERY == 0:
            save_state(state_file, step + 1, rng, model, optimiser)
    model.eval()
    with torch.no_grad():
        model.rest.copy_(torch.from_numpy(recording.closed))
        model.silent.copy_(torch.from_numpy(closed_offset(recording, space)))
        model.gain.fill_(1.0)
    return model


def fine_tune_renderer(model: MouthRenderer, footage, crop: CropBox, steps: int, state_file: Path, resume: bool,
                       advance: Advance) -> MouthRenderer:
    """The generic renderer adapted to one person's face."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1))
    start, rng = resume_state(state_file, np.random.default_rng(0), model, optimiser, schedule) if resume \
        else (0, np.random.default_rng(0))
    advance(start * RENDERER_STEP_COST)
    model.train()
    for step in range(start, steps):
        raise_if_interrupted()
        x, y, m = (torch.from_numpy(a) for a in make_batch([footage], rng, BATCH, crop))
        loss = renderer_loss(model(x), y, m, x)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        advance(RENDERER_STEP_COST)
        if (step + 1) % SAVE_EVERY == 0:
            save_state(state_file, step + 1, rng, model, optimiser, schedule)
    return model.eval()


def motion_gain(recording, space: ShapeSpace, options: EnrollOptions, work: Path, advance: Advance) -> np.ndarray:
    """How much the fine-tuned network's motion must be scaled to move as far as the person does,
    per component (1 to MAX_GAIN): measured by a second fine-tuning on the first 80 % of the
    training part, on the other 20 %. A network fitted to one or two minutes of one speaker
    shrinks their motion on new speech (held-out opening spread 0.33-0.64 of the real one for
    three of six people the generic network never saw), which reads as mumbling."""
    stop = recording.usable.stop
    fit, check = replace(recording, usable=slice(0, int(0.8 * stop))), slice(int(0.8 * stop), stop)
    probe = fine_tune_shape(shipped_shape_network(), fit, space, options.shape_steps, work / "lip_shape_gain.state",
                            options.resume, advance)
    predicted = smooth_track(predict(probe, recording.windows[0][check]))
    real = targets(recording, space)[check]
    return np.clip(real.std(axis=0) / (predicted.std(axis=0) + 1e-9), 1.0, MAX_GAIN).astype(np.float32)


def as_bundled(generic: LipShapeNet, rest: np.ndarray) -> LipShapeNet:
    """The generic network as a bundle's own, around the person's closed mouth `rest`: the motion
    scale the runtime gives the shipped network folded into its gain and closed-mouth
    coefficients (bundled networks run at scale 1)."""
    bundled = copy.deepcopy(generic)
    with torch.no_grad():
        bundled.gain.mul_(SHIPPED_MOTION_SCALE)
        bundled.silent.mul_(SHIPPED_MOTION_SCALE)
        bundled.rest.copy_(torch.from_numpy(rest))
    return bundled


def shipped_shape_network() -> LipShapeNet:
    """The generic lip-shape network, as shipped."""
    path = model_path("lip_shape.pt")
    return load_checkpoint(LipShapeNet.for_state(read_state_dict(path)), path)


def widest_open_frame(footage, template: np.ndarray) -> int:
    """Index (into `footage.frames`) of a frame with the mouth well open: the best reference, as
    it shows the person's teeth and the inside of their mouth."""
    opening = np.array([shape_opening(canonical_shape(footage.points[i], template)) for i in footage.frames])
    return int(np.argsort(opening)[int(0.9 * (len(opening) - 1))])


def work_units(frames: int, options: EnrollOptions) -> int:
    return frames + 2 * options.shape_steps * SHAPE_STEP_COST + options.renderer_steps * RENDERER_STEP_COST + EXPORT_COST


def enroll(face: Path, output: Path, audio: Path | None = None, options: EnrollOptions | None = None,
           on_start: Callable[[int], None] | None = None, advance: Advance = lambda n: None) -> EnrollReport:
    """Enroll the person in `face` (speech from its sound track or `audio`) into the bundle `output`.
    `on_start` gets the total work units once they are known; `advance` is called as they are done."""
    options = options or EnrollOptions()
    started = time.time()
    torch.set_num_threads(options.threads)
    if output.exists():
        raise EdgeRetalkError(f"{output}: already exists; choose a new folder for the avatar")
    if not output.parent.is_dir():
        raise EdgeRetalkError(f"{output.parent}: folder does not exist")
    if audio is not None:
        check_readable(audio)
    fps = check_footage(face, audio)
    work = output.parent / f".{output.name}.enroll"
    if work.exists() and not options.resume:
        shutil.rmtree(work)
    work.mkdir(exist_ok=True)
    generic_shape = shipped_shape_network()
    generic_renderer = load_checkpoint(MouthRenderer(), model_path("mouth_renderer.pt"))
    template = generic_renderer.template.numpy().astype(np.float64)
    centre_x, centre_y, side, size = generic_renderer.crop.tolist()
    crop = CropBox(centre_x, centre_y, side, int(size))
    space = ShapeSpace(generic_shape.template.numpy().astype(np.float64), generic_shape.basis.numpy().astype(np.float64),
                       generic_shape.rest_weights.numpy().astype(np.float64))

    stem = work / "footage"
    info = probe_face(face)
    estimated_frames = int((info.duration or 60) * fps)
    if on_start is not None:
        on_start(work_units(estimated_frames, options))
    try:
        if not (work / "footage.npz").exists():
            measure(Clip(face, "enroll", "person", audio), template, stem, on_frame=lambda: advance(1))
        else:
            advance(estimated_frames)
        with np.load(work / "footage.npz") as data:
            points, samples = data["points"], data["samples"]
        recording = recording_of("person", "person", stem, template, HELD_OUT)
        if recording is None:
            raise EdgeRetalkError(f"{face}: a face was found in too few frames to enroll")
        notes = check_measured(face, points, silence_mask(samples, fps, len(points)), shape_opening(recording.shapes))
    except EdgeRetalkError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    train_part = slice(0, recording.usable.stop)
    held_part = slice(recording.usable.stop, None)

    personal_shape = fine_tune_shape(shipped_shape_network(), recording, space,
                                     options.shape_steps, work / "lip_shape.state", options.resume, advance)
    personal_shape.gain.copy_(torch.from_numpy(motion_gain(recording, space, options, work, advance)))
    torch.save({"state_dict": personal_shape.state_dict()}, work / "lip_shape.pt")
    train_footage = footage_of("person", stem, template, crop, train_part)
    held_footage = footage_of("person", stem, template, crop, held_part)
    personal_renderer = fine_tune_renderer(load_checkpoint(MouthRenderer(), model_path("mouth_renderer.pt")),
                                           train_footage, crop, options.renderer_steps, work / "mouth_renderer.state",
                                           options.resume, advance)
    torch.save({"state_dict": personal_renderer.state_dict()}, work / "mouth_renderer.pt")

    generic_rest = space.rest_shape(recording.shapes[:1])
    generic = score(generic_shape, space, recording, held_part, generic_rest, run_scale=SHIPPED_MOTION_SCALE)
    personal = score(personal_shape, space, recording, held_part, personal_shape.rest.numpy(), run_scale=1.0)
    if personal["r_opening"] < generic["r_opening"]:
        notes.append(f"the personal lip-shape network followed the held-out speech less well than the generic one "
                     f"(opening r {personal['r_opening']:.2f} against {generic['r_opening']:.2f}): the bundle keeps "
                     "the generic one")
        personal_shape = as_bundled(generic_shape, recording.closed)
        torch.save({"state_dict": personal_shape.state_dict()}, work / "lip_shape.pt")
    widest = train_footage.frames[widest_open_frame(train_footage, template)]
    reference = train_footage.crops[widest]
    reference_shape = canonical_shape(train_footage.points[widest], template)
    if held_footage is not None:
        rows_generic = reconstruction(torch_runner(generic_renderer), held_footage, template, crop, reference=reference,
                                      reference_shape=reference_shape)
        rows_personal = reconstruction(torch_runner(personal_renderer), held_footage, template, crop,
                                       reference=reference, reference_shape=reference_shape)
        for name, rows, into in (("generic", rows_generic, generic), ("personal", rows_personal, personal)):
            region = region_scores(rows)
            into.update(psnr=region["psnr_learned"], ssim=region["ssim_learned"])
        picks = np.linspace(0, len(rows_generic) - 1, min(6, len(rows_generic))).astype(int)
        sheet = np.concatenate([np.concatenate([rows_generic[i][0], rows_generic[i][2], rows_personal[i][2]], axis=1)
                                for i in picks])
    bundle = work / "bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    prepare_avatar(face, bundle)
    for arch in ("lip_shape", "mouth_renderer"):
        rows, failures = export_model(arch, work / f"{arch}.pt", TARGETS, face, bundle, latency=False, speech=audio)
        if failures:
            raise EdgeRetalkError(f"the personal {arch} network failed its export check: {failures[0].reason}")
        for extra in ("report.md", "report.json"):
            (bundle / extra).replace(bundle / f"{arch}.export-{extra}")
    cv2.imwrite(str(bundle / "reference.png"), reference)
    if held_footage is not None:
        cv2.imwrite(str(bundle / "enroll-sheet.png"), sheet)
    advance(EXPORT_COST)
    report = EnrollReport(str(output), int(np.isfinite(points[:, 0, 0]).sum()), len(recording.shapes[held_part]),
                          generic, personal, notes, (time.time() - started) / 60)
    (bundle / "enroll.json").write_text(json.dumps(asdict(report), indent=1))
    bundle.rename(output)
    shutil.rmtree(work, ignore_errors=True)
    return report
