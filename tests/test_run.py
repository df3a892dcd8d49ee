"""`edge-retalk run` end to end on real clips, photos and speech, as a user runs it."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import wave
from fractions import Fraction
from pathlib import Path
from unittest import mock

import av
import cv2
import numpy as np
import pytest

from conftest import manifest, run_cli
from edge_retalk import EdgeRetalkError
from edge_retalk.file_mode import RunOptions, lipsync
from edge_retalk.face import sources as face_sources
from edge_retalk.provenance import watermark
from edge_retalk.generators.compositor import mouth_region
from edge_retalk.generators.painted import PaintedGenerator
from edge_retalk.generators.learned import LearnedGenerator
from edge_retalk.audio.lip_shape import shape_opening
from edge_retalk.face.landmarks import mouth_opening
from edge_retalk.face.sources import FrameCache, FrameTail, replay_store
from edge_retalk.io.media import iter_video_frames, load_audio, probe_face
from edge_retalk.io.video_writer import VideoWriter
from edge_retalk.face.tracker import FaceTracker

CLIPS = [row["file"] for row in manifest("clips")]
ONE_FACE_PORTRAITS = [row["file"] for row in manifest("portraits")
                      if not row["file"].startswith(("nonhuman_", "multiface_"))]
SHORT_SPEECH = "unitychan_univ0003.wav"


def video_facts(path: Path) -> dict:
    """Frame count, rate, size and stream durations of an output file."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        frames = sum(1 for _ in container.decode(video))
        return {"frames": frames, "fps": Fraction(video.average_rate), "size": (video.width, video.height),
                "codec": video.codec_context.name, "audio": audio is not None,
                "audio_seconds": float(audio.duration * audio.time_base) if audio else 0.0,
                "comment": container.metadata.get("comment", "")}


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


def assert_clean_success(result) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("clip", CLIPS)
def test_every_clip_runs(data, tmp_path, clip):
    out = tmp_path / "out.mp4"
    result = run_cli("run", "--face", data / "clips" / clip, "--audio", data / "speech" / SHORT_SPEECH, "-o", out, "-q")
    assert_clean_success(result)
    facts = video_facts(out)
    row = next(r for r in manifest("clips") if r["file"] == clip)
    assert facts["codec"] == "h264" and facts["audio"]
    assert facts["size"] == (int(row["width"]) // 2 * 2, int(row["height"]) // 2 * 2)
    assert abs(float(facts["fps"]) - float(row["fps"])) < 0.02
    assert abs(facts["frames"] / float(facts["fps"]) - 1.07) <= 1.0 / float(facts["fps"]) + 0.01
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize("portrait", ONE_FACE_PORTRAITS)
def test_every_one_face_portrait_runs(data, tmp_path, portrait):
    out = tmp_path / "out.mp4"
    result = run_cli("run", "--face", data / "portraits" / portrait, "--audio", data / "speech" / SHORT_SPEECH,
                     "-o", out, "-q")
    assert_clean_success(result)
    facts = video_facts(out)
    assert facts["fps"] == 25 and facts["frames"] == round(1.07 * 25)


@pytest.mark.parametrize("speech", ["whisper_jfk.flac", "fw_hotwords.mp3", "sadtalker_deyu.wav", "wsj_n800_440c0202.wav"])
def test_output_duration_matches_the_audio(data, tmp_path, speech):
    out = tmp_path / "out.mp4"
    assert_clean_success(run_cli("run", "--face", data / "clips" / "vexpress_aoc_gt_4s.mp4",
                                 "--audio", data / "speech" / speech, "-o", out, "-q"))
    facts = video_facts(out)
    seconds = load_audio(data / "speech" / speech).size / 16000
    assert abs(facts["frames"] / float(facts["fps"]) - seconds) <= 1.0 / float(facts["fps"])
    assert abs(facts["audio_seconds"] - seconds) < 0.1


@pytest.mark.parametrize("seconds, replayed, store", [(2.0, [(21, 19), (25, 15), (40, 0), (45, 5)], FrameCache),
                                                      (0.92, [(21, 19), (22, 18)], FrameTail)],
                         ids=["on-disk", "last-frames"])
def test_short_video_plays_back_and_forth(data, tmp_path, seconds, replayed, store):
    """lrs2_00006 has 21 frames; 2 s of audio needs 50, so frames 21.. replay 19, 18, ... from
    a cache of every frame on disk; 0.92 s needs 23, and only the last frames are kept."""
    clip = data / "clips" / "lrs2_00006.mp4"
    out = tmp_path / "out.mp4"
    speech = load_audio(data / "speech" / "retalking_audio1.wav")
    audio = write_wav(tmp_path / "speech.wav", speech[:round(seconds * 16000)])
    assert_clean_success(run_cli("run", "--face", clip, "--audio", audio, "-o", out, "-q"))
    source = list(iter_video_frames(clip))
    output = list(iter_video_frames(out))
    assert len(source) == 21 and len(output) == round(seconds * 25)
    assert type(replay_store(probe_face(clip), len(output), source[0].shape)) is store

    def top_half_error(a, b):
        return np.abs(a[:60].astype(float) - b[:60].astype(float)).mean()

    for k, expected in replayed:
        errors = [top_half_error(output[k], frame) for frame in source]
        assert abs(int(np.argmin(errors)) - expected) <= 1, (k, np.argmin(errors))


def test_only_the_lip_region_changes(data, tmp_path):
    """Outside the lip region the output differs from the input no more than re-encoding it with
    only the invisible watermark (a whole-frame mark of about 2 grey levels) added does."""
    clip = data / "clips" / "hdtf_wda_aoc_8s.mp4"
    out = tmp_path / "out.mp4"
    assert_clean_success(run_cli("run", "--face", clip, "--audio", data / "speech" / "retalking_audio2.wav",
                                 "-o", out, "-q"))
    plain = tmp_path / "plain.mp4"
    with VideoWriter(plain, 512, 512, Fraction(25), None) as writer:
        for _, frame in zip(range(125), iter_video_frames(clip)):
            writer.write(watermark.embed(frame))
    tracker = FaceTracker(25.0)
    outside, noise, inside = [], [], []
    for source, result, reencoded in zip(iter_video_frames(clip), iter_video_frames(out), iter_video_frames(plain)):
        region = mouth_region(tracker(source), source.shape)
        mask = np.zeros(source.shape[:2], bool)
        x0, y0, x1, y1 = region.box
        mask[y0:y1, x0:x1] = region.alpha > 0
        grown = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        diff = np.abs(source.astype(float) - result.astype(float)).mean(axis=2)
        outside.append(diff[~grown].mean())
        noise.append(np.abs(source.astype(float) - reencoded.astype(float)).mean(axis=2)[~grown].mean())
        inside.append(diff[mask].mean())
    assert len(outside) == 125
    assert np.mean(outside) <= 1.05 * np.mean(noise) + 0.05, (np.mean(outside), np.mean(noise))
    assert np.mean(inside) > 2 * np.mean(outside)


def intended_opening(renderer: str, portrait: Path, audio: Path, frames: int) -> np.ndarray:
    """The mouth opening (face heights) each renderer aims for, from the speech alone."""
    if renderer == "painted":
        return PaintedGenerator().prepare(load_audio(audio), 25.0, frames)
    generator = LearnedGenerator()
    coefficients = generator.prepare(load_audio(audio), 25.0, frames)
    image = cv2.imread(str(portrait))
    generator.set_reference(image, FaceTracker(25.0, smooth=False)(image))
    return shape_opening(np.stack([generator.target_shape(c) for c in coefficients]))


@pytest.mark.parametrize("renderer", ["learned", "painted"])
def test_mouth_opens_with_speech_and_closes_in_silence(data, tmp_path, renderer):
    speech = load_audio(data / "speech" / "retalking_audio1.wav")[: 3 * 16000]
    audio = write_wav(tmp_path / "speech.wav", np.concatenate([np.zeros(16000, np.float32), speech,
                                                               np.zeros(16000, np.float32)]))
    out = tmp_path / "out.mp4"
    portrait = data / "portraits" / "photo_astronaut.png"
    assert_clean_success(run_cli("run", "--face", portrait, "--audio", audio, "-o", out, "-q",
                                 "--renderer", renderer))
    tracker = FaceTracker(25.0, smooth=False)
    opening = np.array([mouth_opening(tracker(frame)) for frame in iter_video_frames(out)])
    silent = np.r_[opening[3:22], opening[-22:-3]]
    talking = opening[30:95]
    assert silent.max() < 0.04 and silent.std() < 0.005
    assert talking.mean() > silent.mean() + 0.01
    target = intended_opening(renderer, portrait, audio, len(opening))
    assert np.corrcoef(opening[25:100], target[25:100])[0, 1] > 0.6


def test_decoding_starts_before_the_generator_loads_and_stops_when_it_fails(data, tmp_path):
    """File mode decodes and tracks in a thread while the generator loads; a generator that then
    fails to load (here: no manifest) stops that thread, and no output appears."""
    clip = data / "clips" / "hdtf_wda_aoc_8s.mp4"
    (tmp_path / "broken.onnx").write_bytes(b"not a network")
    started = threading.Event()
    original = face_sources.FaceTracker.__init__

    def note_start(self, *args, **kwargs):
        started.set()
        original(self, *args, **kwargs)

    with mock.patch.object(face_sources.FaceTracker, "__init__", note_start):
        with pytest.raises(EdgeRetalkError, match="no manifest"):
            lipsync(clip, clip, tmp_path / "out.mp4", RunOptions(generator=tmp_path / "broken.onnx"))
    assert started.is_set(), "tracking had started before the generator failed"
    assert not [thread.name for thread in threading.enumerate() if thread.name == "read-ahead"]
    assert not (tmp_path / "out.mp4").exists()


def test_face_less_frames_pass_through_and_are_counted(data, tmp_path):
    clip = data / "clips" / "wav2lip_test_mov_23s.mov"
    out = tmp_path / "out.mp4"
    result = run_cli("run", "--face", clip, "--audio", clip, "-o", out, "-q", "--preset", "ultrafast")
    assert_clean_success(result)
    lines = [line for line in result.stderr.splitlines() if "had no face" in line]
    assert len(lines) == 1
    missing = int(lines[0].split()[0])
    assert 60 < missing < 200


def test_run_never_imports_torch(data, tmp_path):
    code = ("import sys; from pathlib import Path; from edge_retalk.file_mode import lipsync; "
            f"lipsync(Path('{data}/portraits/photo_einstein.png'), Path('{data}/speech/{SHORT_SPEECH}'), "
            f"Path('{tmp_path}/o.mp4')); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_output_is_labelled_synthetic(data, tmp_path):
    out = tmp_path / "out.mp4"
    assert_clean_success(run_cli("run", "--face", data / "portraits" / "photo_einstein.png",
                                 "--audio", data / "speech" / SHORT_SPEECH, "-o", out, "-q"))
    assert "synthetic" in video_facts(out)["comment"]


def test_demo_uses_only_bundled_inputs(tmp_path):
    out = tmp_path / "demo.mp4"
    result = run_cli("demo", "-o", out)
    assert_clean_success(result)
    assert str(out.resolve()) in result.stdout
    facts = video_facts(out)
    assert facts["audio"] and facts["frames"] > 100 and facts["size"] == (512, 512)


def transcode(source: Path, target: Path, kind: str, codec: str) -> Path:
    """Re-encode one stream of a real clip into another container (mkv, m4a): formats the data lacks."""
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        original = getattr(src.streams, kind)[0]
        if kind == "video":
            stream = dst.add_stream(codec, rate=original.average_rate)
            stream.width, stream.height, stream.pix_fmt = original.width, original.height, "yuv420p"
        else:
            stream = dst.add_stream(codec, rate=original.codec_context.sample_rate)
        for frame in src.decode(original):
            frame.pts = None
            dst.mux(stream.encode(frame))
        dst.mux(stream.encode(None))
    return target


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(container.streams.audio[0]) if packet.size]


def test_written_frames_keep_their_colours(data, tmp_path):
    """Frames written (BGR -> YUV 4:2:0 -> H.264 at the default quality) and decoded again stay
    within a couple of grey levels of the original, without a colour cast: the conversion uses
    the same matrix and range that decoders assume. swscale's own conversion gave 2.6 levels and
    a cast of -2.1 on blue."""
    frames = list(itertools.islice(iter_video_frames(data / "clips" / "hdtf_wda_aoc_8s.mp4"), 10))
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 512, 512, Fraction(25), None) as writer:
        for frame in frames:
            writer.write(frame)
    difference = np.stack(list(iter_video_frames(out))).astype(float) - np.stack(frames)
    assert np.abs(difference).mean() < 2.4
    assert np.abs(difference.mean(axis=(0, 1, 2))).max() < 1.5, "no colour cast"


def test_aac_speech_is_copied_and_starts_with_the_picture(data, tmp_path):
    """AAC speech in an MP4 goes into the output packet for packet (no second encoding), and
    starts at the picture's time 0 even where the file's audio starts half a second late: the
    mouth was driven from its first decoded sample."""
    source = data / "clips" / "hdtf_rd_radio2_8s.mp4"
    late = tmp_path / "late.m4a"
    with av.open(str(source)) as src, av.open(str(late), "w", format="mp4") as dst:
        stream = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.pts, packet.dts, packet.stream = packet.pts + 8000, packet.dts + 8000, stream
                dst.mux(packet)
    for speech in (source, late):
        out = tmp_path / f"{speech.stem}.out.mp4"
        with VideoWriter(out, 64, 64, Fraction(25), speech) as writer:
            for _ in range(200):
                writer.write(np.zeros((64, 64, 3), np.uint8))
        assert audio_packets(out) == audio_packets(speech)
        with av.open(str(out)) as container:
            assert container.streams.audio[0].start_time == 0
        np.testing.assert_array_equal(load_audio(out), load_audio(speech))


def test_mkv_face_and_m4a_audio(data, tmp_path):
    face = transcode(data / "clips" / "lrs2_00004.mp4", tmp_path / "face.mkv", "video", "libx264")
    audio = transcode(data / "clips" / "lrs2_00008.mp4", tmp_path / "speech.m4a", "audio", "aac")
    out = tmp_path / "out.mp4"
    assert_clean_success(run_cli("run", "--face", face, "--audio", audio, "-o", out, "-q"))
    facts = video_facts(out)
    seconds = load_audio(audio).size / 16000
    assert facts["fps"] == 25 and abs(facts["frames"] / 25 - seconds) <= 1 / 25


def test_python_api_takes_plain_string_paths(tmp_path, face, speech):
    """`import edge_retalk` is the front door the CLI also uses: a run from Python, paths as str."""
    import edge_retalk

    out = tmp_path / "api.mp4"
    report = edge_retalk.LipSync(threads=2).run(str(face), str(speech), str(out))
    assert report.output == out and report.frames == video_facts(out)["frames"] > 0
    bundle = edge_retalk.prepare_avatar(str(face), str(tmp_path / "avatar"))
    assert (tmp_path / "avatar" / "avatar.json").is_file() and bundle.frames_with_face == bundle.frames > 0
