"""The Data tab's translation review: the machine-translated findings of a report file (what
``jmedlora reports translate`` wrote) beside their English source, the glossary terms each was
flagged for, and who translated and who corrected it; a reviewer corrects one line at a time.

The pipeline is ``pipelines/data/translation_review.py``. The page reads a file only where pages may
read (``page_paths``) and saves into it only where pages may rewrite files (``exports.editable_file``:
the workspace's ``reports/``); a file elsewhere opens read-only and says where to copy it. Opening a
file or a line is a view and a save an edit, each in the audit log."""
from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from components import notice
from pipelines.core import exports, page_paths
from pipelines.core.errors import UserError
from pipelines.data import translation_review as review
from workbench import users
from workbench.data_text import header
from workbench.field_errors import error_html, message
from workbench.state import AppState

Text = dict[str, str]
WHAT = "report file"
L: dict[str, Text] = {
    "section": {"ja": "4. 読影所見の翻訳確認", "en": "4. Review report translations"},
    "intro": {"ja": "`jmedlora reports translate` が英語の所見から作った日本語訳を、原文・用語集の指摘・翻訳元と並べて確認し、"
                    "修正します。修正は所見ファイルに保存され、機械訳は来歴として残ります。",
              "en": "Check the Japanese that `jmedlora reports translate` made from English findings, beside the "
                    "source, the glossary flags and who translated it, and correct it. Corrections are saved into "
                    "the report file; the machine's text stays in its provenance."},
    "file": {"ja": "所見ファイル（JSONL、ワークスペースの reports/ 内なら編集可）",
             "en": "Report file (JSONL; editable inside the workspace's reports/ folder)"},
    "flagged": {"ja": "用語集で要確認のものだけ", "en": "Only those the glossary flagged"},
    "open": {"ja": "開く", "en": "Open"},
    "rows": {"ja": "翻訳（行をクリックして確認・修正）", "en": "Translations (click a row to review)"},
    "id": {"ja": "行ID", "en": "Line id"},
    "en": {"ja": "英語の所見（原文）", "en": "English findings (source)"},
    "machine": {"ja": "機械訳（翻訳モデルの出力）", "en": "Machine translation (the model's text)"},
    "ja": {"ja": "日本語の所見（修正して保存）", "en": "Japanese findings (edit and save)"},
    "save": {"ja": "修正を保存", "en": "Save correction"},
}
COLS: dict[str, Text] = {
    "id": {"ja": "ID", "en": "ID"}, "en": {"ja": "英語の所見", "en": "English"},
    "ja": {"ja": "日本語の所見", "en": "Japanese"}, "missing": {"ja": "用語集で不足", "en": "glossary terms missing"},
    "model": {"ja": "翻訳モデル", "en": "translated by"}, "edited": {"ja": "修正者", "en": "corrected by"},
}
MSG: dict[str, Text] = {
    "count": {"ja": "機械訳 {n} 行 · 用語集で要確認 {flagged} 行 · 修正済み {edited} 行",
              "en": "{n} machine-translated lines · {flagged} flagged by the glossary · {edited} corrected"},
    "none": {"ja": "このファイルには機械訳の行がありません（`jmedlora reports translate` で作られた行だけが並びます）。",
             "en": "This file has no machine-translated line (only lines `jmedlora reports translate` wrote are listed)."},
    "no_file": {"ja": "所見ファイルのパスを入力するか、一覧から選んでください。",
                "en": "Type a report file's path or choose one from the list."},
    "no_line": {"ja": "表の行をクリックして、修正する行を選んでください。", "en": "Click a row of the table to choose a line."},
    "read_only": {"ja": "読み取り専用で開きました。", "en": "Opened read-only."},
    "saved": {"ja": "{id} の修正を保存しました。", "en": "Saved the correction of {id}."},
    "hint_ok": {"ja": "用語集の指摘はありません。", "en": "The glossary flags nothing."},
    "hint": {"ja": "用語集の訳語が見つかりません：{terms}", "en": "Glossary renderings missing: {terms}"},
    "provenance": {"ja": "翻訳：{model}（{endpoint}、{time}）", "en": "Translated by {model} ({endpoint}, {time})"},
    "edited": {"ja": " · 修正：{who}（{at}）", "en": " · corrected by {who} ({at})"},
}


def file_choices(state: AppState) -> list[str]:
    """The report files kept in the workspace's reports/ folder, newest first."""
    return [str(p) for p in review.find_files([state.workspace.root / exports.EDITABLE_SUBDIR])]


def refresh_files(state: AppState, current):
    """The file list as the tab opens: files copied into the workspace since; the newest chosen if none is."""
    files = file_choices(state)
    return gr.update(choices=files, value=current or (files[0] if files else None))


def _frame(rows: list[dict], lang: str) -> pd.DataFrame:
    return pd.DataFrame([[r["id"], r["findings_en"], r["findings_ja"], ", ".join(r["glossary_missing"]),
                          r["model"] or "", r["edited_by"] or ""] for r in rows], columns=header(COLS, lang))


def _checked(state: AppState, path) -> str:
    raw = str(path or "").strip()
    if not raw:
        raise UserError("No report file was given.", "Type its path or choose it from the list.",
                        code="translation.no_file", params={})
    return page_paths.readable(raw, state.workspace.root, WHAT)


def _editable(state: AppState, path: str) -> UserError | None:
    try:
        exports.editable_file(path, state.workspace.root, WHAT)
    except UserError as exc:
        return exc
    return None


def listing(state: AppState, path, only_flagged, lang: str, request: gr.Request = None):
    """(count, table, save button, message) for a report file; a view in the audit log."""
    return _listing(state, path, only_flagged, lang, users.current_user(request))


def refresh(state: AppState, path, only_flagged, lang: str, request: gr.Request = None):
    """(count, table, save button) again after a save: the table shows the correction."""
    return _listing(state, path, only_flagged, lang, users.current_user(request))[:3]


def relabel(state: AppState, path, only_flagged, lang: str):
    """(count, table) in another language: the words only, not another view of the file (not audited)."""
    if not str(path or "").strip():
        return "", pd.DataFrame(columns=header(COLS, lang))
    return _listing(state, path, only_flagged, lang, None)[:2]


def _listing(state: AppState, path, only_flagged, lang: str, who: str | None):
    empty = pd.DataFrame(columns=header(COLS, lang))
    try:
        path = _checked(state, path)
        rows = review.list_translations(path)
    except UserError as exc:
        return "", empty, gr.update(interactive=False), error_html(exc, {}, lang)
    if who is not None:
        users.record(state.workspace.root, who, "view", f"translations:{path}", lines=len(rows))
    shown = [r for r in rows if r["glossary_missing"]] if only_flagged else rows
    count = MSG["count"][lang].format(n=len(rows), flagged=sum(1 for r in rows if r["glossary_missing"]),
                                      edited=sum(1 for r in rows if r["edited_by"]))
    refused = _editable(state, path)
    msg = "" if rows else notice.notice("info", MSG["none"][lang])
    if refused is not None and rows:                   # readable, not writable here: say where it could be
        problem, fix = message(refused, {}, lang)
        msg = notice.notice("info", f"{MSG['read_only'][lang]} {problem}", fix, lang)
    return count, _frame(shown, lang), gr.update(interactive=refused is None and bool(rows)), msg


def _hint(row: dict, lang: str) -> str:
    if not row["glossary_missing"]:
        return MSG["hint_ok"][lang]
    terms = "、".join(f"{en} → {ja}" for en, ja in review.glossary_hints(row["glossary_missing"]))
    return MSG["hint"][lang].format(terms=terms)


def _provenance(row: dict, lang: str) -> str:
    text = MSG["provenance"][lang].format(model=row["model"] or "?", endpoint=row["endpoint"] or "?",
                                          time=row["time"] or "?")
    if row["edited_by"]:
        text += MSG["edited"][lang].format(who=row["edited_by"], at=row["edited_at"] or "?")
    return text


def _notes(row: dict, lang: str) -> str:
    """The glossary's word on the line and its provenance, as escaped HTML (names and URLs are data)."""
    return f'<div class="tr-notes">{html.escape(_hint(row, lang))}<br>{html.escape(_provenance(row, lang))}</div>'


def open_line(state: AppState, path, sample_id, lang: str, request: gr.Request = None):
    """(English, machine text, Japanese, notes, the Japanese as opened, message) of one line."""
    blank = ("", "", "", "", None)
    if not sample_id:
        return *blank, ""
    try:
        path = _checked(state, path)
        row = next((r for r in review.list_translations(path) if r["id"] == str(sample_id)), None)
    except UserError as exc:
        return *blank, error_html(exc, {}, lang)
    if row is None:
        return *blank, notice.error(MSG["no_line"][lang], lang=lang)
    users.record(state.workspace.root, users.current_user(request), "view", f"translation:{path}#{row['id']}")
    return row["findings_en"], row["machine_findings_ja"], row["findings_ja"], _notes(row, lang), row["findings_ja"], ""


def save(state: AppState, path, sample_id, text, opened, lang: str, request: gr.Request = None):
    """Save a correction: (message, notes, the Japanese now saved). Refused where the page may not write,
    and where someone else changed the line since it was opened."""
    if not sample_id:
        return notice.error(MSG["no_line"][lang], lang=lang), gr.update(), opened
    user = users.current_user(request)
    try:
        path = _checked(state, path)
        target = exports.editable_file(path, state.workspace.root, WHAT)
        row = review.save_translation(target, str(sample_id), text, who=user, expected=opened)
    except UserError as exc:
        return error_html(exc, {}, lang), gr.update(), opened
    users.record(state.workspace.root, user, "edit", f"translation:{target}#{row['id']}",
                 glossary_missing=len(row["glossary_missing"]))
    return (notice.notice("ok", MSG["saved"][lang].format(id=row["id"])),
            _notes(row, lang), row["findings_ja"])
