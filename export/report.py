"""Parity and speed of each exported artefact against PyTorch FP32, as Markdown and JSON."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ArtefactReport:
    target: str
    file: str
    size_mb: float
    psnr_db: float
    max_error: float
    latency_ms_batch1: float
    latency_ms_batch8: float


def psnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """PSNR of outputs in [0, 1]."""
    mse = float(np.mean((reference.astype(np.float64) - candidate.astype(np.float64)) ** 2))
    return 200.0 if mse <= 1e-20 else float(10 * np.log10(1.0 / mse))


def median_latency_ms(run, repeats: int = 10) -> float:
    run()
    times = []
    for _ in range(repeats):
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
        base = by_target.get(f"{fmt}:fp32", any_fp32)
        if base is None or precision == "fp32":
            continue
        speed = base.latency_ms_batch1 / row.latency_ms_batch1
        verdict = "faster" if speed > 1.1 else "slower" if speed < 0.9 else "no faster"
        notes.append(f"- {row.target}: {row.size_mb / base.size_mb:.2f}x the size of {base.target}, "
                     f"{speed:.2f}x its speed at batch 1 ({verdict} on this machine).")
    return notes


def write_report(rows: list[ArtefactReport], folder: Path) -> tuple[Path, Path]:
    header = "| target | file | size MB | PSNR dB vs PyTorch | max error | ms batch 1 | ms batch 8 |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.target} | {r.file} | {r.size_mb:.1f} | {r.psnr_db:.1f} | {r.max_error:.2e} | "
              f"{r.latency_ms_batch1:.1f} | {'n/a (batch 1 only)' if np.isnan(r.latency_ms_batch8) else f'{r.latency_ms_batch8:.1f}'} |"
              for r in rows]
    lines += [""] + trade_offs(rows)
    markdown, data = folder / "report.md", folder / "report.json"
    markdown.write_text("\n".join(lines) + "\n")
    data.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return markdown, data
