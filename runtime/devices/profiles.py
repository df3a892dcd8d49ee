"""Board profiles: one TOML file per device in boards/, validated against `BoardProfile`.

A profile picks the generator (an exported artefact, in order of preference, or the built-in
one), the engine and accelerator ("onnxruntime:tensorrt", "openvino:gpu", ...) in order of
preference, threads, batch, tracking interval and the targets `bench` compares against.
Nothing falls back silently: every step down the profile's order is said in one line.
"""

from __future__ import annotations

import ctypes
import importlib.util
import platform
import sys
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

from ..boards import BOARDS_DIR
from ..errors import EdgeRetalkError
from ..engines.formats import FORMATS, ExportFormat
from .system import read_system_file

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PROVIDERS = ("onnxruntime:tensorrt", "onnxruntime:cuda", "onnxruntime:openvino", "onnxruntime:cpu",
             "openvino:gpu", "openvino:cpu", "litert:xnnpack", "rknn:npu")
DEFAULT_GENERATOR = "default"
DEFAULT_BATCH = 4
"""Frames per generator call without a profile that says otherwise: the built-in renderer's
network and compositing cost less per frame in fours than one by one (on a 2-core AMD EPYC, file
mode at 512x512 ran about 6 % faster), and a generator whose artefact takes one frame at a time
simply loops."""
GENERATOR_ARCHITECTURES = ("wav2lip", "videoretalking")
"""Exported lip-sync networks a profile can pick (artefacts named ARCH.PRECISION.SUFFIX)."""
CPU_PROVIDER_PACKAGES = {"onnxruntime:cpu": "onnxruntime", "openvino:cpu": "openvino",
                         "litert:xnnpack": "ai_edge_litert"}
"""The CPU providers and the package each needs: installed, it runs."""
CPU_PROVIDERS = set(CPU_PROVIDER_PACKAGES)
"""Providers whose speed the autotune can measure with the engine's default (CPU) settings."""


@dataclass(frozen=True)
class BoardProfile:
    name: str
    description: str
    aliases: tuple[str, ...]
    generators: tuple[str, ...]
    providers: tuple[str, ...]
    threads: int
    batch: int
    face_size: int
    tracking_interval: int
    target_fps: float
    target_latency_ms: float
    why: str
    detect_compatible: tuple[str, ...] = ()
    """Device-tree `compatible` entries ("rockchip,rk3588"), matched whole, most specific first."""
    detect_device_tree: tuple[str, ...] = ()
    """Words of the device-tree `model` ("Raspberry Pi 5"), for trees without a known `compatible`."""
    detect_cpu_model: tuple[str, ...] = ()
    detect_arch: tuple[str, ...] = ()
    tensorrt_fp16: bool = False
    tensorrt_engine_cache: str = ""


def generator_entry(entry: str) -> tuple[str, ExportFormat] | None:
    """A profile's generator entry, "FORMAT:PRECISION" (a Wav2Lip artefact) or
    "ARCH/FORMAT:PRECISION" (e.g. "videoretalking/onnx:fp32"), as (architecture, format row);
    None if it names neither."""
    arch, _, key = entry.rpartition("/")
    arch = arch or "wav2lip"
    return (arch, FORMATS[key]) if arch in GENERATOR_ARCHITECTURES and key in FORMATS else None


def load_profile(path: Path) -> BoardProfile:
    """Read and validate one profile file; every problem is named."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EdgeRetalkError(f"{path}: not a readable profile ({exc})") from None
    known = {f.name: f for f in fields(BoardProfile) if f.name != "name"}
    problems = [f"unknown field {key!r}" for key in raw if key not in known]
    required = [f.name for f in known.values() if f.default is MISSING and f.name not in raw]
    problems += [f"missing field {key!r}" for key in required]
    for key, value in raw.items():
        if key in known:
            expected = known[key].type
            ok = {"str": isinstance(value, str), "int": isinstance(value, int) and value > 0,
                  "float": isinstance(value, (int, float)) and value > 0, "bool": isinstance(value, bool),
                  "tuple[str, ...]": isinstance(value, list) and all(isinstance(v, str) for v in value)}[expected]
            if not ok:
                problems.append(f"{key!r} should be {expected}")
    problems += [f"unknown generator {g!r}" for g in raw.get("generators", [])
                 if g != DEFAULT_GENERATOR and generator_entry(g) is None]
    problems += [f"unknown provider {p!r}" for p in raw.get("providers", []) if p not in PROVIDERS]
    if problems:
        raise EdgeRetalkError(f"{path}: invalid profile: {'; '.join(problems)}")
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in raw.items()}
    return BoardProfile(name=path.stem, **values)


@lru_cache(maxsize=1)
def profiles() -> dict[str, BoardProfile]:
    """Every shipped profile, by name."""
    return {p.name: p for p in (load_profile(f) for f in sorted(BOARDS_DIR.glob("*.toml")))}


def detect(root: Path = Path("/"), arch: str | None = None) -> tuple[BoardProfile, str]:
    """The profile for this machine and why: the device tree's `compatible` entries (most specific
    first), then its model name, the CPU model, the architecture. `root` and `arch` stand in for
    the machine's in tests (recorded device trees of real boards)."""
    tree = root / "proc" / "device-tree"
    model = read_system_file(str(tree / "model")).strip()
    compatible = [entry for entry in read_system_file(str(tree / "compatible"), keep_nul=True).split("\x00") if entry]
    cpu = next((line.split(":", 1)[1].strip() for line in read_system_file(str(root / "proc" / "cpuinfo")).splitlines()
                if line.startswith("model name")), "")
    arch = arch or platform.machine()
    for entry in compatible:
        profile = next((p for p in profiles().values() if entry in p.detect_compatible), None)
        if profile is not None:
            return profile, f"device tree {model or 'model unnamed'!r} is compatible with {entry!r}"
    for profile in profiles().values():
        if any(word in model for word in profile.detect_device_tree):
            return profile, f"device tree says {model!r}"
    for profile in profiles().values():
        if any(word in cpu for word in profile.detect_cpu_model):
            return profile, f"CPU is {cpu!r}"
    for profile in profiles().values():
        if arch in profile.detect_arch:
            return profile, f"no known board found (device tree {model or 'absent'}, CPU {cpu!r}); architecture {arch}"
    raise EdgeRetalkError(f"no profile fits this machine ({arch}); choose one with --device: {', '.join(profiles())}")


def resolve(name: str) -> tuple[BoardProfile, str]:
    """A profile by name, alias or 'auto'; the reason says how it was chosen."""
    if name == "auto":
        profile, reason = detect()
        return profile, f"auto: {reason}"
    for profile in profiles().values():
        if name == profile.name or name in profile.aliases:
            return profile, "chosen by name"
    raise EdgeRetalkError(f"unknown device {name!r}; known: {', '.join(profiles())} (or auto)")


def cuda_devices() -> int:
    """How many CUDA GPUs the driver reports (0 without a driver): ONNX Runtime's GPU build lists
    CUDA and TensorRT as available on any machine, GPU or not."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def available_providers(wanted: Iterable[str] = PROVIDERS) -> set[str]:
    """Which of the `wanted` engine:accelerator pairs this machine can run. A CPU pair needs its
    package installed, found without importing it (importing OpenVINO and ONNX Runtime takes
    0.1 s, which a run would spend on one core before anything else starts; the engine that
    loads imports its own); GPU and NPU pairs also a device that the driver reports (or the NPU's
    runtime library)."""
    wanted = set(wanted) & set(PROVIDERS)

    def installed(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    found = {provider for provider, module in CPU_PROVIDER_PACKAGES.items() if provider in wanted and installed(module)}
    if wanted & {"onnxruntime:tensorrt", "onnxruntime:cuda", "onnxruntime:openvino"}:
        try:
            import onnxruntime
            names = {"TensorrtExecutionProvider": "tensorrt", "CUDAExecutionProvider": "cuda",
                     "OpenVINOExecutionProvider": "openvino"}
            found |= {f"onnxruntime:{names[p]}" for p in onnxruntime.get_available_providers() if p in names}
        except ImportError:
            pass
        if found & {"onnxruntime:cuda", "onnxruntime:tensorrt"} and cuda_devices() == 0:
            found -= {"onnxruntime:cuda", "onnxruntime:tensorrt"}
    if "openvino:gpu" in wanted:
        from ..engines.openvino import import_openvino

        try:
            openvino = import_openvino()
            if any(device.startswith("GPU") for device in openvino.Core().available_devices):
                found.add("openvino:gpu")
        except ImportError:
            pass
    if "rknn:npu" in wanted and installed("rknnlite"):
        from ..engines.rknn import npu_runtime_present

        if npu_runtime_present():
            found.add("rknn:npu")
    return found & wanted


def compare_candidates(profile: BoardProfile, models_dir: Path) -> list[tuple[Path, str]]:
    """Every exported generator in `models_dir` that can run here, each on the accelerator the
    profile prefers among those installed for its engine."""
    have = available_providers()
    found = []
    for arch in GENERATOR_ARCHITECTURES:
        for spec in FORMATS.values():
            artefact = models_dir / spec.file_name(arch)
            usable = [p for p in PROVIDERS if p.startswith(spec.engine + ":") and p in have]
            if artefact.is_file() and usable:
                preferred = [p for p in profile.providers if p in usable]
                found.append((artefact, (preferred or usable)[0]))
    return found


def provider_options(profile: BoardProfile, provider: str | None) -> dict[str, str]:
    """Engine options the profile sets for `provider`: for TensorRT, FP16 and the engine cache
    (building a TensorRT engine takes minutes on a Jetson; the cache makes it once)."""
    if provider != "onnxruntime:tensorrt":
        return {}
    options = {"trt_fp16_enable": str(profile.tensorrt_fp16)}
    if profile.tensorrt_engine_cache:
        options["trt_engine_cache_enable"] = "True"
        options["trt_engine_cache_path"] = str(Path(profile.tensorrt_engine_cache).expanduser())
    return options


@dataclass(frozen=True)
class GeneratorChoice:
    """What a profile chose: an artefact, the accelerator to run it on and that accelerator's
    options, or the built-in generator."""

    artefact: Path | None
    provider: str | None
    notes: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)


def choose_generator(profile: BoardProfile, models_dir: Path | None, threads: int | None = None) -> GeneratorChoice:
    """Walk the profile's generator and provider preferences; each step down is one note. Where
    several exported forms run here on the CPU, which is fastest is measured on first use
    (`autotune`), not assumed from the profile's order: an INT8 form that wins by 8x on one CPU
    may lose on another."""
    notes = []
    have = available_providers(profile.providers)
    found: list[tuple[Path, str]] = []
    for key in profile.generators:
        if key == DEFAULT_GENERATOR:
            break
        arch, spec = generator_entry(key)
        path = (models_dir or Path("exported")) / spec.file_name(arch)
        wanted = [p for p in profile.providers if p.startswith(spec.engine + ":")]
        usable = [p for p in wanted if p in have]
        if not path.is_file() or not usable:
            if not found:
                notes.append(f"{key}: {path} not found; trying the next generator" if not path.is_file() else
                             f"{key}: none of {', '.join(wanted) or 'its engines'} is installed; "
                             "trying the next generator")
            continue
        if usable[0] != wanted[0]:
            notes.append(f"{key}: {', '.join(wanted[:wanted.index(usable[0])])} not available here; using {usable[0]}")
        found.append((path, usable[0]))
    if not found:
        if DEFAULT_GENERATOR in profile.generators:
            return GeneratorChoice(None, None, tuple(notes))
        raise EdgeRetalkError(f"profile {profile.name}: none of its generators is usable here ({'; '.join(notes)})")
    path, provider = found[0]
    arch = path.name.split(".")[0]
    same_network = [(p, provider) for p, provider in found if p.name.split(".")[0] == arch]
    if len(same_network) > 1 and all(p in CPU_PROVIDERS for _, p in same_network):
        from .autotune import fastest

        path = fastest(arch, [p for p, _ in same_network], threads or profile.threads)
        provider = dict(same_network)[path]
        notes.append(f"measured here: {path.name} is the fastest of {', '.join(p.name for p, _ in same_network)} "
                     "(see `edge-retalk devices`)")
    return GeneratorChoice(path, provider, tuple(notes), provider_options(profile, provider))


@dataclass(frozen=True)
class DeviceSettings:
    """How a run uses this machine: what a board profile picked, with explicit choices winning."""

    threads: int = 1
    generator: Path | None = None
    provider: str | None = None
    provider_options: dict[str, str] = field(default_factory=dict)
    tracking_interval: int = 1
    batch: int = DEFAULT_BATCH


def device_settings(device: str | None, threads: int | None = None, generator: Path | None = None,
                    models: Path | None = None, say: Callable[[str], None] = lambda line: None) -> DeviceSettings:
    """Settings from the board profile `device` names ("auto" recognises this machine; None: no
    profile, the built-in generator on `threads` or one thread). Each choice and each step down
    the profile's preferences is passed to `say` as one line."""
    if device is None:
        return DeviceSettings(threads=threads or 1, generator=generator)
    profile, reason = resolve(device)
    say(f"device: {profile.name} ({reason})")
    settings = DeviceSettings(threads=threads or profile.threads, generator=generator,
                              tracking_interval=profile.tracking_interval, batch=profile.batch)
    if generator is None:
        choice = choose_generator(profile, models, settings.threads)
        for note in choice.notes:
            say(note)
        settings = replace(settings, generator=choice.artefact, provider=choice.provider,
                           provider_options=choice.options)
    say(f"generator: {settings.generator or 'default (built-in)'}"
        + (f" on {settings.provider}" if settings.provider else ""))
    return settings
