"""Charts tab: the paper's Table 1 for your own evaluations (published numbers beside them
on request), metric-vs-step and 0-shot-vs-1-shot charts with 95% intervals, training-loss
overlays, and CSV downloads. The frames come from ``pipelines.paper_table``."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from components import metric_chart
from components.metric_table import table_html
from pipelines import metrics, paper_table
from workbench import train_runs
from workbench.i18n import Labels
from workbench.state import AppState

L = {
    "intro": {"ja": "### 指標とグラフ\n論文の Table 1 と同じ形式（行：指標×0/1-shot と学習時間、列：モデル×ステップ、各行の上位2つを強調）で自分の評価結果をまとめます。",
              "en": "### Metrics and charts\nThe paper's Table 1 for your own evaluations (rows: metric × 0/1-shot and training hours; columns: model × step; top two per row marked)."},
    "data": {"ja": "問題ファイル", "en": "Question file"},
    "template": {"ja": "プロンプト形式", "en": "Prompt template"},
    "reference": {"ja": "論文の公表値を参照列として表示", "en": "Show the paper's published numbers as reference columns"},
    "refresh": {"ja": "↻ 更新", "en": "↻ Refresh"},
    "metric": {"ja": "グラフの指標", "en": "Metric to plot"},
    "csv_table": {"ja": "⬇ 表をCSVで保存", "en": "⬇ Table as CSV"},
    "csv_long": {"ja": "⬇ 全データ（信頼区間つき）CSV", "en": "⬇ All points with CIs (CSV)"},
    "runs": {"ja": "学習ラン（損失曲線を重ねて表示）", "en": "Training runs (loss curves overlaid)"},
}
MSG = {
    "any": {"ja": "（すべて）", "en": "(all)"},
    "none": {"ja": "まだ完了した評価がありません。比較タブで評価を実行してください（グラフは論文の公表値を表示中）。",
             "en": "No finished evaluation yet. Run one in the Compare tab (the charts show the paper's numbers meanwhile)."},
    "legend": {"ja": "太字・緑＝各行の最高値、下線＝2番目（自分の結果の中で）。グラフの右上のカメラアイコンでPNG保存できます。",
               "en": "Bold green = best in the row, underlined = second (among your results). Save any chart as PNG with the camera icon at its top right."},
}
HOURS_LABEL = {"ja": "学習時間（時間）", "en": "Training hours"}
ANY = "*"


def filter_choices(state: AppState) -> tuple[list[tuple[str, str]], list[str]]:
    evs = [e for e in state.workspace.evaluations() if e["status"] == "finished"]
    datas = sorted({e["data"] for e in evs})
    templates = sorted({(e.get("config") or {}).get("template", "") for e in evs} - {""})
    return [(Path(d).name, d) for d in datas], templates


def build(state: AppState, data: str | None, template: str | None, reference: bool, metric: str, lang: str):
    """Everything the tab shows, from the registry: (table html, 2 figures, 2 csv paths)."""
    ws = state.workspace
    entries = paper_table.entries_from_registry(ws.evaluations(), ws.models(),
                                                data=None if data in (None, ANY, "") else data,
                                                template=None if template in (None, ANY, "") else template)
    table = paper_table.build_table1(entries, reference=reference)
    own = [e.column for e in entries]
    if not entries and not reference:
        html_out = f'<p class="notice">{MSG["none"][lang]}</p>'
    else:
        row_labels = {**metrics.table1_row_labels(lang), paper_table.HOURS_ROW: HOURS_LABEL[lang]}
        html_out = table_html(table, paper_table.top_two(table, own), row_labels=row_labels)
        html_out += f'<p style="font-size:12px;color:#57606a">{MSG["legend"][lang]}'
        html_out += "" if entries else f'<br>{MSG["none"][lang]}'
        html_out += "</p>"
    long = paper_table.entries_long(entries)
    if not entries:  # nothing of yours yet: plot the paper's numbers so the charts show what to expect
        long = paper_table.published_long()
    empty = MSG["none"][lang]
    label = metrics.labels("en").get(metric, metric)  # the figures' other text is English too
    fig_steps = metric_chart.metric_vs_steps(long, metric, label=label, empty_message=empty)
    fig_shots = metric_chart.shots_comparison(long, metric, label=label, empty_message=empty)
    exports = ws.subdir("exports")
    table_csv, long_csv = exports / "table1.csv", exports / "table1_points.csv"
    table.to_csv(table_csv, index_label="metric")
    long.to_csv(long_csv, index=False)
    return html_out, fig_steps, fig_shots, str(table_csv), str(long_csv)


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
        csv_long = t.make(gr.DownloadButton, L["csv_long"], size="sm")
    plotted = metrics.labels("en", only=metrics.table1_metrics())
    metric = t.make(gr.Radio, L["metric"], choices=[(v, k) for k, v in plotted.items()],
                    value="accuracy", elem_id="charts-metric")
    with gr.Row():
        fig_steps = gr.Plot(elem_id="charts-steps", show_label=False)
        fig_shots = gr.Plot(elem_id="charts-shots", show_label=False)
    runs = t.make(gr.Dropdown, L["runs"], choices=train_runs.run_choices(state.workspace), multiselect=True,
                  elem_id="charts-runs")
    fig_loss = gr.Plot(elem_id="charts-loss", show_label=False)

    inputs = [data, template, reference, metric, lang]
    outputs = [table, fig_steps, fig_shots, csv_table, csv_long]

    def update(*args):
        return build(state, *args)

    def refresh_lists(current_data, current_template, lang_):
        datas_, templates_ = filter_choices(state)
        anyc = (MSG["any"][lang_], ANY)
        return (gr.update(choices=[anyc] + datas_), gr.update(choices=[anyc] + templates_),
                gr.update(choices=train_runs.run_choices(state.workspace)))

    def loss(selected, lang_):
        return train_runs.loss_figure(state.workspace, selected or [], lang_)

    for c in (data, template, reference, metric):
        c.change(update, inputs, outputs)
    refresh.click(refresh_lists, [data, template, lang], [data, template, runs]).then(update, inputs, outputs)
    runs.change(loss, [runs, lang], [fig_loss])
    return {"refresh": (refresh_lists, update, inputs, outputs, [data, template, lang], [data, template, runs]),
            "loss": (loss, [runs, lang], [fig_loss])}
