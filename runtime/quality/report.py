"""What `edge-retalk eval` leaves behind: report.json, a terminal table, and per clip a plot of
mouth opening over time (real vs generated, silence shaded) and a contact sheet of mouth crops."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
from rich.table import Table

from .evaluate import ClipReport, medians

COLUMNS = (
    ("r", "r", "{:.2f}"), ("mlmd", "M-LMD", "{:.3f}"), ("offset", "offset", "{:+.0f}"),
    ("av_peak", "A/V peak", "{:.2f}"), ("leakage", "leak", "{:.2f}"), ("leakage_real", "leak real", "{:.2f}"),
    ("jitter", "jitter", "{:.1e}"), ("jitter_real", "jitter real", "{:.1e}"), ("psnr", "PSNR", "{:.1f}"),
    ("ssim", "SSIM", "{:.3f}"),
)
ROW_LABELS = {"generated": "generated", "input": "input (floor)", "real": "real (ceiling)"}


def _fmt(value: float, pattern: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else pattern.format(value)


def summary_table(reports: list[ClipReport], protocol: str, per_clip: bool = True) -> Table:
    """Per-clip generated rows, then the medians of generated, input and real."""
    table = Table(title=f"edge-retalk eval, protocol {protocol}, {len(reports)} clips")
    table.add_column("clip / row")
    for _, title, _ in COLUMNS:
        table.add_column(title, justify="right")
    if per_clip:
        for report in reports:
            table.add_row(report.clip, *(_fmt(report.rows["generated"][k], p) for k, _, p in COLUMNS))
        table.add_section()
    for row, values in medians(reports).items():
        table.add_row(f"median {ROW_LABELS[row]}", *(_fmt(values.get(k), p) for k, _, p in COLUMNS))
    return table


def markdown_table(reports: list[ClipReport], protocol: str) -> str:
    """The median rows as a Markdown table (for the README)."""
    header = "| " + " | ".join([f"protocol {protocol}"] + [t for _, t, _ in COLUMNS]) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for row, values in medians(reports).items():
        lines.append("| " + " | ".join([f"median {ROW_LABELS[row]}"] +
                                        [_fmt(values.get(k), p) for k, _, p in COLUMNS]) + " |")
    return "\n".join(lines)


def write_json(reports: list[ClipReport], protocol: str, path: Path, generator: str) -> None:
    data = {"protocol": protocol, "generator": generator, "clips": {r.clip: r.rows for r in reports},
            "median": medians(reports)}
    path.write_text(json.dumps(data, indent=2, allow_nan=True))


def plot_opening(report: ClipReport, path: Path, width: int = 960, height: int = 300) -> None:
    """Mouth opening over time: real (blue) and generated (red), silent frames shaded."""
    canvas = np.full((height, width, 3), 255, np.uint8)
    n = len(report.real_opening)
    left, right, top, bottom = 50, 10, 30, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    x_of = lambda i: int(left + i * plot_w / max(n - 1, 1))  # noqa: E731
    values = np.concatenate([report.real_opening, report.generated_opening])
    peak = max(float(np.nanmax(values)) if np.isfinite(values).any() else 0.1, 0.02)
    y_of = lambda v: int(top + plot_h - v / peak * plot_h)  # noqa: E731
    for i in np.nonzero(report.silent[:n])[0]:
        cv2.rectangle(canvas, (x_of(i) - 1, top), (x_of(i) + 1, top + plot_h), (225, 225, 225), -1)
    cv2.rectangle(canvas, (left, top), (left + plot_w, top + plot_h), (120, 120, 120), 1)
    for series, colour in ((report.real_opening, (200, 90, 30)), (report.generated_opening[:n], (40, 40, 220))):
        points = [(x_of(i), y_of(v)) for i, v in enumerate(series) if np.isfinite(v)]
        if len(points) > 1:
            cv2.polylines(canvas, [np.array(points, np.int32)], False, colour, 2, cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(canvas, f"{report.clip} ({report.protocol}): mouth opening / face height; blue real, red generated, "
                f"grey silence; r={report.rows['generated']['r']:.2f}", (left, 20), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{peak:.2f}", (5, top + 10), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, "0", (30, top + plot_h), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{n / report.fps:.1f} s", (width - 60, height - 10), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), canvas)


def contact_sheet(report: ClipReport, path: Path, cell: int = 128) -> None:
    """Mouth crops at evenly spaced frames: real above, generated below."""
    if not report.sheet:
        return
    top = np.hstack([cv2.resize(real, (cell, cell)) for real, _ in report.sheet])
    bottom = np.hstack([cv2.resize(generated, (cell, cell)) for _, generated in report.sheet])
    cv2.imwrite(str(path), np.vstack([top, bottom]))


def write_report(reports: list[ClipReport], protocol: str, out_dir: Path, generator: str) -> Path:
    """report.json plus a plot and a contact sheet per clip; returns the JSON path."""
    for report in reports:
        stem = f"{Path(report.clip).stem}.{protocol}"
        plot_opening(report, out_dir / f"{stem}.plot.png")
        contact_sheet(report, out_dir / f"{stem}.sheet.png")
    (out_dir / "summary.md").write_text(markdown_table(reports, protocol) + "\n")
    path = out_dir / "report.json"
    write_json(reports, protocol, path, generator)
    return path
