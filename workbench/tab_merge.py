"""Merge tab: evolutionary merging of registered adapters or models on a small dev set.

Pick the task (exam questions, or image reports: a VLM's language tower merged with text LLMs),
the inputs, method, dev/test data, metric (objective) and budget; estimate; start, stop and
resume the search (a job: ``pipelines.merging.jobs``; closing the page does not stop it); watch
each candidate's dev score and the best so far; read the test table (base, each input, the merge,
with 95% CIs and the paired verdict); open the merge beside its inputs in the Compare tab, or a
report merge's test evaluations in the Reports view (``merge_report``). Handlers are
module-level functions of ``state`` and plain values (tests call them directly); the words are
in ``merge_text``.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from components import metric_chart, notice
from pipelines.core import jobs, page_paths
from pipelines.core.errors import UserError
from pipelines.evaluation import metrics
from pipelines.merging import evolve as merge
from pipelines.merging import jobs as merge_jobs
from pipelines.merging.evolve import MergeConfig
from pipelines.merging.methods import METHODS
from workbench import merge_report, users
from workbench.field_errors import error_html, job_message
from workbench.i18n import Labels
from workbench.merge_text import (CHART, COLS, INPUTS_HINT, L, METHOD_JA, MSG, ROLES, STATES, TABLE_COLS, VERDICT,
                                  field_labels)
from workbench.state import AppState
from workbench.wiring import bind

SAMPLE = merge_report.SAMPLE_QUESTIONS
# The words live in merge_text; the app and tests still read them here (tab_merge.L["tab"]).
__all__ = ["CHART", "COLS", "L", "METHOD_JA", "METHODS", "MSG", "ROLES", "SAMPLE", "STATES", "TABLE_COLS", "VERDICT"]


def _error(exc: Exception, lang: str, task: str = "exam") -> str:
    if isinstance(exc, UserError):
        return error_html(exc, field_labels(task), lang)
    return notice.unexpected(type(exc).__name__, lang)


def role_word(role: str, lang: str) -> str:
    if role.startswith("input "):
        return ROLES["input"][lang].format(k=role.split(" ", 1)[1])
    return ROLES.get(role, {}).get(lang, role)


def verdict_text(report: dict, lang: str) -> str:
    """The report's verdict in ``lang``; its English text when the report predates verdict codes."""
    code, paired = report.get("verdict_code"), report.get("paired_vs_best_input") or {}
    if code not in VERDICT:
        return report.get("verdict", "")
    try:
        return VERDICT[code][lang].format(
            best=report.get("best_input", ""), metric=metric_label(report.get("metric", ""), lang),
            diff=paired.get("diff", 0), lo=paired.get("ci_low", 0), hi=paired.get("ci_high", 0), n=paired.get("n", 0),
            against=VERDICT["against"][lang] if paired.get("diff", 0) <= 0 else "")
    except (KeyError, ValueError, TypeError):
        return report.get("verdict", "")


def metric_label(metric: str, lang: str) -> str:
    return metrics.labels(lang).get(metric, metric)


def method_choices(lang: str) -> list[tuple[str, str]]:
    return [(f"{m}（{METHOD_JA[m]}）" if lang == "ja" and m in METHOD_JA else m, m) for m in METHODS]


def metric_choices(lang: str) -> list[tuple[str, str]]:
    names = metrics.labels(lang)
    return [(names.get(k, k), k) for k in merge.METRICS]


def config_from_form(state: AppState, inputs, base, method, dev, test, fraction, metric, budget,
                     task: str = "exam", objective: str | None = None, max_new_tokens=None, *,
                     out: str = "") -> MergeConfig:
    """The form's merge. Only the fields of its task are taken (the other task's fields are hidden
    on the page and keep their defaults, so the command names nothing it does not use)."""
    out = out or str(state.workspace.subdir("merges") / f"merge-{time.strftime('%Y%m%d-%H%M%S')}")
    d = MergeConfig()
    if task == "report":
        metric, objective, max_new_tokens = d.metric, objective or d.objective, int(max_new_tokens or d.max_new_tokens)
    else:
        objective, max_new_tokens = d.objective, d.max_new_tokens
    return MergeConfig(inputs=tuple(inputs or ()), base=base or None, method=method, task=task or d.task,
                       dev=dev or "", test=test or None, test_fraction=float(fraction), metric=metric,
                       objective=objective, max_new_tokens=max_new_tokens, budget=int(budget), out=out,
                       workspace=str(state.workspace.root))


def _task(form) -> str:
    return (form[8] if len(form) > 8 else None) or "exam"


def readable_config(state: AppState, *form, out: str = "") -> MergeConfig:
    """The form's merge, its data files and the models typed as paths checked against what a page
    may read (pipelines/core/page_paths.py)."""
    config = config_from_form(state, *form, out=out)
    # The names of what is read are words the Japanese catalog knows (messages_ja.WORDS).
    data = ("report file", "report file") if config.task == "report" else ("dev questions", "test questions")
    for path, what in ((config.dev, data[0]), (config.test, data[1])):
        page_paths.readable(path, state.workspace.root, what)
    for spec in (*config.inputs, config.base):
        page_paths.readable_reference(spec, state.workspace.root, "model weights")
    return config


def command_preview(state: AppState, *form, out: str = "") -> str:
    config = config_from_form(state, *form, out=out)
    return jobs.shell_line(merge_jobs.command_for(dataclasses.replace(config, workspace=None)))


def loaded_command(out: str) -> str | None:
    """The command of the merge in ``out`` (the one started last there, a resume included); None
    when ``out`` holds no merge. The form below may describe another, new merge."""
    folder = Path(out) if out else None
    if folder is None or not folder.is_dir():
        return None
    if (folder / "status.json").exists():
        cli = jobs.status(folder).get("cli")
        if cli:
            return cli
    if (folder / "config.json").exists():           # run from a terminal: its settings, as a command
        config = merge.resume_config(folder)
        return jobs.shell_line(merge_jobs.command_for(dataclasses.replace(config, workspace=None)))
    return None


def shown_command(out: str):
    """What the command box shows when the output folder changes: that merge's own command."""
    return loaded_command(out) or gr.update()


def estimate(state: AppState, lang: str, *form) -> str:
    """Runs ``--estimate`` in this process: loads the inputs once and times a few dev questions (reports)."""
    try:
        with tempfile.TemporaryDirectory() as scratch:      # an estimate leaves no merge folder behind
            config = readable_config(state, *form, out=scratch)
            est = merge.run(dataclasses.replace(config, estimate=True))["estimate"]
    except Exception as exc:                  # noqa: BLE001 — shown as a notice, never a traceback
        return _error(exc, lang, _task(form))
    unit = "reports" if "dev_reports" in est else "questions"
    return notice.notice("info", MSG["estimate_report" if unit == "reports" else "estimate"][lang].format(
        c=est["candidates"], q=est[f"dev_{unit}"], s=est["seconds_per_candidate"], m=est["search_seconds"] / 60,
        tm=est["test_seconds"] / 60, g=est["memory_bytes"] / 2 ** 30), lang=lang)


def start(state: AppState, lang: str, *form) -> tuple[str, str, str]:
    """(notice, merge folder, command)."""
    try:
        config = readable_config(state, *form)
        job = merge_jobs.start_merge(config, state.workspace)
    except Exception as exc:                  # noqa: BLE001
        return _error(exc, lang, _task(form)), "", ""
    return notice.notice("ok", MSG["started"][lang].format(out=job.run_dir), lang=lang), job.run_dir, job.cli


def stop_button(out: str):
    """Stop is offered only while the merge in ``out`` runs."""
    running = bool(out) and (Path(out) / "status.json").exists() and jobs.status(out)["status"] in jobs.ACTIVE
    return gr.update(interactive=running)


def resume_button(out: str):
    """Resume is offered for a merge that stopped or failed; not for a finished one (its report is
    written), a running one, or a folder without a merge."""
    folder = Path(out) if out else None
    if folder is None or not (folder / "config.json").exists() or (folder / "report.json").exists():
        return gr.update(interactive=False)
    state = jobs.status(folder)["status"] if (folder / "status.json").exists() else "stopped"
    return gr.update(interactive=state not in (*jobs.ACTIVE, "finished"))


def stop(state: AppState, lang: str, out: str, request: gr.Request = None) -> str:
    if not out:
        return notice.notice("info", MSG["no_out"][lang], lang=lang)
    if (Path(out) / "status.json").exists():
        users.record_stop(state.workspace.root, users.current_user(request), out)
    (Path(out) / jobs.STOP_FILE).write_text(str(time.time()))   # graceful; the job saves and exits
    return notice.notice("info", MSG["stopping"][lang], lang=lang)


def resume(state: AppState, lang: str, out: str) -> tuple[str, str]:
    """(notice, command)."""
    try:
        if not out:
            raise UserError(MSG["no_out"][lang])
        job = merge_jobs.start_merge(MergeConfig(resume=out), state.workspace)
    except Exception as exc:                  # noqa: BLE001
        return _error(exc, lang), ""
    return notice.notice("ok", MSG["started"][lang].format(out=out), lang=lang), job.cli


def poll(state: AppState, lang: str, out: str):
    """(status line, chart, test table, verdict) of the merge in ``out``."""
    cols = [COLS[c][lang] for c in TABLE_COLS]
    empty = pd.DataFrame(columns=cols)
    if not out:
        return "", metric_chart.empty_figure(MSG["chart_empty"][lang]), empty, ""
    st = merge_jobs.merge_status(out)
    cands = st["candidates"]
    progress = st.get("progress") or {}
    total = progress.get("total") or len(cands)
    best = f"{st['best_so_far'][-1]:.3f}" if cands else "—"
    report = st["report"]
    status = "finished" if report and st["status"] == "none" else st["status"]     # run from a terminal
    line = MSG["status"][lang].format(status=STATES.get(status, {}).get(lang, status), done=len(cands), total=total,
                                      best=best)
    if status == "failed":
        line = notice.error(line + " · " + job_message(st, field_labels(), lang), None, lang)
    else:
        line = notice.notice("info", line, lang=lang)
    fig = metric_chart.search_curve([c["generation"] for c in cands], [c["score"] for c in cands], st["best_so_far"],
                                    label=merge_report.score_label(out, lang, CHART[lang]["score"]),
                                    empty_message=MSG["chart_empty"][lang], words=CHART[lang])
    if not report:
        return line, fig, empty, ""
    if report.get("task") == "report":
        vlm = merge_report.vlm_name(out)
        return line, fig, merge_report.report_table(report, vlm, lang), merge_report.report_verdict(report, vlm, lang)
    rows = [[role_word(r["role"], lang), r["model"], None if r["dev"] is None else round(r["dev"], 3),
             round(r["test"]["mean"], 3), round(r["test"]["ci_low"], 3), round(r["test"]["ci_high"], 3)]
            for r in report["rows"]]
    name = f"**{report.get('registered_as', '')}**"
    metric = metric_label(report["metric"], lang)
    verdict = (f"{name}（{metric}）：" if lang == "ja" else f"{name} ({metric}): ") + verdict_text(report, lang)
    return line, fig, pd.DataFrame(rows, columns=cols), verdict


def compare_refs(state: AppState, out: str) -> list[str]:
    """The merged model, its base and inputs, as Compare-tab checkpoint references."""
    st = merge_jobs.merge_status(out) if out else {"report": None}
    report = st["report"]
    if not report or not report.get("registered_as"):
        raise UserError(MSG["not_done"][state.lang])
    if report.get("task") == "report":
        raise UserError(MSG["report_in_reports"][state.lang])
    config = merge.resume_config(out)
    known = {ref for _, ref in state.model_choices()}
    refs = [report["registered_as"], *([config.base] if config.base else []), *config.inputs]
    return [r for r in refs if r in known]


def open_in_compare(state: AppState, lang: str, out: str):
    """(notice, update of the Compare tab's checkpoint list)."""
    try:
        refs = compare_refs(state, out)
    except Exception as exc:                  # noqa: BLE001
        return _error(exc, lang), gr.update()
    return (notice.notice("ok", MSG["compare"][lang].format(refs=", ".join(refs)), lang=lang),
            gr.update(choices=state.model_choices(), value=refs))


def refresh_choices(state: AppState, task: str = "exam"):
    """The registry as it is now (a merge or a training run may have added models)."""
    return (gr.update(choices=merge_report.input_choices(state, task)),
            gr.update(choices=[("", "")] + state.model_choices()))


def create_merge_tab(state: AppState, t: Labels, lang: gr.State, compare: dict | None = None,
                     tab: gr.Tab | None = None) -> dict:
    """``compare``: the Compare tab's components (its checkpoint list is what the open button sets);
    ``tab``: this tab, so opening it refreshes the input lists. The returned ``open_reports`` button
    is wired by the app once the Reports tab exists (``merge_report.wire_open_in_reports``).
    The inputs, base, dev and test labels follow the task, so they are relabelled here, not by ``t``."""
    d, lg = MergeConfig(), state.lang
    t.make(gr.Markdown, L["intro"])
    task = t.make(gr.Radio, L["task"], choices=merge_report.task_choices(lg), value=d.task, elem_id="merge-task")
    with gr.Row():
        inputs = gr.Dropdown(label=L["inputs"][lg], info=INPUTS_HINT["exam"][lg], multiselect=True,
                             choices=merge_report.input_choices(state, "exam"), elem_id="merge-inputs")
        base = gr.Dropdown(label=L["base"][lg], choices=[("", "")] + state.model_choices(), value="",
                           elem_id="merge-base")
        method = t.make(gr.Dropdown, L["method"], choices=method_choices(lg), value=d.method, elem_id="merge-method")
    with gr.Row():
        dev = gr.Textbox(label=L["dev"][lg], value=SAMPLE, elem_id="merge-dev")
        test = gr.Textbox(label=L["test"][lg], value="", elem_id="merge-test")
        fraction = t.make(gr.Number, L["fraction"], value=d.test_fraction, minimum=0.05, maximum=0.95,
                          elem_id="merge-fraction")
    with gr.Row():
        metric = t.make(gr.Dropdown, L["metric"], choices=metric_choices(lg), value=d.metric, elem_id="merge-metric")
        objective = t.make(gr.Dropdown, L["objective"], choices=merge_report.objective_choices(lg),
                           value=d.objective, visible=False, elem_id="merge-objective")
        max_tokens = t.make(gr.Number, L["max_new_tokens"], value=d.max_new_tokens, precision=0, minimum=1,
                            visible=False, elem_id="merge-max-tokens")
        budget = t.make(gr.Number, L["budget"], value=d.budget, precision=0, minimum=0, elem_id="merge-budget")
    with gr.Row():
        est_btn = t.make(gr.Button, L["estimate"], elem_id="merge-estimate")
        start_btn = t.make(gr.Button, L["start"], variant="primary", elem_id="merge-start")
        stop_btn = t.make(gr.Button, L["stop"], elem_id="merge-stop", interactive=False)
        resume_btn = t.make(gr.Button, L["resume"], elem_id="merge-resume", interactive=False)
    message = gr.HTML(elem_id="merge-notice")
    out = t.make(gr.Textbox, L["out"], elem_id="merge-out")
    command = t.make(gr.Code, L["command"], language="shell", elem_id="merge-command")
    status = gr.HTML(elem_id="merge-status")
    chart = gr.Plot(elem_id="merge-chart", show_label=False)
    t.make(gr.Markdown, {"ja": "#### " + L["table"]["ja"], "en": "#### " + L["table"]["en"]})
    table = gr.Dataframe(headers=[COLS[c][state.lang] for c in TABLE_COLS], interactive=False, elem_id="merge-table")
    verdict = gr.Markdown(elem_id="merge-verdict")
    with gr.Row():
        compare_btn = t.make(gr.Button, L["compare"], elem_id="merge-open-compare")
        reports_btn = t.make(gr.Button, L["reports"], visible=False, elem_id="merge-open-reports")
    timer = gr.Timer(2.0)

    form = [inputs, base, method, dev, test, fraction, metric, budget, task, objective, max_tokens]
    for comp in form:
        comp.change(lambda *f: command_preview(state, *f), form, [command])
    est_btn.click(lambda lg, *f: estimate(state, lg, *f), [lang, *form], [message])
    start_btn.click(lambda lg, *f: start(state, lg, *f), [lang, *form], [message, out, command])
    stop_btn.click(bind(stop, state), [lang, out], [message])
    out.change(shown_command, [out], [command])
    resume_btn.click(lambda lg, o: resume(state, lg, o), [lang, out], [message, command])
    timer.tick(lambda lg, o, k: (*poll(state, lg, o), stop_button(o), resume_button(o), *merge_report.buttons(o, k)),
               [lang, out, task], [status, chart, table, verdict, stop_btn, resume_btn, compare_btn, reports_btn],
               show_progress="hidden")
    task.input(bind(merge_report.switch_task, state), [task, lang, dev, method, inputs],
               [inputs, base, dev, test, method, metric, objective, max_tokens])
    lang.change(lambda lg, k: (gr.update(choices=method_choices(lg)), gr.update(choices=metric_choices(lg)),
                               gr.update(choices=merge_report.task_choices(lg)),
                               gr.update(choices=merge_report.objective_choices(lg)), *merge_report.relabel(k, lg)),
                [lang, task], [method, metric, task, objective, inputs, base, dev, test])
    targets = [compare["checkpoints"]] if compare else []
    compare_btn.click(lambda lg, o: open_in_compare(state, lg, o)[:1 + len(targets)], [lang, out],
                      [message, *targets])
    if tab is not None:
        tab.select(bind(refresh_choices, state), [task], [inputs, base])
    return {"inputs": inputs, "base": base, "out": out, "chart": chart, "table": table, "task": task,
            "message": message, "open_reports": reports_btn}
