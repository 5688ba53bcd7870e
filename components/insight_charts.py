"""Plotly figures for evaluation that explains itself: accuracy per specialty as a heat map
(models × specialties) and accuracy per band of the examinees' accuracy as grouped bars.

Both take plain rows (``pipelines/evaluation/insights.py``: ``by_category``, ``by_difficulty``)
with the names to show already chosen by the caller; every word on a figure (titles, axes,
hover) comes in through ``words`` so the page's language decides them.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go

from components.metric_chart import _LAYOUT, empty_figure

# Light to dark blue: readable for red–green colour blindness, and printed in grey it still
# orders low to high. Fixed at 0..1 so one colour means one accuracy on every page.
ACCURACY_SCALE = [[0.0, "#f7fbff"], [0.25, "#c6dbef"], [0.5, "#6baed6"], [0.75, "#2171b5"], [1.0, "#08306b"]]
HEAT_WORDS = {"title": "Accuracy per specialty", "accuracy": "accuracy", "interval": "95% interval",
              "none": "no questions"}
BAND_WORDS = {"title": "Accuracy by the examinees' accuracy", "x_title": "share of examinees right",
              "y_title": "accuracy", "examinees": "examinees (mean)", "interval": "95% interval"}


def _short(v: float) -> str:
    """.625 as the paper writes a share (no leading zero), 1.000 as it is."""
    return f"{v:.3f}".replace("0.", ".", 1) if 0 <= v < 1 else f"{v:.3f}"


def category_heatmap(cells: list[dict], rows: list[str], columns: list[str], *, words: dict[str, str] | None = None,
                     empty_message: str = "No evaluations yet") -> go.Figure:
    """One row per model (and shot setting), one column per specialty. ``cells``: dicts with
    ``row``, ``column``, ``accuracy``, ``low``, ``high``, ``n``; a missing cell stays blank. Each
    cell shows its accuracy; hovering shows the interval and n."""
    if not cells:
        return empty_figure(empty_message)
    w = {**HEAT_WORDS, **(words or {})}
    at = {(c["row"], c["column"]): c for c in cells}
    z, text, hover = [], [], []
    for r in rows:
        z_row, text_row, hover_row = [], [], []
        for col in columns:
            c = at.get((r, col))
            if c is None or c.get("accuracy") is None:
                z_row.append(None)
                text_row.append("")
                hover_row.append(f"{r}<br>{col}<br>{w['none']}")
                continue
            z_row.append(c["accuracy"])
            text_row.append(_short(c["accuracy"]))
            hover_row.append(f"{r}<br>{col}<br>{w['accuracy']} {_short(c['accuracy'])}<br>"
                             f"{w['interval']} [{_short(c['low'])}, {_short(c['high'])}]<br>n={c['n']}")
        z.append(z_row)
        text.append(text_row)
        hover.append(hover_row)
    fig = go.Figure(go.Heatmap(z=z, x=columns, y=rows, zmin=0, zmax=1, colorscale=ACCURACY_SCALE, xgap=2, ygap=2,
                               text=text, texttemplate="%{text}", hovertext=hover, hoverinfo="text",
                               colorbar=dict(title=dict(text=w["accuracy"]), tickformat=".1f", len=0.9)))
    longest = max((len(str(c)) for c in columns), default=4)
    fig.update_layout(**{**_LAYOUT, "height": max(260, 160 + 38 * len(rows) + 9 * min(longest, 12)),
                         "margin": dict(l=10, r=10, t=50, b=10)}, title=w["title"])
    fig.update_xaxes(side="bottom", tickangle=-45 if len(columns) > 6 else 0, automargin=True)
    fig.update_yaxes(autorange="reversed", automargin=True)        # the first model on top, as in the table
    return fig


def difficulty_bars(rows: list[dict], series: list[str], bands: list[str], *, examinees: dict[str, float] | None = None,
                    words: dict[str, str] | None = None, empty_message: str = "No evaluations yet") -> go.Figure:
    """Accuracy per band of the examinees' accuracy: one bar per model (``series``, in this
    order) in each band, with its 95% interval; ``rows``: dicts with ``series``, ``band``,
    ``accuracy``, ``low``, ``high``, ``n`` (an empty band has accuracy None). ``examinees``: band ->
    the examinees' mean accuracy there, drawn as a marker beside the bars."""
    if not rows:
        return empty_figure(empty_message)
    w = {**BAND_WORDS, **(words or {})}
    fig = go.Figure()
    for name in series:
        at = {r["band"]: r for r in rows if r["series"] == name}
        ys = [at[b]["accuracy"] if b in at else None for b in bands]
        up = [(at[b]["high"] - at[b]["accuracy"]) if b in at and at[b]["accuracy"] is not None else 0 for b in bands]
        down = [(at[b]["accuracy"] - at[b]["low"]) if b in at and at[b]["accuracy"] is not None else 0 for b in bands]
        info = [[at[b]["n"] if b in at else 0,
                 _short(at[b]["low"]) if b in at and at[b]["low"] is not None else "–",
                 _short(at[b]["high"]) if b in at and at[b]["high"] is not None else "–"] for b in bands]
        # Each bar's value written at its foot: a zero bar is still seen as 0, not as missing.
        fig.add_trace(go.Bar(x=bands, y=ys, name=name, customdata=info, text=[_short(y) if y is not None else ""
                                                                                for y in ys],
                             textposition=["outside" if y == 0 else "inside" for y in ys], insidetextanchor="start",
                             textangle=0, textfont=dict(size=11), cliponaxis=False,
                             error_y=dict(type="data", symmetric=False, array=up, arrayminus=down, thickness=1.2,
                                          width=4),
                             hovertemplate="%{x}<br>%{y:.3f} " + w["interval"] +
                                           " [%{customdata[1]}, %{customdata[2]}]<br>n=%{customdata[0]}"
                                           "<extra>%{fullData.name}</extra>"))
    if examinees:
        ys = [examinees.get(b) for b in bands]
        if any(y is not None and not math.isnan(y) for y in ys):
            fig.add_trace(go.Scatter(x=bands, y=ys, mode="markers", name=w["examinees"],
                                     marker=dict(symbol="diamond", size=12, color="#1f2328"),
                                     hovertemplate="%{x}<br>%{y:.3f}<extra>" + w["examinees"] + "</extra>"))
    fig.update_layout(**_LAYOUT, barmode="group", title=w["title"], xaxis_title=w["x_title"],
                      yaxis_title=w["y_title"])
    fig.update_yaxes(range=[0, 1.04])
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=bands)
    return fig
