"""The Merge tab's image-report merges (``jmedlora merge --task report``, JRadiEvo's model): the form
switched between exam questions and image reports, the inputs a report merge may take, the test
table of a finished report merge (each report metric for the VLM and the merge with 95% intervals,
and merge − VLM), its verdict from its code, and "open in the Reports view" with the two test
evaluations (``OUT/test/vlm``, ``OUT/test/merge``) chosen there.

Module-level functions of the app state and plain values, tested by calling them; the tab's
layout and the exam merge's handlers are in ``tab_merge``, the words in ``merge_text``.
"""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pandas as pd

from components import notice
from pipelines.core.repo import ASSETS
from pipelines.evaluation import metrics
from pipelines.merging import evolve as merge
from pipelines.merging import jobs as merge_jobs
from pipelines.merging.evolve import MergeConfig
from pipelines.merging.report_merge import OBJECTIVES
from pipelines.models.modality import VISION
from workbench.merge_text import (AXIS, INPUTS_HINT, L, MSG, OBJECTIVES as OBJECTIVE_WORDS, REPORT_COLS,
                                  REPORT_FIELDS, REPORT_TAIL, REPORT_VERDICT, TASKS)
from workbench.reports_view import evaluation_choices, report_evaluations
from workbench.state import AppState
from workbench.wiring import bind

SAMPLE_QUESTIONS = str(ASSETS / "questions" / "sample_ja.jsonl")
SAMPLE_REPORTS = str(ASSETS / "reports" / "sample_ja.jsonl")
REPORT_METHOD = "jradievo"          # JRadiEvo's own merge: the default when the form switches to reports


def task_choices(lang: str) -> list[tuple[str, str]]:
    return [(words[lang], task) for task, words in TASKS.items()]


def objective_choices(lang: str) -> list[tuple[str, str]]:
    return [(OBJECTIVE_WORDS[k][lang], k) for k in OBJECTIVES]


def field_text(name: str, task: str, lang: str) -> str:
    """A form field's label for ``task``: the report wording where it has one."""
    return (REPORT_FIELDS if task == "report" and name in REPORT_FIELDS else L)[name][lang]


def _is_report_merge(row: dict) -> bool:
    try:
        return json.loads(row.get("meta") or "{}").get("task") == "report"
    except ValueError:
        return False


def input_choices(state: AppState, task: str) -> list[tuple[str, str]]:
    """What the inputs list offers: for exams the checkpoints (``AppState.model_choices``) but the
    VLMs a report merge made; for reports the vision-language models first (a report merge's result is one), then the text
    models with their own weights (no adapters, no endpoints: towers are merged tensor by tensor)."""
    rows = state.workspace.models()
    vlms = [m for m in rows if m["kind"] == VISION or (m["kind"] == "merged" and _is_report_merge(m))]
    names = {m["name"] for m in vlms}
    if task != "report":
        return [(label, ref) for label, ref in state.model_choices() if ref not in names]
    texts = [(label, ref) for label, ref in state.model_choices()
             if ref not in names and (ref == "default" or (state.workspace.model(ref) or {}).get("kind")
                                      in ("base", "merged"))]
    return [(m["name"] + (f" · step {m['step']}" if m.get("step") is not None else ""), m["name"])
            for m in vlms] + texts


def relabel(task: str, lang: str):
    """(inputs, base, dev, test) label updates for the task in ``lang``; the inputs' hint for reports."""
    return (gr.update(label=field_text("inputs", task, lang), info=INPUTS_HINT.get(task, INPUTS_HINT["exam"])[lang]),
            gr.update(label=field_text("base", task, lang)), gr.update(label=field_text("dev", task, lang)),
            gr.update(label=field_text("test", task, lang)))


def switch_task(state: AppState, task: str, lang: str, dev: str, method: str, chosen):
    """The form for ``task``: (inputs, base, dev, test, method, metric, objective, max new tokens).
    The sample dev file follows the task (a file the user typed stays); reports default to
    JRadiEvo's method; the exam metric shows for exams, the objective and token limit for reports."""
    report = task == "report"
    inputs, base, dev_label, test = relabel(task, lang)
    choices = input_choices(state, task)
    known = {ref for _, ref in choices}
    inputs.update(choices=choices, value=[c for c in (chosen or []) if c in known])
    samples = {"exam": SAMPLE_QUESTIONS, "report": SAMPLE_REPORTS}
    if not dev or dev in samples.values():
        dev_label.update(value=samples["report" if report else "exam"])
    if report:
        method = REPORT_METHOD
    elif method == REPORT_METHOD:
        method = MergeConfig().method
    return (inputs, base, dev_label, test, gr.update(value=method), gr.update(visible=not report),
            gr.update(visible=report), gr.update(visible=report))


def loaded_task(out: str) -> str | None:
    """The task of the merge in ``out`` (from its config.json); None when there is none."""
    if not out or not (Path(out) / "config.json").exists():
        return None
    return merge.resume_config(out).task


def buttons(out: str, task: str):
    """(compare button, reports button) visibility: an exam merge opens in Compare, a report merge in
    the Reports view; the loaded merge decides, else the form's task."""
    shown = loaded_task(out) or task
    return gr.update(visible=shown != "report"), gr.update(visible=shown == "report")


def score_label(out: str, lang: str, fallback: str) -> str:
    """The chart's y axis: the objective of a report merge, the metric of an exam merge."""
    if not out or not (Path(out) / "config.json").exists():
        return fallback
    config = merge.resume_config(out)
    if config.task == "report":
        return AXIS.get(config.objective, {}).get(lang, config.objective)
    return metrics.labels(lang).get(config.metric, config.metric)


def vlm_name(out: str) -> str:
    config = Path(out) / "config.json"
    return merge.resume_config(out).inputs[0] if config.exists() else "VLM"


def _cell(v: dict | None) -> str:
    if not v or v.get("mean") is None:
        return "–"
    ci = "" if v.get("ci_low") is None else f" [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
    return f"{v['mean']:.3f}{ci}"


def _diff(d: dict | None) -> str:
    if not d or d.get("diff") is None:
        return "–"
    ci = "" if d.get("ci_low") is None else f" [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
    p = d.get("p_bootstrap")
    return f"{d['diff']:+.3f}{ci}" + ("" if p is None else " p<0.001" if p < 0.001 else f" p={p:.3f}")


def report_table(report: dict, vlm: str, lang: str) -> pd.DataFrame:
    """Rows: each report metric (the registry's order and names); columns: the VLM and the merge
    on the test reports, "mean [95% CI]", and merge − VLM with its paired interval."""
    names = metrics.labels(lang, task="report")
    table, paired = report.get("table") or {}, report.get("paired_vs_vlm") or {}
    cols = [REPORT_COLS["metric"][lang], REPORT_COLS["vlm"][lang].format(name=vlm),
            REPORT_COLS["merge"][lang].format(name=report.get("registered_as") or "—"), REPORT_COLS["diff"][lang]]
    rows = [[names.get(m.key, m.key), _cell((table.get("vlm") or {}).get(m.key)),
             _cell((table.get("merge") or {}).get(m.key)), _diff(paired.get(m.key))]
            for m in metrics.for_task("report") if m.key in (table.get("vlm") or {})]
    return pd.DataFrame(rows, columns=cols)


def report_verdict(report: dict, vlm: str, lang: str) -> str:
    """The verdict in ``lang`` from its code (merge against the VLM on ROUGE-L), with the merge's name;
    the report's English text when the code is unknown."""
    code, metric = report.get("verdict_code"), report.get("metric", "rouge_l")
    p = (report.get("paired_vs_vlm") or {}).get(metric) or {}
    diff, high = p.get("diff") or 0, p.get("ci_high")
    tail = "worse" if high is not None and high < 0 else "noise_against" if diff <= 0 else "noise"
    try:
        text = REPORT_VERDICT[code][lang].format(
            vlm=vlm, metric=metrics.labels(lang, task="report").get(metric, metric), diff=diff,
            lo=p.get("ci_low") or 0, hi=high or 0, n=p.get("n", 0), tail=REPORT_TAIL[tail][lang])
    except (KeyError, ValueError, TypeError):
        text = report.get("verdict", "")
    name = f"**{report.get('registered_as', '')}**"
    return (f"{name}：" if lang == "ja" else f"{name}: ") + text


def test_evaluations(state: AppState, out: str, lang: str) -> list[str]:
    """The finished report merge's two test evaluations (VLM, merge), as the Reports tab knows them.
    Raises ValueError with the page's words when there are none to open."""
    report = merge_jobs.merge_status(out)["report"] if out else None
    if not report:
        raise ValueError(MSG["not_done"][lang])
    if report.get("task") != "report":
        raise ValueError(MSG["not_report"][lang])
    dirs = [str(report["evaluations"][role]) for role in ("vlm", "merge")]
    known = {e["out_dir"] for e in report_evaluations(state)}
    missing = [d for d in dirs if d not in known]
    if missing:
        raise ValueError(MSG["evals_missing"][lang].format(dirs=", ".join(missing)))
    return dirs


def open_in_reports(state: AppState, lang: str, out: str):
    """(notice, the Reports tab's evaluation list, the tabs): both test evaluations chosen and the
    Reports tab shown; on a problem only the notice changes."""
    try:
        dirs = test_evaluations(state, out, lang)
    except ValueError as exc:
        return notice.notice("info", str(exc), lang=lang), gr.update(), gr.update()
    return (notice.notice("ok", MSG["reports"][lang], lang=lang),
            gr.update(choices=evaluation_choices(state, lang), value=dirs), gr.update(selected="reports"))


def wire_open_in_reports(state: AppState, lang, merge_tab: dict, reports_tab: dict, tabs: gr.Tabs) -> None:
    """The button, wired once both tabs exist: choose the evaluations, switch tab, draw them."""
    clicked = merge_tab["open_reports"].click(bind(open_in_reports, state), [lang, merge_tab["out"]],
                                              [merge_tab["message"], reports_tab["shown"], tabs])
    reports_tab["draw"](clicked)
