"""The round-two reproductions through the page's handlers: a logged-in user cannot make the server
read outside the workspace, the samples and the administrator's folders (pipelines/core/page_paths.py),
and a privacy scan of documents is in the access log."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from pipelines.core import audit
from pipelines.core.page_paths import ASSETS, ENV_VAR
from pipelines.data import store as datastore
from workbench import compare_eval, data_handlers, tab_merge, train_handlers
from workbench.state import AppState

REQUEST = SimpleNamespace(username="dr-sato")


@pytest.fixture
def other_workspace(tmp_path, monkeypatch):
    """Another team's workspace on the same server, with an export and a folder of patient documents."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    other = tmp_path / "other_ws"
    (other / "exports").mkdir(parents=True)
    (other / "exports" / "theirs.jsonl").write_text(
        json.dumps({"instruction": "問", "output": "答"}, ensure_ascii=False) + "\n", encoding="utf-8")
    (other / "docs").mkdir()
    (other / "docs" / "case.txt").write_text("患者：山田 太郎（65歳）、心不全で入院。", encoding="utf-8")
    return other


def _refused(html: str) -> None:
    assert "notice error" in html and "Traceback" not in html, html
    assert "読めるフォルダ" in html or "may read" in html, html


def test_importing_another_workspaces_export_is_refused(workspace, other_workspace):
    msg, _ = data_handlers.import_jsonl(AppState(workspace=workspace), str(other_workspace / "exports" / "theirs.jsonl"),
                                        "stolen", "ja", REQUEST)
    _refused(msg)
    assert datastore.count_records(workspace, "stolen") == 0


def _form(docs):
    return dict(docs=str(docs), dataset="d", model="default", url="", template="paper_en", pairs=3,
                max_tokens=512, max_req=0, pii=False)


def test_scanning_an_outside_folder_is_refused_and_shows_nothing(workspace, other_workspace):
    msg, found = data_handlers.scan(AppState(workspace=workspace), **_form(other_workspace / "docs"), lang="ja",
                                    request=REQUEST)
    _refused(msg)
    assert found.empty and "山田" not in msg


def test_a_scan_inside_is_audited_as_a_view_of_the_documents(workspace, other_workspace):
    docs = workspace.root / "docs"
    docs.mkdir()
    (docs / "case.txt").write_text("患者：山田 太郎（65歳）、心不全で入院。", encoding="utf-8")
    msg, found = data_handlers.scan(AppState(workspace=workspace), **_form(docs), lang="ja", request=REQUEST)
    assert len(found) == 1
    views = [e for e in audit.entries(workspace.root) if e["action"] == "view"]
    assert [(e["user"], e["object"], e["detail"]["findings"]) for e in views] == [("dr-sato", f"documents:{docs}", 1)]


def test_the_samples_stay_readable_and_an_allowed_folder_opens(workspace, other_workspace, monkeypatch):
    msg, _ = data_handlers.scan(AppState(workspace=workspace), **_form(ASSETS / "docs"), lang="en", request=REQUEST)
    assert "notice error" not in msg, msg
    monkeypatch.setenv(ENV_VAR, str(other_workspace / "docs"))
    msg, found = data_handlers.scan(AppState(workspace=workspace), **_form(other_workspace / "docs"), lang="en",
                                    request=REQUEST)
    assert len(found) == 1, msg


def test_compare_train_and_merge_refuse_outside_question_and_data_files(workspace, other_workspace, tiny_llama_dir):
    outside = other_workspace / "exports" / "theirs.jsonl"
    state = AppState(workspace=workspace)
    html = compare_eval.start(state, ["default"], ["0"], "ja", str(outside), 1, 16, "ja", request=REQUEST)[0]
    _refused(html)
    from tests.workbench.test_train_handlers import form
    html = train_handlers.launch(state, "cpu-tiny-lora", *form("cpu-tiny-lora", model=str(tiny_llama_dir),
                                                               data=str(outside)), "ja")[0]
    _refused(html)
    html = tab_merge.start(state, "ja", ["a", "b"], "", "linear", str(outside), "", 0.5, "ll_accuracy", 4)[0]
    _refused(html)
    assert not list(workspace.subdir("jobs").iterdir()) and not list(workspace.subdir("merges").iterdir())
