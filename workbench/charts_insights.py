"""The Charts tab's sections on evaluation that explains itself: accuracy per specialty (heat map
of models × specialties and a table with n and the 95% interval per cell), and the models beside
the examinees (accuracy per band of the examinees' accuracy, and how often a wrong answer is the
examinees' most popular wrong answer).

The evaluations are the ones Table 1 shows under the tab's filters (question file, template):
``paper_table.entries_from_registry`` picks them and names their columns, and the same names head
these rows. The numbers come from ``pipelines/evaluation/insights.py``; a question file without
categories or examinee data gets a notice in the page language instead of a chart (the pipeline's
refusal said for this page: ``refusal``).
Handlers take the app state first (``workbench.wiring.bind``); ``tab_charts`` lays them out.
"""
from __future__ import annotations

from html import escape as html_escape
from pathlib import Path

import gradio as gr
import pandas as pd

from components import insight_charts, notice
from components.metric_table import table_html
from pipelines.core.errors import UserError
from pipelines.evaluation import insights, paper_table
from workbench import users
from workbench.field_errors import error_html
from workbench.state import AppState

ANY = "*"
L = {
    "category_title": {"ja": "### 分野別の正答率", "en": "### Accuracy per specialty"},
    "examinee_title": {"ja": "### 受験者との比較", "en": "### The models beside the examinees"},
}
MSG = {
    # a heading inside the section's HTML: where the section above already said there is no
    # examinee data, the section (heading and all) is left out
    "wrong_title": {"ja": "誤答は受験者の「ひっかけ」と同じか", "en": "Does a wrong answer fall into the examinees' trap?"},
    "none": {"ja": "この絞り込みに当てはまる完了した評価がありません。比較タブで評価を実行してください。",
             "en": "No finished evaluation matches these filters. Run one in the Compare tab."},
    "category_note": {"ja": "各セル：正答率 [95%信頼区間] n＝問題数。問題数の少ない分野は区間が広く、モデル間の差は偶然の範囲かもしれません。分野名は問題ファイルのメタデータのままです。",
                      "en": "Each cell: accuracy [95% interval] n = questions. A specialty with few questions has a wide interval: a difference between models there may be chance. Specialty names are the question file's metadata as it is."},
    "band_note": {"ja": "受験者の正答率で問題を分け、それぞれでのモデルの正答率を示します。受験者の 80% 以上が正解した問題でモデルの正答率が低ければ、臨床医なら落とさない問題を落としています。◆＝その区分の問題での受験者の平均正答率。",
                  "en": "Questions grouped by the share of examinees who got them right, with each model's accuracy in each group. A low accuracy where 80% or more of examinees were right means the model misses questions a clinician would not. ◆ = the examinees' mean accuracy on that group's questions."},
    "band_mean": {"ja": "（平均 {mean}）", "en": " (mean {mean})"},
    "band_corner": {"ja": "受験者の正答率", "en": "examinees right"},
    "category_corner": {"ja": "分野", "en": "specialty"},
    "no_band": {"ja": "受験者の正答率がない問題は区分に含めていません：{items}",
                "en": "Questions without the examinees' accuracy are in no group: {items}"},
    "wrong_note": {"ja": "モデルが誤答した問題のうち、受験者が最も多く選んだ誤りの選択肢と同じものを選んだ割合です。高いほど、モデルは受験者と同じ「ひっかけ」に引っかかっています（5択の問題で誤りの選択肢をでたらめに選べば約 25%）。「2つ選べ」の問題では、選んだ誤りの選択肢の一つがそれに当たれば同じと数えます。",
                   "en": "Of the questions a model got wrong: how often its wrong choice is the wrong choice most examinees picked. The higher, the more the model falls for the examinees' trap (a random wrong choice of five would be about 25%). On a 'choose two' question, one of its wrong choices being that one counts."},
    "model": {"ja": "モデル", "en": "model"},
    "wrong": {"ja": "誤答", "en": "wrong"},
    "comparable": {"ja": "比べられた誤答", "en": "comparable"},
    "same": {"ja": "受験者の最多誤答と同じ", "en": "same as examinees' top wrong"},
    "share": {"ja": "割合 [95%信頼区間]", "en": "share [95% interval]"},
    "apart": {"ja": "比べられなかった誤答", "en": "not comparable"},
    "apart_cell": {"ja": "{k}（受験者の選択率なし {b}・誤りの選択肢を選んでいない {w}）",
                   "en": "{k} (no examinees' breakdown {b}, no wrong choice picked {w})"},
    "skipped": {"ja": "⚠ メタデータの {n} 行に読めない値があり、その値は使っていません（{files}）。データタブの検証で詳細を確認できます。",
                "en": "⚠ {n} metadata line(s) had values that could not be read and were ignored ({files}). The Data tab's check lists them."},
    "uncategorised": {"ja": "（分野なし）", "en": "(no specialty)"},
    # The pipeline's insights.no_categories / no_examinee_data said for this page: they name the
    # metadata's fields and the command line's --data, which a clinician on this page has no use for.
    "no_categories": {"ja": "問題ファイル（{files}）には分野（循環器・呼吸器など）の情報がないため、分野別の正答率は表示できません。",
                      "en": "The question file ({files}) has no specialties (cardiology, respiratory …), so accuracy per specialty cannot be shown."},
    "no_examinee_data": {"ja": "問題ファイル（{files}）には受験者のデータ（問題ごとの受験者の正答率と、選択肢ごとの選択率）がないため、受験者との比較は表示できません。",
                         "en": "The question file ({files}) has no examinee data (the share of examinees right on each question, and of those picking each choice), so the comparison with the examinees cannot be shown."},
    "metadata_fix": {"ja": "IgakuQA の試験メタデータ（例：116-A_metadata.jsonl）を、問題ファイルと同じフォルダに「問題ファイル名_metadata.jsonl」という名前で置いてください。",
                     "en": "Put IgakuQA's exam metadata (e.g. 116-A_metadata.jsonl) in the question file's folder, named after it: QUESTIONS_metadata.jsonl for QUESTIONS.jsonl."},
    "no_file": {"ja": "見つかりません", "en": "not found"},
}
WORDS = {
    "heat": {"ja": {"title": "分野別の正答率（色が濃いほど高い）", "accuracy": "正答率", "interval": "95%信頼区間",
                    "none": "この分野の問題なし"},
             "en": {"title": "Accuracy per specialty (darker is higher)", "accuracy": "accuracy",
                    "interval": "95% interval", "none": "no questions in this specialty"}},
    "band": {"ja": {"title": "受験者の正答率の区分ごとのモデルの正答率", "x_title": "その問題に正解した受験者の割合",
                    "y_title": "モデルの正答率", "examinees": "受験者（平均）", "interval": "95%信頼区間"},
             "en": {"title": "Model accuracy by the examinees' accuracy", "x_title": "share of examinees who got the question right",
                    "y_title": "model accuracy", "examinees": "examinees (mean)", "interval": "95% interval"}},
}


def row_name(label: str, shots: int, lang: str) -> str:
    """A model at one shot setting: 'tiny-run · 10（0-shot）'."""
    return f"{label}（{shots}-shot）" if lang == "ja" else f"{label} ({shots}-shot)"


def _note(text: str) -> str:
    return f'<p class="t1note" style="font-size:12px;color:#57606a">{html_escape(text)}</p>'


def _share(v) -> str:
    return "–" if v is None else (f"{v:.3f}".replace("0.", ".", 1) if 0 <= v < 1 else f"{v:.3f}")


# -- which evaluations -----------------------------------------------------------------

def chosen_filters(data: str | None, template: str | None) -> tuple[str | None, str | None]:
    """The Charts tab's filters as ``entries_from_registry`` takes them: ``ANY`` (or nothing) is no filter."""
    return (None if data in (None, ANY, "") else data), (None if template in (None, ANY, "") else template)


def chosen_entries(state: AppState, data: str | None, template: str | None) -> list[paper_table.Entry]:
    """The Table 1 columns these filters show (every section of the Charts tab shows the same)."""
    data, template = chosen_filters(data, template)
    ws = state.workspace
    return paper_table.entries_from_registry(ws.evaluations(), ws.models(), data=data, template=template)


def chosen_evaluations(state: AppState, data: str | None, template: str | None) -> list[tuple[str, dict]]:
    """(Table 1 column, registry row) of the evaluations Table 1 shows under these filters, in its
    order: the latest of each column, imported predictions last."""
    rows = {ev["out_dir"]: ev for ev in state.workspace.evaluations()}
    return [(e.column, rows[e.out_dir]) for e in chosen_entries(state, data, template) if e.out_dir in rows]


def load_chosen(state: AppState, data, template, lang: str) -> tuple[list[insights.Evaluation], list[str]]:
    """The chosen evaluations read for these views, and a notice for each that could not be read."""
    evals, problems = [], []
    for column, ev in chosen_evaluations(state, data, template):
        source = ev.get("data") if ev.get("data") and Path(ev["data"]).is_file() else None
        try:
            evals.append(insights.load_evaluation(ev["out_dir"], data=source, label=column))
        except UserError as exc:
            problems.append(error_html(exc, lang=lang))
    return evals, problems


def skipped_lines(evals: list[insights.Evaluation], lang: str) -> str:
    """A note when the metadata had lines whose values were ignored (a typo in a breakdown …)."""
    files = {ev.data: len(ev.data_problems) for ev in evals if ev.data and ev.data_problems}
    if not files:
        return ""
    names = "、".join(Path(f).name for f in files) if lang == "ja" else ", ".join(Path(f).name for f in files)
    return _note(MSG["skipped"][lang].format(n=sum(files.values()), files=names))


def refusal(exc: UserError, evals: list[insights.Evaluation], lang: str) -> str:
    """A view the question file cannot give, said for this page; any other problem as the pipeline says it."""
    code = (getattr(exc, "code", "") or "").removeprefix("insights.")
    if code not in ("no_categories", "no_examinee_data"):
        return error_html(exc, lang=lang)
    files = sorted({Path(ev.data).name for ev in evals if ev.data}) or [MSG["no_file"][lang]]
    return notice.error(MSG[code][lang].format(files=("、" if lang == "ja" else ", ").join(files)),
                        MSG["metadata_fix"][lang], lang)


# -- per specialty ---------------------------------------------------------------------------

def category_section(evals: list[insights.Evaluation], lang: str):
    """(html: table and notes, or the reason there is none; the heat map, or hidden)."""
    try:
        rows = insights.by_category(evals)
    except UserError as exc:
        return refusal(exc, evals, lang), gr.update(value=None, visible=False)
    named = {insights.UNCATEGORISED: MSG["uncategorised"][lang]}
    columns = list(dict.fromkeys(named.get(r["category"], r["category"]) for r in rows))
    heads = list(dict.fromkeys(row_name(r["model"], r["shots"], lang) for r in rows))
    cells = [{**r, "row": row_name(r["model"], r["shots"], lang), "column": named.get(r["category"], r["category"])}
             for r in rows]
    fig = insight_charts.category_heatmap(cells, heads, columns, words=WORDS["heat"][lang])
    # The table turned the other way: a specialty per row reads down a long list; a model per column.
    table = pd.DataFrame(index=columns, columns=heads, dtype=float)
    details = {}
    for c in cells:
        table.loc[c["column"], c["row"]] = c["accuracy"]
        details[(c["column"], c["row"])] = (c["n"], c["low"], c["high"])
    html_out = table_html(table, {}, details=details, corner=MSG["category_corner"][lang]) + _note(MSG["category_note"][lang])
    return html_out, gr.update(value=fig, visible=True)


# -- beside the examinees -----------------------------------------------------------------------

def _band_means(rows: list[dict]) -> dict[str, float]:
    """band -> the examinees' mean accuracy there, where every model's rows agree (one question set)."""
    out = {}
    for band in dict.fromkeys(r["band"] for r in rows):
        seen = {(r["n"], round(r["examinees"], 6)) for r in rows if r["band"] == band and r["examinees"] is not None}
        if len(seen) == 1:
            out[band] = next(iter(seen))[1]
    return out


def difficulty_section(evals: list[insights.Evaluation], lang: str):
    """(html: the table by band and its notes, or the reason there is none; the bar chart, or hidden)."""
    try:
        rows = insights.by_difficulty(evals)
    except UserError as exc:
        return refusal(exc, evals, lang), gr.update(value=None, visible=False)
    bands = list(dict.fromkeys(r["band"] for r in rows))
    heads = list(dict.fromkeys(row_name(r["model"], r["shots"], lang) for r in rows))
    means = _band_means(rows)
    labels = {b: b +
              (MSG["band_mean"][lang].format(mean=f"{means[b]:.0%}") if b in means else "") for b in bands}
    table = pd.DataFrame(index=[labels[b] for b in bands], columns=heads, dtype=float)
    details, bars = {}, []
    for r in rows:
        head, label = row_name(r["model"], r["shots"], lang), labels[r["band"]]
        table.loc[label, head] = r["accuracy"]
        if r["n"]:
            details[(label, head)] = (r["n"], r["low"], r["high"])
        bars.append({**r, "series": head})
    fig = insight_charts.difficulty_bars(bars, heads, bands, examinees=means, words=WORDS["band"][lang])
    missing = [(row_name(ev.label, s, lang), insights.without_examinee_data(ev, s))
               for ev in evals for s in ev.shot_settings]
    sep = "、" if lang == "ja" else ", "
    items = sep.join(f"{name} {k}" + ("問" if lang == "ja" else "") for name, k in missing if k)
    notes = _note(MSG["band_note"][lang]) + (_note(MSG["no_band"][lang].format(items=items)) if items else "")
    return table_html(table, {}, details=details, corner=MSG["band_corner"][lang]) + notes, gr.update(value=fig, visible=True)


def popular_wrong_section(evals: list[insights.Evaluation], lang: str, said: bool = False) -> str:
    """Per model and shot setting: its wrong answers, those comparable with the examinees' choices,
    how many are the examinees' most popular wrong answer, the share with its interval. ``said``:
    the section above already said the question file has no examinee data (not said twice)."""
    m = {k: v[lang] for k, v in MSG.items()}
    body, refused, without = [], None, []
    for ev in evals:
        for s in ev.shot_settings:
            try:
                r = insights.popular_wrong_share(ev, s)
            except UserError as exc:
                refused = refused or exc
                without += [ev] if ev not in without else []
                continue
            interval = f' <span class="ci">[{_share(r["low"])}, {_share(r["high"])}]</span>' if r["share"] is not None else ""
            k = r["no_breakdown"] + r["no_wrong_letter"]
            apart = m["apart_cell"].format(k=k, b=r["no_breakdown"], w=r["no_wrong_letter"]) if k else "0"
            body.append(f'<tr><td>{html_escape(row_name(ev.label, s, lang))}</td><td>{r["wrong"]}</td>'
                        f'<td>{r["comparable"]}</td><td>{r["same"]}</td><td>{_share(r["share"])}{interval}</td>'
                        f"<td>{html_escape(apart)}</td></tr>")
    title = f'<h4 style="margin:12px 0 6px">{html_escape(m["wrong_title"])}</h4>'
    if not body:
        return title + refusal(refused, without, lang) if refused and not said else ""
    head = "".join(f"<th>{html_escape(m[k])}</th>" for k in ("model", "wrong", "comparable", "same", "share", "apart"))
    table = (f'<div class="t1wrap"><table class="t1" id="charts-popular-wrong"><thead><tr>{head}</tr></thead>'
             f'<tbody>{"".join(body)}</tbody></table></div>')
    return title + table + _note(m["wrong_note"]) + (refusal(refused, without, lang) if refused else "")


def build(state: AppState, data, template, lang: str, request: gr.Request = None):
    """Both sections under the tab's filters: (category html, heat map, band html, band chart,
    popular-wrong html)."""
    evals, problems = load_chosen(state, data, template, lang)
    if not evals:
        hidden = gr.update(value=None, visible=False)
        none = "".join(problems) or notice.notice("info", MSG["none"][lang])
        return none, hidden, none, hidden, ""
    cat_html, cat_fig = category_section(evals, lang)
    band_html, band_fig = difficulty_section(evals, lang)
    wrong_html = popular_wrong_section(evals, lang, said=band_fig["visible"] is False)
    users.record(state.workspace.root, users.current_user(request), "view", "insights",
                 data=chosen_filters(data, template)[0], columns=[ev.label for ev in evals])
    extra = "".join(problems) + skipped_lines(evals, lang)
    return extra + cat_html, cat_fig, extra + band_html, band_fig, wrong_html
