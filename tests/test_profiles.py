"""Board profiles: every shipped file validates, --device works in both places, auto says why."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from edge_retalk.errors import EdgeRetalkError
from edge_retalk.engines import open_engine
from edge_retalk.boards import BOARDS_DIR
from edge_retalk.devices.profiles import (PROVIDERS, choose_generator, detect, generator_entry, load_profile,
                                         profiles, provider_options, resolve)

BOARDS = {"jetson-orin-nano", "jetson-orin-agx", "intel-nuc", "intel-n100", "rpi5", "rk3588",
          "generic-x86-64", "generic-arm64"}


def test_every_profile_validates():
    found = profiles()
    assert set(found) == BOARDS
    for profile in found.values():
        assert all(g == "default" or generator_entry(g) for g in profile.generators)
        assert profile.providers and set(profile.providers) <= set(PROVIDERS)
        assert profile.threads >= 1 and profile.batch >= 1 and profile.target_fps > 0 and profile.why


def test_invalid_profile_is_refused_with_every_problem_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('description = "x"\ncolour = "red"\ngenerators = ["onnx:fp8"]\nproviders = ["cuda"]\nthreads = 0\n')
    with pytest.raises(EdgeRetalkError) as error:
        load_profile(bad)
    message = str(error.value)
    for problem in ("unknown field 'colour'", "missing field 'batch'", "'threads' should be int",
                    "unknown generator 'onnx:fp8'", "unknown provider 'cuda'"):
        assert problem in message


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the reference machine is x86-64")
def test_auto_picks_generic_x86_64_here_and_says_why():
    profile, reason = resolve("auto")
    assert profile.name == "generic-x86-64"
    assert reason.startswith("auto: ") and "x86_64" in reason


RECORDED_BOARDS = {"raspberry-pi-5": "rpi5", "orange-pi-5": "rk3588", "rock-5b": "rk3588",
                   "jetson-orin-nano-devkit": "jetson-orin-nano", "jetson-orin-nx": "jetson-orin-agx",
                   "jetson-agx-orin": "jetson-orin-agx", "jetson-xavier-nx": "generic-arm64",
                   "jetson-nano": "generic-arm64"}


@pytest.mark.parametrize("board", sorted(RECORDED_BOARDS))
def test_boards_are_recognised_from_their_device_tree(tmp_path, board):
    """Orange Pi 5 and Rock 5B say RK3588 only in `compatible`; a Xavier NX or a Jetson Nano
    (JetPack 5 and 4: their Pythons are older than edge-retalk's) run on the CPU, and say why."""
    tree = tmp_path / "proc" / "device-tree"
    tree.mkdir(parents=True)
    for name in ("model", "compatible"):
        (tree / name).write_bytes((Path(__file__).parent / "device_trees" / board / name).read_bytes())
    (tmp_path / "proc" / "cpuinfo").write_text("processor\t: 0\nBogoMIPS\t: 48.00\n")
    profile, reason = detect(tmp_path, arch="aarch64")
    assert profile.name == RECORDED_BOARDS[board], reason
    assert "device tree" in reason and "compatible with" in reason
    if profile.name == "generic-arm64":
        assert "tegra" in reason and "Python 3.10" in profile.why


def test_aliases_resolve():
    assert resolve("jetson")[0].name == "jetson-orin-nano"
    assert resolve("pi5")[0].name == "rpi5"


def test_unknown_device_lists_the_known_ones(data, tmp_path):
    result = run_cli("run", "--device", "toaster", "--face", data / "portraits" / "photo_einstein.png",
                     "--audio", data / "speech" / "unitychan_univ0003.wav", "-o", tmp_path / "o.mp4")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown device 'toaster'" in lines[0] and "jetson-orin-nano" in lines[0]


@pytest.mark.parametrize("where", ["group", "command"])
def test_device_option_in_both_places_falls_back_to_the_default_generator(data, tmp_path, where):
    run_args = ["run", "--face", data / "portraits" / "photo_einstein.png", "--audio",
                data / "speech" / "unitychan_univ0003.wav", "--models", tmp_path / "none", "-o", tmp_path / "o.mp4", "-q"]
    args = ["--device", "rpi5", *run_args] if where == "group" else [*run_args, "--device", "rpi5"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "device: rpi5 (chosen by name)" in result.stderr
    assert "tflite:int8:" in result.stderr and "not found; trying the next generator" in result.stderr
    assert "generator: default (built-in)" in result.stderr


def test_choice_walks_the_generators_in_order(tmp_path):
    profile = profiles()["rpi5"]
    choice = choose_generator(profile, tmp_path)
    assert choice.artefact is None and len(choice.notes) == 1


def test_choosing_a_cpu_generator_leaves_the_engines_unimported(tmp_path):
    """Importing OpenVINO and ONNX Runtime takes 0.1 s: the choice finds their packages without
    importing them, so that the engine that loads is the only one imported, while the face is
    already being decoded and tracked."""
    (tmp_path / "wav2lip.int8.xml").write_bytes(b"")
    code = ("import sys; from pathlib import Path; from edge_retalk.devices.profiles import choose_generator, "
            f"profiles; choice = choose_generator(profiles()['generic-x86-64'], Path({str(tmp_path)!r})); "
            "print(choice.artefact.name, choice.provider, 'openvino' in sys.modules, 'onnxruntime' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["wav2lip.int8.xml", "openvino:cpu", "False", "False"], result.stderr


def test_a_profile_can_prefer_another_architecture(tmp_path):
    """A generator entry names its architecture ("videoretalking/onnx:fp32"); a bare format is Wav2Lip."""
    text = (BOARDS_DIR / "generic-x86-64.toml").read_text()
    start = text.index("generators = ")
    mixed = 'generators = ["videoretalking/onnx:fp32", "onnx:fp32", "default"]'
    text = text[:start] + mixed + text[text.index("\n", start):]
    (tmp_path / "mixed.toml").write_text(text)
    profile = load_profile(tmp_path / "mixed.toml")
    models = tmp_path / "exported"
    models.mkdir()
    (models / "wav2lip.fp32.onnx").write_bytes(b"")
    assert choose_generator(profile, models).artefact == models / "wav2lip.fp32.onnx"
    (models / "videoretalking.fp32.onnx").write_bytes(b"")
    assert choose_generator(profile, models).artefact == models / "videoretalking.fp32.onnx"
    assert generator_entry("lip_shape/onnx:fp32") is None and generator_entry("onnx:fp8") is None


def test_devices_lists_profiles_and_what_runs_here():
    result = run_cli("devices")
    assert result.returncode == 0, result.stderr
    for name in BOARDS:
        assert name in result.stdout
    assert "auto picks:" in result.stdout


def test_tensorrt_options_come_from_the_profile_and_a_missing_accelerator_is_never_silent(tmp_path):
    jetson, _ = resolve("jetson")
    assert provider_options(jetson, "onnxruntime:tensorrt") == {
        "trt_fp16_enable": "True", "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(Path("~/.cache/edge-retalk/tensorrt").expanduser())}
    assert provider_options(jetson, "onnxruntime:cpu") == {}
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    cache = tmp_path / "trt-cache"
    with pytest.raises(EdgeRetalkError, match="onnxruntime:tensorrt is not available"):
        open_engine(model, 1, "onnxruntime:tensorrt", dict(provider_options(jetson, "onnxruntime:tensorrt"),
                                                           trt_engine_cache_path=str(cache)))
    engine = open_engine(model, 1)
    assert engine.provider == "onnxruntime:cpu"
    out = engine.run({"x": np.array([[-1.0, 0.0, 2.0, -3.0]], np.float32)})["y"]
    assert out.tolist() == [[0.0, 0.0, 2.0, 0.0]]
