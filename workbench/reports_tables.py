"""The Reports tab's tables over every study of the chosen evaluations: the summary (each metric
with its 95% interval, from ``OUT/summary.json``), the paired difference of each model from the
first (``pipelines.evaluation.report_metrics.compare_reports``: the same resampled studies for
both) and the per-finding table (F1 with the reports agreeing, missed and extra).

Frames with headings in the page language; the numbers as the evaluation wrote them.
``render`` is the handler that shows them, with the messages above and the list of studies.
"""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pandas as pd

from components import notice
from pipelines.core.errors import UserError
from pipelines.evaluation import findings, metrics, report_metrics
from workbench.field_errors import error_html
from workbench.reports_text import HEAD, MSG
from workbench.reports_view import MAX_SHOWN, Shown, finding_name, read_shown, report_evaluations, study_choices
from workbench.state import AppState

# Paired bootstrap resamples: the evaluation's 10,000 take a second on a thousand studies and are
# cached per set of result files, so the tab agrees with `jmedlora` to the digit.
RESAMPLES = report_metrics.RESAMPLES
_COMPARED: dict[tuple, dict] = {}


def _cell(v: dict | None) -> str:
    if not v or v.get("mean") is None:
        return "–"
    if v.get("ci_low") is None or v.get("ci_high") is None:
        return f"{v['mean']:.3f}"
    return f"{v['mean']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"


def summary_of(ev: dict) -> dict:
    """``OUT/summary.json`` of an evaluation, else the summary the registry holds ({} if neither)."""
    path = Path(ev["out_dir"]) / "summary.json"
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(found, dict):
            return found
    except (OSError, ValueError):
        pass
    return ev.get("summary") or {}


def summary_frame(shown: Shown, lang: str) -> pd.DataFrame:
    """Rows: n, every report metric (value [95% interval]) and reports per second; one column per
    model (two to four columns fit a screen; eight metrics across did not)."""
    labels = metrics.labels(lang, task="report")
    frame = {HEAD["metric"][lang]: [HEAD["n"][lang], *[labels[m.key] for m in metrics.for_task("report")],
                                    HEAD["speed"][lang]]}
    for name, ev in shown.evs.items():
        summ = summary_of(ev)
        values = summ.get("metrics") or {}
        speed = summ.get("reports_per_s")
        frame[name] = [str(summ.get("n", len(shown.rows.get(name, {})))),
                       *[_cell(values.get(m.key)) for m in metrics.for_task("report")],
                       f"{speed:.2f}" if isinstance(speed, (int, float)) else "–"]
    return pd.DataFrame(frame)


def _results_key(shown: Shown, a: str, b: str) -> tuple:
    def version(name):
        p = Path(shown.evs[name]["out_dir"]) / "results.jsonl"
        return str(p), p.stat().st_mtime_ns if p.exists() else 0
    return version(a), version(b)


def compared(shown: Shown, a: str, b: str) -> dict[str, dict]:
    """``compare_reports`` of model ``b`` against ``a`` on the studies both have (cached)."""
    key = _results_key(shown, a, b)
    if key not in _COMPARED:
        if len(_COMPARED) > 32:
            _COMPARED.clear()
        _COMPARED[key] = report_metrics.compare_reports(list(shown.rows[a].values()), list(shown.rows[b].values()),
                                                        resamples=RESAMPLES)
    return _COMPARED[key]


def _diff_cell(c: dict) -> str:
    if c.get("diff") is None:
        return "–"
    ci = f" [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]" if c.get("ci_low") is not None else ""
    p_value = c.get("p_bootstrap")
    p = "" if p_value is None else " p<0.001" if p_value < 0.001 else f" p={p_value:.3f}"
    return f"{c['diff']:+.3f}{ci}{p} (n={c['n']})"


def comparison_frame(shown: Shown, lang: str) -> pd.DataFrame:
    """Rows: metrics; one column per model after the first: its difference from the first model.
    Raises the UserError of ``compare_reports`` (no shared study, rows without scores)."""
    names = shown.names
    if len(names) < 2:
        return pd.DataFrame()
    base = names[0]
    labels = metrics.labels(lang, task="report")
    frame = {HEAD["metric"][lang]: [labels[m.key] for m in metrics.for_task("report")]}
    for other in names[1:]:
        result = compared(shown, base, other)
        frame[HEAD["vs"][lang].format(a=base, b=other)] = [_diff_cell(result[m.key])
                                                            for m in metrics.for_task("report")]
    return pd.DataFrame(frame)


def _finding_cell(per: dict, lang: str) -> str:
    """'0.67（一致2・見落とし0・過剰2）'; '–' where neither side ever had the finding."""
    if not (per["tp"] or per["fp"] or per["fn"]):
        return "–"
    f1 = "–" if per["f1"] is None else f"{per['f1']:.2f}"
    return f1 + HEAD["counts"][lang].format(tp=per["tp"], fn=per["fn"], fp=per["fp"])


def finding_frame(shown: Shown, lang: str) -> pd.DataFrame:
    """Rows: the 14 findings; the reference's positive reports (uncertain counts as positive, as in
    the F1), then per model its F1 and how many reports agree, missed it and added it."""
    catalog = findings.load_catalog()
    cols = {HEAD["finding"][lang]: [finding_name(n, lang) for n in catalog.findings]}
    ref_positive: list[int] | None = None
    for name, rows in shown.rows.items():
        usable = [r for r in rows.values() if r.get("findings_generated") is not None
                  and r.get("findings_reference") is not None]
        scores = findings.finding_f1([r["findings_generated"] for r in usable],
                                     [r["findings_reference"] for r in usable], findings=catalog.findings)
        per = scores["per_finding"]
        if ref_positive is None:
            ref_positive = [per[n]["tp"] + per[n]["fn"] for n in catalog.findings]
        cols[name] = [_finding_cell(per[n], lang) for n in catalog.findings]
    if ref_positive is None:
        return pd.DataFrame()
    out = {HEAD["finding"][lang]: cols.pop(HEAD["finding"][lang]), HEAD["ref_positive"][lang]: ref_positive}
    return pd.DataFrame({**out, **cols})


def tables(shown: Shown, lang: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, UserError | None]:
    """(summary, comparison, per finding, the comparison's problem or None)."""
    try:
        comparison, problem = comparison_frame(shown, lang), None
    except UserError as exc:
        comparison, problem = pd.DataFrame(), exc
    return summary_frame(shown, lang), comparison, finding_frame(shown, lang), problem


def messages(state: AppState, out_dirs, shown: Shown, lang: str) -> list[str]:
    """What the page says above the tables: how to make a first evaluation, what to choose, limits."""
    if not report_evaluations(state):
        return [notice.notice("info", MSG["none"][lang])]
    if not shown.evs:
        return [notice.notice("info", MSG["choose"][lang])]
    said = []
    if len(out_dirs or []) > MAX_SHOWN:
        said.append(notice.notice("info", MSG["too_many"][lang]))
    if len(shown.evs) == 1:
        said.append(notice.notice("info", MSG["one_only"][lang]))
    files = sorted({Path(ev["data"]).name for ev in shown.evs.values()})
    if len({ev["data"] for ev in shown.evs.values()}) > 1:
        said.append(notice.notice("info", MSG["mixed_data"][lang].format(files=", ".join(files))))
    if not shown.study_ids():
        said.append(notice.notice("info", MSG["no_rows"][lang]))
    return said


def render(state: AppState, out_dirs, only_disagree, current_study, lang: str):
    """(messages html, summary, comparison, per-finding table, study dropdown) for the chosen
    evaluations; the study shown stays when it is still in the list."""
    shown = read_shown(state, out_dirs)
    said = messages(state, out_dirs, shown, lang)
    if not shown.evs:
        return "".join(said), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), gr.update(choices=[], value=None)
    summary, comparison, per_finding, problem = tables(shown, lang)
    if problem is not None:
        said.append(error_html(problem, lang=lang))
    studies = study_choices(shown, bool(only_disagree), lang)
    if not studies and shown.study_ids():
        said.append(notice.notice("info", MSG["no_match"][lang]))
    ids = [sid for _, sid in studies]
    value = current_study if current_study in ids else (ids[0] if ids else None)
    return "".join(said), summary, comparison, per_finding, gr.update(choices=studies, value=value)
