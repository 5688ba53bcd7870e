"""Training runs as the Train and Charts tabs see them: the workspace's runs (via
``pipelines.train_runs`` when the training pipeline is installed) and their metrics."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from components import metric_chart


def training_available() -> bool:
    return importlib.util.find_spec("pipelines.train") is not None


def list_runs(ws) -> list[dict]:
    if not training_available():
        return []
    from pipelines import train_runs
    return train_runs.list_runs(ws)


def run_choices(ws) -> list[tuple[str, str]]:
    """(label, run_dir), newest first."""
    return [(f"{r['run_name']} · {r['status']} · {r.get('step', 0)}/{r.get('max_steps') or '?'}", r["run_dir"])
            for r in list_runs(ws)]


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    from pipelines.train_metrics import read_metrics as read
    return pd.DataFrame(read(run_dir).records)


def loss_figure(ws, run_dirs: list[str], lang: str = "ja", y: str = "loss"):
    names = {r["run_dir"]: r["run_name"] for r in list_runs(ws)}
    curves = {names.get(d, Path(d).name): read_metrics(d) for d in run_dirs}
    empty = {"ja": "学習ランを選んでください（損失曲線を重ねて表示します）。",
             "en": "Choose training runs to overlay their loss curves."}[lang]
    return metric_chart.loss_overlay(curves, y=y, title="Training loss" if lang == "en" else "学習損失",
                                     empty_message=empty)
