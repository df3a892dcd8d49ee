"""Measure, then choose: which of a network's exported forms (engine and precision) is fastest
on this machine is measured on first use, not assumed, and remembered per machine (CPU model,
the instruction sets that decide INT8 speed, core count) in a small JSON cache. On an Intel Xeon
with AMX, OpenVINO INT8 may win by 8x; on an AMD EPYC with AVX2 only, by 2x; on an ARM board,
LiteRT may; where OpenVINO is not installed, its file is simply not a candidate. A remembered
choice is used only while every candidate file is unchanged (name, size, modification time) and
the chosen one's engine is installed here: a cache shared by two environments (a kiosk one without
OpenVINO, an `[export]` one with it) is measured again, not trusted.

The cache lives in $EDGE_RETALK_CACHE, else $XDG_CACHE_HOME/edge-retalk, else ~/.cache/edge-retalk;
`edge-retalk devices` shows what was measured and what was chosen.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..engines import engine_installed, open_model
from ..engines.cache import cache_dir, load_cache, save_cache
from ..errors import EdgeRetalkError
from .system import read_system_file

ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "asimd", "asimddp", "i8mm", "sve")
WARMUP_RUNS = 3
log = logging.getLogger(__name__)
TIMED_RUNS = 15


def machine() -> dict:
    """What decides which engine is fastest here."""
    cpuinfo = read_system_file("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.split(":")[0].strip() in ("model name", "Model")), platform.processor() or "unknown CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                      if line.split(":")[0].strip() in ("flags", "Features")), []))
    return {"cpu": model, "isa": sorted(flags & set(ISA_FLAGS)), "cores": os.cpu_count() or 1,
            "arch": platform.machine()}


def machine_key(found: dict | None = None) -> str:
    found = found or machine()
    return f"{found['cpu']} | {'+'.join(found['isa']) or 'no int8 isa'} | {found['cores']} cores | {found['arch']}"


def cache_file() -> Path:
    return cache_dir() / "autotune.json"


@dataclass
class Measurement:
    """One candidate file: its median ms per call at batch 1, or why it cannot run here."""

    file: str
    ms: float | None
    error: str | None = None


@dataclass
class Choice:
    """What was measured for one network on this machine and which file won."""

    network: str
    threads: int
    chosen: str
    measured: list[Measurement]
    when: str

    @property
    def line(self) -> str:
        figures = ", ".join(f"{m.file} {m.ms:.1f} ms" if m.ms is not None else f"{m.file} (cannot run: {m.error})"
                            for m in self.measured)
        return f"{self.network}, {self.threads} thread(s): {self.chosen} ({figures}; measured {self.when})"


def _signature(candidates: list[Path]) -> str:
    """The candidate files as they are now: a replaced or rewritten one changes it."""
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in candidates)


def _remembered(entry: dict | None, candidates: list[Path]) -> tuple[Path | None, str]:
    """The remembered choice if it still holds here, else None and why not."""
    if not entry:
        return None, "first use"
    chosen = next((p for p in candidates if p.name == entry["choice"]["chosen"]), None)
    if chosen is None or entry.get("signature") != _signature(candidates):
        return None, "its files changed since they were measured"
    if not engine_installed(chosen):
        return None, f"the remembered {chosen.name} needs an engine not installed here"
    return chosen, ""


def measure(model: Path, threads: int) -> Measurement:
    """Median time of one batch-1 call of `model` on zeros for every input (after a warm-up)."""
    try:
        manifest, engine = open_model(model, threads)
    except (ImportError, EdgeRetalkError, RuntimeError) as exc:
        return Measurement(model.name, None, str(exc).splitlines()[0][:200] or type(exc).__name__)
    x = {spec.name: np.zeros([1, *[s if isinstance(s, int) else 1 for s in spec.shape[1:]]], np.float32)
         for spec in manifest.inputs}
    for _ in range(WARMUP_RUNS):
        engine.run(x)
    times = []
    for _ in range(TIMED_RUNS):
        started = time.perf_counter()
        engine.run(x)
        times.append(1000 * (time.perf_counter() - started))
    return Measurement(model.name, round(statistics.median(times), 2))


def fastest(network: str, candidates: list[Path], threads: int) -> Path:
    """The fastest of `candidates` (forms of the same network) on this machine: from the cache,
    or measured now and cached. Files that cannot run here (engine not installed) are skipped."""
    candidates = [p for p in candidates if p.is_file()]
    if len(candidates) <= 1:
        return candidates[0]
    cache = load_cache(cache_file())
    key = machine_key()
    chosen, reason = _remembered(cache.get(key, {}).get(f"{network}|{threads}"), candidates)
    if chosen is not None:
        return chosen
    (log.info if reason == "first use" else log.warning)("measuring which form of %s runs fastest here (%s)",
                                                         network, reason)
    measured = [measure(p, threads) for p in candidates]
    runnable = [m for m in measured if m.ms is not None]
    if not runnable:
        raise EdgeRetalkError(f"none of {', '.join(p.name for p in candidates)} can run here: {measured[0].error}")
    best = min(runnable, key=lambda m: m.ms)
    choice = Choice(network, threads, best.file, measured, datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    cache.setdefault(key, {})[f"{network}|{threads}"] = {"signature": _signature(candidates), "choice": asdict(choice)}
    save_cache(cache, cache_file())
    return next(p for p in candidates if p.name == best.file)


def choices() -> list[Choice]:
    """Every choice cached for this machine."""
    entries = load_cache(cache_file()).get(machine_key(), {})
    found = []
    for entry in entries.values():
        data = dict(entry["choice"])
        data["measured"] = [Measurement(**m) for m in data["measured"]]
        found.append(Choice(**data))
    return found
