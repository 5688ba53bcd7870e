import math

import pandas as pd

from components import metric_chart, metric_table, run_monitor
from pipelines.evaluation import paper_table as pt


def long_frame():
    recs = []
    for step, acc in ((0, 0.2), (10, 0.3), (20, 0.25)):
        for shots in (0, 1):
            recs.append({"base": "tiny", "step": step, "shots": shots, "metric": "accuracy", "mean": acc + shots / 10,
                         "ci_low": acc - 0.05, "ci_high": acc + 0.15, "n": 10})
    return pd.DataFrame(recs)


def test_metric_vs_steps_draws_one_line_per_base_and_shots_with_error_bars():
    fig = metric_chart.metric_vs_steps(long_frame(), "accuracy")
    assert [t.name for t in fig.data] == ["tiny (0-shot)", "tiny (1-shot)"]
    assert list(fig.data[0].x) == [0, 10, 20]
    assert math.isclose(fig.data[0].error_y.array[0], 0.15)
    assert math.isclose(fig.data[0].error_y.arrayminus[0], 0.05)


def test_shots_comparison_and_empty_states():
    fig = metric_chart.shots_comparison(long_frame(), "accuracy")
    assert [t.name for t in fig.data] == ["0-shot", "1-shot"] and list(fig.data[0].x)[1] == "tiny · 10"
    empty = metric_chart.metric_vs_steps(long_frame(), "gestalt", empty_message="nothing")
    assert not empty.data and empty.layout.annotations[0].text == "nothing"
    curves = {"r1": pd.DataFrame({"step": [1, 2], "loss": [2.0, 1.5]}), "r2": pd.DataFrame()}
    assert [t.name for t in metric_chart.loss_overlay(curves).data] == ["r1"]
    # The paper's own numbers (no CIs) plot without error bars.
    fig = metric_chart.metric_vs_steps(pt.published_long(), "accuracy")
    assert fig.data and fig.data[0].error_y.array is None


def test_a_flat_zero_series_sits_on_the_floor_of_a_0_to_1_axis():
    """Plotly centres an all-zero series on −1..1; a share belongs on 0..1. Other values keep
    a range from zero that Plotly sizes."""
    zero = long_frame().assign(mean=0.0, ci_low=0.0, ci_high=0.0)
    for fig in (metric_chart.metric_vs_steps(zero, "accuracy"), metric_chart.shots_comparison(zero, "accuracy"),
                metric_chart.search_curve([0, 0, 1], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])):
        assert tuple(fig.layout.yaxis.range) == (0, 1.04)
    points = long_frame().assign(mean=3.0, ci_low=2.0, ci_high=4.0)
    fig = metric_chart.metric_vs_steps(points, "accuracy")
    assert fig.layout.yaxis.range is None and fig.layout.yaxis.rangemode == "tozero"


def test_run_curves_speak_the_words_given():
    df = pd.DataFrame({"step": [1, 2], "loss": [2.0, 1.5], "lr": [1e-4, 1e-4]})
    fig = metric_chart.run_curves(df, words={"step": "ステップ", "loss": "損失", "lr": "学習率"})
    assert fig.layout.xaxis.title.text == "ステップ" and fig.layout.yaxis2.title.text == "学習率"
    assert [t.name for t in fig.data] == ["損失", "学習率"]
    assert all(t.hovertemplate.startswith("ステップ ") for t in fig.data)
    assert "step" in metric_chart.run_curves(df).data[0].hovertemplate
    assert tuple(fig.layout.yaxis2.range) == (0, 2e-4)       # a constant rate, on an axis from 0
    assert fig.layout.xaxis.dtick == 1                         # no step 1.5


def test_table_html_marks_best_and_second():
    table = pd.DataFrame({"x · 0": [0.5, math.nan], "x · 10": [0.3, 1.0], "paper: y": [0.9, 2.0]},
                         index=["Accuracy (0s)", "Training hours"])
    html = metric_table.table_html(table, pt.top_two(table, ["x · 0", "x · 10"]))
    assert '<td class="best">.500</td>' in html and '<td class="second">.300</td>' in html
    assert '<td class="ref">.900</td>' in html and "–" in html and "1.00" in html


def test_progress_and_tail(tmp_path):
    h = run_monitor.progress_html("eval", 5, 20, elapsed=10.0)
    assert 'aria-valuenow="25"' in h and "5/20" in h and "ETA 0:30" in h
    assert "finished" in run_monitor.progress_html("eval", 0, 0, status="finished")
    log = tmp_path / "log"
    log.write_text("a\nprogress 10%\rprogress 50%\rprogress 90%\nb\n")
    assert run_monitor.tail(log) == "a\nprogress 90%\nb"
    assert run_monitor.tail(tmp_path / "missing") == ""
    assert run_monitor.format_seconds(3725) == "1:02:05"
