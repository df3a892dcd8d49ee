"""RK3588 NPU targets: our trained renderer through rknn-toolkit2 (in its own environment),
checked in its simulator on real crops; the board profile prefers the NPU only where it runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_cli
from edge_retalk.devices.profiles import PROVIDERS, choose_generator, profiles
from edge_retalk.devices import profiles as profiles_module

REPO = Path(__file__).resolve().parents[1]


def toolkit_python() -> str:
    """rknn-toolkit2's Python (`python -m edge_retalk.export.rockchip setup` makes it; .ci/run does),
    skipping the test when it is absent (a failure under CI=true)."""
    pytest.importorskip("torch", reason="the export toolchain needs PyTorch: pip install '.[export]'")
    from edge_retalk.errors import EdgeRetalkError
    from edge_retalk.export.rockchip import toolkit_python as find_toolkit

    try:
        return str(find_toolkit())
    except EdgeRetalkError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.mark.slow
def test_the_renderer_exports_to_the_npu_and_passes_parity_in_the_simulator(data, tmp_path):
    toolkit_python()
    out = tmp_path / "npu"
    result = run_cli("export", "--arch", "mouth_renderer", "--checkpoint", REPO / "models" / "mouth_renderer.pt",
                     "--to", "rknn:fp16,rknn:int8", "--calib", data / "clips" / "hdtf_wda_katiehill_8s.mp4",
                     "-o", out)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    parity = {row["target"]: row["psnr_db"] for row in report["artefacts"]}
    assert parity["rknn:int8"] >= 30 and parity["rknn:fp16"] >= 45, parity
    for precision in ("fp16", "int8"):
        manifest = json.loads((out / f"mouth_renderer.{precision}.rknn.json").read_text())
        assert manifest["format"] == "rknn" and manifest["inputs"][0]["shape"][0] == 1
        assert manifest["metadata"]["crop"], "the runtime needs the crop geometry beside the network"
    assert "simulator" in (out / "report.md").read_text()


def test_without_the_toolkit_rknn_targets_fail_with_how_to_set_it_up(data, tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="the export toolchain needs PyTorch: pip install '.[export]'")
    monkeypatch.setenv("EDGE_RETALK_RKNN_PYTHON", str(tmp_path / "no-such-python"))
    result = run_cli("export", "--arch", "mouth_renderer", "--checkpoint", REPO / "models" / "mouth_renderer.pt",
                     "--to", "rknn:int8", "--calib", data / "clips" / "hdtf_wda_katiehill_8s.mp4",
                     "-o", tmp_path / "out", "--no-latency")
    assert result.returncode == 1
    assert "python -m edge_retalk.export.rockchip setup" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "out").glob("*.rknn"))


def test_the_rk3588_profile_prefers_the_npu_only_where_it_runs(tmp_path, monkeypatch):
    rk3588 = profiles()["rk3588"]
    exported = tmp_path / "exported"
    exported.mkdir()
    for name in ("wav2lip.int8.rknn", "wav2lip.int8.tflite"):
        (exported / name).write_bytes(b"")
    here = profiles_module.available_providers()
    assert "rknn:npu" not in here, "no NPU runtime on this machine"
    choice = choose_generator(rk3588, exported)
    assert choice.artefact == exported / "wav2lip.int8.tflite" and choice.provider == "litert:xnnpack"
    assert any("rknn:int8" in note and "rknn:npu" in note for note in choice.notes)
    monkeypatch.setattr(profiles_module, "available_providers",
                        lambda wanted=PROVIDERS: (here | {"rknn:npu"}) & set(wanted))
    choice = choose_generator(rk3588, exported)
    assert choice.artefact == exported / "wav2lip.int8.rknn" and choice.provider == "rknn:npu"


def test_the_shipped_npu_renderer_is_measured_and_skipped_off_the_board():
    from edge_retalk.devices.autotune import measure

    measured = measure(REPO / "models" / "mouth_renderer.int8.rknn", 1)
    assert measured.ms is None and "rknn-toolkit-lite2" in measured.error
