"""What a page may make the server read (pipelines/core/page_paths.py): the workspace, the sample assets,
folders the administrator allows; nothing else, links followed."""
from __future__ import annotations

import os

import pytest

from pipelines.core.errors import UserError
from pipelines.core.page_paths import ASSETS, ENV_VAR, readable, readable_reference


@pytest.fixture
def roots(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    ws, other = tmp_path / "ws", tmp_path / "other_ws"
    (ws / "exports").mkdir(parents=True)
    (other / "exports").mkdir(parents=True)
    (ws / "exports" / "mine.jsonl").write_text("{}\n")
    (other / "exports" / "theirs.jsonl").write_text("{}\n")
    return ws, other


def test_the_workspace_and_the_samples_are_readable(roots):
    ws, _ = roots
    assert readable(ws / "exports" / "mine.jsonl", ws, "import file") == str(ws / "exports" / "mine.jsonl")
    assert readable(ASSETS / "docs", ws, "document folder") == str(ASSETS / "docs")


@pytest.mark.parametrize("where", ["other workspace", "etc", "dotdot", "link"])
def test_anything_else_is_refused_links_followed(roots, where):
    ws, other = roots
    if where == "link":                               # a link inside the workspace does not open the outside
        (ws / "exports" / "door").symlink_to(other / "exports")
    path = {"other workspace": other / "exports" / "theirs.jsonl", "etc": "/etc/passwd",
            "dotdot": ws / ".." / "other_ws" / "exports" / "theirs.jsonl",
            "link": ws / "exports" / "door" / "theirs.jsonl"}[where]
    with pytest.raises(UserError) as err:
        readable(path, ws, "import file")
    assert err.value.code == "paths.outside" and ENV_VAR in err.value.fix


def test_the_administrator_can_allow_a_folder(roots, monkeypatch):
    ws, other = roots
    monkeypatch.setenv(ENV_VAR, os.pathsep.join(["/nonexistent", str(other / "exports")]))
    assert readable(other / "exports" / "theirs.jsonl", ws, "import file")


def test_a_reference_that_is_a_name_is_not_a_path(roots):
    ws, _ = roots
    assert readable_reference("demo@v2", ws, "training data") == "demo@v2"
    assert readable_reference(None, ws, "evaluation data") is None
    with pytest.raises(UserError):
        readable_reference("/etc/hosts.jsonl", ws, "training data")
