"""benchmarks/RESULTS.md: each benchmark script writes its own section there, headed by the
command, the machine's CPU and the date, replacing that section's previous figures."""

from __future__ import annotations

import platform
import re
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def cpu_name() -> str:
    """The CPU as `lscpu` names it, with its core count and the instruction sets that change
    INT8 speed (AMX, AVX-512 VNNI, AVX2)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    name = fields.get("Model name", "?").strip()
    flags = fields.get("Flags", "").split()
    isa = next((label for flag, label in (("amx_int8", "AMX"), ("avx512_vnni", "AVX-512 VNNI"), ("avx2", "AVX2"))
                if flag in flags), "no AVX2")
    return f"{name} (family {fields.get('CPU family', '?').strip()}, model {fields.get('Model', '?').strip()}, " \
           f"{fields.get('CPU(s)', '?').strip()} cores, {isa})"


def record(section: str, body: str) -> None:
    """Write `body` (markdown) as the section `section` of RESULTS.md, with the command that made
    it, the CPU and the date."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python " + shlex.join(sys.argv)
    text = f"## {section}\n\n`{command}` on {cpu_name()}, {stamp}.\n\n{body.strip()}\n"
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the scripts in this folder; do not edit by hand.\n"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    updated = pattern.sub(lambda _: text + "\n", existing) if pattern.search(existing) else existing.rstrip() + "\n\n" + text
    RESULTS.write_text(updated)
