"""Broken and hostile inputs, generated at run time from real media: each gives a correct result or
one clear error line, never a traceback, and never leaves a partial output behind."""

from __future__ import annotations

import itertools
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from unittest import mock

import av
import numpy as np
import pytest

from conftest import run_cli, shared_data_dir
from edge_retalk import prepare_avatar
from edge_retalk.avatar import Avatar
from edge_retalk.engines import manifest
from edge_retalk.engines.manifest import load_manifest
from edge_retalk.errors import EdgeRetalkError
from edge_retalk.io.media import iter_video_frames, load_audio
from edge_retalk.models import model_path


def write_audio(path: Path, samples: np.ndarray, rate: int, codec: str = "pcm_s16le", layout: str | None = None) -> Path:
    """Write (channels, n) float samples with PyAV."""
    samples = np.atleast_2d(samples).astype(np.float32)
    layout = layout or ("mono" if samples.shape[0] == 1 else "stereo")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        fmt = "flt" if codec == "pcm_f32le" else "s16"
        for start in range(0, samples.shape[1], 4096):
            block = samples[:, start:start + 4096]
            data = block.T.reshape(1, -1) if fmt == "flt" else (np.clip(block, -1, 1) * 32767).astype(np.int16).T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
            frame.sample_rate = rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_video(path: Path, frames: list[np.ndarray], rate: int = 25, pts: list[int] | None = None) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, rate)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            if pts is not None:
                frame.pts = pts[index]
                frame.time_base = Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def run_and_check(tmp_path: Path, face: Path, audio: Path) -> subprocess.CompletedProcess:
    """Run; on success the output must be a whole video, on failure one error line; no stray files."""
    out = tmp_path / "out.mp4"
    out.unlink(missing_ok=True)
    before = set(tmp_path.iterdir())
    result = run_cli("run", "--face", face, "--audio", audio, "-o", out, "-q")
    assert "Traceback" not in result.stderr, result.stderr
    added = set(tmp_path.iterdir()) - before
    if result.returncode == 0:
        assert added == {out}
        assert sum(1 for _ in iter_video_frames(out)) > 0
    else:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert added == set()
    return result


def test_truncated_video(data, tmp_path, speech):
    source = (data / "clips" / "lrs2_00004.mp4").read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(source[: len(source) * 2 // 5])
    result = run_and_check(tmp_path, truncated, speech)
    assert result.returncode == 1 and "not a readable media file" in result.stderr, "its index is in the lost part"


def test_corrupted_video(data, tmp_path, speech):
    source = bytearray((data / "clips" / "lrs2_00004.mp4").read_bytes())
    rng = np.random.default_rng(1)
    middle = len(source) // 2
    source[middle:middle + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    corrupted = tmp_path / "corrupted.mp4"
    corrupted.write_bytes(bytes(source))
    result = run_and_check(tmp_path, corrupted, speech)
    assert result.returncode == 0


def test_truncated_and_corrupted_audio(data, tmp_path, face):
    wav = (data / "speech" / "retalking_audio1.wav").read_bytes()
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(wav[: len(wav) // 3])
    assert run_and_check(tmp_path, face, truncated).returncode == 0
    mp3 = bytearray((data / "speech" / "fw_hotwords.mp3").read_bytes())
    mp3[len(mp3) // 3: len(mp3) // 3 + 3000] = bytes(3000)
    corrupted = tmp_path / "corrupted.mp3"
    corrupted.write_bytes(bytes(mp3))
    assert run_and_check(tmp_path, face, corrupted).returncode == 0


def test_wrong_extensions(data, tmp_path, speech, face):
    audio_as_video = tmp_path / "speech_named.mp4"
    audio_as_video.write_bytes(speech.read_bytes())
    result = run_and_check(tmp_path, audio_as_video, speech)
    assert "has no video stream" in result.stderr
    video_as_audio = tmp_path / "clip_named.wav"
    video_as_audio.write_bytes((data / "clips" / "lrs2_00008.mp4").read_bytes())
    assert run_and_check(tmp_path, face, video_as_audio).returncode == 0
    text_as_image = tmp_path / "notes.png"
    text_as_image.write_text("not an image")
    assert "not a readable image" in run_and_check(tmp_path, text_as_image, speech).stderr


def test_truncated_image(data, tmp_path, speech):
    png = (data / "portraits" / "photo_einstein.png").read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(png[: len(png) // 2])
    result = run_and_check(tmp_path, cut, speech)
    assert result.returncode == 1 and "not a readable image" in result.stderr


def test_header_claiming_8192x8192(tmp_path, speech):
    huge = tmp_path / "huge.y4m"
    huge.write_bytes(b"YUV4MPEG2 W8192 H8192 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(1000))
    result = run_and_check(tmp_path, huge, speech)
    assert result.returncode != 0 and "8192x8192" in result.stderr


def test_one_frame_video(data, tmp_path, speech):
    frame = next(iter_video_frames(data / "clips" / "lrs2_00004.mp4"))
    video = write_video(tmp_path / "one.mp4", [frame])
    assert run_and_check(tmp_path, video, speech).returncode == 0
    assert sum(1 for _ in iter_video_frames(tmp_path / "out.mp4")) == round(1.07 * 25)


def test_variable_frame_rate_video(data, tmp_path, speech):
    frames = [f for _, f in zip(range(40), iter_video_frames(data / "clips" / "lrs2_00004.mp4"))]
    pts = np.cumsum([0] + [1 if i % 3 else 2 for i in range(39)]).tolist()
    video = write_video(tmp_path / "vfr.mp4", frames, pts=pts)
    assert run_and_check(tmp_path, video, speech).returncode == 0


def test_float_wav_with_nan_and_infinity(data, tmp_path, face):
    samples = load_audio(data / "speech" / "retalking_audio1.wav")[:32000].copy()
    samples[1000:1100] = np.nan
    samples[5000] = np.inf
    samples[9000] = -np.inf
    wav = write_audio(tmp_path / "nan.wav", samples, 16000, "pcm_f32le")
    assert run_and_check(tmp_path, face, wav).returncode == 0


def test_digital_silence(tmp_path, face):
    wav = write_audio(tmp_path / "silence.wav", np.zeros(32000), 16000)
    assert run_and_check(tmp_path, face, wav).returncode == 0


@pytest.mark.parametrize("rate", [8000, 11025, 96000])
def test_sample_rates_from_8_to_96_khz(data, tmp_path, face, rate):
    speech = load_audio(data / "speech" / "retalking_audio1.wav", rate)[: rate * 2]
    wav = write_audio(tmp_path / f"speech_{rate}.wav", speech, rate)
    assert run_and_check(tmp_path, face, wav).returncode == 0


def test_six_channel_audio(data, tmp_path, face):
    speech = load_audio(data / "speech" / "retalking_audio1.wav")[:32000]
    wav = write_audio(tmp_path / "surround.wav", np.stack([speech * (i + 1) / 8 for i in range(6)]), 16000,
                      layout="5.1")
    assert run_and_check(tmp_path, face, wav).returncode == 0


def test_output_in_a_read_only_place(tmp_path, face, speech):
    result = run_cli("run", "--face", face, "--audio", speech, "-o", "/proc/edge-retalk-out.mp4", "-q")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "cannot write" in result.stderr


@pytest.mark.parametrize("face_file", ["clips/hdtf_wda_aoc_8s.mp4", "portraits/photo_astronaut.png"])
def test_disk_full_while_writing(data, tmp_path, face_file):
    limit = 60_000
    """A file-size limit makes writes fail part-way, as a full disk does: in the replay cache of a
    video face, and in the output itself for a photo."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "out.mp4"
    command = [sys.executable, "-c", "from edge_retalk.cli import main; main()", "run", "--face",
               str(data / face_file), "--audio", str(data / "clips" / "hdtf_wda_aoc_8s.mp4"),
               "-o", str(out), "-q"]
    result = subprocess.run(command, capture_output=True, text=True, preexec_fn=limit_file_size, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot write" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("track", [
    pytest.param("from edge_retalk.generators.painted import PaintedGenerator; o = PaintedGenerator().prepare(s, 25.0, 90000)",
                 id="painted"),
    pytest.param("from edge_retalk.generators.learned import ShapeTrack; o, _ = ShapeTrack(None).for_speech(s, 25.0, 90000)",
                 marks=pytest.mark.slow, id="speech-encoder"),
])
def test_an_hour_of_audio_keeps_memory_bounded(tmp_path, track):
    """The audio side of a run (decode, features, the opening or lip-shape track) on one hour of
    speech-like noise: the speech encoder's inputs (38 kB a frame) are made and used block by block."""
    rng = np.random.default_rng(0)
    hour = tmp_path / "hour.wav"
    envelope = np.repeat(rng.random(3600 * 4) > 0.3, 4000).astype(np.float32)
    write_audio(hour, rng.standard_normal(3600 * 16000).astype(np.float32) * 0.1 * envelope, 16000)
    code = ("from pathlib import Path; from edge_retalk.io.media import load_audio; "
            "from edge_retalk.io.timing import peak_memory_mb; "
            f"s = load_audio(Path('{hour}')); {track}; "
            "print(len(o), int(peak_memory_mb()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    frames, peak_mb = map(int, result.stdout.split())
    assert frames == 90000
    assert peak_mb < 800, peak_mb


def test_phone_video_stored_sideways_comes_out_upright(data, tmp_path, speech):
    """A real clip stored turned a quarter counterclockwise with a display matrix that turns it
    back (as phones record portrait video): the output is upright, at the shown size."""
    clip = data / "clips" / "chaplin_dictator_7s.mp4"
    originals = list(itertools.islice(iter_video_frames(clip), 50))
    sideways = write_video(tmp_path / "sideways.mp4", [np.ascontiguousarray(np.rot90(f)) for f in originals])
    movie = bytearray(sideways.read_bytes())
    identity = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    clockwise = struct.pack(">9I", 0, 0x10000, 0, 0xFFFF0000, 0, 0, 0, 0, 0x40000000)
    at = movie.find(identity, movie.find(b"tkhd"))
    movie[at:at + len(identity)] = clockwise
    phone = tmp_path / "phone.mp4"
    phone.write_bytes(bytes(movie))
    result = run_and_check(tmp_path, phone, speech)
    assert result.returncode == 0, result.stderr
    frames = list(itertools.islice(iter_video_frames(tmp_path / "out.mp4"), 50))
    assert frames[0].shape == originals[0].shape
    top = slice(0, originals[0].shape[0] // 3)
    assert np.mean([np.abs(a[top].astype(int) - b[top].astype(int)).mean() for a, b in zip(frames, originals)]) < 8


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A real avatar bundle (a still photo loop), made once for the tampering tests."""
    folder = tmp_path_factory.mktemp("bundle") / "avatar"
    prepare_avatar(shared_data_dir() / "portraits" / "photo_einstein.png", folder, loop_seconds=0.4, still=True)
    return folder


def npy_claiming(path: Path, shape: tuple[int, ...]) -> None:
    """A .npy file whose header claims `shape` of float32 but holds a few bytes only."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False, "shape": shape})
        handle.write(bytes(64))


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("tamper, expected", [
    (lambda d: d.update(fps="0"), "fps: '0' is outside 1 to 240"),
    (lambda d: d.update(fps="fast"), "fps: expected a rate"),
    (lambda d: d.update(fps=25.5), "fps: expected a rate"),
    (lambda d: d.update(width=-512), "width: -512 is outside"),
    (lambda d: d.update(frames=10 ** 10), "frames: 10000000000 is outside"),
    (lambda d: d.update(frames="10"), "frames: expected a whole number"),
    (lambda d: d.update(version=True), "version: expected a whole number"),
    (lambda d: d.update(source=["a", "b"]), "source: expected text"),
    (lambda d: d.update(extra=1), "unknown fields ['extra']"),
    (lambda d: d.pop("fps"), "missing fields ['fps']"),
    ("[]", "expected a JSON object"),
    (DEEP, "nested too deeply"),
    ("{" * 3 + "not json", "not a readable avatar description"),
], ids=lambda case: case if isinstance(case, str) and len(case) < 40 else None)
def test_a_tampered_bundle_description_is_refused_field_by_field(bundle, tmp_path, tamper, expected):
    """Each field of avatar.json is checked for type and bounds when the bundle is opened."""
    folder = shutil.copytree(bundle, tmp_path / "avatar")
    if isinstance(tamper, str):
        (folder / "avatar.json").write_text(tamper)
    else:
        description = json.loads((folder / "avatar.json").read_text())
        tamper(description)
        (folder / "avatar.json").write_text(json.dumps(description))
    with pytest.raises(EdgeRetalkError, match="avatar.json") as refused:
        Avatar(folder)
    assert expected in str(refused.value), str(refused.value)


@pytest.mark.parametrize("landmarks, expected", [
    (lambda n: np.zeros((n, 468), np.float32), "expected ("),
    (lambda n: np.full((n, 468, 3), "x"), "expected ("),
    (lambda n: np.zeros((n + 1, 468, 3), np.float32), "expected ("),
    (None, "cannot be read"),
], ids=["rank", "type", "length", "claims-10^10-frames"])
def test_tampered_bundle_landmarks_are_refused_before_they_are_loaded(bundle, tmp_path, landmarks, expected):
    """Landmarks of the wrong rank, type or length, or a header claiming 10^10 frames: one line,
    and the claim allocates nothing."""
    folder = shutil.copytree(bundle, tmp_path / "avatar")
    frames = np.load(folder / "landmarks.npy").shape[0]
    if landmarks is None:
        npy_claiming(folder / "landmarks.npy", (10 ** 10, 468, 3))
    else:
        np.save(folder / "landmarks.npy", landmarks(frames))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(EdgeRetalkError, match="landmarks.npy") as refused:
        Avatar(folder)
    assert expected in str(refused.value), str(refused.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000, "kB more at peak"


def test_live_with_a_tampered_bundle_says_one_line(bundle, data, tmp_path):
    folder = shutil.copytree(bundle, tmp_path / "avatar")
    (folder / "avatar.json").write_text((folder / "avatar.json").read_text().replace('"fps": "25"', '"fps": "0"'))
    result = run_cli("live", "--avatar", folder, "--audio-source", data / "speech" / "unitychan_univ0003.wav",
                     "--no-serve", "--no-window")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "fps: '0' is outside" in result.stderr, result.stderr


@pytest.mark.parametrize("tamper, expected", [
    (lambda m: m.update(face_size="128"), "face_size: expected a whole number"),
    (lambda m: m.update(mel_steps=-1), "mel_steps: -1 is outside"),
    (lambda m: m.update(value_range=[[0.0], [1.0]]), "value_range[0]: expected a number"),
    (lambda m: m.update(value_range=[0.0, float("nan")]), "value_range[1]: expected a finite number"),
    (lambda m: m.update(inputs={"face": 1}), "inputs: expected a list"),
    (lambda m: m["inputs"][0].update(shape=[1, 10, 96.5, 128]), "inputs[0]: shape[2]: expected"),
    (lambda m: m["inputs"][0].update(colour="BGR"), "unknown fields ['colour']"),
    (lambda m: m.update(companions={"weights.bin": 5}), "companions.weights.bin: expected text"),
    (lambda m: m.update(metadata=[1, 2]), "metadata: expected an object"),
    (lambda m: m.update(metadata={"deep": "DEEP"}), "nested too deeply"),
    (lambda m: m.update(metadata={"padding": "x" * 2_000_000}), "over 1024 kB"),
], ids=lambda case: case if isinstance(case, str) else None)
def test_a_tampered_manifest_is_refused_field_by_field(tmp_path, tamper, expected):
    """Each field of a model's manifest is checked for type and bounds before the model is opened."""
    name = "mouth_renderer.fp32.tflite"
    shutil.copy(model_path(name), tmp_path / name)
    manifest = json.loads(model_path(f"{name}.json").read_text())
    tamper(manifest)
    (tmp_path / f"{name}.json").write_text(json.dumps(manifest).replace('"DEEP"', DEEP))
    with pytest.raises(EdgeRetalkError, match="manifest") as refused:
        load_manifest(tmp_path / name)
    assert expected in str(refused.value), str(refused.value)


def test_a_model_that_matched_its_checksum_is_hashed_again_only_once_changed(tmp_path):
    """Starting a run does not re-read a large model it has already checked, but any change to the
    file (even one of the same size with its modification time set back) is checked again."""
    model = tmp_path / "network.bin"
    model.write_bytes(b"weights" * 1000)
    digest = manifest.sha256_of(model)
    with mock.patch.object(manifest, "sha256_of", wraps=manifest.sha256_of) as hashed:
        assert manifest.matches_digest(model, digest) and manifest.matches_digest(model, digest)
        assert hashed.call_count == 1
        before = model.stat()
        time.sleep(0.05)
        model.write_bytes(b"WEIGHTS" * 1000)
        os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert not manifest.matches_digest(model, digest)
        assert hashed.call_count == 2
