"""The independent judge (../shared/tools/judge) on the videos `edge-retalk eval` generated, beside
another build's: lip-landmark scorer (r, M-LMD, motion size) and active-speaker detector.

    python benchmarks/judge_check.py --eval NEW_EVAL_DIR [--baseline OLD_EVAL_DIR] --label "..." [--asd]

Each eval folder holds `<clip>.<protocol>.mp4` for the clips it scored; the judge scores each
against the real clip (`score.py pair`) and, with --asd, the generated and real videos with
Light-ASD (the ratio of their `asd_mean` is the figure). A check, never a training signal.
Writes its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import numpy as np

from results import record

JUDGE = Path(__file__).resolve().parents[2] / "shared" / "tools" / "judge"
CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"


def judge(script: str, *args: Path) -> dict:
    done = subprocess.run([sys.executable, str(JUDGE / script), *(["pair"] if script == "score.py" else []),
                           *map(str, args)], capture_output=True, text=True, cwd=JUDGE)
    lines = done.stdout.strip().splitlines()
    found = json.loads(lines[-1]) if done.returncode == 0 and lines else None
    return found if isinstance(found, dict) else {}


def real_clip(video: Path) -> Path:
    stem = video.name.split(".")[0]
    return next(CLIPS.glob(f"{stem}.*"))


def scores(folder: Path, asd: bool, real_asd: dict[str, float]) -> dict[str, dict[str, float]]:
    """The judge's figures per clip; kept in `judge.json` in the folder, so a rerun scores only
    videos that are new or changed since."""
    kept_file = folder / "judge.json"
    kept = json.loads(kept_file.read_text()) if kept_file.exists() else {}
    rows = {}
    for video in sorted(folder.glob("*.mp4")):
        real = real_clip(video)
        stamp = video.stat().st_mtime
        previous = kept.get(video.name, {})
        if previous.get("mtime") == stamp and ("asd_ratio" in previous or not asd):
            rows[video.name.split(".")[0]] = previous["row"]
            continue
        row = judge("score.py", real, video)
        if asd:
            if real.name not in real_asd:
                real_asd[real.name] = judge("asd_score.py", real).get("asd_mean", float("nan"))
            row["asd_ratio"] = judge("asd_score.py", video).get("asd_mean", float("nan")) / real_asd[real.name]
        rows[video.name.split(".")[0]] = row
        kept[video.name] = {"mtime": stamp, "row": row, **({"asd_ratio": True} if asd else {})}
        kept_file.write_text(json.dumps(kept, indent=1))
        click.echo(f"{folder.name} {video.name}: " + json.dumps({k: round(v, 3) for k, v in row.items()
                                                                if isinstance(v, (int, float))}), err=True)
    return rows


def summary(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    """Medians over clips; `amplitude` is the generated opening's spread over the real one's, per clip."""
    for row in rows.values():
        if row.get("open_std_real"):
            row["amplitude"] = row["open_std_gen"] / row["open_std_real"]
    keys = ("r", "m_lmd", "offset", "leak_gen", "leak_real", "amplitude", "asd_ratio")
    found = {k: [r[k] for r in rows.values() if isinstance(r.get(k), (int, float)) and np.isfinite(r[k])] for k in keys}
    return {k: float(np.median(v)) for k, v in found.items() if v}


PAIRED = (("r", True), ("m_lmd", False), ("asd_ratio", True))


def paired_line(ours: dict, theirs: dict, key: str, higher_is_better: bool) -> str:
    """How often this build beats the baseline on `key`, and the median difference, over shared
    clips ("" when no clip has it in both)."""
    def value(row: dict) -> float:
        found = row.get(key)
        return float(found) if isinstance(found, (int, float)) else float("nan")

    shared = [name for name in ours if np.isfinite(value(ours[name])) and np.isfinite(value(theirs.get(name, {})))]
    if not shared:
        return ""
    differences = np.array([value(ours[n]) - value(theirs[n]) for n in shared])
    wins = int(((differences > 0) if higher_is_better else (differences < 0)).sum())
    return f"{key} better on {wins} of {len(shared)}, median difference {np.median(differences):+.3f}"


@click.command()
@click.option("--eval", "new", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--baseline", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--label", default="this build")
@click.option("--baseline-label", default="baseline")
@click.option("--asd", is_flag=True, help="Also run the active-speaker detector (slower).")
@click.option("--section", default="Independent judge")
def main(new: Path, baseline: Path | None, label: str, baseline_label: str, asd: bool, section: str) -> None:
    real_asd: dict[str, float] = {}
    ours = scores(new, asd, real_asd)
    table = [(label, summary(ours), len(ours))]
    paired = ""
    if baseline is not None:
        theirs = scores(baseline, asd, real_asd)
        table.append((baseline_label, summary(theirs), len(theirs)))
        lines = [paired_line(ours, theirs, key, higher) for key, higher in PAIRED]
        paired = "\n\nClip by clip (the clips both scored): " + "; ".join(line for line in lines if line)
    keys = sorted({k for _, row, _ in table for k in row})
    body = "Medians over the clips, each generated video against its real clip.\n\n" \
           "| build | clips | " + " | ".join(keys) + " |\n|---|---|" + "---|" * len(keys) + "\n" + \
           "\n".join(f"| {name} | {count} | " + " | ".join(f"{row.get(k, float('nan')):.3f}" for k in keys) + " |"
                     for name, row, count in table) + paired
    click.echo(body)
    record(section, body)


if __name__ == "__main__":
    main()
