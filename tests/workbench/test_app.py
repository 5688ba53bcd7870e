"""The app builds on an empty workspace, every label exists in both languages, and the
import direction holds (pipelines never import gradio; components never import pipelines)."""
import ast
from pathlib import Path

import pytest

from workbench import (app, i18n, tab_charts, tab_compare, tab_data, tab_merge, tab_reports, tab_train,
                       train_distributed)
from workbench.state import AppState

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", [app, tab_compare, tab_charts, tab_data, tab_train, tab_merge, tab_reports,
                                    train_distributed])
def test_every_label_has_japanese_and_english(module):
    for name in ("L", "MSG", "STATUS", "STATES"):
        for key, text in getattr(module, name, {}).items():
            assert set(text) == set(i18n.LANGS), f"{module.__name__}.{name}[{key!r}]"
            assert all(v.strip() or key == "idle" for v in text.values())


@pytest.mark.smoke
def test_app_builds_on_an_empty_workspace_and_switches_language(workspace):
    state = AppState(workspace=workspace, lang="en")
    demo = app.build_app(state)
    assert demo.title == "JMedLoRA Workbench"
    labels = i18n.Labels("ja")
    import gradio as gr
    with gr.Blocks():
        button = labels.make(gr.Button, {"ja": "実行", "en": "Run"})
        box = labels.make(gr.Textbox, {"ja": "名前", "en": "Name"}, info={"ja": "説明", "en": "Help"})
    assert button.value == "実行" and box.label == "名前" and box.info == "説明"
    assert labels.updates("en") == [{"__type__": "update", "value": "Run"},
                                    {"__type__": "update", "label": "Name", "info": "Help"}]


def test_status_line_names_the_workspace(workspace):
    state = AppState(workspace=workspace)
    state.default_status = "failed"
    state.default_error = "no <gguf>"
    html = app.status_html(state, "en")
    assert str(workspace.root) in html and "no &lt;gguf&gt;" in html and 'data-status="failed"' in html


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_imports_flow_one_way():
    for f in (REPO / "pipelines").rglob("*.py"):
        assert not _imports(f) & {"gradio", "workbench", "components"}, f.name
    for f in (REPO / "components").glob("*.py"):
        assert not _imports(f) & {"gradio", "workbench", "pipelines"}, f.name
