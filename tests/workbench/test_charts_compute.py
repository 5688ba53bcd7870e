"""The Charts tab's accuracy-against-compute chart, in both languages."""
from __future__ import annotations

from tests.pipelines.test_compute import placed  # noqa: F401  (the fixture)


def test_the_charts_tab_draws_it_in_both_languages(placed):
    from workbench import tab_charts
    from workbench.state import AppState
    state = AppState(placed)
    fig, note = tab_charts.compute_figure(state, None, None, True, "accuracy", "tokens", "ja")
    names = {t.name for t in fig.data}
    assert "run (0-shot)" in names and "tiny (0-shot)" in names
    assert not any(n.startswith("paper:") for n in names)           # the paper reports no tokens
    assert fig.layout.xaxis.title.text.startswith("学習トークン数") and "openai:gpt" in note and "置いていない" in note
    fig, note = tab_charts.compute_figure(state, None, None, True, "accuracy", "hours", "en")
    assert any(n.startswith("paper: Llama2-70B") for n in {t.name for t in fig.data})
    assert "training hours" in fig.layout.xaxis.title.text and "Not on the compute chart" in note
