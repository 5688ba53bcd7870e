"""Training runs as the Train and Charts tabs see them: the workspace's runs (via
``pipelines.training.runs``) and their metrics, with chart words in the page's language."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from components import metric_chart
from components.run_monitor import status_word
from pipelines.training import runs as train_runs
from pipelines.training.metrics import read_metrics as read

TEXT = {
    "empty": {"ja": "学習ランを選んでください（損失曲線を重ねて表示します）。",
              "en": "Choose training runs to overlay their loss curves."},
    "title": {"ja": "学習損失", "en": "Training loss"},
    "step": {"ja": "ステップ", "en": "step"},
    "loss": {"ja": "損失", "en": "loss"},
}


def list_runs(ws) -> list[dict]:
    return train_runs.list_runs(ws)


def run_choices(ws, lang: str = "en") -> list[tuple[str, str]]:
    """(label, run_dir), newest first."""
    return [(f"{r['run_name']} · {status_word(r['status'], lang)} · {r.get('step', 0)}/{r.get('max_steps') or '?'}",
             r["run_dir"]) for r in list_runs(ws)]


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    return pd.DataFrame(read(run_dir).records)


def loss_figure(ws, run_dirs: list[str], lang: str = "ja", y: str = "loss"):
    names = {r["run_dir"]: r["run_name"] for r in list_runs(ws)}
    curves = {names.get(d, Path(d).name): read_metrics(d) for d in run_dirs}
    return metric_chart.loss_overlay(curves, y=y, title=TEXT["title"][lang], x_title=TEXT["step"][lang],
                                     y_title=TEXT.get(y, {}).get(lang, y), empty_message=TEXT["empty"][lang])
