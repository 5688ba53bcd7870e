"""The Data tab's handlers: plain functions of the app state and the form values, wired to the
widgets in ``tab_data`` with ``functools.partial`` and tested without a browser. Each returns
what its outputs show; problems come back as ``components.notice`` boxes in the page's language."""
from __future__ import annotations

import csv
import re
import threading
import time
import traceback

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from components import metric_chart, notice
from components.run_monitor import progress_html
from pipelines.core import exports, jobs, page_paths
from pipelines.core.errors import UserError
from pipelines.data import chunk_prompts, curate, dataset_export, endpoint, filters
from pipelines.data import generate as datagen
from pipelines.data import store as datastore
from workbench import users
from workbench.data_text import (
    FIELDS,
    FILTER_WORDS,
    FINDING_COLS,
    HISTORY_COLS,
    HISTORY_FIELDS,
    MSG,
    RECORD_COLS,
    STATUS_WORDS,
    header,
    word,
)
from workbench.field_errors import error_html, job_message, message
from workbench.messages_ja import PRIVACY_KINDS
from workbench.state import AppState

PAGE = 25
SCOPES = ("accepted", "exportable")          # what an export holds: accepted only, or all not rejected/flagged
FORMATS = ("csv", *dataset_export.FORMATS)


def dataset_names(state: AppState) -> list[str]:
    return [d["name"] for d in datastore.list_datasets(state.workspace)]


# -- generation ----------------------------------------------------------------------------

def latest_job(ws) -> dict | None:
    """The newest generation job of this workspace (running, or how it ended), found on disk."""
    found = jobs.list_jobs(ws.subdir("jobs"), kind="datagen")
    return found[0] if found else None


def start_job(ws, config, user: str = users.LOCAL) -> jobs.Job:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", config.dataset)[:40] or "data"
    run_dir = ws.subdir("jobs") / f"datagen-{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    return jobs.start(run_dir, jobs.command("datagen", *datagen.command_args(config)),
                      kind="datagen", dataset=config.dataset, env=users.job_env(user))


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
    if st["status"] in jobs.ACTIVE and c.get("receiving"):      # a chunk takes minutes on a CPU: show it moving
        detail += " · " + MSG["receiving"][lang].format(k=int(c["receiving"]), chars=f"{int(c['receiving_chars']):,}")
    error = job_message(st, FIELDS, lang) if st["status"] == "failed" else ""
    if end.get("findings"):
        error = MSG["blocked"][lang].format(k=len(end["findings"]), url=end.get("base_url"))
    if st["status"] == "finished" and not c.get("records") and c.get("unparseable"):
        error = MSG["nothing_parsed"][lang].format(n=int(c["unparseable"]))
    ended = end.get("time") or (st.get("updated_at") if st["status"] not in jobs.ACTIVE else None)
    return progress_html(f"{MSG['generating'][lang]}: {st.get('dataset', '')}", int(c.get("done", 0)),
                         int(c.get("total", 0)) or None, status=st["status"], detail=detail,
                         elapsed=(ended or time.time()) - st.get("started_at", time.time()), error=error, lang=lang)


def findings_frame(found: list[dict], lang: str = "en") -> pd.DataFrame:
    """Privacy-guard findings (``endpoint.privacy_findings`` / ``PrivacyBlocked.findings``) as table rows."""
    def kind(f: dict) -> str:
        if lang == "ja" and f.get("kind") in PRIVACY_KINDS:
            return PRIVACY_KINDS[f["kind"]]
        return f.get("label", f.get("kind"))

    return pd.DataFrame([[f["chunk_id"], kind(f), f.get("text")] for f in found],
                        columns=header(FINDING_COLS, lang))


def make_config(state: AppState, docs, dataset, model, url, template, pairs, max_tokens, max_req, pii):
    docs = page_paths.readable(docs, state.workspace.root, "document folder")
    return datagen.DatagenConfig(docs=docs, dataset=(dataset or "").strip(), model=(model or "").strip(),
                                 base_url=(url or "").strip() or None, template=template, pairs=int(pairs or 0),
                                 max_tokens=int(max_tokens or datagen.DatagenConfig.max_tokens),
                                 max_requests=int(max_req) if max_req else None, allow_remote_pii=bool(pii),
                                 workspace=str(state.workspace.root))


def scan(state: AppState, docs, dataset, model, url, template, pairs, max_tokens, max_req, pii, lang: str,
         request: gr.Request = None):
    """The privacy check of a document folder: it reads documents and shows what it found, so it is
    audited as a view. Every input is a named parameter, as in generate()."""
    values = [docs, dataset, model, url, template, pairs, max_tokens, max_req, pii]
    try:
        config = make_config(state, *values)
        chunks = chunk_prompts.prepare_chunks(config)
    except UserError as exc:
        return error_html(exc, FIELDS, lang), findings_frame([], lang)
    found = endpoint.privacy_findings(chunks)
    users.record(state.workspace.root, users.current_user(request), "view", f"documents:{config.docs}",
                 purpose="privacy scan", chunks=len(chunks), findings=len(found))
    if not found:
        return notice.notice("ok", MSG["no_findings"][lang].format(n=len(chunks))), findings_frame([], lang)
    return notice.error(MSG["findings"][lang].format(k=len(found)), lang=lang), findings_frame(found, lang)


def generate(state: AppState, docs, dataset, model, url, template, pairs, max_tokens, max_req, pii, lang: str,
             request: gr.Request = None):
    """Start generation as a job: (message, timer, findings, command, stop button).

    Every input is a named parameter: Gradio passes ``request`` only to a handler without ``*args``."""
    values = [docs, dataset, model, url, template, pairs, max_tokens, max_req, pii]
    ws, user = state.workspace, users.current_user(request)
    current = latest_job(ws)
    if current is not None and current["status"] in jobs.ACTIVE:
        return notice.error(MSG["busy"][lang], lang=lang), gr.Timer(active=True), gr.update(), gr.update(), \
            gr.update(interactive=True)
    try:
        config = make_config(state, *values)
        job = start_job(ws, config, user)
    except UserError as exc:
        return error_html(exc, FIELDS, lang), gr.Timer(active=False), gr.update(), gr.update(), gr.update()
    users.record(ws.root, user, "generate", config.dataset, model=config.model, base_url=config.base_url or "",
                 job=str(job.run_dir))
    return (job_html(jobs.status(job.run_dir), lang), gr.Timer(active=True), findings_frame([], lang), job.cli,
            gr.update(interactive=True))


def poll(state: AppState, lang: str):
    """(progress, timer, dataset choices, findings, stop button) of the latest job."""
    st = latest_job(state.workspace)
    found = gr.update()
    if st is not None and (st.get("end") or {}).get("findings"):
        found = findings_frame(st["end"]["findings"], lang)
    running = st is not None and st["status"] in jobs.ACTIVE
    return (job_html(st, lang), gr.Timer(active=running), gr.update(choices=dataset_names(state)), found,
            gr.update(interactive=running))


def stop(state: AppState, lang: str, request: gr.Request = None):
    st = latest_job(state.workspace)
    if st is None or st["status"] not in jobs.ACTIVE:
        return notice.error(MSG["nothing_running"][lang], lang=lang)
    users.record_stop(state.workspace.root, users.current_user(request), st["run_dir"])
    # The job finishes the requests in flight and saves them: not inside the request.
    threading.Thread(target=jobs.stop, args=(st["run_dir"],), kwargs={"grace_s": 60}, daemon=True).start()
    return notice.notice("info", MSG["stopping"][lang])


def on_load(state: AppState, lang: str):
    """Re-attach to a job started before this page (or this workbench) opened."""
    st = latest_job(state.workspace)
    running = st is not None and st["status"] in jobs.ACTIVE
    return (gr.update(choices=dataset_names(state)), job_html(st, lang) if running else gr.update(),
            gr.Timer(active=running), st.get("cli", "") if running else gr.update(), gr.update(interactive=running))


def import_jsonl(state: AppState, path: str, name: str, lang: str, request: gr.Request = None):
    name = (name or "").strip() or (path or "").rsplit("/", 1)[-1].split(".")[0]
    try:
        path = page_paths.readable(path, state.workspace.root, "import file")
        n = curate.import_alpaca_jsonl(state.workspace, name, path, user=users.current_user(request))
    except UserError as exc:
        return error_html(exc, FIELDS, lang), gr.update()
    except OSError as exc:
        return notice.error(f"{path}: {exc.strerror}", MSG["check_path"][lang], lang), gr.update()
    return notice.notice("ok", MSG["imported"][lang].format(n=n)), gr.update(choices=dataset_names(state), value=name)


# -- curation ------------------------------------------------------------------------------

def stats_figure(stats: dict, lang: str = "en") -> go.Figure:
    """Records by review status and by curation filter."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=[word(STATUS_WORDS, s, lang) for s in stats["by_status"]],
                         y=list(stats["by_status"].values()), name=MSG["by_status"][lang]))
    flt = {k: v for k, v in stats["filters"].items() if k not in ("total", "flagged", "clean", "exportable")}
    fig.add_trace(go.Bar(x=[word(FILTER_WORDS, k, lang) for k in flt], y=list(flt.values()),
                         name=MSG["by_filter"][lang]))
    fig.update_layout(template="plotly_white", height=320, margin=dict(l=40, r=10, t=40, b=80),
                      title=MSG["stats_title"][lang].format(name=stats["dataset"], n=stats["records"]),
                      yaxis_title=MSG["records_axis"][lang])
    return fig


def listing(state: AppState, name, status, flag, search, page, lang):
    """(count, records table, statistics figure) for the filter the user sees."""
    ws = state.workspace
    if not name:
        return "", pd.DataFrame(columns=header(RECORD_COLS, lang)), metric_chart.empty_figure(MSG["no_dataset"][lang])
    where = dict(status=status or None, flag=flag or None, search=(search or "").strip() or None)
    n = datastore.count_records(ws, name, **where)
    rows = datastore.list_records(ws, name, limit=PAGE, offset=(max(1, int(page or 1)) - 1) * PAGE, **where)
    frame = pd.DataFrame([[r["id"], word(STATUS_WORDS, r["status"], lang),
                           ", ".join(word(FILTER_WORDS, f, lang) for f in r["flags"]), "✎" if r.get("edited") else "",
                           r["instruction"], r["output"], r.get("source_doc") or ""] for r in rows],
                         columns=header(RECORD_COLS, lang))
    try:
        fig = stats_figure(curate.dataset_stats(ws, name), lang)
    except UserError as exc:
        fig = metric_chart.empty_figure(message(exc, FIELDS, lang)[0])
    return MSG["count"][lang].format(n=n), frame, fig


def run_filters(state: AppState, name: str, lang: str):
    if not name:
        return notice.error(MSG["no_dataset"][lang], lang=lang)
    counts = filters.run(filters.CurateConfig(dataset=name, workspace=str(state.workspace.root)),
                         workspace=state.workspace)
    text = ", ".join(f"{word(FILTER_WORDS, k, lang)} {v}" for k, v in counts.items())
    return notice.notice("ok", MSG["filtered"][lang].format(counts=text))


def history_frame(state: AppState, record_id: int, lang: str = "en") -> pd.DataFrame:
    """The audit trail of one record, oldest first, with readable times."""
    rows = datastore.history(state.workspace, record_id)
    return pd.DataFrame([[time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"])), r["who"],
                          word(HISTORY_FIELDS, r["field"], lang),
                          word(STATUS_WORDS, r["before"], lang) if r["field"] == "status" else r["before"],
                          word(STATUS_WORDS, r["after"], lang) if r["field"] == "status" else r["after"]]
                         for r in rows], columns=header(HISTORY_COLS, lang))


def load_record(state: AppState, record_id, lang: str, request: gr.Request = None):
    """Open one record for reading and editing: a view of data, so it goes in the access log."""
    if not record_id:
        return "", "", "", pd.DataFrame(columns=header(HISTORY_COLS, lang)), ""
    try:
        rec = datastore.get_record(state.workspace, int(record_id))
    except UserError as exc:
        return "", "", "", pd.DataFrame(columns=header(HISTORY_COLS, lang)), error_html(exc, FIELDS, lang)
    users.record(state.workspace.root, users.current_user(request), "view", f"record:{int(record_id)}",
                 dataset=rec.get("dataset"))
    return rec["instruction"], rec["input"], rec["output"], history_frame(state, int(record_id), lang), ""


def save_edit(state: AppState, record_id, instruction, input_, output, lang, request: gr.Request = None):
    if not record_id:
        return notice.error(MSG["no_record"][lang], lang=lang), gr.update()
    user = users.current_user(request)
    try:
        datastore.edit_record(state.workspace, int(record_id), who=user, instruction=instruction, input=input_,
                              output=output)
    except UserError as exc:
        return error_html(exc, FIELDS, lang), gr.update()
    users.record(state.workspace.root, user, "edit", f"record {int(record_id)}")
    return notice.notice("ok", MSG["saved"][lang]), history_frame(state, int(record_id), lang)


def set_status(state: AppState, new: str, record_id, lang: str, request: gr.Request = None):
    if not record_id:
        return notice.error(MSG["no_record"][lang], lang=lang), gr.update()
    user = users.current_user(request)
    try:
        datastore.set_status(state.workspace, [int(record_id)], new, who=user)
    except UserError as exc:
        return error_html(exc, FIELDS, lang), gr.update()
    users.record(state.workspace.root, user, "review", f"record {int(record_id)}", status=new)
    return (notice.notice("ok", f"#{int(record_id)} → {word(STATUS_WORDS, new, lang)}"),
            history_frame(state, int(record_id), lang))


# -- export --------------------------------------------------------------------------------

def default_scope(status_filter: str | None) -> str:
    """The export follows what the user looks at: reviewing accepted records exports those only."""
    return "accepted" if status_filter == "accepted" else "exportable"


def default_name(dataset: str | None, fmt: str) -> str:
    suffix = {"alpaca": ".jsonl", "text": ".txt", "hf": "", "csv": ".csv"}.get(fmt, "")
    return f"{dataset or 'data'}{suffix}"


def _export_csv(state: AppState, name: str, out: str, only_accepted: bool, overwrite: bool) -> dict:
    """The exportable records as a spreadsheet: UTF-8 with a BOM, so Excel on Japanese Windows reads it."""
    ws = state.workspace
    keep = set(datastore.exportable_ids(ws, name, only_accepted))
    rows = [r for r in datastore.list_records(ws, name, limit=-1) if r["id"] in keep]
    if not rows:
        raise UserError(f"Dataset {name!r} has no records to export.", MSG["review_first"]["en"])
    path = exports.export_path(ws.root, out, default_name(name, "csv"), overwrite=overwrite)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "status", "instruction", "input", "output", "source"])
        w.writerows([r["id"], r["status"], r["instruction"], r["input"], r["output"], r.get("source_doc") or ""]
                    for r in rows)
    tmp.replace(path)
    return {"path": str(path), "n_records": len(rows)}


def export(state: AppState, name, fmt, out, scope, overwrite, lang, request: gr.Request = None):
    """(message, downloadable file) for an export into WORKSPACE/exports (never over a file unasked)."""
    if not name:
        return notice.error(MSG["no_dataset"][lang], lang=lang), gr.update(value=None, visible=False)
    only_accepted = scope == "accepted"
    try:
        target = exports.export_path(state.workspace.root, out, default_name(name, fmt), overwrite=True,
                                     folder_output=fmt == "hf")
        if target.exists() and not overwrite:       # the common case, said in the page's language
            return (notice.error(MSG["exists"][lang].format(path=target), MSG["exists_fix"][lang], lang),
                    gr.update(value=None, visible=False))
        if fmt == "csv":
            res = _export_csv(state, name, out, only_accepted, bool(overwrite))
        else:
            res = dataset_export.export(
                dataset_export.ExportConfig(dataset=name, format=fmt, out=out, only_accepted=only_accepted,
                                            overwrite=bool(overwrite), workspace=str(state.workspace.root)),
                workspace=state.workspace, user=users.current_user(request))
    except UserError as exc:
        return error_html(exc, FIELDS, lang), gr.update(value=None, visible=False)
    except OSError as exc:
        traceback.print_exc()
        return notice.error(f"{out}: {exc.strerror}", MSG["check_path"][lang], lang), gr.update(visible=False)
    if fmt == "csv":      # the other formats go through dataset_export.export, which records the export itself
        users.record(state.workspace.root, users.current_user(request), "export", name, format=fmt,
                     path=res["path"], records=res["n_records"], only_accepted=only_accepted)
    text = MSG["exported"][lang].format(n=res["n_records"], path=res["path"], scope=MSG[f"scope_{scope}"][lang])
    # A folder (the hf format) cannot be downloaded as one file; it stays on the server.
    download = gr.update(value=res["path"], visible=True) if fmt != "hf" else gr.update(value=None, visible=False)
    return notice.notice("ok", text), download
