"""The learned generator on real media: shipped networks, rest shape, silence, export of our checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import run_cli
from edge_retalk.engines import open_engine
from edge_retalk.face.landmarks import SHAPE_POINTS
from edge_retalk.generators.learned import LearnedGenerator
from edge_retalk.audio.lip_shape import canonical_shape, shape_opening
from edge_retalk.audio.speech_encoder import SpeechEncoder, cut
from edge_retalk.engines.manifest import load_manifest
from edge_retalk.io.media import iter_video_frames, load_audio
from edge_retalk.models import model_path
from edge_retalk.face.tracker import FaceTracker


@pytest.fixture(scope="module")
def generator() -> LearnedGenerator:
    return LearnedGenerator()


def test_shipped_networks_carry_their_shape_space_and_crop(generator):
    space = generator.shapes.space
    assert generator.shapes.network.manifest.arch == "lip_shape"
    assert generator.renderer.network.manifest.arch == "mouth_renderer"
    assert space.basis.shape == (space.components, 2 * len(SHAPE_POINTS))
    np.testing.assert_allclose(space.basis @ space.basis.T, np.eye(space.components), atol=1e-4)
    assert np.allclose(generator.renderer.template, space.template, atol=1e-5)


def test_rest_shape_of_an_open_mouth_is_nearly_closed(data, generator):
    """A face caught mid-word gets a rest shape near the speaker's closed mouth, not its open one."""
    tracker = FaceTracker(25.0, smooth=False)
    template = generator.shapes.space.template
    shapes = np.stack([canonical_shape(p, template) for frame in iter_video_frames(data / "clips" / "geneface_may_5s.mp4")
                       if (p := tracker(frame)) is not None])
    opening = shape_opening(shapes)
    widest = int(np.argmax(opening))
    rest = generator.shapes.space.rest_shape(shapes[widest:widest + 1])
    closed = np.quantile(opening, 0.1)
    assert abs(shape_opening(rest) - closed) < 0.35 * (opening[widest] - closed), (shape_opening(rest), closed)


def test_speech_moves_the_mouth_and_silence_closes_it(data, generator):
    """On a photo of a wide smile: in silence the target mouth is near closed, in speech it opens
    and moves (openings in inter-ocular units)."""
    speech = load_audio(data / "speech" / "retalking_audio1.wav")[: 3 * 16000]
    samples = np.concatenate([np.zeros(16000, np.float32), speech, np.zeros(16000, np.float32)])
    coefficients = generator.prepare(samples, 25.0, 125)
    image = cv2.imread(str(data / "portraits" / "photo_astronaut.png"))
    points = FaceTracker(25.0, smooth=False)(image)
    generator.set_reference(image, points)
    opening = shape_opening(np.stack([generator.target_shape(c) for c in coefficients]))
    photo = shape_opening(canonical_shape(points, generator.shapes.space.template))
    silent, talking = np.r_[opening[:20], opening[-20:]], opening[30:95]
    assert silent.max() < 0.5 * photo, (silent.max(), photo)
    assert silent.std() < 0.005
    assert talking.mean() > silent.mean() + 0.02 and talking.std() > 0.015


def test_wrong_network_is_refused_with_one_line(tmp_path):
    result = run_cli("run", "--generator", model_path("lip_shape.fp32.tflite"), "--face",
                     model_path("demo_portrait.png"), "--audio", model_path("demo_speech.wav"), "-o", tmp_path / "o.mp4")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "not a lip generator" in result.stderr


@pytest.mark.parametrize("arch, checkpoint, network", [("lip_shape", "lip_shape.pt", "lip_shape.fp32.tflite"),
                                                        ("mouth_renderer", "mouth_renderer.pt",
                                                         "mouth_renderer.fp32.tflite")])
def test_shipped_checkpoints_export_to_the_shipped_networks(data, tmp_path, arch, checkpoint, network):
    """Our own checkpoints go through `edge-retalk export` like any other, and give the shipped files' numbers."""
    clip = data / "clips" / "geneface_may_5s.mp4"
    result = run_cli("export", "--arch", arch, "--checkpoint", model_path(checkpoint), "--to", "onnx:fp32",
                     "--calib", clip, "-o", tmp_path)
    assert result.returncode == 0, result.stderr
    [row] = json.loads((tmp_path / "report.json").read_text())["artefacts"]
    assert row["latency_ms_batch1"] > 0 and f"{row['latency_ms_batch1']:.1f}" in (tmp_path / "report.md").read_text()
    exported, exported_file = load_manifest(tmp_path / f"{arch}.fp32.onnx")
    shipped, shipped_file = load_manifest(model_path(network))
    assert exported.metadata == shipped.metadata
    if arch == "lip_shape":
        x = SpeechEncoder().for_file(load_audio(clip), 25.0, 40)
    else:
        x = np.random.default_rng(0).random((1, *exported.inputs[0].shape[1:]), np.float32)
    ours, theirs = open_engine(exported_file), open_engine(shipped_file)
    a = np.concatenate([next(iter(ours.run({ours.input_names[0]: x[i:i + 1]}).values())) for i in range(len(x))])
    b = np.concatenate([next(iter(theirs.run({theirs.input_names[0]: x[i:i + 1]}).values())) for i in range(len(x))])
    np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("tamper, expected", [
    (lambda m: m["inputs"][0].update(name="not_the_input"), "are not the model's"),
    (lambda m: m["inputs"][0].update(shape=[1, 10, 100000, 100000]), "impossible shape"),
])
def test_a_manifest_that_does_not_describe_its_model_is_refused_at_load(tmp_path, face, speech, tamper, expected):
    """The shipped networks copied into an avatar folder, one manifest edited: one line at load."""
    import shutil

    folder = tmp_path / "person"
    folder.mkdir()
    for name in ("lip_shape.fp32.tflite", "mouth_renderer.fp32.tflite"):
        shutil.copy(model_path(name), folder / name)
        shutil.copy(model_path(f"{name}.json"), folder / f"{name}.json")
    cv2.imwrite(str(folder / "reference.png"), np.full((128, 128, 3), 128, np.uint8))
    manifest = json.loads((folder / "mouth_renderer.fp32.tflite.json").read_text())
    tamper(manifest)
    (folder / "mouth_renderer.fp32.tflite.json").write_text(json.dumps(manifest))
    result = run_cli("run", "--generator", folder, "--face", face, "--audio", speech, "-o", tmp_path / "o.mp4")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_the_fastest_renderer_form_is_measured_once_per_machine_and_shown(tmp_path, monkeypatch):
    from edge_retalk.devices import autotune
    from edge_retalk.generators.learned import RENDERER_FORMS

    monkeypatch.setenv("EDGE_RETALK_CACHE", str(tmp_path))
    forms = [model_path(name) for name in RENDERER_FORMS]
    chosen = autotune.fastest("mouth_renderer", forms, 1)
    [cached] = autotune.choices()
    runnable = {m.file: m.ms for m in cached.measured if m.ms is not None}
    assert cached.chosen == chosen.name and runnable[chosen.name] == min(runnable.values())
    assert "mouth_renderer.fp32.tflite" in runnable, "the base install's form always runs"
    monkeypatch.setattr(autotune, "measure", lambda *args: pytest.fail("measured again"))
    assert autotune.fastest("mouth_renderer", forms, 1) == chosen, "the second use reads the cache"
    shown = run_cli("devices")
    assert shown.returncode == 0 and f"mouth_renderer, 1 thread(s): {chosen.name}" in shown.stdout
    assert autotune.machine()["cpu"] in shown.stdout


def test_without_openvino_its_renderer_form_is_skipped_and_runs_still_work(tmp_path, monkeypatch, face, speech):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "openvino.py").write_text("raise ImportError('blocked for the test')\n")
    monkeypatch.setenv("PYTHONPATH", f"{blocker}:{__import__('os').environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("EDGE_RETALK_CACHE", str(tmp_path / "cache"))
    result = run_cli("run", "--face", face, "--audio", speech, "-o", tmp_path / "out.mp4", "-q")
    assert result.returncode == 0, result.stderr
    shown = run_cli("devices").stdout
    assert "mouth_renderer.int8.xml (cannot run" in shown and "mouth_renderer.fp32.tflite" in shown


def test_openvino_keeps_compiled_models_in_the_cache_and_survives_a_broken_one(tmp_path, monkeypatch):
    """The second start of an OpenVINO model loads its compiled form from the cache folder, with
    the same outputs; a damaged cached file is compiled again, not an error."""
    pytest.importorskip("openvino")
    from edge_retalk.engines.openvino import OpenVINOEngine

    monkeypatch.setenv("EDGE_RETALK_CACHE", str(tmp_path))
    model = model_path("mouth_renderer.int8.xml")
    inputs = {spec.name: np.random.default_rng(0).uniform(0, 1, [1, *spec.shape[1:]]).astype(np.float32)
              for spec in load_manifest(model)[0].inputs}
    first = OpenVINOEngine(model).run(inputs)
    [blob] = list((tmp_path / "openvino").iterdir())
    again = OpenVINOEngine(model).run(inputs)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:1000])
    repaired = OpenVINOEngine(model).run(inputs)
    for outputs in (again, repaired):
        for name, value in first.items():
            np.testing.assert_array_equal(outputs[name], value)
    assert blob.stat().st_size > 1000, "the damaged compiled model was written again"


def test_openvino_runs_without_telemetry_or_its_converter(tmp_path):
    """Running an OpenVINO model through edge-retalk sends no usage event: left alone, `import
    openvino` writes a client id to ~/intel and reports to Google Analytics (CI=true, which pytest
    runs often have, hides this, so the child runs without it). Nor does it load the model
    converter (45 ms of every start), which stays importable for the export toolchain."""
    pytest.importorskip("openvino")
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env |= {"HOME": str(tmp_path), "EDGE_RETALK_CACHE": str(tmp_path / "cache")}
    script = ("import numpy as np\n"
              "from edge_retalk.engines.openvino import OpenVINOEngine\n"
              "from edge_retalk.engines.manifest import load_manifest\n"
              "from edge_retalk.models import model_path\n"
              "model = model_path('mouth_renderer.int8.xml')\n"
              "inputs = {s.name: np.zeros([1, *s.shape[1:]], np.float32) for s in load_manifest(model)[0].inputs}\n"
              "OpenVINOEngine(model).run(inputs)\n"
              "import sys; print(sys.modules['openvino_telemetry'], 'openvino.tools.ovc' in sys.modules)\n"
              "from openvino.tools.ovc import convert_model\n")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None False"
    assert not (tmp_path / "intel").exists(), "OpenVINO's telemetry wrote its client id"


@pytest.mark.parametrize("form", ["mouth_renderer.int8.xml", "mouth_renderer.int8.tflite"])
def test_shipped_int8_renderers_paint_what_the_float_one_paints(data, form):
    """On real frames of a speaker the renderer never trained on, the INT8 forms' mouths stay
    within 30 dB of the FP32 renderer's (what the export report measured on crops)."""
    from edge_retalk.generators.learned import LearnedOptions

    frames = list(iter_video_frames(data / "clips" / "geneface_may_5s.mp4"))[:40:8]
    tracker = FaceTracker(25.0, smooth=False)
    points = [tracker(frame) for frame in frames]
    motion = np.linspace(-1, 1, len(frames))[:, None] * np.ones((1, 8), np.float32)
    rendered = {}
    for name in ("mouth_renderer.fp32.tflite", form):
        generator = LearnedGenerator(LearnedOptions(renderer_model=model_path(name)))
        rendered[name] = generator.render_batch(list(zip(frames, points, motion)))
    for original, ours, theirs in zip(frames, rendered["mouth_renderer.fp32.tflite"], rendered[form]):
        changed = np.abs(ours.astype(int) - original.astype(int)).max(axis=2) > 2
        assert changed.sum() > 500, "the float renderer repainted the mouth"
        error = ((ours[changed].astype(float) - theirs[changed]) ** 2).mean()
        assert 10 * np.log10(255 ** 2 / error) >= 30.0


def test_the_learned_renderer_keeps_the_face_own_lips_sharp_and_moving(data, tmp_path, monkeypatch):
    """On a photo, the default renderer moves the face's own lips (their texture stays about as
    sharp as in the photo) where the network alone paints a soft mouth; the face mesh sees the
    mouth move with the speech. The drawn teeth (which both renderers put inside the mouth, and
    whose edges the lips' box takes in) are left out: the lips are measured here."""
    import edge_retalk
    from edge_retalk.face.landmarks import LIPS, mouth_opening
    from edge_retalk.generators import mouth_interior

    monkeypatch.setattr(mouth_interior.MouthInterior, "drawn", classmethod(lambda cls, *args: None))

    photo = data / "portraits" / "photo_lp_s1.jpg"
    tracker = FaceTracker(25.0, smooth=False)
    lips = tracker(cv2.imread(str(photo)))[list(LIPS), :2]
    (x0, y0), (x1, y1) = lips.min(axis=0).astype(int) - 5, lips.max(axis=0).astype(int) + 5

    def sharpness(image: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY), cv2.CV_32F).var())

    found = {}
    for renderer in ("learned", "network"):
        video = tmp_path / f"{renderer}.mp4"
        edge_retalk.LipSync(renderer=renderer).run(photo, data / "speech" / "echomimic_en.wav", video)
        frames = list(iter_video_frames(video))[::4]
        found[renderer] = (np.median([sharpness(f) for f in frames]),
                           np.std([float(mouth_opening(tracker(f))) for f in frames]))
    own = sharpness(cv2.imread(str(photo)))
    assert found["learned"][0] > 0.5 * own and found["learned"][0] > 2 * found["network"][0], (own, found)
    assert found["learned"][1] > 0.004, ("the mouth moves with the speech", found)


def test_a_mouth_seen_open_lends_its_teeth_and_a_face_that_never_opened_gets_drawn_ones(data, monkeypatch):
    """A face that shows its teeth (the astronaut's smile) keeps showing them when the speech opens
    its mouth; a face that never showed its mouth open (Einstein) gets drawn teeth and a dark
    cavity instead of the network's painting, a soft blur: the inside of its widest mouth has
    more contrast (light teeth against the dark cavity)."""
    from edge_retalk.face.landmarks import INNER_LIP_OUTLINE
    from edge_retalk.generators import mouth_interior

    speech = load_audio(data / "speech" / "retalking_audio1.wav")[: 3 * 16000]
    tracker = FaceTracker(25.0, smooth=False)

    def open_mouth(image: np.ndarray) -> tuple[float, float, LearnedGenerator]:
        """Of the generated widest mouth (inside the inner lips, as the face mesh sees them): the
        share that is bright and nearly colourless, as teeth are, and the spread of its
        luminance (10th to 90th percentile) over the median luminance of the face's skin."""
        points = tracker(image)
        generator = LearnedGenerator()
        motion = generator.prepare(speech, 25.0, 75)
        generator.set_reference(image, points)
        widest = int(np.argmax(shape_opening(np.stack([generator.target_shape(m) for m in motion]))))
        output = generator.render(image, points, motion[widest])
        found = tracker(output)
        mouth, skin = np.zeros(image.shape[:2], np.uint8), np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(mouth, [np.round(found[list(INNER_LIP_OUTLINE), :2]).astype(np.int32)], 1)
        cv2.fillConvexPoly(skin, cv2.convexHull(np.round(found[:, :2]).astype(np.int32)), 1)
        skin[mouth > 0] = 0
        hsv = cv2.cvtColor(output, cv2.COLOR_BGR2HSV)
        teeth = (hsv[..., 2] > 150) & (hsv[..., 1] < 70)
        grey = cv2.cvtColor(output, cv2.COLOR_BGR2GRAY).astype(np.float32)
        low, high = np.percentile(grey[mouth > 0], [10, 90])
        return float(teeth[mouth > 0].mean()), float((high - low) / np.median(grey[skin > 0])), generator

    teeth, _, generator = open_mouth(cv2.imread(str(data / "portraits" / "photo_astronaut.png")))
    assert teeth > 0.1 and generator.renderer.interior.opening > 0, teeth
    einstein = cv2.imread(str(data / "portraits" / "photo_einstein.png"))
    _, drawn, generator = open_mouth(einstein)
    assert generator.renderer.interior.opening == 0
    monkeypatch.setattr(mouth_interior.MouthInterior, "drawn", classmethod(lambda cls, *args: None))
    _, painted, generator = open_mouth(einstein)
    assert generator.renderer.interior is None
    assert drawn > 1.3 * painted, (drawn, painted)  # measured 0.74 against 0.48

def test_a_dropped_live_frame_keeps_the_motion_without_running_the_speech_encoder(data, monkeypatch):
    """When the live loop is behind it drops frames, and for those only keeps the motion in step:
    the speech encoder (the costliest step) is not run again, the last window serves, and the
    motion stays close to what encoding every frame gives."""
    speech = load_audio(data / "speech" / "retalking_audio1.wav")[: 4 * 16000]
    read = lambda start, stop: cut(speech, start, stop - start)  # noqa: E731 - the stream, silence around it
    image = cv2.imread(str(data / "portraits" / "photo_einstein.png"))
    points = FaceTracker(25.0, smooth=False)(image)
    tracks = {}
    for drop_odd in (False, True):
        live = LearnedGenerator().live(25.0)
        calls = []
        encode = live.generator.shapes.encoder.encode
        monkeypatch.setattr(live.generator.shapes.encoder, "encode", lambda windows: calls.append(1) or encode(windows))
        motion = []
        for index in range(90):
            if drop_odd and index % 2:
                live.follow(index, read, False)
            else:
                live.render(image, points, index, read, False)
            motion.append(live._recent[-1])
        tracks[drop_odd] = np.array(motion)
        assert len(calls) == (45 if drop_odd else 90)
    every, half = tracks[False][:, 0], tracks[True][:, 0]
    assert np.corrcoef(every, half)[0, 1] > 0.8 and 0.7 < half.std() / every.std() < 1.3
