"""Data tab: documents → privacy check → instruction data (local model or an OpenAI-compatible
endpoint) → curation (filters, search, accept/reject/edit with an audit trail) → statistics
→ export; and the review of machine-translated report findings. Layout and wiring only: the
handlers are ``workbench.data_handlers`` and ``workbench.data_translations``.

Generation runs as a job (``pipelines.core.jobs``: ``jmedlora datagen …`` in its own
process, which serves a local model itself when no endpoint is given); this tab shows its
command, reads its ``status.json`` / ``events.jsonl``, and re-attaches after a restart."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from pipelines.data import chunk_prompts, filters
from pipelines.data import generate as datagen
from pipelines.data import store as datastore
from workbench import data_handlers as h
from workbench import data_translations as tr
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
    return [(all_, ""), *((FILTER_WORDS[f][lang], f) for f in ("any", "clean", *filters.FILTERS))]


def scope_choices(lang: str) -> list[tuple[str, str]]:
    return [(MSG[f"scope_{s}"][lang], s) for s in h.SCOPES]


def format_choices(lang: str) -> list[tuple[str, str]]:
    return [(FORMAT_WORDS[f][lang], f) for f in h.FORMATS]


def choices_for(lang: str):
    """The translated choices of the filter, scope and format widgets (values stay the pipeline's keys)."""
    return (gr.update(choices=status_choices(lang)), gr.update(choices=flag_choices(lang)),
            gr.update(choices=scope_choices(lang)), gr.update(choices=format_choices(lang)))


# -- the tab: its three steps, then the tab as their outline and wiring ----------------------
# Each step builds its part of the page in place and returns, by name, the components the wiring
# needs (the order of the calls is the order on the page).

def generate_section(t: Labels) -> SimpleNamespace:
    """1. Generate: documents and model, the privacy check, the generation job, importing a file."""
    lg = t.lang
    with t.make(gr.Accordion, L["gen"], open=True):
        with gr.Row():
            docs = t.make(gr.Textbox, FIELDS["docs"], value=str(REPO / "assets" / "docs"), scale=3, elem_id="data-docs")
            dataset = t.make(gr.Textbox, FIELDS["dataset"], value="demo", scale=1, elem_id="data-dataset")
        with gr.Row():
            gen_model = t.make(gr.Textbox, FIELDS["model"], value="default", scale=2, elem_id="data-gen-model")
            base_url = t.make(gr.Textbox, FIELDS["base_url"], value="", scale=2, elem_id="data-base-url")
            template = t.make(gr.Dropdown, FIELDS["template"], choices=chunk_prompts.available_templates(),
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
    # What a scan and a generation read, in the handlers' order (the page's language goes last).
    form = [docs, dataset, gen_model, base_url, template, pairs, max_tokens, max_req, allow_pii]
    return SimpleNamespace(form=form, dataset=dataset, scan_btn=scan_btn, generate_btn=gen_btn, stop_btn=stop_btn,
                           msg=gen_msg, findings=findings, command=command, import_path=import_path,
                           import_btn=import_btn, timer=gen_timer)


def curate_section(state: AppState, t: Labels) -> SimpleNamespace:
    """2. Curate: the dataset's records, filtered and searched, one at a time edited and judged."""
    lg = t.lang
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
    return SimpleNamespace(ds=ds, filters_btn=filters_btn, status=status, flag=flag, search=search, page=page,
                           count=count, table=table, rid=rid, edit=[e_instr, e_input, e_output], save_btn=save_btn,
                           accept_btn=accept_btn, reject_btn=reject_btn, msg=rec_msg, history=hist)


def export_section(t: Labels) -> SimpleNamespace:
    """3. Statistics and export: the dataset's charts, and its records written out in a format."""
    lg = t.lang
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
    return SimpleNamespace(stats=stats_plot, fmt=fmt, scope=scope, path=out_path, overwrite=overwrite,
                           export_btn=export_btn, msg=export_msg, download=download)


def translation_section(state: AppState, t: Labels) -> SimpleNamespace:
    """4. Report translations: a report file's machine-translated findings, one line at a time corrected."""
    lg, W = t.lang, tr.L
    with t.make(gr.Accordion, W["section"], open=False, elem_id="data-translations"):
        t.make(gr.Markdown, W["intro"])
        with gr.Row():
            files = tr.file_choices(state)
            path = t.make(gr.Dropdown, W["file"], choices=files, value=files[0] if files else None,
                          allow_custom_value=True, scale=4, elem_id="tr-file")
            flagged = t.make(gr.Checkbox, W["flagged"], value=False, scale=1, elem_id="tr-flagged")
            open_btn = t.make(gr.Button, W["open"], scale=1, elem_id="tr-open")
        count = gr.Markdown(elem_id="tr-count")
        table = t.make(gr.Dataframe, W["rows"], value=pd.DataFrame(columns=header(tr.COLS, lg)), interactive=False,
                       wrap=True, max_height=360, elem_id="tr-table",
                       column_widths=["120px", "30%", "30%", "140px", "110px", "90px"])
        line = t.make(gr.Textbox, W["id"], interactive=False, elem_id="tr-id")
        with gr.Row():
            english = t.make(gr.Textbox, W["en"], lines=4, interactive=False, elem_id="tr-en")
            machine = t.make(gr.Textbox, W["machine"], lines=4, interactive=False, elem_id="tr-machine")
            japanese = t.make(gr.Textbox, W["ja"], lines=4, elem_id="tr-ja")
        notes = gr.HTML(elem_id="tr-notes")
        save_btn = t.make(gr.Button, W["save"], variant="primary", interactive=False, elem_id="tr-save")
        msg = gr.HTML(elem_id="tr-msg")
        opened = gr.State(None)                   # the Japanese as the reviewer opened it (stale-edit check)
    return SimpleNamespace(path=path, flagged=flagged, open_btn=open_btn, count=count, table=table, line=line,
                           english=english, machine=machine, japanese=japanese, notes=notes, save_btn=save_btn,
                           msg=msg, opened=opened)


def wire_translations(state: AppState, trs: SimpleNamespace, lang: gr.State) -> None:
    listing = bind(tr.listing, state)
    list_in, list_out = [trs.path, trs.flagged, lang], [trs.count, trs.table, trs.save_btn, trs.msg]
    trs.open_btn.click(listing, list_in, list_out)
    trs.path.input(listing, list_in, list_out)
    trs.flagged.change(listing, list_in, list_out)

    def pick(frame: pd.DataFrame, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return str(frame.iloc[row, 0])

    trs.table.select(pick, [trs.table], [trs.line])
    trs.line.change(bind(tr.open_line, state), [trs.path, trs.line, lang],
                    [trs.english, trs.machine, trs.japanese, trs.notes, trs.opened, trs.msg])
    trs.save_btn.click(bind(tr.save, state), [trs.path, trs.line, trs.japanese, trs.opened, lang],
                       [trs.msg, trs.notes, trs.opened]).then(bind(tr.refresh, state), list_in, list_out[:3])


def create_data_tab(state: AppState, t: Labels, lang: gr.State) -> dict:
    t.make(gr.Markdown, L["intro"])
    gen = generate_section(t)
    cur = curate_section(state, t)
    out = export_section(t)
    trs = translation_section(state, t)
    wire_translations(state, trs, lang)

    # -- wiring ------------------------------------------------------------------------------
    gen_inputs = [*gen.form, lang]
    gen.scan_btn.click(bind(h.scan, state), gen_inputs, [gen.msg, gen.findings])
    gen.generate_btn.click(bind(h.generate, state), gen_inputs,
                           [gen.msg, gen.timer, gen.findings, gen.command, gen.stop_btn])
    gen.timer.tick(bind(h.poll, state), [lang], [gen.msg, gen.timer, cur.ds, gen.findings, gen.stop_btn],
                   show_progress="hidden")
    gen.stop_btn.click(bind(h.stop, state), [lang], [gen.msg])
    gen.import_btn.click(bind(h.import_jsonl, state), [gen.import_path, gen.dataset, lang], [gen.msg, cur.ds])

    ds, status, rid = cur.ds, cur.status, cur.rid
    list_in, list_out = [ds, status, cur.flag, cur.search, cur.page, lang], [cur.count, cur.table, out.stats]
    listing = bind(h.listing, state)
    for c in (ds, status, cur.flag, cur.page):
        c.change(listing, list_in, list_out)
    cur.search.submit(listing, list_in, list_out)
    # The export's name and scope follow the dataset and the status filter the user is looking at.
    ds.change(h.default_name, [ds, out.fmt], [out.path])
    out.fmt.change(h.default_name, [ds, out.fmt], [out.path])
    status.change(h.default_scope, [status], [out.scope])
    cur.filters_btn.click(bind(h.run_filters, state), [ds, lang], [cur.msg]).then(listing, list_in, list_out)

    def pick(frame: pd.DataFrame, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return int(frame.iloc[row, 0])

    cur.table.select(pick, [cur.table], [rid])
    rid.change(bind(h.load_record, state), [rid, lang], [*cur.edit, cur.history, cur.msg])
    cur.save_btn.click(bind(h.save_edit, state), [rid, *cur.edit, lang], [cur.msg, cur.history]).then(
        listing, list_in, list_out)
    for btn, new in ((cur.accept_btn, "accepted"), (cur.reject_btn, "rejected")):
        btn.click(bind(h.set_status, state, new), [rid, lang], [cur.msg, cur.history]).then(listing, list_in, list_out)
    out.export_btn.click(bind(h.export, state), [ds, out.fmt, out.path, out.scope, out.overwrite, lang],
                         [out.msg, out.download])

    def rerender(lang_, record_id, *listing_args):
        """Everything on the tab that holds words, in the new language."""
        # The words only: re-rendering in another language is not another view of the record.
        history = h.history_frame(state, int(record_id), lang_) if record_id else \
            pd.DataFrame(columns=header(HISTORY_COLS, lang_))
        return (*choices_for(lang_), *h.listing(state, *listing_args[:5], lang_), h.poll(state, lang_)[0],
                pd.DataFrame(columns=header(FINDING_COLS, lang_)), history,
                *tr.relabel(state, *listing_args[5:], lang_))

    return {
        # Datasets made elsewhere (a CLI run, another browser tab) appear when the page opens.
        "on_load": (bind(h.on_load, state), [lang], [ds, gen.msg, gen.timer, gen.command, gen.stop_btn]),
        # Report files copied into the workspace since the page was built.
        "report_files": (bind(tr.refresh_files, state), [trs.path], [trs.path]),
        "rerender": (rerender, [lang, rid, ds, status, cur.flag, cur.search, cur.page, trs.path, trs.flagged],
                     [status, cur.flag, out.scope, out.fmt, cur.count, cur.table, out.stats, gen.msg,
                      gen.findings, cur.history, trs.count, trs.table]),
    }
