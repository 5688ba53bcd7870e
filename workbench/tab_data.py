"""Data tab: documents → privacy check → instruction data (local model or an OpenAI-compatible
endpoint) → curation (filters, search, accept/reject/edit with an audit trail) → statistics
→ export. Built over ``pipelines.datagen`` / ``curate`` / ``datastore`` (issue 3); where those
are not installed the tab says so instead of failing.

Generation runs as a job (``pipelines.jobs``: ``python -m pipelines.datagen …`` in its own
process, which serves a local model itself when no endpoint is given); this tab shows its
command, reads its ``status.json`` / ``events.jsonl``, and re-attaches after a restart."""
from __future__ import annotations

import importlib.util
import re
import threading
import time
from pathlib import Path

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from components import metric_chart
from components.run_monitor import progress_html
from pipelines import jobs
from pipelines.errors import UserError
from workbench.i18n import Labels
from workbench.state import AppState

REPO = Path(__file__).resolve().parent.parent
NEEDED = ("pipelines.datagen", "pipelines.curate", "pipelines.datastore", "pipelines.privacy")
PAGE = 25
FINDING_COLS = ["chunk", "kind", "text"]
RECORD_COLS = ["id", "status", "flags", "edited", "instruction", "output", "source"]
L = {
    "missing": {"ja": "### データ\nこのタブはデータ生成パイプライン（{mods}）を使いますが、まだインストールされていません。",
                "en": "### Data\nThis tab runs the data pipelines ({mods}), which are not installed yet."},
    "intro": {"ja": "### 学習データ\n医療文書から質問・回答ペアを生成し、確認・修正して書き出します。既定では文書はこのマシンの外に出ません。",
              "en": "### Instruction data\nGenerate question/answer pairs from medical documents, review and edit them, export. By default nothing leaves this machine."},
    "gen": {"ja": "1. 生成", "en": "1. Generate"},
    "docs": {"ja": "文書フォルダまたはファイル（.txt/.md/.pdf）", "en": "Documents folder or file (.txt/.md/.pdf)"},
    "dataset": {"ja": "データセット名", "en": "Dataset name"},
    "gen_model": {"ja": "生成モデル（ローカル参照名 または エンドポイントのモデル名）", "en": "Generator model (local reference, or the endpoint's model name)"},
    "base_url": {"ja": "OpenAI互換エンドポイントURL（空欄＝このマシンでローカル生成）", "en": "OpenAI-compatible endpoint URL (empty = generate locally)"},
    "template": {"ja": "生成プロンプト", "en": "Generation prompt"},
    "pairs": {"ja": "1チャンクあたりのペア数", "en": "Pairs per chunk"},
    "max_requests": {"ja": "リクエスト上限（0＝無制限）", "en": "Request budget (0 = none)"},
    "max_tokens": {"ja": "1回答あたりの最大トークン数", "en": "Max tokens per response"},
    "allow_pii": {"ja": "個人情報を含む文書の外部送信を許可する（許可を得ている場合のみ）", "en": "Allow sending text with personal data to a remote endpoint (only if you are permitted)"},
    "scan": {"ja": "個人情報チェック", "en": "Privacy check"},
    "generate": {"ja": "▶ 生成", "en": "▶ Generate"},
    "stop": {"ja": "■ 停止", "en": "■ Stop"},
    "findings": {"ja": "個人情報の検出結果", "en": "Privacy-guard findings"},
    "command": {"ja": "生成のコマンド（同じ生成をターミナルで実行）", "en": "Generation command (the same run from a terminal)"},
    "import": {"ja": "既存の Alpaca JSONL を取り込む", "en": "Import an existing Alpaca JSONL"},
    "import_path": {"ja": "JSONL ファイル", "en": "JSONL file"},
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
    "instruction": {"ja": "指示（質問）", "en": "Instruction (question)"},
    "input": {"ja": "入力", "en": "Input"},
    "output": {"ja": "出力（回答）", "en": "Output (answer)"},
    "reviewer": {"ja": "確認者", "en": "Reviewer"},
    "save": {"ja": "編集を保存", "en": "Save edit"},
    "accept": {"ja": "✓ 採用", "en": "✓ Accept"},
    "reject": {"ja": "✗ 除外", "en": "✗ Reject"},
    "history": {"ja": "変更履歴（監査証跡）", "en": "History (audit trail)"},
    "stats": {"ja": "3. 統計・書き出し", "en": "3. Statistics and export"},
    "format": {"ja": "形式", "en": "Format"},
    "out": {"ja": "書き出し先", "en": "Export to"},
    "export": {"ja": "⬇ 書き出し", "en": "⬇ Export"},
}
MSG = {
    "no_findings": {"ja": "個人情報は検出されませんでした（{n} チャンクを確認）。", "en": "No personal data found ({n} chunks checked)."},
    "findings": {"ja": "{k} 件の個人情報らしき箇所が見つかりました。外部エンドポイントへの送信はブロックされます。",
                 "en": "{k} possible personal identifiers found. Sending them to a remote endpoint is blocked."},
    "busy": {"ja": "生成を実行中です。", "en": "Generation is already running."},
    "no_dataset": {"ja": "データセットを選んでください。", "en": "Choose a dataset first."},
    "no_record": {"ja": "レコードIDを入力するか、表の行をクリックしてください。", "en": "Enter a record id or click a row in the table."},
    "saved": {"ja": "保存しました。", "en": "Saved."},
    "imported": {"ja": "{n} 件を取り込みました。", "en": "Imported {n} records."},
    "filtered": {"ja": "フィルタ結果：{counts}", "en": "Filter results: {counts}"},
    "exported": {"ja": "{n} 件を書き出しました：{path}", "en": "Exported {n} records: {path}"},
    "generating": {"ja": "生成", "en": "Generating"},
    "nothing_parsed": {"ja": "回答から質問・回答ペアを1件も読み取れませんでした（{n} 件の応答は解析不能として保存済み）。"
                             "より大きな生成モデルにするか、最大トークン数を増やしてください。",
                       "en": "No question/answer pair could be read from the responses ({n} kept as unparseable). "
                             "Use a larger generator model or raise the max tokens per response."},
    "preparing": {"ja": "準備中（文書の読み込み・ローカルモデルの起動）…",
                  "en": "preparing (reading documents, starting the local model)…"},
    "blocked": {"ja": "{k} 件の個人情報らしき箇所（下の表）が見つかったため、このマシンの外にある {url} への送信を中止しました。"
                      "何も送信していません。\n→ 個人情報を削除・匿名化する／URL を空欄にしてこのマシンで生成する／"
                      "送信の許可がある場合に限り「外部送信を許可する」にチェックする、のいずれかを行ってください。",
                "en": "{k} possible personal identifiers (table below) were found, so nothing was sent to {url}, which is "
                      "not on this machine.\n→ Remove or de-identify them, leave the URL empty to generate on this "
                      "machine, or, only if you are permitted, tick 'Allow sending text with personal data'."},
    "counts": {"ja": "追加 {added} 件 · 解析不能 {unparseable} · キャッシュ {cached} · "
                     "エラー {errors} · トークン {tokens}",
               "en": "added {added} · unparseable {unparseable} · cached {cached} · "
                     "errors {errors} · tokens {tokens}"},
    "count": {"ja": "{n} 件", "en": "{n} records"},
}


def missing_modules() -> list[str]:
    return [m for m in NEEDED if importlib.util.find_spec(m) is None]


def latest_job(ws) -> dict | None:
    """The newest generation job of this workspace (running, or how it ended), found on disk."""
    found = jobs.list_jobs(ws.subdir("jobs"), kind="datagen")
    return found[0] if found else None


def start_job(ws, config) -> jobs.Job:
    from pipelines import datagen
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", config.dataset)[:40] or "data"
    run_dir = ws.subdir("jobs") / f"datagen-{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    return jobs.start(run_dir, jobs.python_module("pipelines.datagen", *datagen.command_args(config)),
                      kind="datagen", dataset=config.dataset)


def job_counters(st: dict) -> dict:
    """The latest counts: the final event's when the job ended, else the latest progress."""
    end = st.get("end") or {}
    return {**(st.get("progress") or {}), **(end if end.get("event") in ("finish", "stop") else {})}


def job_html(st: dict | None, lang: str) -> str:
    if st is None:
        return ""
    c, end = job_counters(st), st.get("end") or {}
    if c.get("total"):
        detail = "· " + MSG["counts"][lang].format(
            added=int(c.get("added", 0)), unparseable=int(c.get("unparseable", 0)), cached=int(c.get("cached", 0)),
            errors=int(c.get("errors", 0)), tokens=int(c.get("total_tokens", 0)))
    else:
        detail = "· " + MSG["preparing"][lang] if st["status"] in jobs.ACTIVE else ""
    error = st.get("message") if st["status"] == "failed" else ""
    if end.get("findings"):
        error = MSG["blocked"][lang].format(k=len(end["findings"]), url=end.get("base_url"))
    if st["status"] == "finished" and not c.get("records") and c.get("unparseable"):
        error = MSG["nothing_parsed"][lang].format(n=int(c["unparseable"]))
    ended = end.get("time") or (st.get("updated_at") if st["status"] not in jobs.ACTIVE else None)
    return progress_html(f"{MSG['generating'][lang]}: {st.get('dataset', '')}", int(c.get("done", 0)),
                         int(c.get("total", 0)) or None, status=st["status"], detail=detail,
                         elapsed=(ended or time.time()) - st.get("started_at", time.time()), error=error)


def history_frame(ws, record_id: int) -> pd.DataFrame:
    """The audit trail of one record, newest last, with readable times."""
    from pipelines import datastore
    df = pd.DataFrame(datastore.history(ws, record_id))
    for col in ("at", "created_at"):
        if col in df:
            df[col] = pd.to_datetime(df[col], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    return df


def findings_frame(found: list[dict]) -> pd.DataFrame:
    """Privacy-guard findings (``datagen.privacy_findings`` / ``PrivacyBlocked.findings``) as table rows."""
    return pd.DataFrame([{"chunk": f["chunk_id"], "kind": f.get("label", f.get("kind")), "text": f.get("text")}
                         for f in found], columns=FINDING_COLS)


def notice(kind: str, text: str) -> str:
    from workbench.tab_compare import notice as n
    return n(kind, text)


def stats_figure(stats: dict) -> go.Figure:
    """Records by review status and by curation filter."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=list(stats["by_status"]), y=list(stats["by_status"].values()), name="status"))
    flt = {k: v for k, v in stats["filters"].items() if k not in ("total", "flagged", "clean", "exportable")}
    fig.add_trace(go.Bar(x=list(flt), y=list(flt.values()), name="flagged by filter"))
    fig.update_layout(template="plotly_white", height=320, margin=dict(l=40, r=10, t=40, b=80),
                      title=f"{stats['dataset']}: {stats['records']} records")
    return fig


def create_data_tab(state: AppState, t: Labels, lang: gr.State) -> dict:
    missing = missing_modules()
    if missing:
        mods = ", ".join(missing)
        t.make(gr.Markdown, {k: v.format(mods=mods) for k, v in L["missing"].items()}, elem_id="data-missing")
        return {}
    from pipelines import curate, datagen, datastore

    ws = state.workspace

    def dataset_names() -> list[str]:
        return [d["name"] for d in datastore.list_datasets(ws)]

    t.make(gr.Markdown, L["intro"])
    with t.make(gr.Accordion, L["gen"], open=True):
        with gr.Row():
            docs = t.make(gr.Textbox, L["docs"], value=str(REPO / "assets" / "docs"), scale=3, elem_id="data-docs")
            dataset = t.make(gr.Textbox, L["dataset"], value="demo", scale=1, elem_id="data-dataset")
        with gr.Row():
            gen_model = t.make(gr.Textbox, L["gen_model"], value="default", scale=2, elem_id="data-gen-model")
            base_url = t.make(gr.Textbox, L["base_url"], value="", scale=2, elem_id="data-base-url")
            template = t.make(gr.Dropdown, L["template"], choices=datagen.available_templates(),
                              value=datagen.DatagenConfig.template, scale=1)
            pairs = t.make(gr.Number, L["pairs"], value=datagen.DatagenConfig.pairs, precision=0, scale=1,
                              elem_id="data-pairs")
            max_tokens = t.make(gr.Number, L["max_tokens"], value=datagen.DatagenConfig.max_tokens, precision=0,
                                minimum=1, scale=1, elem_id="data-max-tokens")
            max_req = t.make(gr.Number, L["max_requests"], value=0, precision=0, scale=1)
        allow_pii = t.make(gr.Checkbox, L["allow_pii"], value=False)
        with gr.Row():
            scan_btn = t.make(gr.Button, L["scan"], elem_id="data-scan")
            gen_btn = t.make(gr.Button, L["generate"], variant="primary", elem_id="data-generate")
            stop_btn = t.make(gr.Button, L["stop"], variant="stop")
        gen_msg = gr.HTML(elem_id="data-gen-msg")
        findings = t.make(gr.Dataframe, L["findings"], headers=FINDING_COLS, interactive=False,
                          elem_id="data-findings")
        with t.make(gr.Accordion, L["command"], open=False):
            command = gr.Code(language="shell", elem_id="data-command")
        with gr.Row():
            import_path = t.make(gr.Textbox, L["import_path"], value=str(REPO / "assets" / "sample_instructions.jsonl"),
                                 scale=3, elem_id="data-import-path")
            import_btn = t.make(gr.Button, L["import_btn"], scale=1, elem_id="data-import")
        gen_timer = gr.Timer(1.0, active=False)

    with t.make(gr.Accordion, L["curate"], open=True):
        with gr.Row():
            ds = t.make(gr.Dropdown, L["ds"], choices=dataset_names(), scale=2, elem_id="data-ds")
            filters_btn = t.make(gr.Button, L["filters_btn"], scale=2, elem_id="data-filters")
            status = t.make(gr.Dropdown, L["status"], choices=["", *datastore.STATUSES], value="", scale=1)
            flag = t.make(gr.Dropdown, L["flag"], choices=["", "any", "clean", *curate.FILTERS], value="", scale=1,
                          elem_id="data-flag")
            search = t.make(gr.Textbox, L["search"], scale=2, elem_id="data-search")
            page = t.make(gr.Number, L["page"], value=1, precision=0, minimum=1, scale=1)
        count = gr.Markdown(elem_id="data-count")
        table = t.make(gr.Dataframe, L["records"], headers=RECORD_COLS, interactive=False, wrap=True, max_height=420,
                       column_widths=["60px", "90px", "120px", "60px", "35%", "45%", "120px"], elem_id="data-table")
        with gr.Row():
            rid = t.make(gr.Number, L["rid"], precision=0, scale=1, elem_id="data-rid")
            reviewer = t.make(gr.Textbox, L["reviewer"], value=datastore.default_reviewer(), scale=1)
        with gr.Row():
            e_instr = t.make(gr.Textbox, L["instruction"], lines=2, elem_id="data-edit-instruction")
            e_input = t.make(gr.Textbox, L["input"], lines=2)
            e_output = t.make(gr.Textbox, L["output"], lines=3, elem_id="data-edit-output")
        with gr.Row():
            save_btn = t.make(gr.Button, L["save"], elem_id="data-save")
            accept_btn = t.make(gr.Button, L["accept"], elem_id="data-accept")
            reject_btn = t.make(gr.Button, L["reject"], elem_id="data-reject")
        rec_msg = gr.HTML(elem_id="data-rec-msg")
        hist = t.make(gr.Dataframe, L["history"], headers=["who", "action", "field", "before", "after"],
                      interactive=False, elem_id="data-history")

    with t.make(gr.Accordion, L["stats"], open=True):
        stats_plot = gr.Plot(show_label=False, elem_id="data-stats")
        with gr.Row():
            fmt = t.make(gr.Radio, L["format"], choices=list(curate.FORMATS), value="alpaca", scale=1)
            out_path = t.make(gr.Textbox, L["out"], value=str(ws.root / "exports" / "demo.jsonl"), scale=3)
            export_btn = t.make(gr.Button, L["export"], scale=1, elem_id="data-export")
        export_msg = gr.HTML(elem_id="data-export-msg")

    # -- generation ----------------------------------------------------------------------
    def config(docs_, dataset_, model_, url_, template_, pairs_, max_tokens_, max_req_, pii_):
        return datagen.DatagenConfig(docs=docs_, dataset=(dataset_ or "").strip(), model=(model_ or "").strip(),
                                     base_url=(url_ or "").strip() or None, template=template_, pairs=int(pairs_ or 0),
                                     max_tokens=int(max_tokens_ or datagen.DatagenConfig.max_tokens),
                                     max_requests=int(max_req_) if max_req_ else None, allow_remote_pii=bool(pii_),
                                     workspace=str(ws.root))
    gen_inputs = [docs, dataset, gen_model, base_url, template, pairs, max_tokens, max_req, allow_pii]

    def do_scan(*args):
        *vals, lang_ = args
        try:
            chunks = datagen.prepare_chunks(config(*vals))
        except UserError as exc:
            return notice("error", str(exc)), pd.DataFrame(columns=FINDING_COLS)
        found = datagen.privacy_findings(chunks)
        frame = findings_frame(found)
        if not found:
            return notice("ok", MSG["no_findings"][lang_].format(n=len(chunks))), frame
        return notice("error", MSG["findings"][lang_].format(k=len(found))), frame

    scan_btn.click(do_scan, [*gen_inputs, lang], [gen_msg, findings])

    def do_generate(*args):
        *vals, lang_ = args
        current = latest_job(ws)
        if current is not None and current["status"] in jobs.ACTIVE:
            return notice("error", MSG["busy"][lang_]), gr.Timer(active=True), gr.update(), gr.update()
        try:
            job = start_job(ws, config(*vals))
        except UserError as exc:
            return notice("error", str(exc)), gr.Timer(active=False), gr.update(), gr.update()
        return (job_html(jobs.status(job.run_dir), lang_), gr.Timer(active=True),
                pd.DataFrame(columns=FINDING_COLS), job.cli)

    def poll(lang_):
        st = latest_job(ws)
        found = gr.update()
        if st is not None and (st.get("end") or {}).get("findings"):
            found = findings_frame(st["end"]["findings"])
        running = st is not None and st["status"] in jobs.ACTIVE
        return job_html(st, lang_), gr.Timer(active=running), gr.update(choices=dataset_names()), found

    def do_stop():
        st = latest_job(ws)
        if st is not None and st["status"] in jobs.ACTIVE:
            # The job finishes the requests in flight and saves them: not inside the request.
            threading.Thread(target=jobs.stop, args=(st["run_dir"],), kwargs={"grace_s": 60}, daemon=True).start()

    gen_btn.click(do_generate, [*gen_inputs, lang], [gen_msg, gen_timer, findings, command])
    gen_timer.tick(poll, [lang], [gen_msg, gen_timer, ds, findings])
    stop_btn.click(do_stop, None, None)

    def on_load(lang_):
        """Re-attach to a job started before this page (or this workbench) opened."""
        st = latest_job(ws)
        running = st is not None and st["status"] in jobs.ACTIVE
        return (gr.update(choices=dataset_names()), job_html(st, lang_) if running else gr.update(),
                gr.Timer(active=running), st.get("cli", "") if running else gr.update())

    def do_import(path, name, lang_):
        try:
            n = curate.import_alpaca_jsonl(ws, (name or "").strip() or Path(path).stem, path)
        except UserError as exc:
            return notice("error", str(exc)), gr.update()
        except OSError as exc:
            return notice("error", f"{path}: {exc.strerror}"), gr.update()
        return notice("ok", MSG["imported"][lang_].format(n=n)), gr.update(choices=dataset_names(), value=name)

    import_btn.click(do_import, [import_path, dataset, lang], [gen_msg, ds])

    # -- curation ------------------------------------------------------------------------
    def listing(name, status_, flag_, search_, page_, lang_):
        if not name:
            return "", pd.DataFrame(columns=RECORD_COLS), metric_chart.empty_figure(MSG["no_dataset"][lang_])
        where = dict(status=status_ or None, flag=flag_ or None, search=(search_ or "").strip() or None)
        n = datastore.count_records(ws, name, **where)
        rows = datastore.list_records(ws, name, limit=PAGE, offset=(max(1, int(page_ or 1)) - 1) * PAGE, **where)
        frame = pd.DataFrame([{"id": r["id"], "status": r["status"], "flags": ", ".join(r["flags"]) or "",
                               "edited": "✎" if r.get("edited") else "", "instruction": r["instruction"],
                               "output": r["output"], "source": r.get("source_doc") or ""} for r in rows],
                             columns=RECORD_COLS)
        try:
            fig = stats_figure(curate.dataset_stats(ws, name))
        except UserError as exc:
            fig = metric_chart.empty_figure(exc.problem)
        return MSG["count"][lang_].format(n=n), frame, fig

    list_in = [ds, status, flag, search, page, lang]
    list_out = [count, table, stats_plot]
    for c in (ds, status, flag, page):
        c.change(listing, list_in, list_out)
    search.submit(listing, list_in, list_out)

    def do_filters(name, lang_):
        if not name:
            return notice("error", MSG["no_dataset"][lang_])
        counts = curate.run(curate.CurateConfig(dataset=name, workspace=str(ws.root)), workspace=ws)
        text = ", ".join(f"{k} {v}" for k, v in counts.items())
        return notice("ok", MSG["filtered"][lang_].format(counts=text))

    filters_btn.click(do_filters, [ds, lang], [rec_msg]).then(listing, list_in, list_out)

    def pick(frame: pd.DataFrame, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return int(frame.iloc[row]["id"])

    table.select(pick, [table], [rid])

    def load_record(record_id, lang_):
        if not record_id:
            return "", "", "", pd.DataFrame(), ""
        try:
            rec = datastore.get_record(ws, int(record_id))
        except UserError as exc:
            return "", "", "", pd.DataFrame(), notice("error", str(exc))
        return (rec["instruction"], rec["input"], rec["output"], history_frame(ws, int(record_id)),
                "")

    rid.change(load_record, [rid, lang], [e_instr, e_input, e_output, hist, rec_msg])

    def save(record_id, who, instr, inp, out, lang_):
        if not record_id:
            return notice("error", MSG["no_record"][lang_]), gr.update()
        try:
            datastore.edit_record(ws, int(record_id), who=who or None, instruction=instr, input=inp, output=out)
        except UserError as exc:
            return notice("error", str(exc)), gr.update()
        return notice("ok", MSG["saved"][lang_]), history_frame(ws, int(record_id))

    def set_status(new):
        def handler(record_id, who, lang_):
            if not record_id:
                return notice("error", MSG["no_record"][lang_]), gr.update()
            datastore.set_status(ws, [int(record_id)], new, who=who or None)
            return notice("ok", f"#{int(record_id)} → {new}"), history_frame(ws, int(record_id))
        return handler

    save_btn.click(save, [rid, reviewer, e_instr, e_input, e_output, lang], [rec_msg, hist]).then(
        listing, list_in, list_out)
    accept_btn.click(set_status("accepted"), [rid, reviewer, lang], [rec_msg, hist]).then(listing, list_in, list_out)
    reject_btn.click(set_status("rejected"), [rid, reviewer, lang], [rec_msg, hist]).then(listing, list_in, list_out)

    def do_export(name, fmt_, out_, lang_):
        if not name:
            return notice("error", MSG["no_dataset"][lang_])
        try:
            res = curate.export(curate.ExportConfig(dataset=name, format=fmt_, out=out_, workspace=str(ws.root)),
                                workspace=ws)
        except UserError as exc:
            return notice("error", str(exc))
        n = res.get("n_records", res.get("records", "?"))
        return notice("ok", MSG["exported"][lang_].format(n=n, path=res.get("path", out_)))

    export_btn.click(do_export, [ds, fmt, out_path, lang], [export_msg])
    # Datasets made elsewhere (a CLI run, another browser tab) appear when the page opens.
    return {"on_load": (on_load, [lang], [ds, gen_msg, gen_timer, command])}
