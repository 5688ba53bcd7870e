"""Plotly figures for evaluation metrics and training curves.

All take long-form frames (one row per point) so that the same data feeds the chart and
the CSV download. Error bars are the 95% bootstrap intervals of the evaluation summaries.
A metric's display name comes in as ``label`` (the workbench reads it from the registry).
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def step_label(step: int | None) -> str:
    """1000 -> '1k', 900 -> '0.9k' (the paper's column headings)."""
    if step is None:
        return "?"
    return f"{step / 1000:g}k" if step >= 1000 or (step >= 500 and step % 100 == 0) else str(step)

# Figures ship their own fonts: none are fetched from the internet.
_LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=50, b=40), height=440,
               legend=dict(orientation="h", yanchor="top", y=-0.22, x=0),
               font=dict(family="system-ui, sans-serif", size=13))


def empty_figure(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=15, color="#57606a"))
    fig.update_layout(**{**_LAYOUT, "height": 260}, xaxis=dict(visible=False), yaxis=dict(visible=False))
    return fig


def _value_range(fig: go.Figure, values) -> None:
    """A y range that reads true: a share (all values in 0..1) on the whole 0..1 scale, so an
    all-zero series sits on the floor of a 0..1 axis, not in the middle of Plotly's −1..1."""
    vals = [float(v) for v in values if v is not None and not pd.isna(v)]
    if vals and 0 <= min(vals) and max(vals) <= 1:
        fig.update_yaxes(range=[0, 1.04])
        fig.update_traces(cliponaxis=False, selector=dict(type="scatter"))   # a point at 0 drawn whole
    else:
        fig.update_yaxes(rangemode="tozero")


def _whole_steps(fig: go.Figure, steps) -> None:
    """A short run's axis ticks at whole steps (Plotly would label 1.5, 2.5: steps that never happen)."""
    steps = [s for s in steps if s is not None and not pd.isna(s)]
    if steps and max(steps) - min(steps) <= 20:
        fig.update_xaxes(dtick=1)


def _errors(sel: pd.DataFrame) -> dict | None:
    if sel["ci_low"].isna().all():
        return None
    return dict(type="data", symmetric=False, array=(sel["ci_high"] - sel["mean"]).clip(lower=0).tolist(),
                arrayminus=(sel["mean"] - sel["ci_low"]).clip(lower=0).tolist(), thickness=1.2, width=4)


def _series(long: pd.DataFrame) -> str:
    """The column naming a line: ``series`` (a run's name, or the base model) when the frame has it."""
    return "series" if "series" in long.columns and long["series"].notna().all() else "base"


def metric_vs_steps(long: pd.DataFrame, metric: str, *, label: str | None = None, title: str | None = None,
                    x_title: str = "training step (0 = base model)", hover_step: str = "step",
                    empty_message: str = "No evaluations yet") -> go.Figure:
    """The metric against training step, one line per run (or base model) and shot setting."""
    sel = long[(long["metric"] == metric) & long["step"].notna()] if len(long) else long
    if not len(sel):
        return empty_figure(empty_message)
    fig = go.Figure()
    for (base, shots), g in sel.groupby([_series(sel), "shots"], sort=True):
        g = g.sort_values("step")
        dash = "solid" if shots == 0 else "dash"
        fig.add_trace(go.Scatter(x=g["step"], y=g["mean"], mode="lines+markers", name=f"{base} ({shots}-shot)",
                                 line=dict(dash=dash), error_y=_errors(g),
                                 customdata=g[["n"]].values if "n" in g else None,
                                 hovertemplate=hover_step + " %{x}<br>%{y:.3f}<br>n=%{customdata[0]}"
                                               "<extra>%{fullData.name}</extra>"))
    label = label or metric
    fig.update_layout(**_LAYOUT, title=title or f"{label} vs training steps", xaxis_title=x_title,
                      yaxis_title=label)
    _value_range(fig, [*sel["mean"], *sel.get("ci_low", []), *sel.get("ci_high", [])])
    return fig


def shots_comparison(long: pd.DataFrame, metric: str, *, label: str | None = None, title: str | None = None,
                     empty_message: str = "No evaluations yet") -> go.Figure:
    """0-shot and 1-shot side by side for every evaluated checkpoint."""
    sel = long[long["metric"] == metric].copy() if len(long) else long
    if not len(sel):
        return empty_figure(empty_message)
    named = sel[_series(sel)].astype(str) + " · " + sel["step"].map(lambda s: step_label(None if pd.isna(s) else int(s)))
    sel["column"] = sel["column"].fillna(named) if "column" in sel.columns else named   # imported: its label alone
    fig = go.Figure()
    for shots, g in sel.groupby("shots", sort=True):
        fig.add_trace(go.Bar(x=g["column"], y=g["mean"], name=f"{shots}-shot", error_y=_errors(g),
                             hovertemplate="%{x}<br>%{y:.3f}<extra>" + f"{shots}-shot</extra>"))
    label = label or metric
    fig.update_layout(**_LAYOUT, barmode="group", title=title or f"{label}: 0-shot vs 1-shot", yaxis_title=label)
    _value_range(fig, [*sel["mean"], *sel.get("ci_low", []), *sel.get("ci_high", [])])
    return fig


def metric_vs_compute(points: pd.DataFrame, x: str = "hours", *, label: str = "accuracy", title: str | None = None,
                      x_title: str | None = None, empty_message: str = "No evaluations yet") -> go.Figure:
    """The metric against training compute (``x``: hours or tokens), one line per run or base model
    and shot setting; published columns (``source`` paper) drawn as open markers."""
    sel = points[points[x].notna()] if len(points) else points
    if not len(sel):
        return empty_figure(empty_message)
    fig = go.Figure()
    for (series, shots), g in sel.groupby(["series", "shots"], sort=True):
        g = g.sort_values(x)
        paper = (g["source"] == "paper").all()
        fig.add_trace(go.Scatter(
            x=g[x], y=g["mean"], mode="lines+markers", name=f"{series} ({shots}-shot)",
            line=dict(dash="solid" if shots == 0 else "dash"), error_y=_errors(g),
            marker=dict(symbol="circle-open" if paper else "circle", size=9 if paper else 7),
            customdata=g[["label"]].values,
            hovertemplate="%{customdata[0]}<br>%{x:,.4g} → %{y:.3f}<extra>%{fullData.name}</extra>"))
    fig.update_layout(**_LAYOUT, title=title or f"{label} vs training {x}", xaxis_title=x_title or x, yaxis_title=label)
    fig.update_xaxes(rangemode="tozero")     # 0 = the base model, no training
    _value_range(fig, [*sel["mean"], *sel["ci_low"].dropna(), *sel["ci_high"].dropna()])
    return fig


def loss_overlay(curves: dict[str, pd.DataFrame], *, y: str = "loss", title: str = "Training loss",
                 x_title: str = "step", y_title: str | None = None,
                 empty_message: str = "No training runs yet") -> go.Figure:
    """Several runs' curves on one chart (frames with a ``step`` column and ``y``)."""
    fig = go.Figure()
    for name, df in curves.items():
        if df is None or not len(df) or y not in df:
            continue
        d = df.dropna(subset=[y])
        fig.add_trace(go.Scatter(x=d["step"], y=d[y], mode="lines+markers" if len(d) < 30 else "lines", name=name,
                                 hovertemplate=f"{x_title} %{{x}}<br>{y_title or y} %{{y:.4g}}<extra>{name}</extra>"))
    if not fig.data:
        return empty_figure(empty_message)
    fig.update_layout(**_LAYOUT, title=title, xaxis_title=x_title, yaxis_title=y_title or y)
    _whole_steps(fig, [x for t in fig.data for x in t.x])
    return fig


RUN_WORDS = {"step": "step", "loss": "loss", "lr": "learning rate"}


def run_curves(df: pd.DataFrame, *, title: str = "", empty_message: str = "No metrics yet",
               words: dict[str, str] | None = None) -> go.Figure:
    """One run's loss (left axis) and learning rate (right axis) against step; ``words``: the
    axis, legend and hover words (``RUN_WORDS`` keys) in the page's language."""
    if df is None or not len(df) or "loss" not in df:
        return empty_figure(empty_message)
    w = {**RUN_WORDS, **(words or {})}
    fig = go.Figure()
    d = df.dropna(subset=["loss"])
    fig.add_trace(go.Scatter(x=d["step"], y=d["loss"], mode="lines+markers" if len(d) < 60 else "lines",
                             name=w["loss"], hovertemplate=f"{w['step']} %{{x}}<br>{w['loss']} %{{y:.4f}}<extra></extra>"))
    if "lr" in df:
        fig.add_trace(go.Scatter(x=df["step"], y=df["lr"], mode="lines", name=w["lr"], yaxis="y2",
                                 line=dict(dash="dot", color="#9a6700"),
                                 hovertemplate=f"{w['step']} %{{x}}<br>{w['lr']} %{{y:.2e}}<extra></extra>"))
    # A learning rate is never negative: a constant one (Plotly would centre it on −x..+x) sits
    # in the middle of an axis from 0.
    top = float(df["lr"].max()) if "lr" in df and df["lr"].notna().any() else 0.0
    _whole_steps(fig, d["step"])
    fig.update_layout(**{**_LAYOUT, "height": 360}, title=title, xaxis_title=w["step"], yaxis_title=w["loss"],
                      yaxis2=dict(title=w["lr"], overlaying="y", side="right", showgrid=False, tickformat=".1e",
                                  **({"range": [0, top * 2]} if top > 0 else {"rangemode": "tozero"})))
    return fig


SEARCH_WORDS = {"title": "Merge search", "x_title": "generation (0 = each input alone)", "generation": "generation",
                "candidate": "candidate", "best": "best so far"}


def search_curve(generations: list[int], scores: list[float], best: list[float], *, label: str = "dev score",
                 title: str | None = None, empty_message: str = "No candidates scored yet",
                 words: dict[str, str] | None = None) -> go.Figure:
    """Merge search: each candidate's dev score by generation (0 = the inputs alone), and the
    best so far after each candidate; the three lists run in the order candidates were scored.
    ``words``: title, axis, legend and hover words (``SEARCH_WORDS`` keys) in the page's language."""
    if not scores:
        return empty_figure(empty_message)
    w = {**SEARCH_WORDS, **(words or {})}
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=generations, y=scores, mode="markers", name=w["candidate"],
                             marker=dict(size=8, opacity=0.6),
                             hovertemplate=f"{w['generation']} %{{x}}<br>%{{y:.3f}}<extra>{w['candidate']}</extra>"))
    fig.add_trace(go.Scatter(x=generations, y=best, mode="lines", name=w["best"], line=dict(shape="hv"),
                             hovertemplate=f"{w['generation']} %{{x}}<br>{w['best']} %{{y:.3f}}<extra></extra>"))
    fig.update_layout(**_LAYOUT, title=title or w["title"], xaxis_title=w["x_title"], yaxis_title=label)
    fig.update_xaxes(dtick=1)
    _value_range(fig, [*scores, *best])
    return fig
