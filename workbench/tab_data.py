"""Data tab: documents → privacy check → instruction data (local model or an OpenAI-compatible
endpoint) → curation (filters, search, accept/reject/edit with an audit trail) → statistics
→ export. Layout and wiring only: the handlers are ``workbench.data_handlers``.

Generation runs as a job (``pipelines.core.jobs``: ``jmedlora datagen …`` in its own
process, which serves a local model itself when no endpoint is given); this tab shows its
command, reads its ``status.json`` / ``events.jsonl``, and re-attaches after a restart."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from pipelines.data import curate
from pipelines.data import generate as datagen
from pipelines.data import store as datastore
from workbench import data_handlers as h
from workbench.data_text import (
    FIELDS,
    FILTER_WORDS,
    FINDING_COLS,
    FORMAT_WORDS,
    HINTS,
    HISTORY_COLS,
    MSG,
    RECORD_COLS,
    STATUS_WORDS,
    header,
)
from workbench.i18n import Labels
from workbench.state import AppState
from workbench.wiring import bind

REPO = Path(__file__).resolve().parent.parent
L = {
    "intro": {"ja": "### 学習データ\n医療文書から質問・回答ペアを生成し、確認・修正して書き出します。既定では文書はこのマシンの外に出ません。\n"
                    "内蔵モデル（135M）は小さく、ペアの多くは文書の文をなぞったもので、形式は正しくても医学的な価値はありません。必ず確認してください。"
                    "1チャンク3ペア・512トークンなら、サンプル文書（12チャンク）が2コアCPUで5〜6分です。",
              "en": "### Instruction data\nGenerate question/answer pairs from medical documents, review and edit them, export. By default nothing leaves this machine.\n"
                    "The embedded 135M model is small: its pairs mostly echo sentences of the documents, in the right format but of no medical value. Review every record. "
                    "With 3 pairs and 512 tokens per chunk, the 12 sample chunks take 5 to 6 minutes on a 2-core CPU."},
    "gen": {"ja": "1. 生成", "en": "1. Generate"},
    "scan": {"ja": "個人情報チェック", "en": "Privacy check"},
    "generate": {"ja": "▶ 生成", "en": "▶ Generate"},
    "stop": {"ja": "■ 停止", "en": "■ Stop"},
    "findings": {"ja": "個人情報の検出結果", "en": "Privacy-guard findings"},
    "command": {"ja": "生成のコマンド（同じ生成をターミナルで実行）", "en": "Generation command (the same run from a terminal)"},
    "import_path": {"ja": "既存の Alpaca JSONL ファイルを取り込む", "en": "Import an existing Alpaca JSONL file"},
    "import_btn": {"ja": "取り込む", "en": "Import"},
    "curate": {"ja": "2. 確認・修正", "en": "2. Curate"},
    "ds": {"ja": "データセット", "en": "Dataset"},
    "filters_btn": {"ja": "フィルタを実行（重複・短すぎ・非日本語など）", "en": "Run filters (duplicates, too short, not Japanese, …)"},
    "status": {"ja": "状態", "en": "Status"},
    "flag": {"ja": "フィルタ", "en": "Flag"},
    "search": {"ja": "検索", "en": "Search"},
    "page": {"ja": "ページ", "en": "Page"},
    "records": {"ja": "レコード（行をクリックして編集）", "en": "Records (click a row to edit)"},
    "rid": {"ja": "レコードID", "en": "Record id"},
    "save": {"ja": "編集を保存", "en": "Save edit"},
    "accept": {"ja": "✓ 採用", "en": "✓ Accept"},
    "reject": {"ja": "✗ 除外", "en": "✗ Reject"},
    "history": {"ja": "変更履歴（監査証跡）", "en": "History (audit trail)"},
    "stats": {"ja": "3. 統計・書き出し", "en": "3. Statistics and export"},
    "scope": {"ja": "書き出す範囲（表示中の状態フィルタに合わせて選ばれます）",
              "en": "What to export (follows the status filter you are viewing)"},
    "export": {"ja": "⬇ 書き出し", "en": "⬇ Export"},
    "download": {"ja": "書き出したファイル（クリックでダウンロード）", "en": "Exported file (click to download)"},
}


def status_choices(lang: str) -> list[tuple[str, str]]:
    all_ = {"ja": "（すべて）", "en": "(all)"}[lang]
    return [(all_, ""), *((STATUS_WORDS[s][lang], s) for s in datastore.STATUSES)]


def flag_choices(lang: str) -> list[tuple[str, str]]:
    all_ = {"ja": "（すべて）", "en": "(all)"}[lang]
    return [(all_, ""), *((FILTER_WORDS[f][lang], f) for f in ("any", "clean", *curate.FILTERS))]


def scope_choices(lang: str) -> list[tuple[str, str]]:
    return [(MSG[f"scope_{s}"][lang], s) for s in h.SCOPES]


def format_choices(lang: str) -> list[tuple[str, str]]:
    return [(FORMAT_WORDS[f][lang], f) for f in h.FORMATS]


def choices_for(lang: str):
    """The translated choices of the filter, scope and format widgets (values stay the pipeline's keys)."""
    return (gr.update(choices=status_choices(lang)), gr.update(choices=flag_choices(lang)),
            gr.update(choices=scope_choices(lang)), gr.update(choices=format_choices(lang)))


def create_data_tab(state: AppState, t: Labels, lang: gr.State) -> dict:
    ws, lg = state.workspace, t.lang
    t.make(gr.Markdown, L["intro"])
    with t.make(gr.Accordion, L["gen"], open=True):
        with gr.Row():
            docs = t.make(gr.Textbox, FIELDS["docs"], value=str(REPO / "assets" / "docs"), scale=3, elem_id="data-docs")
            dataset = t.make(gr.Textbox, FIELDS["dataset"], value="demo", scale=1, elem_id="data-dataset")
        with gr.Row():
            gen_model = t.make(gr.Textbox, FIELDS["model"], value="default", scale=2, elem_id="data-gen-model")
            base_url = t.make(gr.Textbox, FIELDS["base_url"], value="", scale=2, elem_id="data-base-url")
            template = t.make(gr.Dropdown, FIELDS["template"], choices=datagen.available_templates(),
                              value=datagen.DatagenConfig.template, scale=1)
            # The form starts on the embedded model, so its sizes are ones that finish in minutes on a CPU;
            # the hints give the paper's (for an endpoint such as ChatGPT).
            pairs = t.make(gr.Number, FIELDS["pairs"], value=datagen.CPU_FIRST_RUN["pairs"], precision=0, scale=1,
                           info=HINTS["pairs"], elem_id="data-pairs")
            max_tokens = t.make(gr.Number, FIELDS["max_tokens"], value=datagen.CPU_FIRST_RUN["max_tokens"],
                                precision=0, minimum=1, scale=1, info=HINTS["max_tokens"], elem_id="data-max-tokens")
            max_req = t.make(gr.Number, FIELDS["max_requests"], value=0, precision=0, scale=1)
        allow_pii = t.make(gr.Checkbox, FIELDS["allow_remote_pii"], value=False)
        with gr.Row():
            scan_btn = t.make(gr.Button, L["scan"], elem_id="data-scan")
            gen_btn = t.make(gr.Button, L["generate"], variant="primary", elem_id="data-generate")
            stop_btn = t.make(gr.Button, L["stop"], variant="stop", interactive=False, elem_id="data-stop")
        gen_msg = gr.HTML(elem_id="data-gen-msg")
        findings = t.make(gr.Dataframe, L["findings"], value=pd.DataFrame(columns=header(FINDING_COLS, lg)),
                          interactive=False, elem_id="data-findings")
        with t.make(gr.Accordion, L["command"], open=False):
            command = gr.Code(language="shell", elem_id="data-command")
        with gr.Row():
            import_path = t.make(gr.Textbox, L["import_path"], value=str(REPO / "assets" / "sample_instructions.jsonl"),
                                 scale=3, elem_id="data-import-path")
            import_btn = t.make(gr.Button, L["import_btn"], scale=1, elem_id="data-import")
        gen_timer = gr.Timer(1.0, active=False)

    with t.make(gr.Accordion, L["curate"], open=True):
        with gr.Row():
            ds = t.make(gr.Dropdown, L["ds"], choices=h.dataset_names(state), scale=2, elem_id="data-ds")
            filters_btn = t.make(gr.Button, L["filters_btn"], scale=2, elem_id="data-filters")
            status = t.make(gr.Dropdown, L["status"], choices=status_choices(lg), value="", scale=1,
                            elem_id="data-status")
            flag = t.make(gr.Dropdown, L["flag"], choices=flag_choices(lg), value="", scale=1, elem_id="data-flag")
            search = t.make(gr.Textbox, L["search"], scale=2, elem_id="data-search")
            page = t.make(gr.Number, L["page"], value=1, precision=0, minimum=1, scale=1)
        count = gr.Markdown(elem_id="data-count")
        table = t.make(gr.Dataframe, L["records"], value=pd.DataFrame(columns=header(RECORD_COLS, lg)),
                       interactive=False, wrap=True, max_height=420, elem_id="data-table",
                       column_widths=["60px", "90px", "120px", "60px", "35%", "45%", "120px"])
        rid = t.make(gr.Number, L["rid"], precision=0, elem_id="data-rid")
        with gr.Row():
            e_instr = t.make(gr.Textbox, FIELDS["instruction"], lines=2, elem_id="data-edit-instruction")
            e_input = t.make(gr.Textbox, FIELDS["input"], lines=2)
            e_output = t.make(gr.Textbox, FIELDS["output"], lines=3, elem_id="data-edit-output")
        with gr.Row():
            save_btn = t.make(gr.Button, L["save"], elem_id="data-save")
            accept_btn = t.make(gr.Button, L["accept"], elem_id="data-accept")
            reject_btn = t.make(gr.Button, L["reject"], elem_id="data-reject")
        rec_msg = gr.HTML(elem_id="data-rec-msg")
        hist = t.make(gr.Dataframe, L["history"], value=pd.DataFrame(columns=header(HISTORY_COLS, lg)),
                      interactive=False, elem_id="data-history")

    with t.make(gr.Accordion, L["stats"], open=True):
        stats_plot = gr.Plot(show_label=False, elem_id="data-stats")
        with gr.Row():
            fmt = t.make(gr.Radio, FIELDS["format"], choices=format_choices(lg), value="csv", scale=1,
                         elem_id="data-format")
            scope = t.make(gr.Radio, L["scope"], choices=scope_choices(lg), value="exportable", scale=2,
                           elem_id="data-scope")
        with gr.Row():
            out_path = t.make(gr.Textbox, FIELDS["out"], value=h.default_name("demo", "csv"), scale=3,
                              elem_id="data-out")
            overwrite = t.make(gr.Checkbox, FIELDS["overwrite"], value=False, scale=1, elem_id="data-overwrite")
            export_btn = t.make(gr.Button, L["export"], scale=1, elem_id="data-export")
        export_msg = gr.HTML(elem_id="data-export-msg")
        download = t.make(gr.File, L["download"], visible=False, interactive=False, elem_id="data-download")

    # -- wiring ------------------------------------------------------------------------------
    gen_inputs = [docs, dataset, gen_model, base_url, template, pairs, max_tokens, max_req, allow_pii, lang]
    scan_btn.click(bind(h.scan, state), gen_inputs, [gen_msg, findings])
    gen_btn.click(bind(h.generate, state), gen_inputs, [gen_msg, gen_timer, findings, command, stop_btn])
    gen_timer.tick(bind(h.poll, state), [lang], [gen_msg, gen_timer, ds, findings, stop_btn])
    stop_btn.click(bind(h.stop, state), [lang], [gen_msg])
    import_btn.click(bind(h.import_jsonl, state), [import_path, dataset, lang], [gen_msg, ds])

    list_in, list_out = [ds, status, flag, search, page, lang], [count, table, stats_plot]
    listing = bind(h.listing, state)
    for c in (ds, status, flag, page):
        c.change(listing, list_in, list_out)
    search.submit(listing, list_in, list_out)
    # The export's name and scope follow the dataset and the status filter the user is looking at.
    ds.change(h.default_name, [ds, fmt], [out_path])
    fmt.change(h.default_name, [ds, fmt], [out_path])
    status.change(h.default_scope, [status], [scope])
    filters_btn.click(bind(h.run_filters, state), [ds, lang], [rec_msg]).then(listing, list_in, list_out)

    def pick(frame: pd.DataFrame, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return int(frame.iloc[row, 0])

    table.select(pick, [table], [rid])
    rid.change(bind(h.load_record, state), [rid, lang], [e_instr, e_input, e_output, hist, rec_msg])
    save_btn.click(bind(h.save_edit, state), [rid, e_instr, e_input, e_output, lang], [rec_msg, hist]).then(
        listing, list_in, list_out)
    for btn, new in ((accept_btn, "accepted"), (reject_btn, "rejected")):
        btn.click(bind(h.set_status, state, new), [rid, lang], [rec_msg, hist]).then(listing, list_in, list_out)
    export_btn.click(bind(h.export, state), [ds, fmt, out_path, scope, overwrite, lang], [export_msg, download])

    def rerender(lang_, record_id, *listing_args):
        """Everything on the tab that holds words, in the new language."""
        # The words only: re-rendering in another language is not another view of the record.
        history = h.history_frame(state, int(record_id), lang_) if record_id else \
            pd.DataFrame(columns=header(HISTORY_COLS, lang_))
        return (*choices_for(lang_), *h.listing(state, *listing_args, lang_), h.poll(state, lang_)[0],
                pd.DataFrame(columns=header(FINDING_COLS, lang_)), history)

    return {
        # Datasets made elsewhere (a CLI run, another browser tab) appear when the page opens.
        "on_load": (bind(h.on_load, state), [lang], [ds, gen_msg, gen_timer, command, stop_btn]),
        "rerender": (rerender, [lang, rid, ds, status, flag, search, page],
                     [status, flag, scope, fmt, count, table, stats_plot, gen_msg, findings, hist]),
    }
