"""Generated video carries three marks (metadata tag, Content Credentials, invisible watermark) that
`inspect` reads back; the watermark outlives a re-encode; `--watermark` adds a visible label."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from edge_retalk.provenance import watermark
from edge_retalk.provenance.content_credentials import new_certificate_chain
from edge_retalk.io.media import iter_video_frames, probe_face

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from watermark_check import videos, write_video  # noqa: E402

SPEECH = "unitychan_univ0003.wav"


def make(data, tmp_path, name, *flags):
    out = tmp_path / name
    result = run_cli("run", "--face", data / "portraits" / "photo_einstein.png", "--audio", data / "speech" / SPEECH,
                     "-o", out, "-q", *flags)
    assert result.returncode == 0, result.stderr
    return out


def test_inspect_reads_the_label_of_a_run(data, tmp_path):
    out = make(data, tmp_path, "labelled.mp4")
    result = run_cli("inspect", out, "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["synthetic"] is True and found["generator"] == "learned" and found["version"]
    assert any(s.startswith("video h264") for s in found["streams"])
    credentials = found["content_credentials"]
    assert credentials["state"] == "valid" and credentials["test_certificate"] and not credentials["problems"]
    assert credentials["actions"] == ["c2pa.created (trainedAlgorithmicMedia)"]
    assert found["watermark"]["present"]
    lines = run_cli("inspect", out).stdout.splitlines()
    assert lines[0].startswith("synthetic: yes (edge-retalk")
    assert lines[1] == ("content credentials: valid, signed with edge-retalk's self-signed TEST certificate "
                        "(it proves nothing about who made it)")


def operator_key(tmp_path: Path) -> tuple[Path, Path]:
    key, chain = new_certificate_chain("Kiosk Operator Ltd")
    (tmp_path / "operator.key").write_bytes(key)
    (tmp_path / "operator.pem").write_bytes(chain)
    return tmp_path / "operator.pem", tmp_path / "operator.key"


def test_signed_output_keeps_its_watermark_through_a_re_encode(data, tmp_path):
    clip = data / "clips" / "geneface_may_5s.mp4"
    cert, key = operator_key(tmp_path)
    out = tmp_path / "signed.mp4"
    result = run_cli("run", "--face", clip, "--audio", clip, "-o", out, "-q", "--sign-cert", cert, "--sign-key", key)
    assert result.returncode == 0, result.stderr
    found = json.loads(run_cli("inspect", out, "--json").stdout)
    assert found["content_credentials"]["state"] == "valid"
    assert found["content_credentials"]["signer"] == "Kiosk Operator Ltd signer, Kiosk Operator Ltd"
    assert not found["content_credentials"]["test_certificate"]
    copy = tmp_path / "copy.mp4"
    write_video(copy, list(iter_video_frames(out)), probe_face(out).fps, crf=30, scale=0.5, crop=0.1)
    found = json.loads(run_cli("inspect", copy, "--json").stdout)
    assert found["content_credentials"]["state"] == "none" and not found["labelled"]
    assert found["watermark"]["present"] and found["synthetic"], found["watermark"]


def test_an_edited_signed_file_fails_validation(data, tmp_path):
    out = make(data, tmp_path, "signed.mp4")
    edited = tmp_path / "edited.mp4"
    content = bytearray(out.read_bytes())
    content[len(content) // 2] ^= 0xFF
    edited.write_bytes(content)
    found = json.loads(run_cli("inspect", edited, "--json").stdout)
    assert found["content_credentials"]["state"] == "invalid"
    assert any(problem.startswith("assertion.bmffHash.mismatch") for problem in found["content_credentials"]["problems"])
    assert run_cli("inspect", edited).stdout.splitlines()[1].startswith("content credentials: INVALID (")


def test_signing_with_a_key_of_another_certificate_is_refused(data, tmp_path):
    cert, _ = operator_key(tmp_path)
    other_key, _ = new_certificate_chain("Someone Else")
    (tmp_path / "other.key").write_bytes(other_key)
    out = tmp_path / "out.mp4"
    result = run_cli("run", "--face", data / "portraits" / "photo_einstein.png", "--audio", data / "speech" / SPEECH,
                     "-o", out, "-q", "--sign-cert", cert, "--sign-key", tmp_path / "other.key")
    assert result.returncode == 1 and not out.exists()
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'other.key'}: this key does not belong to the first certificate in {cert}"]
    result = run_cli("run", "--face", data / "portraits" / "photo_einstein.png", "--audio", data / "speech" / SPEECH,
                     "-o", out, "-q", "--sign-cert", cert)
    assert result.returncode == 1 and result.stderr.strip() == "error: --sign-cert and --sign-key go together"


@pytest.mark.slow
def test_real_clips_carry_no_watermark(data):
    scores = {clip.name: watermark.detect(clip).score for clip in videos(data / "clips", None)}
    assert len(scores) >= 39
    assert max(scores.values()) < watermark.THRESHOLD, scores


def test_no_label_flag_leaves_all_three_marks_out_and_says_so(data, tmp_path):
    out = tmp_path / "unlabelled.mp4"
    result = run_cli("run", "--face", data / "portraits" / "photo_einstein.png", "--audio", data / "speech" / SPEECH,
                     "-o", out, "-q", "--no-label")
    assert result.returncode == 0 and "unlabelled: no metadata tag, no Content Credentials and no invisible " \
        "watermark" in result.stderr
    found = json.loads(run_cli("inspect", out, "--json").stdout)
    assert found["synthetic"] is False and found["content_credentials"]["state"] == "none"
    assert not found["watermark"]["present"]


def test_real_clip_has_no_label(data):
    result = run_cli("inspect", data / "clips" / "lrs2_00006.mp4")
    assert result.returncode == 0 and result.stdout.startswith("synthetic: no edge-retalk label")
    lines = result.stdout.splitlines()
    assert lines[1] == "content credentials: none" and lines[2].startswith("watermark: none found")


def test_demo_is_labelled(tmp_path):
    out = tmp_path / "demo.mp4"
    assert run_cli("demo", "-o", out, "-q").returncode == 0
    found = json.loads(run_cli("inspect", out, "--json").stdout)
    assert found["labelled"] and found["content_credentials"]["state"] == "valid" and found["watermark"]["present"]


def test_watermark_marks_the_bottom_right_corner_only(data, tmp_path):
    plain = next(iter_video_frames(make(data, tmp_path, "plain.mp4"))).astype(float)
    marked = next(iter_video_frames(make(data, tmp_path, "marked.mp4", "--watermark"))).astype(float)
    height, width = plain.shape[:2]
    corner = np.abs(plain - marked)[int(height * 0.9):, int(width * 0.7):].mean()
    rest = np.abs(plain - marked)[: int(height * 0.8)].mean()
    assert corner > 10 and rest < 0.5


def test_inspect_refuses_a_non_media_file(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    result = run_cli("inspect", fake)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {fake}: not a readable media file"]


def test_a_forged_metadata_tag_alone_reads_as_an_unverified_claim(data, tmp_path):
    """A real clip remuxed with only edge-retalk's comment tag written in: nothing that cannot be
    forged says it is generated, so `inspect` does not say yes."""
    import av

    forged = tmp_path / "forged.mp4"
    with av.open(str(data / "clips" / "lrs2_00006.mp4")) as source, av.open(str(forged), "w") as out:
        out.metadata["comment"] = "synthetic: lip-synced by edge-retalk 0.1.0 (generator learned)"
        streams = {s.index: out.add_stream_from_template(s) for s in source.streams if s.type in ("video", "audio")}
        for packet in source.demux(*source.streams):
            if packet.dts is not None and packet.stream.index in streams:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    result = run_cli("inspect", forged)
    assert result.returncode == 0
    assert result.stdout.startswith("synthetic: claims to be synthetic (unverified"), result.stdout
    found = json.loads(run_cli("inspect", forged, "--json").stdout)
    assert found["labelled"] and not found["synthetic"]
