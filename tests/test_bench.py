"""`edge-retalk bench` runs its bundled workload and reports every stage against the profile."""

import json
import subprocess
import sys


def test_bench_reports_every_stage_and_saves(tmp_path):
    command = [sys.executable, "-c", "from edge_retalk.cli import main; main()", "bench", "--device", "cpu",
               "--models", str(tmp_path / "none"), "-o", str(tmp_path / "bench.json"), "--save"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "device: generic-x86-64 (chosen by name)" in result.stderr
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["profile"] == "generic-x86-64" and len(report["cases"]) == 1
    case = report["cases"][0]
    assert case["generator"] == "default" and case["frames"] == round(9.06 * 25)
    assert set(case["stages"]) == {"decode", "track", "audio", "generate", "blend", "encode"}
    assert case["stages"]["decode"]["calls"] >= case["frames"] - 1 and case["fps"] > 0 and case["peak_mb"] > 0
    assert (tmp_path / "boards" / "results" / "generic-x86-64.json").exists()
    assert "meets fps target" in result.stdout and "meets latency target" in result.stdout
    assert 50 < case["live_latency_p50_ms"] <= case["live_latency_p95_ms"], "look-ahead plus work, measured live"
