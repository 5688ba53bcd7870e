"""The Data tab's translation review (no browser): a file in the workspace's reports/ opens with
its counts and saves a correction (audited, shown in the table); the samples and a read-only share
open read-only and say where to copy the file; a stale edit, an empty text and a hostile path are
refused in the page's language; nothing on the page is in the other language."""
from types import SimpleNamespace

import pytest

from pipelines.core import audit, page_paths
from pipelines.core.repo import ASSETS
from pipelines.tasks import reports
from tests.pipelines.translated_reports import write_translated
from workbench import data_translations as tr
from workbench import i18n
from workbench.state import AppState


def as_user(name):
    return SimpleNamespace(username=name)


@pytest.fixture
def translated(workspace):
    return write_translated(workspace.subdir("reports") / "cxr")


@pytest.mark.parametrize("name", ["L", "COLS", "MSG"])
def test_every_word_has_japanese_and_english(name):
    for key, text in getattr(tr, name).items():
        assert set(text) == set(i18n.LANGS) and all(v.strip() for v in text.values()), f"{name}[{key!r}]"


def test_open_a_file_list_flagged_lines_and_audit_the_view(workspace, translated):
    state = AppState(workspace)
    assert tr.file_choices(state) == [str(translated)]
    count, frame, save_btn, msg = tr.listing(state, str(translated), False, "ja", as_user("dr-sato"))
    assert count == "機械訳 3 行 · 用語集で要確認 2 行 · 修正済み 0 行" and msg == ""
    assert list(frame.columns) == ["ID", "英語の所見", "日本語の所見", "用語集で不足", "翻訳モデル", "修正者"]
    assert list(frame["ID"]) == ["r1", "r2", "r3"] and frame.iloc[0]["用語集で不足"] == "pleural effusion"
    assert save_btn["interactive"] is True
    _, flagged, *_ = tr.listing(state, str(translated), True, "en", as_user("dr-sato"))
    assert list(flagged["ID"]) == ["r1", "r3"] and "glossary terms missing" in flagged.columns
    views = [e for e in audit.entries(workspace.root) if e["action"] == "view"]
    assert [(e["user"], e["object"]) for e in views] == [("dr-sato", f"translations:{translated}")] * 2
    # The language switch re-labels the table without counting as another view.
    count, frame = tr.relabel(state, str(translated), False, "en")
    assert count.startswith("3 machine-translated lines") and frame.columns[1] == "English"
    assert len([e for e in audit.entries(workspace.root) if e["action"] == "view"]) == 2


def test_open_a_line_correct_it_and_see_the_correction(workspace, translated):
    state = AppState(workspace)
    en, machine, ja, notes, opened, msg = tr.open_line(state, str(translated), "r1", "ja", as_user("dr-sato"))
    assert en == "Mild cardiomegaly. No pleural effusion." and machine == ja == opened == "軽度の心拡大を認める。"
    assert "pleural effusion → 胸水" in notes and "翻訳：fake-model" in notes and msg == ""
    msg, notes, opened = tr.save(state, str(translated), "r1", "軽度の心拡大を認める。胸水なし。", opened, "ja",
                                 as_user("dr-sato"))
    assert "r1 の修正を保存しました" in msg and "用語集の指摘はありません" in notes and "修正：dr-sato" in notes
    assert opened == "軽度の心拡大を認める。胸水なし。"
    count, frame, _ = tr.refresh(state, str(translated), False, "ja", as_user("dr-sato"))
    assert "修正済み 1 行" in count and "要確認 1 行" in count and frame.iloc[0]["修正者"] == "dr-sato"
    saved = {s.id: s for s in reports.load_reports(translated)}["r1"]
    assert saved.findings_ja == "軽度の心拡大を認める。胸水なし。"
    assert saved.metadata["translation"]["machine_findings_ja"] == "軽度の心拡大を認める。"
    edits = [e for e in audit.entries(workspace.root) if e["action"] == "edit"]
    assert [(e["user"], e["object"]) for e in edits] == [("dr-sato", f"translation:{translated}#r1")]
    # A second reviewer who opened the line before that save is refused, and told why, in Japanese.
    msg, _, kept = tr.save(state, str(translated), "r1", "心拡大。", "軽度の心拡大を認める。", "ja", as_user("dr-kato"))
    assert "別の人が変更しました" in msg and "notice error" in msg and kept == "軽度の心拡大を認める。"
    msg, *_ = tr.save(state, str(translated), "r1", "   ", opened, "en", as_user("dr-kato"))
    assert "cannot be empty" in msg
    msg, *_ = tr.save(state, str(translated), "", "x", None, "ja")
    assert "表の行をクリック" in msg


def test_samples_and_a_read_only_share_open_read_only(workspace, tmp_path, monkeypatch):
    state = AppState(workspace)
    share = write_translated(tmp_path / "share")
    monkeypatch.setenv(page_paths.ENV_VAR, str(tmp_path / "share"))
    count, frame, save_btn, msg = tr.listing(state, str(share), False, "ja")
    assert len(frame) == 3 and save_btn["interactive"] is False
    assert "読み取り専用で開きました" in msg and "notice info" in msg and str(workspace.root / "reports") in msg
    _, _, _, _, opened, _ = tr.open_line(state, str(share), "r1", "ja")
    msg, *_ = tr.save(state, str(share), "r1", "心拡大。", opened, "ja")
    assert "この画面からは変更できません" in msg and "notice error" in msg
    assert {s.id: s for s in reports.load_reports(share)}["r1"].findings_ja == "軽度の心拡大を認める。"
    # The shipped samples carry no machine translation: the page says what would be listed.
    _, frame, save_btn, msg = tr.listing(state, str(ASSETS / "reports" / "sample_ja.jsonl"), False, "ja")
    assert frame.empty and save_btn["interactive"] is False and "機械訳の行がありません" in msg


@pytest.mark.parametrize("path,words", [("", "所見ファイルが指定されていません"),
                                        ("/etc/passwd", "この画面から読めるフォルダ"),
                                        ("{ws}/registry.sqlite", "1 行目（行全体）：UTF-8 ではありません")])
def test_bad_paths_are_named_in_japanese(workspace, path, words):
    count, frame, save_btn, msg = tr.listing(AppState(workspace), path.format(ws=workspace.root), False, "ja")
    assert words in msg and "notice error" in msg and frame.empty and save_btn["interactive"] is False
    assert "Traceback" not in msg
