"""Training runs as the Charts and Train tabs see them: the runs' folders in the workspace
and their metrics JSONL (one JSON object per logged step), read without importing the
training pipeline, so the charts work even where training is not installed."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from components import metric_chart

METRICS_FILES = ("metrics.jsonl",)


def runs_root(ws) -> Path:
    return ws.root / "runs"


def run_dirs(ws) -> list[Path]:
    root = runs_root(ws)
    if not root.exists():
        return []
    return sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True)


def run_choices(ws) -> list[str]:
    return [d.name for d in run_dirs(ws)]


def read_metrics(run_dir: Path) -> pd.DataFrame:
    """Every logged step of a run (lines cut short by a live writer are skipped)."""
    for name in METRICS_FILES:
        path = run_dir / name
        if path.exists():
            recs = []
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict) and "step" in obj:
                    recs.append(obj)
            return pd.DataFrame(recs)
    return pd.DataFrame()


def loss_figure(ws, names: list[str], lang: str = "ja", y: str = "loss"):
    curves = {n: read_metrics(runs_root(ws) / n) for n in names}
    empty = {"ja": "学習ランを選んでください（損失曲線を重ねて表示します）。",
             "en": "Choose training runs to overlay their loss curves."}[lang]
    return metric_chart.loss_overlay(curves, y=y, title="Training loss" if lang == "en" else "学習損失",
                                     empty_message=empty)
