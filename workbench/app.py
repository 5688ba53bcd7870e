"""The workbench app: a header (workspace, embedded-model status, language switch) over the
Data, Train, Compare, Charts, Merge and Reports tabs. ``build_app`` makes the Blocks; ``launch.py`` serves it.
"""
from __future__ import annotations

import html

import gradio as gr

from components import answer_card, metric_table, notice, report_view, run_monitor
from workbench import (
    audit_view,
    compare_nearest,
    merge_report,
    tab_charts,
    tab_compare,
    tab_data,
    tab_merge,
    tab_reports,
    tab_train,
    users,
)
from workbench.i18n import LANGS, Labels
from workbench.state import AppState

L = {
    "title": {"ja": "# JMedLoRA ワークベンチ\n医療文書から学習データを作り、LoRA/QLoRA で学習し、医師国家試験形式の問題で評価・比較します（すべてこのマシン上で実行）。",
              "en": "# JMedLoRA Workbench\nFrom medical documents to instruction data, LoRA/QLoRA training, and licensing-exam evaluation — all on this machine."},
    "lang": {"ja": "表示言語 / Language", "en": "Language / 表示言語"},
    "data": {"ja": "データ", "en": "Data"},
    "train": {"ja": "学習", "en": "Train"},
    "compare": {"ja": "比較", "en": "Compare"},
    "charts": {"ja": "グラフ", "en": "Charts"},
}
STATUS = {
    "preparing": {"ja": "既定モデル（SmolLM2-135M-Instruct）を準備中…（初回のみ約30秒、その間も操作できます）",
                  "en": "Preparing the default model (SmolLM2-135M-Instruct)… (first start only, ~30 s; the app is usable meanwhile)"},
    "ready": {"ja": "既定モデル：準備完了", "en": "Default model: ready"},
    "failed": {"ja": "既定モデルを準備できませんでした：", "en": "The default model could not be prepared: "},
    "idle": {"ja": "", "en": ""},
    "workspace": {"ja": "ワークスペース", "en": "Workspace"},
    "user": {"ja": "利用者", "en": "User"},
}
CSS = answer_card.CSS + compare_nearest.CSS + metric_table.CSS + run_monitor.CSS + notice.CSS + report_view.CSS + """
#wb-status{font-size:13px}
.notice{margin:4px 0}
footer{display:none !important}
"""


def status_html(state: AppState, lang: str, user: str | None = None) -> str:
    s = state.default_status
    icon = {"preparing": "●", "ready": "●", "failed": "▲"}.get(s, "")
    color = {"preparing": "#9a6700", "ready": "#1a7f37", "failed": "#cf222e"}.get(s, "#57606a")
    text = STATUS[s][lang] + (state.default_error if s == "failed" else "")
    who = f' · {STATUS["user"][lang]}: <b id="wb-user">{html.escape(user)}</b>' if user else ""
    return (f'<div id="wb-status-inner" data-status="{s}"><span style="color:{color}">{icon}</span> {html.escape(text)} · '
            f'{STATUS["workspace"][lang]}: <code>{html.escape(str(state.workspace.root))}</code>{who}</div>')


def build_app(state: AppState) -> gr.Blocks:
    t = Labels(state.lang)
    with gr.Blocks(title="JMedLoRA Workbench", analytics_enabled=False) as demo:
        lang = gr.State(state.lang)
        with gr.Row(equal_height=True):
            with gr.Column(scale=5):
                t.make(gr.Markdown, L["title"])
            with gr.Column(scale=1, min_width=180):
                switch = gr.Radio(choices=[("日本語", "ja"), ("English", "en")], value=state.lang,
                                  label=t(L["lang"]), elem_id="lang-switch")
        status = gr.HTML(status_html(state, state.lang), elem_id="wb-status")
        audit = audit_view.create_audit_view(state, t, lang)
        status_timer = gr.Timer(2.0, active=state.default_status == "preparing")
        with gr.Tabs(elem_id="tabs") as tabs:
            with t.tab(L["data"], id="data", elem_id="tab-data") as data_tab:
                data = tab_data.create_data_tab(state, t, lang)
            with t.tab(L["train"], id="train", elem_id="tab-train"):
                train = tab_train.create_train_tab(state, t, lang)
            with t.tab(L["compare"], id="compare", elem_id="tab-compare") as compare_tab:
                compare = tab_compare.create_compare_tab(state, t, lang)
            with t.tab(L["charts"], id="charts", elem_id="tab-charts") as charts_tab:
                charts = tab_charts.create_charts_tab(state, t, lang)
            with t.tab(tab_merge.L["tab"], id="merge", elem_id="tab-merge") as merge_tab:
                merge = tab_merge.create_merge_tab(state, t, lang, compare=compare, tab=merge_tab)
            with t.tab(tab_reports.TAB, id="reports", elem_id="tab-reports") as reports_tab:
                reports = tab_reports.create_reports_tab(state, t, lang, tab=reports_tab)
        # A report merge's "open in the Reports view": wired once both tabs exist.
        merge_report.wire_open_in_reports(state, lang, merge, reports, tabs)

        def poll_status(lang_, request: gr.Request):
            return (status_html(state, lang_, users.current_user(request)),
                    gr.Timer(active=state.default_status == "preparing"))

        status_timer.tick(poll_status, [lang], [status, status_timer], show_progress="hidden")

        registered = t.components

        def switch_lang(choice, request: gr.Request):
            return [choice, status_html(state, choice, users.current_user(request)), *t.updates(choice)]

        # Labels first, then everything a tab renders with words in it (tables, progress, charts).
        switched = switch.change(switch_lang, [switch], [lang, status, *registered])
        # <html lang> follows: screen readers read Japanese as Japanese, and Chromium picks Japanese
        # glyph shapes for kanji (not the Chinese forms it may choose under lang="en").
        switch.change(None, [switch], None, js="(l) => { document.documentElement.lang = l; }")
        for tab in (data, train):
            fn, ins, outs = tab["rerender"]
            switched = switched.then(fn, ins, outs)

        def from_query(request: gr.Request):
            asked = (request.query_params.get("lang") if request else None) or state.lang
            return asked if asked in LANGS else state.lang

        demo.load(from_query, None, [switch])
        demo.load(poll_status, [lang], [status, status_timer])
        demo.load(*audit["on_load"])

        # Tabs show what is on disk now: lists refresh whenever a tab is opened.
        refresh_lists, update, inputs, outputs, r_in, r_out = charts["refresh"]
        charts_tab.select(refresh_lists, r_in, r_out).then(update, inputs, outputs).then(*charts["compute"]).then(
            *charts["insights"]).then(*charts["contamination"])
        demo.load(update, inputs, outputs)
        demo.load(*charts["compute"])
        demo.load(*charts["insights"])
        compare_tab.select(lambda: (gr.update(choices=state.model_choices()),
                                    gr.update(choices=tab_compare.evaluation_choices(state))),
                           None, [compare["checkpoints"], compare["shown"]])
        fn, ins, outs = data["on_load"]
        demo.load(fn, ins, outs)
        data_tab.select(fn, ins, outs)
        data_tab.select(*data["report_files"])
        fn, ins, outs = compare["on_load"]           # re-attach to an evaluation batch still running
        demo.load(fn, ins, outs)
    # No public API: the page is the interface. Gradio embeds the API description (with every
    # dropdown's choices: run names, paths) even in the login page, so none may be published.
    for fn in demo.fns.values():
        fn.api_visibility = "private"
    return demo
