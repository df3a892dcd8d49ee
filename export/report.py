"""Parity and speed of each exported artefact against PyTorch FP32, as Markdown and JSON."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..engines.formats import BOARD_ONLY_FORMATS


@dataclass(frozen=True)
class ArtefactReport:
    target: str
    file: str
    size_mb: float
    psnr_db: float
    max_error: float
    latency_ms_batch1: float
    latency_ms_batch8: float
    float_modules: tuple[str, ...] = ()
    """Modules an INT8 recipe left in float (the rest is INT8)."""


def psnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """PSNR of outputs in [0, 1]."""
    mse = float(np.mean((reference.astype(np.float64) - candidate.astype(np.float64)) ** 2))
    return 200.0 if mse <= 1e-20 else float(10 * np.log10(1.0 / mse))


@dataclass(frozen=True)
class TargetFailure:
    target: str
    reason: str


def median_latency_ms(run, repeats: int = 10, budget_s: float = 3.0) -> float:
    """Median time of `run` after one warm-up call: `repeats` calls, or as many as fit in
    `budget_s` (at least one) for a slow model."""
    run()
    times: list[float] = []
    while len(times) < repeats and (not times or sum(times) < budget_s * 1000):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def trade_offs(rows: list[ArtefactReport]) -> list[str]:
    """Plain statements of what each reduced precision buys over FP32 of the same format, measured."""
    by_target = {r.target: r for r in rows}
    any_fp32 = next((r for r in rows if r.target.endswith(":fp32")), None)
    notes = []
    for row in rows:
        fmt, precision = row.target.split(":")
        if fmt in BOARD_ONLY_FORMATS:
            notes.append(f"- {row.target}: runs only on the board's NPU, so its parity was checked in the vendor's "
                         "simulator of that NPU and its speed is not measured here.")
            continue
        base = by_target.get(f"{fmt}:fp32", any_fp32)
        if base is None or precision == "fp32":
            continue
        size = f"- {row.target}: {row.size_mb / base.size_mb:.2f}x the size of {base.target}"
        speed = base.latency_ms_batch1 / row.latency_ms_batch1
        if np.isnan(speed):
            notes.append(f"{size} (speed not measured).")
            continue
        verdict = "faster" if speed > 1.1 else "slower" if speed < 0.9 else "no faster"
        notes.append(f"{size}, {speed:.2f}x its speed at batch 1 ({verdict} on this machine).")
    return notes


def _ms(value: float, missing: str) -> str:
    return missing if np.isnan(value) else f"{value:.1f}"


def _batch8_gap(row: ArtefactReport) -> str:
    return "not measured" if np.isnan(row.latency_ms_batch1) else "n/a (batch 1 only)"


def _batch1_gap(row: ArtefactReport) -> str:
    return "on the board only" if row.target.split(":")[0] in BOARD_ONLY_FORMATS else "not measured"


def write_report(rows: list[ArtefactReport], failures: list[TargetFailure], folder: Path) -> tuple[Path, Path]:
    header = "| target | file | size MB | PSNR dB vs PyTorch | max error | ms batch 1 | ms batch 8 |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.target} | {r.file} | {r.size_mb:.1f} | {r.psnr_db:.1f} | {r.max_error:.2e} | "
              f"{_ms(r.latency_ms_batch1, _batch1_gap(r))} | {_ms(r.latency_ms_batch8, _batch8_gap(r))} |"
              for r in rows]
    notes = trade_offs(rows)
    if notes:
        lines += [""] + notes
    kept = [f"- {r.target}: {', '.join(r.float_modules)}" for r in rows if r.float_modules]
    if kept:
        lines += ["", "Left in float by the INT8 recipe (everything else is INT8):"] + kept
    if failures:
        lines += ["", "Not written (the export failed):"] + [f"- {f.target}: {f.reason}" for f in failures]
    markdown, data = folder / "report.md", folder / "report.json"
    markdown.write_text("\n".join(lines) + "\n")
    data.write_text(json.dumps({"artefacts": [asdict(r) for r in rows], "failed": [asdict(f) for f in failures]},
                               indent=2))
    return markdown, data
