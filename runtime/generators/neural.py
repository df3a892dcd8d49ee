"""Generators that run an exported network for the lip region.

Per frame: a square face crop resized to the network's size (96 for Wav2Lip, 384 for
VideoReTalking), its lower half masked, stacked with the unmasked crop as reference (6 channels,
BGR in [0, 1]), and the 16 mel frames starting at int(i*80/fps). VideoReTalking also takes the
style code of a reference crop, computed once (from the first face it sees) by the style
encoder its manifest names. The output is resized back and pasted through the lip-region mask,
so only the lips, mouth and chin change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..audio.features import log_mel, mel_window
from ..audio.features import HOP, N_FFT, mel_window_start
from ..audio.streaming import Reader, segment_mel
from ..audio.visemes import Phone
from .compositor import mouth_region, paste
from ..engines import open_model
from ..errors import EdgeRetalkError
from ..face.landmarks import FACE_OVAL


def face_box(points: np.ndarray, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """Square box around the face outline (x0, y0, x1, y1), inside the frame."""
    oval = points[list(FACE_OVAL), :2]
    low, high = oval.min(axis=0), oval.max(axis=0)
    centre, side = (low + high) / 2, float(max(high - low))
    x0, y0 = np.round(centre - side / 2).astype(int)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(frame_shape[1], x0 + int(side)), min(frame_shape[0], y0 + int(side))
    return (x0, y0, x1, y1) if x1 - x0 >= 16 and y1 - y0 >= 16 else None


def wav2lip_face(frame: np.ndarray, box: tuple[int, int, int, int], size: int = 96) -> np.ndarray:
    """The face input (6, size, size) for one frame: masked crop and reference crop, BGR in [0, 1].
    The crop is resized bilinearly, as Wav2Lip's own training and inference resize it (OpenCV's
    default), so official checkpoints see what they were trained on; area averaging took 5x as
    long (0.37 vs 0.07 ms for a 300-pixel face)."""
    x0, y0, x1, y1 = box
    crop = cv2.resize(frame[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    face = np.empty((6, size, size), np.float32)
    np.divide(crop, np.float32(255), out=face[3:])
    face[:3, :size // 2] = face[3:, :size // 2]
    face[:3, size // 2:] = 0.0
    return face


def wav2lip_inputs(frame: np.ndarray, box: tuple[int, int, int, int], mel: np.ndarray, index: int, fps: float,
                   size: int = 96, steps: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(mel (1, 80, steps), face (6, size, size)) for one frame, float32."""
    return mel_window(mel, index, fps, steps)[None].astype(np.float32), wav2lip_face(frame, box, size)


SUPPORTED_ARCHES = ("wav2lip", "videoretalking")
FEEDS = ("NCHW", "BGR")
"""The layout and colour order of the crops this generator feeds (values in [0, 1])."""


class NeuralGenerator:
    """Runs an exported generator (Wav2Lip or VideoReTalking, any engine) on the lip region."""

    tracking_interval = 2
    """It needs only the face box and the lip region: landmarks interpolated from every other frame
    stay within 0.1-0.4 % of the face height of tracking each frame (medians on the shared clips;
    the box's edges within 2 % in 95 % of frames), for half the tracking's CPU time."""

    def __init__(self, model: Path, threads: int = 1, provider: str | None = None,
                 provider_options: dict[str, str] | None = None):
        self.manifest, self.engine = open_model(model, threads, provider, provider_options)
        if self.manifest.arch not in SUPPORTED_ARCHES:
            hint = "; pass the generator beside it, not its style encoder" if self.manifest.arch.endswith("_style") else ""
            raise EdgeRetalkError(f"{model}: architecture {self.manifest.arch!r} is not a lip generator{hint}")
        self._inputs = self._bound_inputs(model)
        self.style_engine, self._style_input = None, ""
        if self.manifest.style_encoder:
            style_manifest, self.style_engine = open_model(Path(model).parent / self.manifest.style_encoder, threads,
                                                           provider, provider_options)
            self._style_input = style_manifest.inputs[0].name
        self._style: np.ndarray | None = None
        self.name = f"{self.manifest.arch} {self.manifest.format}:{self.manifest.precision}"
        self._mel = np.zeros((80, 1), np.float32)
        self._fps = 25.0

    def _bound_inputs(self, model: Path) -> dict[str, str]:
        """The engine's input name for each role ("mel", "face", and "style" with a style encoder),
        after checking that the network takes what this generator feeds: NCHW, BGR, in [0, 1]."""
        manifest = self.manifest
        if (manifest.layout, manifest.colour_order, list(manifest.value_range)) != (*FEEDS, [0.0, 1.0]):
            raise EdgeRetalkError(f"{model}: takes {manifest.layout} {manifest.colour_order} in "
                                  f"{manifest.value_range}; edge-retalk feeds {FEEDS[0]} {FEEDS[1]} in [0, 1]")
        roles = [spec.role or role for spec, role in zip(manifest.inputs, ("mel", "face", "style"))]
        bound = dict(zip(roles, (spec.name for spec in manifest.inputs)))
        needed = {"mel", "face"} | ({"style"} if manifest.style_encoder else set())
        if set(bound) != needed:
            raise EdgeRetalkError(f"{model}: its inputs are {sorted(bound)}; a lip generator takes {sorted(needed)}")
        return bound

    def live(self, fps: float) -> NeuralLive:
        """This generator fed from a live stream, frame by frame, as the speech arrives."""
        return NeuralLive(self, fps)

    def prepare(self, samples: np.ndarray, fps: float, n_frames: int) -> None:
        self._mel, self._fps = log_mel(samples), fps

    @property
    def max_batch(self) -> int | None:
        """How many frames one engine call may take: None when the batch axis is dynamic, else its size."""
        first = self.manifest.inputs[0].shape[0]
        return first if isinstance(first, int) else None

    def generate(self, frame: np.ndarray, points: np.ndarray | None, index: int) -> np.ndarray:
        """Frame `index` with its lip region generated from the prepared audio."""
        return self.generate_batch([(frame, points, index)])[0]

    def generate_batch(self, items: list[tuple[np.ndarray, np.ndarray | None, int]]) -> list[np.ndarray]:
        """Frames (frame, landmarks, index) with their lip regions generated from the prepared audio,
        through the network in as few calls as its batch axis allows."""
        windows = [mel_window(self._mel, index, self._fps, self.manifest.mel_steps) for _, _, index in items]
        return self.generate_from_windows([(frame, points) for frame, points, _ in items], windows)

    def generate_from_window(self, frame: np.ndarray, points: np.ndarray | None, window: np.ndarray) -> np.ndarray:
        """`frame` with its lip region generated from `window`, the frame's (80, mel_steps) mel frames."""
        return self.generate_from_windows([(frame, points)], [window])[0]

    def generate_from_windows(self, items: list[tuple[np.ndarray, np.ndarray | None]],
                              windows: list[np.ndarray]) -> list[np.ndarray]:
        """Each (frame, landmarks) with its lip region generated from its mel window; frames
        without a usable face come back unchanged."""
        results = [frame for frame, _ in items]
        todo = []
        for position, (frame, points) in enumerate(items):
            if points is None:
                continue
            box, region = face_box(points, frame.shape), mouth_region(points, frame.shape)
            if box is not None and region is not None:
                todo.append((position, box, region))
        step = self.max_batch or len(todo) or 1
        for first in range(0, len(todo), step):
            chunk = todo[first:first + step]
            faces = np.stack([wav2lip_face(items[p][0], box, self.manifest.face_size) for p, box, _ in chunk])
            mels = np.stack([windows[p][None] for p, _, _ in chunk]).astype(np.float32)
            feeds = {self._inputs["mel"]: mels, self._inputs["face"]: faces}
            if self.style_engine is not None:
                feeds[self._inputs["style"]] = np.repeat(self._style_of(faces[:1, 3:]), len(chunk), axis=0)
            outputs = next(iter(self.engine.run(feeds).values()))
            for (position, box, region), output in zip(chunk, outputs):
                results[position] = self._paste(items[position][0], output, box, region)
        return results

    def _style_of(self, reference: np.ndarray) -> np.ndarray:
        """The style code (1, features), computed from the first reference crop and then kept."""
        if self._style is None:
            self._style = next(iter(self.style_engine.run({self._style_input: reference}).values()))
        return self._style

    @staticmethod
    def _paste(frame: np.ndarray, output: np.ndarray, box: tuple[int, int, int, int], region) -> np.ndarray:
        """The network's output resized into the face box, pasted through the lip-region mask."""
        x0, y0, x1, y1 = box
        shrinking = x1 - x0 < output.shape[-1]
        generated = cv2.resize(np.clip(output.transpose(1, 2, 0) * 255.0, 0, 255).astype(np.uint8),
                               (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
        rx0, ry0, rx1, ry1 = region.box
        patch = frame[ry0:ry1, rx0:rx1].copy()
        ox0, oy0, ox1, oy1 = max(x0, rx0), max(y0, ry0), min(x1, rx1), min(y1, ry1)
        if ox1 > ox0 and oy1 > oy0:
            patch[oy0 - ry0:oy1 - ry0, ox0 - rx0:ox1 - rx0] = generated[oy0 - y0:oy1 - y0, ox0 - x0:ox1 - x0]
        return paste(frame, patch, region)


class NeuralLive:
    """An exported Wav2Lip-convention network, fed its 16-frame mel window from a live stream."""

    def __init__(self, generator: NeuralGenerator, fps: float):
        self.generator, self.fps = generator, fps
        self.steps = generator.manifest.mel_steps

    def samples_needed(self, index: int) -> int:
        return (mel_window_start(index, self.fps) + self.steps - 1) * HOP + N_FFT // 2

    def follow(self, index: int, read: Reader, silent: bool) -> None:
        """Nothing to keep in step: each frame is generated from its own mel window."""

    def render(self, frame: np.ndarray, points: np.ndarray | None, index: int, read: Reader,
               silent: bool, phones: Sequence[Phone] = ()) -> np.ndarray:
        """Frame `index` drawn from the audio alone (`phones` do not steer this generator)."""
        if points is None:
            return frame
        first = mel_window_start(index, self.fps)
        mel = segment_mel(read, first, self.samples_needed(index))
        return self.generator.generate_from_window(frame, points, mel[:, 2:2 + self.steps])
