"""The audit trail for administrators: a read-only table of ``pipelines.core.audit`` entries, newest
first, with the chain's verification. Hidden from everyone whose role is not "admin"; the
handler checks the role again, so a hidden widget is not the only guard."""
from __future__ import annotations

import json

import gradio as gr
import pandas as pd

from components import notice
from pipelines.core import audit
from workbench import users
from workbench.i18n import Labels
from workbench.state import AppState
from workbench.wiring import bind

L = {
    "title": {"ja": "監査ログ（管理者のみ・読み取り専用）", "en": "Audit log (administrators only, read-only)"},
    "refresh": {"ja": "↻ 再読み込みと検証", "en": "↻ Reload and verify"},
}
COLS = {"seq": {"ja": "番号", "en": "seq"}, "time": {"ja": "日時（UTC）", "en": "time (UTC)"},
        "user": {"ja": "利用者", "en": "user"}, "action": {"ja": "操作", "en": "action"},
        "object": {"ja": "対象", "en": "object"}, "detail": {"ja": "詳細", "en": "detail"}}
ACTIONS = {"login": "ログイン", "login_failed": "ログイン失敗", "login_locked": "ログインのロック", "logout": "ログアウト",
           "view": "閲覧", "generate": "データ生成", "edit": "編集", "review": "確認", "export": "書き出し",
           "import": "取り込み", "train": "学習", "evaluate": "評価", "rate": "評価入力", "merge": "マージ",
           "serve": "サーバー", "admin": "管理"}
VERDICT = {"ok": {"ja": "改ざんなし：{n} 件、連鎖と先頭が一致しています。", "en": "Intact: {n} entries, chain and head agree."},
           "bad": {"ja": "改ざんの可能性があります：", "en": "The log was tampered with:"},
           "denied": {"ja": "監査ログは管理者だけが見られます。", "en": "Only administrators can see the audit log."}}
LIMIT = 500


def view(state: AppState, lang: str, request: gr.Request = None):
    """(verification notice, entries table) for an administrator; nothing for anyone else."""
    cols = [c[lang] for c in COLS.values()]
    if not users.is_admin(state.workspace.root, users.current_user(request)):
        return notice.error(VERDICT["denied"][lang], lang=lang), pd.DataFrame(columns=cols)
    verdict = audit.verify(state.workspace.root)
    text = (notice.notice("ok", VERDICT["ok"][lang].format(n=verdict.checked)) if verdict.ok else
            notice.error(VERDICT["bad"][lang] + "\n" + "\n".join(verdict.problems), lang=lang))
    rows = [[e.get("seq"), e.get("time"), e.get("user"),
             ACTIONS.get(e.get("action"), e.get("action")) if lang == "ja" else e.get("action"), e.get("object"),
             json.dumps(e.get("detail") or {}, ensure_ascii=False)]
            for e in reversed(audit.entries(state.workspace.root)[-LIMIT:])]
    return text, pd.DataFrame(rows, columns=cols)


def visible_for(state: AppState, request: gr.Request = None):
    return gr.update(visible=users.is_admin(state.workspace.root, users.current_user(request)))


def create_audit_view(state: AppState, t: Labels, lang: gr.State) -> dict:
    with t.make(gr.Accordion, L["title"], open=False, visible=False, elem_id="audit-view") as box:
        refresh = t.make(gr.Button, L["refresh"], elem_id="audit-refresh")
        verdict = gr.HTML(elem_id="audit-verdict")
        table = gr.Dataframe(interactive=False, wrap=True, max_height=400, elem_id="audit-table")
    refresh.click(bind(view, state), [lang], [verdict, table])
    return {"box": box, "on_load": (bind(visible_for, state), None, [box])}
