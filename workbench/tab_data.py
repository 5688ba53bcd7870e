"""Data tab: documents → privacy check → instruction data → curation → export.

Built over ``pipelines.datagen`` / ``curate`` / ``datastore`` / ``privacy`` (issue 3). Where
those are not installed yet the tab says so instead of failing."""
from __future__ import annotations

import importlib.util

import gradio as gr

from workbench.i18n import Labels
from workbench.state import AppState

NEEDED = ("pipelines.datagen", "pipelines.curate", "pipelines.datastore", "pipelines.privacy")
L = {
    "missing": {"ja": "### データ\nこのタブはデータ生成パイプライン（{mods}）を使いますが、まだインストールされていません。",
                "en": "### Data\nThis tab runs the data pipelines ({mods}), which are not installed yet."},
}


def missing_modules() -> list[str]:
    return [m for m in NEEDED if importlib.util.find_spec(m) is None]


def create_data_tab(state: AppState, t: Labels, lang: gr.State) -> dict:
    missing = missing_modules()
    if missing:
        mods = ", ".join(missing)
        t.make(gr.Markdown, {k: v.format(mods=mods) for k, v in L["missing"].items()}, elem_id="data-missing")
        return {}
    return {}
