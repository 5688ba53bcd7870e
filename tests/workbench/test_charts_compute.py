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


def test_table1_marks_imported_predictions(workspace, tmp_path):
    from pathlib import Path

    from pipelines.evaluation import evaluator
    from workbench import tab_charts
    from workbench.state import AppState
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "igakuqa"
    evaluator.run(evaluator.EvalConfig(predictions=str(fixtures / "116-A_gpt4.jsonl"), data=str(fixtures / "116-A.jsonl"),
                                       out=str(tmp_path / "gpt4"), workspace=str(workspace.root)), workspace=workspace)
    html, *_ = tab_charts.build(AppState(workspace), None, None, False, "accuracy", "ja")
    assert '<th class="imported">GPT-4 (IgakuQA, imported)<span class="pub">取り込んだ予測' in html
