"""The one message box of the workbench: info, success and errors, in Japanese or English.

Every problem a user can fix reaches the page the same way: what went wrong, then the fix
on its own line after「→ 対処:」/「→ Fix:」, escaped, announced to screen readers
(``role="alert"``). Handlers pass plain strings; this module knows nothing of pipelines.
"""
from __future__ import annotations

import html

CSS = """
.notice{border-radius:8px;padding:8px 10px;margin:4px 0;white-space:pre-wrap;color:#1f2328;border:1px solid}
.notice.error{background:#ffebe9;border-color:#cf222e}
.notice.info{background:#ddf4ff;border-color:#0969da}
.notice.ok{background:#dafbe1;border-color:#1a7f37}
.notice .fix{display:block;margin-top:4px;font-weight:600}
"""
KINDS = ("error", "info", "ok")
FIX = {"ja": "→ 対処: ", "en": "→ Fix: "}
UNEXPECTED = {
    "ja": "予期しないエラーが起きました（{kind}）。操作内容は失われていません。詳細はワークベンチを起動した端末のログにあります。",
    "en": "An unexpected error occurred ({kind}). Nothing you made was lost; the details are in the log of the "
          "terminal that started the workbench.",
}


def notice(kind: str, text: str, fix: str | None = None, lang: str = "ja") -> str:
    """HTML for a message box; ``fix`` (optional) is shown on its own line."""
    kind = kind if kind in KINDS else "info"
    fix_html = f'<span class="fix">{html.escape(FIX.get(lang, FIX["en"]) + fix)}</span>' if fix else ""
    role = "alert" if kind == "error" else "status"
    return f'<div class="notice {kind}" role="{role}">{html.escape(text)}{fix_html}</div>'


def error(problem: str, fix: str | None = None, lang: str = "ja") -> str:
    return notice("error", problem, fix, lang)


def unexpected(kind: str, lang: str = "ja") -> str:
    """For a bug, not a user mistake: no traceback in the page, a pointer to the server log."""
    return notice("error", UNEXPECTED.get(lang, UNEXPECTED["en"]).format(kind=kind))
