"""The learned lip generator: the audio-to-lip-shape network and the learned mouth renderer.

Per recording the shape network turns speech into the mouth's motion (coefficients of the lip
shape), smoothed over time, with silence closing the mouth. Per frame, the person's rest shape
(estimated once, from the reference face) plus that motion gives the target lip shape. The face's
own lips and jaw are warped to it (they keep their real texture), and the renderer, which paints
the face's lower-face crop with the reference crop showing it what this person's mouth looks like,
fills in the open mouth; where the face has shown its own mouth open, its teeth are lent to that
painting (`mouth_interior.py`). The result goes back through the feathered lip-region mask, so nothing
outside it changes. Both networks are exported files with manifests (shipped in
`models/` as TFLite, which the base install runs, and the renderer also as INT8 for OpenVINO and
LiteRT: `autotune` picks the fastest form here); any engine runs them.

A little over 300 lines: the two networks, the generator and its live adapter share the lip-shape
state (rest shape, motion, reference crop), which is clearest in one module.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..audio.features import log_mel
from ..devices.autotune import fastest
from .compositor import Region, mouth_region, paste
from .mouth_interior import MouthInterior
from ..engines.network import Network
from ..errors import EdgeRetalkError
from ..face.frame import CropBox, apply, invert
from .painted import lip_warp_maps, polygon_mask
from ..face.landmarks import (INNER_LIP_OUTLINE, LOWER_FACE, LOWER_INNER_LIP, LOWER_OUTER_LIP, SHAPE_POINTS,
                              UPPER_INNER_LIP, UPPER_OUTER_LIP, face_height)
from ..audio.lip_shape import MEL_BEFORE, ShapeSpace, canonical_shape, lip_motion, mel_windows
from ..audio.lip_shape import samples_needed as shape_samples_needed
from ..models import model_path
from ..audio.mouth_opening import silence_mask, smooth_latest, smooth_track
from ..audio.speech_encoder import WINDOW_SAMPLES, SpeechEncoder, frame_inputs, live_window_start
from ..audio.speech_encoder import samples_needed as speech_samples_needed
from ..audio.streaming import Reader, RunningSpectrum, frame_mel
from ..audio.visemes import Phone, steer
from .render_inputs import ROWS, blend_output, crop_of, network_input, repaint_mask, shape_raster

SHAPE_MODEL = "lip_shape.fp32.tflite"
RENDERER_MODEL = "mouth_renderer.fp32.tflite"
RENDERER_FORMS = ("mouth_renderer.int8.xml", "mouth_renderer.int8.tflite", "mouth_renderer.int8.rknn", RENDERER_MODEL)
"""The shipped renderer's exported forms; the fastest that runs here is measured on first use."""
SILENCE_RAMP_FRAMES = 2.0
SHIPPED_MOTION_SCALE = 1.5
"""The shipped shape network's motion, even after its gain (capped at 1.6), is about half of real
speakers' (its held-out opening spread is 0.54 of the real one's), and the renderer draws a little
less than it is asked; so it is scaled by 1.5. At 2 the independent judge measured the drawn
opening's spread at 1.24 (39 clips, photo protocol) to 1.44 (13 clips, dub) times the real one's.
Personal (enrolled) networks are fitted to their person and keep 1."""


PERSONAL_FILES = (SHAPE_MODEL, RENDERER_MODEL, "reference.png")


@dataclass(frozen=True)
class LearnedOptions:
    """Which exported networks to use (the shipped ones by default), an optional reference crop of
    the person (an enrolled bundle's), how far the mouth moves, and what the renderer paints."""

    shape_model: Path | None = None
    renderer_model: Path | None = None
    reference: Path | None = None
    amplitude: float = 1.0
    own_lips: bool = True
    """Keep the face's own lips, warped to the target shape, and use the renderer's painting only
    inside the open mouth (sharp); False: the renderer's painting of the whole lip area (soft)."""

    @classmethod
    def enrolled(cls, bundle: Path, amplitude: float = 1.0, own_lips: bool = True) -> LearnedOptions:
        """The personal networks and reference crop of an `edge-retalk enroll` bundle."""
        missing = [name for name in PERSONAL_FILES if not (bundle / name).is_file()]
        if missing:
            raise EdgeRetalkError(f"{bundle}: not an enrolled avatar (missing {', '.join(missing)}; "
                                  "make one with `edge-retalk enroll`)")
        return cls(bundle / SHAPE_MODEL, bundle / RENDERER_MODEL, bundle / "reference.png", amplitude, own_lips)


def is_enrolled(bundle: Path) -> bool:
    """Whether a folder holds an enrolled person's networks."""
    return all((bundle / name).is_file() for name in PERSONAL_FILES)


class ShapeTrack:
    """Motion coefficients of the lip shape per frame, from speech."""

    def __init__(self, model: Path | None, threads: int = 1, provider: str | None = None,
                 options: dict | None = None):
        self.network = Network(model or model_path(SHAPE_MODEL), "lip_shape", threads, provider, options)
        self.scale = SHIPPED_MOTION_SCALE if model is None else 1.0
        meta = self.network.manifest.metadata
        self.space = ShapeSpace(np.asarray(meta["template"]), np.asarray(meta["basis"]),
                                np.asarray(meta["rest_weights"]))
        self.silent = np.asarray(meta["silent"], np.float32)
        self.gain = np.asarray(meta.get("gain", np.ones(self.space.components)), np.float32)
        self.typical_spectrum = np.asarray(meta["typical_spectrum"], np.float32)[:, None]
        self.encoder = SpeechEncoder(threads=threads) if meta.get("audio_features") == "speech_encoder" else None
        """The speech encoder whose features the network reads (None: it reads log-mel windows)."""
        rest = np.asarray(meta.get("rest", []), np.float64)
        self.rest = rest if rest.size and np.abs(rest).max() > 0 else None
        """A personal model's own rest shape (None: estimate it from the face)."""

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Raw coefficients (n, K) for network inputs (n, 80, steps)."""
        return self.network(windows)

    def for_speech(self, samples: np.ndarray, fps: float, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Smoothed coefficients per video frame of 16 kHz speech, and how silent each frame is
        (0 to 1, eased over a few frames)."""
        if self.encoder is not None:
            blocks = self.encoder.file_blocks(samples, fps, n_frames)
            coefficients = np.concatenate([self.predict(block) for block in blocks])
        else:
            coefficients = self.predict(mel_windows(log_mel(samples), fps, n_frames))
        quiet = smooth_track(silence_mask(samples, fps, n_frames).astype(np.float32), SILENCE_RAMP_FRAMES)
        return smooth_track(coefficients), quiet

    def motion(self, coefficients: np.ndarray, quiet: np.ndarray, amplitude: float = 1.0) -> np.ndarray:
        """Motion away from the closed mouth (n, K) for the network's coefficients (n, K): their
        distance from the closed mouth's coefficients (`silent`), the fluctuation scaled by the
        gain that undoes the regression's shrinkage, all by `amplitude` (and `scale`); none where
        `quiet`."""
        return (1 - quiet)[:, None] * lip_motion(coefficients, self.silent, self.gain, amplitude * self.scale)


class LearnedRenderer:
    """Paints a target lip shape into a face with the learned mouth renderer."""

    def __init__(self, model: Path | None, threads: int = 1, provider: str | None = None,
                 options: dict | None = None, own_lips: bool = True):
        self.own_lips = own_lips
        self.interior: MouthInterior | None = None
        model = model or fastest("mouth_renderer", [model_path(name) for name in RENDERER_FORMS], threads)
        self.network = Network(model, "mouth_renderer", threads, provider, options)
        meta = self.network.manifest.metadata
        self.template = np.asarray(meta["template"])
        centre_x, centre_y, side, size = meta["crop"]
        self.crop = CropBox(float(centre_x), float(centre_y), float(side), int(size))

    def crop_of(self, frame: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return crop_of(frame, points, self.template, self.crop)

    def render(self, items: list[tuple[np.ndarray, np.ndarray, np.ndarray]], reference: np.ndarray) -> list[np.ndarray]:
        """Each (frame, landmarks, target canonical shape) with its lip region painted; `reference`
        is a crop of the same face."""
        prepared, results = [], [frame for frame, _, _ in items]
        for position, (frame, points, shape) in enumerate(items):
            region = mouth_region(points, frame.shape)
            if region is None:
                continue
            image, to_crop = self.crop_of(frame, points)
            own = canonical_shape(points, self.template)
            seen = MouthInterior.of(image, own, self.crop)
            if seen is None and self.interior is None:
                seen = MouthInterior.drawn(image, own, self.crop)
            self.interior = seen if self.interior is None else self.interior.better(seen)
            x = network_input(image, repaint_mask([shape, own], self.crop), reference, shape_raster(shape, self.crop))
            prepared.append((position, region, to_crop, image, x))
        if not prepared:
            return results
        outputs = self.network(np.stack([x for *_, x in prepared]))
        for (position, region, to_crop, image, x), output in zip(prepared, outputs):
            frame, points, shape = items[position]
            if self.own_lips:
                results[position] = self._paste_own_lips(frame, points, shape, image, x, output, to_crop, region)
            else:
                results[position] = self._paste(frame, shape, image, x, output, to_crop, region)
        return results

    def _paste_own_lips(self, frame: np.ndarray, points: np.ndarray, shape: np.ndarray, image: np.ndarray,
                     x: np.ndarray, output: np.ndarray, to_crop: np.ndarray, region: Region) -> np.ndarray:
        """The face's own lips warped to the target shape (sharp, its real texture) with the
        network's painting inside the target's open mouth (teeth and cavity, which the face's own
        pixels do not have) and wherever the face's own open mouth lands after the warp (a
        mouth closing over it would otherwise keep a dark gap)."""
        x0, y0, x1, y1 = region.box
        target = apply(invert(to_crop) @ np.vstack([self.crop.from_canonical(), [0, 0, 1]]), shape.astype(np.float64))
        moved = {index: target[k] for k, index in enumerate(SHAPE_POINTS)}
        map_x, map_y = lip_warp_maps(points, region, moved, list(UPPER_OUTER_LIP + UPPER_INNER_LIP),
                                     list(LOWER_OUTER_LIP + LOWER_INNER_LIP + LOWER_FACE))
        warped = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        unit = float(face_height(points))
        blur = max(0.5, unit / 300)
        own_inner = polygon_mask((y1 - y0, x1 - x0), points[list(INNER_LIP_OUTLINE), :2] - (x0, y0), blur)
        own_inside = cv2.remap(own_inner, (map_x - x0).astype(np.float32), (map_y - y0).astype(np.float32),
                               cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        painted, _ = self._painting(shape, image, x, output, to_crop, region)
        inner = np.array([moved[i] for i in INNER_LIP_OUTLINE]) - (x0, y0)
        target_inside = polygon_mask(warped.shape[:2], inner, blur)
        mouth = np.maximum(target_inside, own_inside)[..., None]
        patch = (warped * (1 - mouth) + painted * mouth).round().clip(0, 255).astype(np.uint8)
        return paste(frame, patch, region)

    def _paste(self, frame: np.ndarray, shape: np.ndarray, image: np.ndarray, x: np.ndarray, output: np.ndarray,
               to_crop: np.ndarray, region: Region) -> np.ndarray:
        """The repainted area of the crop warped back into the frame and pasted through the repaint
        mask within the feathered lip region: every other pixel keeps its original value."""
        patch, back = self._painting(shape, image, x, output, to_crop, region)
        mask = np.zeros(image.shape[:2], np.float32)
        mask[ROWS] = x[3]
        alpha = cv2.warpAffine(mask, back, patch.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return paste(frame, patch, Region(region.box, region.alpha * alpha))

    def _painting(self, shape: np.ndarray, image: np.ndarray, x: np.ndarray, output: np.ndarray,
                  to_crop: np.ndarray, region: Region) -> tuple[np.ndarray, np.ndarray]:
        """The network's painting of the crop, its open mouth filled from the face's own open
        mouth where one was seen, warped onto the lip region's box; and the matrix from crop
        pixels to box pixels that did it."""
        canvas = image.copy()
        canvas[ROWS] = np.clip(blend_output(x, output).transpose(1, 2, 0) * 255 + 0.5, 0, 255).astype(np.uint8)
        if self.interior is not None:
            canvas = self.interior.fill(canvas, shape, self.crop)
        x0, y0, x1, y1 = region.box
        back = invert(to_crop)
        back[:, 2] -= (x0, y0)
        return cv2.warpAffine(canvas, back, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE), back


class LearnedGenerator:
    """Speech -> lip shape -> learned renderer: the default lip generator."""

    name = "learned"
    tracking_interval = 1

    def __init__(self, options: LearnedOptions | None = None, threads: int = 1, provider: str | None = None,
                 provider_options: dict | None = None):
        self.options = options or LearnedOptions()
        self.shapes = ShapeTrack(self.options.shape_model, threads, provider, provider_options)
        self.renderer = LearnedRenderer(self.options.renderer_model, threads, provider, provider_options,
                                        self.options.own_lips)
        self._motion = np.zeros((1, self.shapes.space.components), np.float32)
        self._reference_crop: np.ndarray | None = None
        self._rest: np.ndarray | None = self.shapes.rest
        if self.options.reference is not None:
            crop = cv2.imread(str(self.options.reference))
            size = self.renderer.crop.size
            if crop is None or crop.shape != (size, size, 3):
                raise EdgeRetalkError(f"{self.options.reference}: not a {size}x{size} reference crop")
            self._reference_crop = crop

    def live(self, fps: float) -> LearnedLive:
        """This generator fed from a live stream, frame by frame, as the speech arrives."""
        return LearnedLive(self, fps)

    def prepare(self, samples: np.ndarray, fps: float, n_frames: int, phones: Sequence[Phone] = ()) -> np.ndarray:
        """Compute the lip-shape motion for every output frame; returns it (frames, K). Timed
        `phones`, where the words are known, steer it to their mouth shapes (`visemes.py`)."""
        self._motion = self.shapes.motion(*self.shapes.for_speech(samples, fps, n_frames), self.options.amplitude)
        if phones:
            self._motion = steer(self._motion, phones, fps, self.shapes.space)
        return self._motion

    def set_reference(self, frame: np.ndarray, points: np.ndarray) -> None:
        """Take this face as the reference: its crop shows the renderer the person's mouth, its lip
        shape gives the rest shape (where an enrolled bundle does not already give them). The
        first face seen is used unless this is called."""
        if self._reference_crop is None:
            self._reference_crop = self.renderer.crop_of(frame, points)[0]
        if self._rest is None:
            self._rest = self.shapes.space.rest_shape(canonical_shape(points, self.shapes.space.template)[None])

    def target_shape(self, motion: np.ndarray) -> np.ndarray:
        """The canonical lip shape: the person's rest (closed) shape moved by `motion` (K,)."""
        return self.shapes.space.shapes(self._rest, motion[None])[0]

    def render(self, frame: np.ndarray, points: np.ndarray | None, motion: np.ndarray) -> np.ndarray:
        """`frame` with its mouth painted to the lip shape of `motion` (live mode)."""
        return self.render_batch([(frame, points, motion)])[0]

    def render_batch(self, items: list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]) -> list[np.ndarray]:
        with_face = [(i, frame, points, c) for i, (frame, points, c) in enumerate(items) if points is not None]
        results = [frame for frame, _, _ in items]
        if not with_face:
            return results
        if self._reference_crop is None or self._rest is None:
            self.set_reference(with_face[0][1], with_face[0][2])
        rendered = self.renderer.render([(frame, points, self.target_shape(c)) for _, frame, points, c in with_face],
                                        self._reference_crop)
        for (i, *_), frame in zip(with_face, rendered):
            results[i] = frame
        return results

    def generate_batch(self, items: list[tuple[np.ndarray, np.ndarray | None, int]]) -> list[np.ndarray]:
        """Frames (frame, landmarks, index) with their mouths generated from the prepared speech."""
        last = len(self._motion) - 1
        return self.render_batch([(frame, points, self._motion[min(index, last)]) for frame, points, index in items])

    def generate(self, frame: np.ndarray, points: np.ndarray | None, index: int) -> np.ndarray:
        return self.generate_batch([(frame, points, index)])[0]


class LearnedLive:
    """The learned generator, fed its mel window from a live stream; the lip-shape motion is
    smoothed causally and eases to the closed mouth over a few frames of silence."""

    def __init__(self, generator: LearnedGenerator, fps: float):
        self.generator, self.fps = generator, fps
        self._recent: deque[np.ndarray] = deque(maxlen=3)
        self._spectrum = RunningSpectrum(generator.shapes.typical_spectrum, bands=lambda mel: mel)
        self._quiet = 1.0
        self._window: tuple[np.ndarray, np.ndarray] | None = None
        """The last speech-encoder window: its first sample (1,) and its features (1, steps, C)."""

    def samples_needed(self, index: int) -> int:
        if self.generator.shapes.encoder is not None:
            return speech_samples_needed(index, self.fps)
        return shape_samples_needed(index, self.fps)

    def follow(self, index: int, read: Reader, silent: bool) -> None:
        """Frame `index`'s motion, into the smoothing and the silence ramp, for a frame that is
        dropped: the loop is behind, so the speech encoder is not run again (its last window
        serves, the frame's position in it moved on)."""
        self._step(index, read, silent, encode=False)

    def _step(self, index: int, read: Reader, silent: bool, encode: bool) -> None:
        """Frame `index`'s motion into the smoothing and the silence ramp; `encode`: run the speech
        encoder on the frame's own window (else reuse the last one, where there is one)."""
        shapes = self.generator.shapes
        if shapes.encoder is not None:
            if encode or self._window is None:
                start = live_window_start(np.array([index]), self.fps)
                window = read(int(start[0]), int(start[0]) + WINDOW_SAMPLES)
                self._window = start, shapes.encoder.encode(window[None])
            start, features = self._window
            inputs = frame_inputs(features, start, np.zeros(1, np.int64), np.array([index]), self.fps)
        else:
            mel, offset, spectrum = frame_mel(read, self._spectrum, index, self.fps, MEL_BEFORE,
                                              self.samples_needed(index))
            inputs = mel_windows(mel, self.fps, 1, index, offset, spectrum)
        coefficients = shapes.predict(inputs)
        self._quiet += (float(silent) - self._quiet) / (1 + SILENCE_RAMP_FRAMES)
        self._recent.append(shapes.motion(coefficients, np.array([self._quiet]), self.generator.options.amplitude)[0])

    def render(self, frame: np.ndarray, points: np.ndarray | None, index: int, read: Reader,
               silent: bool, phones: Sequence[Phone] = ()) -> np.ndarray:
        """Frame `index` drawn; the `phones` overlapping it steer its smoothed motion as `prepare` does."""
        self._step(index, read, silent, encode=True)
        motion = smooth_latest(np.array(self._recent))
        if phones:
            motion = steer(motion[None], phones, self.fps, self.generator.shapes.space, index)[0]
        return self.generator.render(frame, points, motion)
