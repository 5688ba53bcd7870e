import math

import pytest

from pipelines.evaluation import paper_table as pt


def summary(acc0, acc1=None, n=10):
    def m(v):
        return {"mean": v, "ci_low": max(0, v - 0.1), "ci_high": min(1, v + 0.1)}
    by = {"0": {"n": n, "accuracy": m(acc0), "exact_match": m(0.0), "gestalt": m(0.2)}}
    if acc1 is not None:
        by["1"] = {"n": n, "accuracy": m(acc1), "exact_match": m(0.1), "gestalt": m(0.3)}
    return {"by_shots": by}


def test_published_table_holds_the_papers_numbers():
    t = pt.published_table()
    assert list(t.index) == pt.ROWS
    assert t.loc["Accuracy (0s)", "paper: ChatGPT"] == pytest.approx(0.438)
    assert t.loc["Gestalt score (1s)", "paper: Llama2-70B · 0.9k"] == pytest.approx(0.331)
    assert t.loc["Exact match (1s)", "paper: MedCALM · 1k"] == 0
    assert t.loc["Training hours", "paper: MedCALM · 10k"] == pytest.approx(58.4)
    assert math.isnan(t.loc["Accuracy (1s)", "paper: ChatGPT"])  # "–" in the paper
    assert t.shape == (7, 12)


def test_step_labels_follow_the_paper():
    assert [pt.step_label(s) for s in (0, 10, 900, 1000, 3000, 10000)] == ["0", "10", "0.9k", "1k", "3k", "10k"]


def test_entries_place_adapters_under_their_base_and_latest_wins():
    models = [{"name": "default", "kind": "base", "step": 0},
              {"name": "run@100", "kind": "adapter", "base_model": "default", "step": 100, "train_hours": 0.5}]
    evals = [
        {"model": "default", "adapter": None, "data": "q.jsonl", "status": "finished", "updated_at": 1,
         "config": {"template": "ja"}, "summary": summary(0.1)},
        {"model": "default", "adapter": None, "data": "q.jsonl", "status": "finished", "updated_at": 3,
         "config": {"template": "ja"}, "summary": summary(0.3)},
        {"model": "run@100", "adapter": None, "data": "q.jsonl", "status": "finished", "updated_at": 2,
         "config": {"template": "ja"}, "summary": summary(0.4, 0.2)},
        {"model": "run@100", "adapter": None, "data": "other.jsonl", "status": "finished", "updated_at": 4,
         "config": {"template": "ja"}, "summary": summary(0.9)},
        {"model": "x", "adapter": None, "data": "q.jsonl", "status": "running", "updated_at": 5,
         "config": {}, "summary": None},
    ]
    entries = pt.entries_from_registry(evals, models, data="q.jsonl")
    assert [(e.base, e.step) for e in entries] == [("default", 0), ("default", 100)]
    table = pt.build_table1(entries)
    assert table.loc["Accuracy (0s)", "default · 0"] == pytest.approx(0.3)      # the later evaluation
    assert table.loc["Accuracy (0s)", "run · 100"] == pytest.approx(0.4)
    assert math.isnan(table.loc["Accuracy (1s)", "default · 0"])                # not evaluated 1-shot
    assert table.loc["Training hours", "run · 100"] == pytest.approx(0.5)
    assert math.isnan(table.loc["Training hours", "default · 0"])
    both = pt.build_table1(entries, reference=True)
    assert both.shape == (7, 14)
    # n and the 95% interval of every cell of yours; both columns answered the same question set.
    details = pt.cell_details(entries)
    assert details[("Accuracy (0s)", "default · 0")][0] == entries[0].summary.by_shots[0].n
    assert ("Accuracy (1s)", "default · 0") not in details
    assert entries[0].question_set == entries[1].question_set == ("q.jsonl", entries[0].summary.n)
    assert set(pt.entries_long(entries)["series"]) == {"default", "run"}


def test_top_two_marks_best_and_second_with_ties_and_gaps():
    entries = [pt.Entry("a", 0, summary(0.2)), pt.Entry("a", 10, summary(0.5)), pt.Entry("b", 0, summary(0.5)),
               pt.Entry("b", 10, summary(0.4, 0.1))]
    table = pt.build_table1(entries)
    marks = pt.top_two(table)
    assert set(marks["Accuracy (0s)"]) == {"a · 10", "b · 0", "b · 10"}  # 0.5 (tied) and 0.4
    assert marks["Accuracy (1s)"] == ["b · 10"]                           # the only value
    assert pt.HOURS_ROW not in marks


def test_long_form_has_cis_for_charts():
    long = pt.entries_long([pt.Entry("a", 10, summary(0.5, 0.3), train_hours=1.0)])
    row = long[(long.metric == "accuracy") & (long.shots == 1)].iloc[0]
    assert (row["mean"], row["ci_low"], row["ci_high"], row["step"]) == (0.3, pytest.approx(0.2), 0.4, 10)
    assert set(pt.published_long()["source"]) == {"paper"}
