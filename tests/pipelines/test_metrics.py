"""The metric registry and the typed summary: each metric defined once, flowing everywhere;
summary.json files written before the type existed load and re-save unchanged."""
import json

import pytest

from components import side_by_side
from pipelines.core.errors import UserError
from pipelines.evaluation import evaluator as evaluate
from pipelines.evaluation import metrics, paper_table, results, scoring, significance
from pipelines.evaluation.summary import EvalSummary
from pipelines.tasks.igakuqa import load_questions
from tests.conftest import SAMPLE_QUESTIONS

ROWS = [
    {"problem_id": "q1", "shots": 0, "accuracy": 1.0, "exact_match": 0.0, "gestalt": 0.5, "points": 1,
     "points_earned": 1.0, "kinki_picked": 0, "kinki": []},
    {"problem_id": "q2", "shots": 0, "accuracy": 0.0, "exact_match": 0.0, "gestalt": 0.25, "points": 3,
     "points_earned": 0.0, "kinki_picked": 1, "kinki": ["c"], "ll_accuracy": 1.0, "ll_accuracy_norm": 0.0},
    {"problem_id": "q3", "shots": 0, "accuracy": 1.0, "exact_match": 1.0, "gestalt": 1.0, "points": 1,
     "points_earned": 1.0, "kinki_picked": 0, "kinki": [], "ll_accuracy": 0.0, "ll_accuracy_norm": 1.0},
    {"problem_id": "q1", "shots": 1, "accuracy": 0.0, "exact_match": 0.0, "gestalt": 0.125, "points": 1,
     "points_earned": 0.0, "kinki_picked": 0, "kinki": []},
]
# What results.summarize wrote for ROWS before the registry existed (printed by that code).
BY_SHOTS_BEFORE = (
    '{"0": {"n": 3, "accuracy": {"mean": 0.6666666666666666, "ci_low": 0.0, "ci_high": 1.0}, "exact_match": '
    '{"mean": 0.3333333333333333, "ci_low": 0.0, "ci_high": 1.0}, "gestalt": {"mean": 0.5833333333333334, '
    '"ci_low": 0.25, "ci_high": 1.0}, "ll_accuracy": {"mean": 0.5, "ci_low": 0.0, "ci_high": 1.0}, '
    '"ll_accuracy_norm": {"mean": 0.5, "ci_low": 0.0, "ci_high": 1.0}, "exam": {"points_earned": 2.0, '
    '"points_total": 5, "score_rate": 0.4, "kinki_picked": 1, "questions_with_kinki": 1}}, "1": {"n": 1, '
    '"accuracy": {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}, "exact_match": {"mean": 0.0, "ci_low": 0.0, '
    '"ci_high": 0.0}, "gestalt": {"mean": 0.125, "ci_low": 0.125, "ci_high": 0.125}, "exam": {"points_earned": 0, '
    '"points_total": 1, "score_rate": 0.0, "kinki_picked": 0, "questions_with_kinki": 0}}}')
SUMMARY_BEFORE = {"label": "tiny", "model": "tiny", "adapter": None, "data": "q.jsonl", "template": "ja",
                  "chat_template": False, "scoring": "paper", "method": "both",
                  "by_shots": json.loads(BY_SHOTS_BEFORE), "skipped_not_text_only": 0, "data_problems": 0,
                  "seconds": 1.5, "questions_per_s": 2.667}


def by_shots_json(summaries) -> str:
    return json.dumps({str(k): v.to_dict() for k, v in summaries.items()}, ensure_ascii=False)


def test_summarize_writes_what_it_wrote_before_the_registry():
    assert by_shots_json(results.summarize(ROWS)) == BY_SHOTS_BEFORE


def test_existing_summary_json_round_trips_byte_for_byte():
    text = json.dumps(SUMMARY_BEFORE, ensure_ascii=False, indent=2)
    summary = EvalSummary.from_dict(json.loads(text))
    assert json.dumps(summary.to_dict(), ensure_ascii=False, indent=2) == text
    assert summary.shots == [0, 1] and summary.n == 3
    assert summary.value("accuracy", 0).mean == pytest.approx(2 / 3)
    assert summary.value("ll_accuracy", 1) is None and summary.value("accuracy", 5) is None
    assert summary.by_shots[0].exam.score_rate == pytest.approx(0.4)
    # Keys a newer version adds survive a load and re-save by this one.
    newer = EvalSummary.from_dict({**SUMMARY_BEFORE, "backend": "vllm"}).to_dict()
    assert newer["backend"] == "vllm" and list(newer)[-1] == "backend"


def test_registry_is_consistent_with_scoring_and_the_paper():
    keys = metrics.keys()
    assert len(keys) == len(set(keys))
    q = load_questions(SAMPLE_QUESTIONS, limit=1).questions[0]
    produced = set(scoring.score_response(q, q.answer_text))
    produced |= set(scoring.score_choice_logprobs(q, {k: 0.0 for k in q.letters}, {k: 0.0 for k in q.letters}))
    assert set(keys) <= produced, "every registered metric is written by a scoring function"
    for m in metrics.REGISTRY:
        assert (m.method == "loglik") == (m.key in scoring.score_choice_logprobs(
            q, {k: 0.0 for k in q.letters}, {k: 0.0 for k in q.letters})), m.key
    # Your Table 1 lines up with the published one, row for row.
    assert paper_table.rows() == paper_table.ROWS
    assert metrics.table1_row_labels("ja")["Accuracy (0s)"] == "正答率 Accuracy (0-shot)"
    assert metrics.table1_row_labels("ja")["Gestalt score (1s)"] == "Gestalt score (1-shot)"
    with pytest.raises(ValueError):
        metrics.Metric("x", {"ja": "x"}, {"ja": "x", "en": "x"})
    with pytest.raises(ValueError):
        metrics.Metric("x", {"ja": "x", "en": "x"}, {"ja": "x", "en": "x"}, aggregate="median")


def test_format_table_prints_shots_in_words():
    text = evaluate.format_table(EvalSummary.from_dict(SUMMARY_BEFORE), "tiny")
    assert "Accuracy (0-shot)" in text and "LL accuracy (norm) (0-shot)" in text and "(0s)" not in text
    assert "0.400  (2/5 points, 禁忌肢 (contraindicated) picked: 1)" in text.split("Exam score (0-shot)")[1]
    assert "n (1-shot)" in text and "LL accuracy (1-shot)" not in text


def test_a_new_metric_is_one_registry_entry(monkeypatch, tmp_path):
    """Register a throwaway metric: it reaches every reader with no other edit."""
    brevity = metrics.Metric("brevity", {"ja": "簡潔さ", "en": "Brevity"}, {"ja": "簡潔", "en": "brief"},
                             table1="Brevity", higher_is_better=False, badge="score")
    flags = metrics.Metric("flags", {"ja": "警告", "en": "Flags"}, {"ja": "警告", "en": "flags"}, aggregate="sum")
    monkeypatch.setattr(metrics, "REGISTRY", metrics.REGISTRY + (brevity, flags))
    rows = [{**r, "brevity": 0.1 * (i + 1), "flags": i} for i, r in enumerate(ROWS)]

    by_shots = results.summarize(rows)
    assert by_shots[0].means["brevity"].mean == pytest.approx(0.2)
    assert by_shots[0].exam.sums["flags"] == 3
    summary = EvalSummary(label="tiny", by_shots=by_shots)
    assert EvalSummary.from_dict(json.loads(json.dumps(summary.to_dict()))).to_dict() == summary.to_dict()

    text = evaluate.format_table(summary, "tiny")
    assert "Brevity (0-shot)" in text and "Flags: 3" in text

    entries = [paper_table.Entry("tiny", 0, summary.to_dict()), paper_table.Entry("tiny", 10, SUMMARY_BEFORE)]
    long = paper_table.entries_long(entries)
    assert set(long[long.metric == "brevity"]["shots"]) == {0, 1}
    table = paper_table.build_table1(entries)
    assert table.loc["Brevity (0s)", "tiny · 0"] == pytest.approx(0.2)
    table.loc["Brevity (0s)", "tiny · 10"] = 0.5
    assert paper_table.top_two(table)["Brevity (0s)"] == ["tiny · 0", "tiny · 10"]  # lower is better
    assert metrics.table1_row_labels("ja")["Brevity (1s)"] == "簡潔さ Brevity (1-shot)"

    items = side_by_side.build_items([], {"m": rows})
    frame = side_by_side.items_frame(items, ["m"], metrics=metrics.csv_keys())
    assert {"m 0s brevity", "m 0s flags", "m 0s accuracy", "m 1s gestalt"} <= set(frame.columns)
    assert ("brevity", "brief", "score") in metrics.badge_specs("en")

    out = tmp_path / "ev"
    out.mkdir()
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert significance.load_metric(out, "brevity", 0)["q3"] == pytest.approx(0.3)


def write_results(path, rows):
    path.mkdir()
    (path / "results.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_significance_names_the_metrics_a_run_has(tmp_path, capsys):
    generated = write_results(tmp_path / "gen", [r for r in ROWS if r["problem_id"] != "q2"])
    with pytest.raises(UserError) as err:
        significance.load_metric(generated, "ll_accuracy", 1)
    assert "accuracy, exact_match, gestalt, points_earned, kinki_picked" in err.value.problem
    assert "--method loglik or both" in err.value.fix
    with pytest.raises(UserError, match="no 2-shot results"):
        significance.load_metric(generated, "accuracy", 2)
    assert significance.load_metric(generated, "ll_accuracy", 0) == {"q3": 0.0}
    with pytest.raises(SystemExit):
        significance.main([str(generated), str(generated), "--metric", "nonsense"])
    assert "ll_accuracy_norm" in capsys.readouterr().err  # the choices come from the registry
