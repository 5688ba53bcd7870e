"""Charts tab: the paper's Table 1 for your own evaluations (n and the 95% interval under each
value, published numbers beside them on request), metric-vs-step and 0-shot-vs-1-shot charts
with 95% intervals, training-loss overlays, and CSV downloads (UTF-8 with BOM, for Excel); below
them, accuracy per specialty and the models beside the examinees (``charts_insights``), for the
evaluations the same filters pick.
Then whether an evaluation's questions are in a training file, and its score without them
(``charts_contamination``).

Layout and wiring only in ``create_charts_tab``; the handlers are the module-level functions
above it, called with the app state (tests call them directly). The frames come from
``pipelines.evaluation.paper_table``.
"""
from __future__ import annotations

import re
from html import escape as html_escape
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from components import metric_chart, notice
from components.metric_table import table_html
from pipelines.evaluation import compute, metrics, paper_table
from workbench import charts_contamination, charts_insights, train_runs, users
from workbench.i18n import Labels
from workbench.state import AppState
from workbench.wiring import bind

L = {
    "intro": {"ja": "### 指標とグラフ\n論文の Table 1 と同じ形式（行：指標×0/1-shot と学習時間、列：モデル×ステップ）で自分の評価結果をまとめます。各値の下に 95%信頼区間と問題数 n を示します。",
              "en": "### Metrics and charts\nThe paper's Table 1 for your own evaluations (rows: metric × 0/1-shot and training hours; columns: model × step), each value with its 95% interval and number of questions n."},
    "data": {"ja": "問題ファイル", "en": "Question file"},
    "template": {"ja": "プロンプト形式", "en": "Prompt template"},
    "reference": {"ja": "論文の公表値を参照列として表示", "en": "Show the paper's published numbers as reference columns"},
    "refresh": {"ja": "↻ 更新", "en": "↻ Refresh"},
    "metric": {"ja": "グラフの指標", "en": "Metric to plot"},
    "csv_table": {"ja": "⬇ 表をCSVで保存", "en": "⬇ Table as CSV"},
    "csv_long": {"ja": "⬇ 全データ（信頼区間つき）CSV", "en": "⬇ All points with CIs (CSV)"},
    "runs": {"ja": "学習ラン（損失曲線を重ねて表示）", "en": "Training runs (loss curves overlaid)"},
    "compute_x": {"ja": "計算量の軸", "en": "Compute axis"},
}
MSG = {
    "any": {"ja": "（すべて）", "en": "(all)"},
    "none": {"ja": "まだ完了した評価がありません。比較タブで評価を実行してください（グラフは論文の公表値を表示中）。",
             "en": "No finished evaluation yet. Run one in the Compare tab (the charts show the paper's numbers meanwhile)."},
    "legend": {"ja": "各値の下：[95%信頼区間] n＝問題数。太字・緑＝各行の最高値、下線＝2番目（自分の結果の中で。公表値とは比べていません）。グラフの右上のカメラアイコンでPNG保存できます。",
               "en": "Under each value: [95% interval] n = questions. Bold green = best in the row, underlined = second (among your results only; never against published numbers). Save any chart as PNG with the camera icon at its top right."},
    "mixed": {"ja": "⚠ 列ごとに採点した問題セットが異なるため（{sets}）、最高値の強調はしていません。問題ファイルを1つに絞ると強調されます。",
              "en": "⚠ Your columns were scored on different question sets ({sets}), so no value is marked best. Choose one question file to rank them."},
    "published": {"ja": "論文の公表値", "en": "published (paper)"},
    "pub_cell": {"ja": "区間・n 未報告", "en": "CI, n not reported"},
    "imported": {"ja": "取り込んだ予測（モデルなし・同じ採点）", "en": "imported predictions (no model; scored the same way)"},
    "exported": {"ja": "CSVは UTF-8（BOM付き、Excelでそのまま開けます）で、表示中の絞り込みの結果を書き出します。",
                 "en": "CSV files are UTF-8 with BOM (Excel opens them as they are) and hold what the filters above show."},
}
CHART = {
    "steps_title": {"ja": "{label}：学習ステップごと", "en": "{label} vs training steps"},
    "steps_x": {"ja": "学習ステップ（0＝ベースモデル）", "en": "training step (0 = base model)"},
    "step": {"ja": "ステップ", "en": "step"},
    "shots_title": {"ja": "{label}：0-shot と 1-shot", "en": "{label}: 0-shot vs 1-shot"},
}
HOURS_LABEL = {"ja": "学習時間（時間）", "en": "Training hours"}
COMPUTE = {
    "title": {"ja": "{label}：学習の計算量あたり", "en": "{label} vs training compute"},
    "hours": {"ja": "学習時間（時間、0＝ベースモデル）", "en": "training hours (0 = base model)"},
    "tokens": {"ja": "学習トークン数（0＝ベースモデル）", "en": "training tokens (0 = base model)"},
    "unplaced": {"ja": "学習の記録がないため計算量のグラフに置いていない列：{cols}",
                 "en": "Not on the compute chart (no training record): {cols}"},
}
ANY = charts_insights.ANY


def filter_choices(state: AppState) -> tuple[list[tuple[str, str]], list[str]]:
    evs = [e for e in state.workspace.evaluations() if e["status"] == "finished"]
    datas = sorted({e["data"] for e in evs})
    templates = sorted({(e.get("config") or {}).get("template", "") for e in evs} - {""})
    return [(Path(d).name, d) for d in datas], templates


def export_name(data: str | None, kind: str) -> str:
    """``table1_<question file>.csv``: the default name follows the question file shown."""
    stem = Path(data).stem if data not in (None, "", ANY) else "all"
    return f"{kind}_{re.sub(r'[^0-9A-Za-z_.-]+', '_', stem)}.csv"


def metric_name(m: metrics.Metric, lang: str) -> str:
    """A metric's name on this page: in Japanese, the short name where the label is the paper's
    English one ("Gestalt score" -> "Gestalt"), so no English word shows in a Japanese page."""
    return m.short[lang] if lang != "en" and m.label[lang] == m.table1 else m.label[lang]


def row_names(lang: str) -> dict[str, str]:
    """Table-1 row -> its heading: the paper's names in English, the registry's in Japanese."""
    if lang == "en":
        return metrics.table1_row_labels("en")
    return {metrics.table1_row(m, s): f"{metric_name(m, lang)}（{s}-shot）"
            for s in (0, 1) for m in metrics.table1_metrics()}


def table_section(table, entries: list[paper_table.Entry], lang: str) -> str:
    """Table 1 (``build_table1``) as HTML with n and intervals; the best values marked only among
    columns scored on one question set (a 4-question .750 is no 'best' beside 400 questions)."""
    if not entries and table.empty:
        return notice.notice("info", MSG["none"][lang])
    sets = {e.question_set for e in entries}
    marks = paper_table.top_two(table, [e.column for e in entries]) if len(sets) <= 1 else {}
    row_labels = {**row_names(lang), paper_table.HOURS_ROW: HOURS_LABEL[lang]}
    out = table_html(table, marks, row_labels=row_labels, details=paper_table.cell_details(entries),
                     published_note=MSG["published"][lang], reference_cell_note=MSG["pub_cell"][lang],
                     imported={e.column for e in entries if e.imported}, imported_note=MSG["imported"][lang])
    notes = [MSG["legend"][lang]]
    if len(sets) > 1:
        notes.insert(0, MSG["mixed"][lang].format(
            sets=", ".join(f"{Path(d).name or '?'} n={n}" for d, n in sorted(sets))))
    if not entries:
        notes.append(MSG["none"][lang])
    notes.append(MSG["exported"][lang])
    return out + "".join(f'<p class="t1note" style="font-size:12px;color:#57606a">{n}</p>' for n in notes)


def build(state: AppState, data: str | None, template: str | None, reference: bool, metric: str, lang: str,
          request: gr.Request = None):
    """Everything the tab shows, from the registry: (table html, 2 figures, 2 csv paths)."""
    ws = state.workspace
    chosen_data = charts_insights.chosen_filters(data, template)[0]
    entries = charts_insights.chosen_entries(state, data, template)
    table = paper_table.build_table1(entries, reference=reference)
    html_out = table_section(table, entries, lang)
    long = paper_table.entries_long(entries)
    if not entries:  # nothing of yours yet: plot the paper's numbers so the charts show what to expect
        long = paper_table.published_long()
    label = metric_name(metrics.get(metric), lang) if metric in metrics.keys() else metric
    empty = MSG["none"][lang]
    fig_steps = metric_chart.metric_vs_steps(long, metric, label=label, empty_message=empty,
                                             title=CHART["steps_title"][lang].format(label=label),
                                             x_title=CHART["steps_x"][lang], hover_step=CHART["step"][lang])
    fig_shots = metric_chart.shots_comparison(long, metric, label=label, empty_message=empty,
                                              title=CHART["shots_title"][lang].format(label=label))
    exports = ws.subdir("exports")
    table_csv, long_csv = exports / export_name(data, "table1"), exports / export_name(data, "table1_points")
    table.to_csv(table_csv, index_label="metric", encoding="utf-8-sig")   # BOM: Excel on Japanese Windows
    long.to_csv(long_csv, index=False, encoding="utf-8-sig")
    if entries:
        users.record(ws.root, users.current_user(request), "view", "table1", data=chosen_data or "all",
                     columns=[e.column for e in entries])
    return html_out, fig_steps, fig_shots, str(table_csv), str(long_csv)


def compute_figure(state: AppState, data: str | None, template: str | None, reference: bool, metric: str, x: str,
                   lang: str):
    """(figure, note): the metric against training hours or tokens (``pipelines.evaluation.compute``)."""
    ws = state.workspace
    models = ws.models()
    entries = charts_insights.chosen_entries(state, data, template)
    points, unplaced = compute.compute_points(entries, models, metric, reference=reference or not entries)
    label = metric_name(metrics.get(metric), lang) if metric in metrics.keys() else metric
    fig = metric_chart.metric_vs_compute(points, x if x in ("hours", "tokens") else "hours", label=label,
                                         title=COMPUTE["title"][lang].format(label=label),
                                         x_title=COMPUTE[x if x in ("hours", "tokens") else "hours"][lang],
                                         empty_message=MSG["none"][lang])
    note = COMPUTE["unplaced"][lang].format(cols="、".join(unplaced) if lang == "ja" else ", ".join(unplaced))
    return fig, (f'<p class="t1note" style="font-size:12px;color:#57606a">{html_escape(note)}</p>' if unplaced else "")


def refresh_lists(state: AppState, current_data, current_template, lang: str):
    datas, templates = filter_choices(state)
    anyc = (MSG["any"][lang], ANY)
    return (gr.update(choices=[anyc] + datas), gr.update(choices=[anyc] + templates),
            gr.update(choices=train_runs.run_choices(state.workspace)))


def compute_choices(lang: str) -> list[tuple[str, str]]:
    return [(HOURS_LABEL[lang], "hours"), ({"ja": "学習トークン数", "en": "Training tokens"}[lang], "tokens")]


def metric_choices(lang: str) -> list[tuple[str, str]]:
    return [(metric_name(m, lang), m.key) for m in metrics.table1_metrics()]


def relabel(state: AppState, lang: str, metric: str, runs: list[str]):
    """A language switch: the choices' names and the loss chart follow the page language."""
    return (gr.update(choices=metric_choices(lang), value=metric), *refresh_lists(state, None, None, lang)[:2],
            loss(state, runs, lang))


def loss(state: AppState, selected: list[str], lang: str):
    return train_runs.loss_figure(state.workspace, selected or [], lang)


def contamination_section(state: AppState, t: Labels) -> SimpleNamespace:
    """「学習データとの重複（汚染）の確認」: an evaluation, a training file, the check's result."""
    words = charts_contamination.L
    t.make(gr.Markdown, words["title"], elem_id="charts-contamination-title")
    t.make(gr.Markdown, words["intro"])
    with gr.Row():
        ev = t.make(gr.Dropdown, words["eval"], choices=charts_contamination.eval_choices(state, t.lang), scale=3,
                    elem_id="charts-contamination-eval")
        train = t.make(gr.Dropdown, words["train"], choices=charts_contamination.train_choices(state), value=None,
                       allow_custom_value=True, scale=3, elem_id="charts-contamination-train")
        run = t.make(gr.Button, words["run"], size="sm", scale=1, elem_id="charts-contamination-run")
    out = gr.HTML(elem_id="charts-contamination")
    return SimpleNamespace(eval=ev, train=train, run=run, out=out)


def create_charts_tab(state: AppState, t: Labels, lang: gr.State) -> dict:
    t.make(gr.Markdown, L["intro"])
    datas, templates = filter_choices(state)
    with gr.Row():
        data = t.make(gr.Dropdown, L["data"], choices=[(MSG["any"][t.lang], ANY)] + datas, value=ANY,
                      elem_id="charts-data")
        template = t.make(gr.Dropdown, L["template"], choices=[(MSG["any"][t.lang], ANY)] + templates, value=ANY)
        reference = t.make(gr.Checkbox, L["reference"], value=True, elem_id="charts-reference")
        refresh = t.make(gr.Button, L["refresh"], size="sm", elem_id="charts-refresh")
    table = gr.HTML(elem_id="charts-table")
    with gr.Row():
        csv_table = t.make(gr.DownloadButton, L["csv_table"], size="sm", elem_id="charts-csv")
        csv_long = t.make(gr.DownloadButton, L["csv_long"], size="sm", elem_id="charts-csv-long")
    metric = t.make(gr.Radio, L["metric"], choices=metric_choices(t.lang), value="accuracy", elem_id="charts-metric")
    with gr.Row():
        fig_steps = gr.Plot(elem_id="charts-steps", show_label=False)
        fig_shots = gr.Plot(elem_id="charts-shots", show_label=False)
    # Evaluation that explains itself (charts_insights), beside the metric charts: per specialty,
    # then beside the examinees; training compute and loss curves after them.
    t.make(gr.Markdown, charts_insights.L["category_title"], elem_id="charts-category-title")
    category_html = gr.HTML(elem_id="charts-category")
    category_fig = gr.Plot(elem_id="charts-category-map", show_label=False, visible=False)
    t.make(gr.Markdown, charts_insights.L["examinee_title"], elem_id="charts-examinee-title")
    band_html = gr.HTML(elem_id="charts-bands")
    band_fig = gr.Plot(elem_id="charts-bands-chart", show_label=False, visible=False)
    wrong_html = gr.HTML(elem_id="charts-wrong")
    contamination = contamination_section(state, t)
    compute_x = t.make(gr.Radio, L["compute_x"], choices=compute_choices(t.lang), value="hours",
                       elem_id="charts-compute-x")
    fig_compute = gr.Plot(elem_id="charts-compute", show_label=False)
    compute_note = gr.HTML(elem_id="charts-compute-note")
    runs = t.make(gr.Dropdown, L["runs"], choices=train_runs.run_choices(state.workspace), multiselect=True,
                  elem_id="charts-runs")
    fig_loss = gr.Plot(elem_id="charts-loss", show_label=False)

    inputs = [data, template, reference, metric, lang]
    outputs = [table, fig_steps, fig_shots, csv_table, csv_long]
    update = bind(build, state)
    for c in (data, template, reference, metric):
        c.change(update, inputs, outputs)
    by_compute = bind(compute_figure, state)
    compute_in = [data, template, reference, metric, compute_x, lang]
    for c in (data, template, reference, metric, compute_x):
        c.change(by_compute, compute_in, [fig_compute, compute_note])
    lists = bind(refresh_lists, state)
    refresh.click(lists, [data, template, lang], [data, template, runs]).then(update, inputs, outputs).then(
        by_compute, compute_in, [fig_compute, compute_note])
    runs.change(bind(loss, state), [runs, lang], [fig_loss])
    explain = (bind(charts_insights.build, state), [data, template, lang],
               [category_html, category_fig, band_html, band_fig, wrong_html])
    for c in (data, template, lang):
        c.change(*explain)
    refresh.click(*explain)
    c = contamination
    c_lists = (bind(charts_contamination.lists, state), [c.eval, c.train, lang], [c.eval, c.train])
    refresh.click(*c_lists)
    lang.change(*c_lists)
    c.eval.input(bind(charts_contamination.suggest, state), [c.eval, c.train], [c.train])
    c.run.click(bind(charts_contamination.check, state), [c.eval, c.train, lang], [c.out])
    # The language switch re-renders the table, the chart titles and axes, and the choice names.
    lang.change(bind(relabel, state), [lang, metric, runs], [metric, data, template, fig_loss]).then(
        update, inputs, outputs).then(lambda lang_, x: gr.update(choices=compute_choices(lang_), value=x),
                                      [lang, compute_x], [compute_x]).then(by_compute, compute_in,
                                                                            [fig_compute, compute_note])
    return {"refresh": (lists, update, inputs, outputs, [data, template, lang], [data, template, runs]),
            "loss": (bind(loss, state), [runs, lang], [fig_loss]),
            "compute": (by_compute, compute_in, [fig_compute, compute_note]), "insights": explain,
            "contamination": c_lists}
