"""The Compare tab's summary table follows the metric registry: a column per metric the
chosen runs have, headed in the page language, and the exam totals."""
import copy

from pipelines.evaluation import metrics
from tests.pipelines.test_metrics import SUMMARY_BEFORE
from workbench import tab_compare
from workbench.state import AppState


def test_summary_columns_follow_the_registry_and_the_runs(workspace, monkeypatch):
    generated = copy.deepcopy(SUMMARY_BEFORE)
    for s in generated["by_shots"].values():
        s.pop("ll_accuracy", None), s.pop("ll_accuracy_norm", None)
    workspace.record_evaluation("/ev/both", model="a", adapter=None, data="q", config={}, status="finished",
                                summary=SUMMARY_BEFORE)
    workspace.record_evaluation("/ev/gen", model="b", adapter=None, data="q", config={}, status="finished",
                                summary=generated)
    state = AppState(workspace=workspace)

    gen = tab_compare.summary_rows(state, {"b": "/ev/gen"}, "en")
    assert list(gen.columns) == tab_compare.summary_headers("en")
    assert list(gen.columns)[3:] == ["accuracy", "exact match", "gestalt", "points", "contraindicated picked"]
    assert gen.iloc[0].tolist() == ["b", "0-shot", 3, "0.667 [0.00, 1.00]", "0.333 [0.00, 1.00]",
                                    "0.583 [0.25, 1.00]", "2", "1"]

    both = tab_compare.summary_rows(state, {"a": "/ev/both", "b": "/ev/gen"}, "ja")
    assert "LL正答" in both.columns and "禁忌肢を選択" in both.columns
    assert both.set_index(["チェックポイント", "ショット"]).loc[("b", "0-shot"), "LL正答"] == "–"

    extra = metrics.Metric("brevity", {"ja": "簡潔さ", "en": "Brevity"}, {"ja": "簡潔", "en": "brief"})
    monkeypatch.setattr(metrics, "REGISTRY", metrics.REGISTRY + (extra,))
    assert "brief" not in tab_compare.summary_rows(state, {"b": "/ev/gen"}, "en").columns  # no run has it
    assert "brief" in tab_compare.summary_headers("en")
