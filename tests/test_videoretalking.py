"""VideoReTalking (LNet + ENet) in the official layout: key layout, loading as upstream does, the
export-friendly forms against the upstream maths, and export -> runtime -> video on real inputs."""

from __future__ import annotations

import json
import math
import os
import wave

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the export toolchain needs PyTorch: pip install '.[export]'")
F = torch.nn.functional

from conftest import run_cli  # noqa: E402
from edge_retalk.errors import EdgeRetalkError  # noqa: E402
from edge_retalk.export.checkpoints import load_checkpoint  # noqa: E402
from edge_retalk.export.models.enet import ENet, ModulatedConv2d  # noqa: E402
from edge_retalk.export.models.lnet import FourierUnit, LayerNorm2d, LNet, fold_spectral_norm  # noqa: E402
from edge_retalk.engines.manifest import load_manifest  # noqa: E402
from edge_retalk.io.media import iter_video_frames, load_audio  # noqa: E402
from official_layout import LAYOUTS  # noqa: E402


@pytest.fixture(scope="module")
def enet() -> ENet:
    torch.manual_seed(0)
    return ENet().eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, enet):
    """LNet.pth in the legacy format with `module.` keys; ENet.pth (zip) with its own, different
    copy of LNet under `low_res.`, which loading must ignore, as upstream does."""
    folder = tmp_path_factory.mktemp("videoretalking")
    lnet_path, enet_path = folder / "LNet.pth", folder / "ENet.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in enet.low_res.state_dict().items()}}, lnet_path,
               _use_new_zipfile_serialization=False)
    state = {k: (torch.zeros_like(v) if k.startswith("low_res.") else v) for k, v in enet.state_dict().items()}
    torch.save({"state_dict": state}, enet_path)
    return lnet_path, enet_path


@pytest.mark.parametrize("name, model", [("LNet", LNet), ("ENet", ENet)])
def test_state_dict_layout_is_the_official_one(name, model):
    if not LAYOUTS.is_dir():
        pytest.skip(f"checkpoint layouts not found at {LAYOUTS}")
    official = json.loads((LAYOUTS / f"videoretalking_{name}.keys.json").read_text())
    ours = {key: list(value.shape) for key, value in model().state_dict().items()}
    assert ours == official


@pytest.mark.slow
def test_checkpoints_load_as_upstream_loads_them(checkpoints, enet, tmp_path):
    lnet_path, enet_path = checkpoints
    lnet = load_checkpoint(LNet(), lnet_path)
    loaded = load_checkpoint(ENet(lnet), enet_path, exclude=("low_res.",))
    for key, value in enet.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    broken = {k: v for k, v in torch.load(enet_path, weights_only=True)["state_dict"].items() if k != "final_conv.bias"}
    torch.save({"state_dict": broken}, tmp_path / "broken.pth")
    with pytest.raises(EdgeRetalkError, match=r"1 missing \(final_conv.bias\)"):
        load_checkpoint(ENet(), tmp_path / "broken.pth", exclude=("low_res.",))


def upstream_fourier_unit(unit: FourierUnit, x: torch.Tensor) -> torch.Tensor:
    """The upstream Fourier unit, with torch.fft."""
    b = x.shape[0]
    spectrum = torch.fft.rfftn(x, dim=(-2, -1), norm="ortho")
    spectrum = torch.stack((spectrum.real, spectrum.imag), dim=-1).permute(0, 1, 4, 2, 3)
    spectrum = spectrum.reshape(b, -1, *spectrum.shape[-2:])
    spectrum = torch.relu(unit.bn(unit.conv_layer(spectrum)))
    spectrum = spectrum.reshape(b, -1, 2, *spectrum.shape[2:]).permute(0, 1, 3, 4, 2)
    return torch.fft.irfftn(torch.complex(spectrum[..., 0], spectrum[..., 1]), s=x.shape[-2:], dim=(-2, -1),
                            norm="ortho")


@pytest.mark.parametrize("size", [(12, 12), (24, 24), (48, 48), (7, 10)])
def test_fourier_unit_as_matrix_products_equals_the_fft(size):
    torch.manual_seed(1)
    unit = FourierUnit(16).eval()
    torch.nn.init.normal_(unit.conv_layer.weight, 0.0, 0.3)
    x = torch.randn(2, 16, *size)
    with torch.no_grad():
        assert torch.allclose(unit(x), upstream_fourier_unit(unit, x), atol=1e-5)


def test_static_layer_norm_equals_the_shape_reading_one():
    norm = LayerNorm2d(8)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(3, 8, 12, 12) * 4 + 1
    shape = x.shape[1:]
    expected = F.layer_norm(x, shape, norm.weight.expand(shape), norm.bias.expand(shape))
    assert torch.allclose(norm(x), expected, atol=1e-5)


def upstream_modulated_conv(conv: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's modulated convolution as upstream computes it: per-sample weights, grouped conv."""
    b, c = x.shape[:2]
    out_channels, kernel = conv.weight.shape[1], conv.weight.shape[-1]
    weight = conv.weight * conv.modulation(style).view(b, 1, c, 1, 1)
    if conv.demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + conv.eps).view(b, out_channels, 1, 1, 1)
    weight = weight.view(b * out_channels, c, kernel, kernel)
    if conv.upsample:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    out = F.conv2d(x.reshape(1, b * c, *x.shape[2:]), weight, padding=kernel // 2, groups=b)
    return out.view(b, out_channels, *out.shape[2:])


@pytest.mark.parametrize("kernel, demodulate, upsample", [(3, True, True), (3, True, False), (1, False, False)])
def test_modulated_convolution_as_a_static_convolution_keeps_the_numbers(kernel, demodulate, upsample):
    torch.manual_seed(2)
    conv = ModulatedConv2d(16, 8, kernel, demodulate, upsample)
    x, style = torch.randn(3, 16, 10, 10), torch.randn(3, 512)
    with torch.no_grad():
        assert torch.allclose(conv(x, style), upstream_modulated_conv(conv, x, style), atol=1e-5)


def test_folding_spectral_norm_keeps_the_numbers(enet):
    torch.manual_seed(3)
    lnet = LNet().eval()
    lnet.load_state_dict(enet.low_res.state_dict())
    mel, face = torch.randn(2, 1, 80, 16), torch.rand(2, 6, 96, 96)
    with torch.no_grad():
        before = lnet(mel, face)
        after = fold_spectral_norm(lnet)(mel, face)
    assert not any(hasattr(m, "weight_orig") for m in lnet.modules())
    assert torch.allclose(before, after, atol=1e-6)


def short_speech(source, target, seconds: float):
    samples = (np.clip(load_audio(source)[:int(16000 * seconds)], -1, 1) * 32767).astype("<i2")
    with wave.open(str(target), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(samples.tobytes())
    return target


# VideoReTalking's LNet is the largest network we export: FP32 alone runs in the tests; its INT8
# recipe (about 6 minutes on a 2-core CPU) and FP16 targets run with `EXPORT_FULL=1` (every format
# and precision is exercised on Wav2Lip in test_export.py).
VRT_TARGETS = {"onnx:fp32": "videoretalking.fp32.onnx"}
if os.environ.get("EXPORT_FULL") == "1":
    VRT_TARGETS |= {"onnx:int8": "videoretalking.int8.onnx", "onnx:fp16": "videoretalking.fp16.onnx",
                    "openvino:fp16": "videoretalking.fp16.xml"}


@pytest.mark.slow
def test_export_then_run_each_target(data, tmp_path, checkpoints):
    """From official-layout files to ONNX FP32 (and INT8 and FP16 with EXPORT_FULL=1), each checked
    against PyTorch on real inputs by the export, then run on a real clip; the style code is
    computed once."""
    lnet_path, enet_path = checkpoints
    out_dir = tmp_path / "exported"
    result = run_cli("export", "--arch", "videoretalking", "--checkpoint", lnet_path, "--enet", enet_path,
                     "--to", ",".join(VRT_TARGETS), "--no-latency",
                     "--calib", data / "clips" / "hdtf_wda_aoc_8s.mp4", "-o", out_dir)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr and "Traceback" not in result.stderr
    report = json.loads((out_dir / "report.json").read_text())
    rows = {row["target"]: row for row in report["artefacts"]}
    assert set(rows) == set(VRT_TARGETS) and report["failed"] == []
    assert rows["onnx:fp32"]["psnr_db"] > 60
    assert all(row["psnr_db"] >= 30 for target, row in rows.items() if target.endswith("int8"))
    assert all(row["psnr_db"] >= 45 for target, row in rows.items() if target.endswith("fp16"))
    assert all(math.isnan(row["latency_ms_batch1"]) for row in rows.values())
    if "onnx:fp16" in rows:
        assert 0.4 < rows["onnx:fp16"]["size_mb"] / rows["onnx:fp32"]["size_mb"] < 0.6

    speech = short_speech(data / "speech" / "unitychan_univ0003.wav", tmp_path / "short.wav", 0.4)
    clip = data / "clips" / "lrs2_00019.mp4"
    for target, file in VRT_TARGETS.items():
        manifest, _ = load_manifest(out_dir / file)
        assert manifest.face_size == 384 and manifest.style_encoder.startswith("videoretalking_style.")
        video = tmp_path / f"{file}.mp4"
        result = run_cli("run", "--face", clip, "--audio", speech, "--generator", out_dir / file, "-o", video, "-q")
        assert result.returncode == 0, result.stderr
        assert json.loads(run_cli("inspect", video, "--json").stdout)["generator"] == f"videoretalking {target}"
        frames = list(iter_video_frames(video))
        originals = [frame for frame, _ in zip(iter_video_frames(clip), frames)]
        assert len(frames) == 10
        changed = [np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 40 for a, b in zip(frames, originals)]
        rows_changed = np.nonzero(np.any(np.stack(changed), axis=(0, 2)))[0]
        height = frames[0].shape[0]
        assert rows_changed.size and rows_changed.min() > 0.35 * height, "only the lip region may change"

    from edge_retalk.generators.neural import NeuralGenerator

    generator = NeuralGenerator(out_dir / "videoretalking.fp32.onnx")
    calls = []
    run_style = generator.style_engine.run
    generator.style_engine.run = lambda feeds: calls.append(1) or run_style(feeds)
    from edge_retalk.face.tracker import FaceTracker

    tracker = FaceTracker(25.0)
    frames = [frame for _, frame in zip(range(3), iter_video_frames(clip))]
    windows = [np.zeros((80, 16), np.float32)] * 3
    generator.generate_from_windows([(frame, tracker(frame)) for frame in frames], windows)
    generator.generate_from_windows([(frame, tracker(frame)) for frame in frames], windows)
    assert len(calls) == 1

    result = run_cli("run", "--face", clip, "--audio", speech, "--generator",
                     out_dir / "videoretalking_style.fp32.onnx", "-o", tmp_path / "wrong.mp4")
    assert result.returncode != 0 and "style encoder" in result.stderr and "Traceback" not in result.stderr
