"""Reviewing machine translations: the files offered, the glossary hints, where a page may save
(the workspace's reports/ and exports, never the samples, a read-only share or through a link), and
two reviewers on one line (the second save is refused, not lost)."""
from __future__ import annotations

import os
import threading

import pytest

from pipelines.core import exports
from pipelines.core.errors import UserError
from pipelines.core.repo import ASSETS
from pipelines.data import translation_review as review
from pipelines.tasks import reports
from tests.pipelines.translated_reports import write_translated


def test_files_under_the_reports_folder_newest_first_links_skipped(workspace, tmp_path):
    reports_dir = workspace.subdir("reports")
    old = write_translated(reports_dir / "iu", "old.jsonl")
    new = write_translated(reports_dir / "mimic" / "p10", "new.jsonl")
    os.utime(old, (1, 1))
    outside = write_translated(tmp_path / "elsewhere")
    os.symlink(outside, reports_dir / "linked.jsonl")
    os.symlink(outside.parent, reports_dir / "linked_dir")
    assert review.find_files([reports_dir, tmp_path / "missing"]) == [new, old]


def test_listing_carries_provenance_and_the_glossary_renderings(tmp_path):
    path = write_translated(tmp_path / "cxr")
    rows = review.list_translations(path)
    assert [r["id"] for r in rows] == ["r1", "r2", "r3"]                   # r4 was written by a person
    assert rows[0]["model"] == "fake-model" and rows[0]["edited_by"] is None
    assert [r["id"] for r in review.list_translations(path, only_flagged=True)] == ["r1", "r3"]
    assert review.glossary_hints(["pleural effusion", "consolidation"]) == [("pleural effusion", "胸水"),
                                                                            ("consolidation", "浸潤影")]
    assert review.glossary_hints(["not a term"]) == [("not a term", "?")]


def test_a_page_saves_only_inside_the_workspace_reports_or_exports(workspace, tmp_path, monkeypatch):
    inside = write_translated(workspace.subdir("reports") / "cxr")
    assert exports.editable_file(inside, workspace.root, "report file") == inside
    exported = write_translated(workspace.subdir("exports") / "cxr")
    assert exports.editable_file(exported, workspace.root, "report file") == exported
    share = write_translated(tmp_path / "share")
    for path in (share, ASSETS / "reports" / "sample_ja.jsonl", workspace.root / "registry.sqlite"):
        with pytest.raises(UserError) as info:
            exports.editable_file(path, workspace.root, "report file")
        assert info.value.code == "edit.outside" and str(workspace.root / "reports") in info.value.fix
    monkeypatch.setenv(exports.ENV_VAR, str(tmp_path / "share"))           # the administrator allows it
    assert exports.editable_file(share, workspace.root, "report file") == share


def test_links_folders_and_traversal_are_refused(workspace, tmp_path):
    reports_dir = workspace.subdir("reports")
    outside = write_translated(tmp_path / "elsewhere")
    os.symlink(outside, reports_dir / "link.jsonl")
    os.symlink(outside.parent, reports_dir / "linkdir")
    (reports_dir / "folder.jsonl").mkdir()
    cases = {reports_dir / "link.jsonl": "edit.symlink", reports_dir / "linkdir" / outside.name: "edit.symlink",
             reports_dir / "folder.jsonl": "edit.not_a_file", reports_dir / "missing.jsonl": "edit.not_a_file",
             f"{reports_dir}/../../elsewhere/{outside.name}": "edit.outside"}
    for path, code in cases.items():
        with pytest.raises(UserError) as info:
            exports.editable_file(path, workspace.root, "report file")
        assert info.value.code == code, path


def test_a_line_changed_by_someone_else_is_not_overwritten(tmp_path):
    path = write_translated(tmp_path / "cxr")
    opened = review.list_translations(path)[0]["findings_ja"]
    review.save_translation(path, "r1", "軽度の心拡大。胸水なし。", who="dr-sato", expected=opened)
    with pytest.raises(UserError) as info:
        review.save_translation(path, "r1", "心拡大。", who="dr-kato", expected=opened)
    assert info.value.code == "translation.changed"
    row = {r["id"]: r for r in review.list_translations(path)}["r1"]
    assert row["findings_ja"] == "軽度の心拡大。胸水なし。" and row["edited_by"] == "dr-sato" and row["edited_at"]
    assert row["machine_findings_ja"] == "軽度の心拡大を認める。" and row["glossary_missing"] == []


def test_saves_from_many_threads_each_land(tmp_path):
    """Each save rewrites the whole file; the lock keeps one from dropping another's line."""
    path = write_translated(tmp_path / "cxr")
    texts = {"r1": "心拡大あり。胸水なし。", "r2": "急性病変なし。", "r3": "右下葉に浸潤影。"}
    threads = [threading.Thread(target=review.save_translation, args=(path, i, t), kwargs={"who": f"dr-{i}"})
               for i, t in texts.items() for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    saved = {s.id: s for s in reports.load_reports(path)}
    assert {i: saved[i].findings_ja for i in texts} == texts and saved["r4"].findings_ja == "人が書いた所見。"
    assert not list(path.parent.glob("*.partial"))
