"""Evaluation that explains itself, checked on hand-made evaluations with hand-computed numbers.

The fixture: four questions in IgakuQA's format with a metadata file as IgakuQA publishes it
(percent strings), and three checkpoints A, B, C answering them 0-shot (A also 1-shot):

    question  answer  category  examinees  breakdown (a b c d e, %)   A      B      C
    Q1        a       呼吸器     90.0       90  6  2  1  1             a ✓    a ✓    b ✗
    Q2        c       循環器     50.0       5  35 50  5  5             b ✗    c ✓    c ✓
    Q3        a,e     呼吸器     80         85 10 30  5 70  (2つ選べ)   a,c ✗  b,e ✗  a,e ✓
    Q4        b       小児科     30.5       40 30 10 10 10             c ✗    a ✗    – ✗

The examinees' most popular wrong option: Q1 b (6), Q2 b (35), Q3 c (30), Q4 a (40: more than
picked the right answer).
"""
from __future__ import annotations

import json
import math

import pytest

from pipelines.core.errors import UserError
from pipelines.evaluation import flips as flip_views
from pipelines.evaluation import insights, insights_cli, significance
from pipelines.evaluation.evaluator import EvalConfig
from pipelines.evaluation.evaluator import main as evaluate_main
from pipelines.evaluation.evaluator import run as evaluate_run
from pipelines.tasks.igakuqa import load_questions

CHOICES = ["一", "二", "三", "四", "五"]
QUESTIONS = [("Q1", ["a"], "呼吸器", "90.0", ["90", "6", "2", "1", "1"]),
             ("Q2", ["c"], "循環器", "50.0", ["5", "35", "50", "5", "5"]),
             ("Q3", ["a", "e"], "呼吸器", "80", ["85", "10", "30", "5", "70"]),
             ("Q4", ["b"], "小児科", "30.5", ["40", "30", "10", "10", "10"])]
ANSWERS = {   # checkpoint -> the predicted letters per question (0-shot)
    "A": [["a"], ["b"], ["a", "c"], ["c"]],
    "B": [["a"], ["c"], ["b", "e"], ["a"]],
    "C": [["b"], ["c"], ["a", "e"], []],
}


def write_jsonl(path, objs) -> str:
    path.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs), encoding="utf-8")
    return str(path)


def write_exam(tmp_path, metadata: bool = True) -> str:
    data = write_jsonl(tmp_path / "exam.jsonl", [
        {"problem_id": pid, "problem_text": f"{pid} の問題文。" + ("2つ選べ。" if len(ans) > 1 else ""),
         "choices": CHOICES, "answer": ans, "text_only": True, "points": "1"} for pid, ans, *_ in QUESTIONS])
    if metadata:
        write_jsonl(tmp_path / "exam_metadata.jsonl", [
            {"problem_id": pid, "category": cat, "kinki": [], "reason": "", "human_accuracy": acc, "breakdown": bd}
            for pid, _, cat, acc, bd in QUESTIONS])
    return data


def row(pid: str, shots: int, predicted: list[str], **extra) -> dict:
    answer = next(a for p, a, *_ in QUESTIONS if p == pid)
    return {"problem_id": pid, "shots": shots, "predicted": predicted, "answer": answer, "accepted": [answer],
            "accuracy": float(sorted(predicted) == answer), "points": 1, **extra}


def write_eval(tmp_path, name: str, rows: list[dict], data: str, **config) -> str:
    out = tmp_path / name
    out.mkdir()
    write_jsonl(out / "results.jsonl", rows)
    (out / "config.json").write_text(json.dumps({"model": "tiny", "adapter": f"runs/{name}", "data": data,
                                                 **config}), encoding="utf-8")
    return str(out)


@pytest.fixture
def evals(tmp_path):
    data = write_exam(tmp_path)
    dirs = []
    for name, answers in ANSWERS.items():
        rows = [row(pid, 0, pred) for (pid, *_), pred in zip(QUESTIONS, answers)]
        if name == "A":
            rows += [row(pid, 1, ans) for pid, ans, *_ in QUESTIONS]      # 1-shot: all right
        dirs.append(write_eval(tmp_path, name, rows, data))
    return insights.load_evaluations(dirs)


# -- the loader --------------------------------------------------------------------------

def test_the_loader_reads_the_examinees_figures_and_ignores_bad_ones(tmp_path):
    data = write_exam(tmp_path)
    write_jsonl(tmp_path / "exam_metadata.jsonl", [
        {"problem_id": "Q1", "human_accuracy": "90.0", "breakdown": ["90", "6", "2", "1", "1"]},
        {"problem_id": "Q2", "human_accuracy": "", "breakdown": ["5", "35", "50", "5"]},        # 4 shares, 5 choices
        {"problem_id": "Q3", "human_accuracy": "120", "breakdown": ["85", "10", "500.3", "5", "70"]},  # IgakuQA's typo
        {"problem_id": "Q4", "human_accuracy": "abc", "breakdown": "40,30"},
    ])
    qs = load_questions(data, on_error="skip")
    q1, q2, q3, q4 = qs.questions
    assert (q1.human_accuracy, q1.breakdown) == (90.0, [90.0, 6.0, 2.0, 1.0, 1.0])
    assert all(q.breakdown is None for q in (q2, q3, q4)) and q2.human_accuracy is q3.human_accuracy is None
    assert [(p.line, p.field, p.code) for p in qs.problems] == [
        (2, "breakdown", "question.breakdown_count"), (3, "human_accuracy", "question.accuracy_range"),
        (3, "breakdown", "question.breakdown_ignored"), (4, "human_accuracy", "question.accuracy_ignored"),
        (4, "breakdown", "question.breakdown_ignored")]
    assert qs.problems[0].params == {"got": 4, "n": 5} and qs.problems[1].params == {"got": '"120"'}


# -- per specialty ------------------------------------------------------------------------

def test_accuracy_per_category_by_hand(evals):
    rows = insights.by_category(evals, 0)
    got = {(r["model"], r["category"]): (r["n"], r["accuracy"]) for r in rows}
    # 呼吸器 = Q1, Q3; 循環器 = Q2; 小児科 = Q4.
    assert got == {("tiny+A", "呼吸器"): (2, 0.5), ("tiny+A", "循環器"): (1, 0.0), ("tiny+A", "小児科"): (1, 0.0),
                   ("tiny+B", "呼吸器"): (2, 0.5), ("tiny+B", "循環器"): (1, 1.0), ("tiny+B", "小児科"): (1, 0.0),
                   ("tiny+C", "呼吸器"): (2, 0.5), ("tiny+C", "循環器"): (1, 1.0), ("tiny+C", "小児科"): (1, 0.0)}
    # Most questions first, then by name; within a model, in that order.
    assert [r["category"] for r in rows[:3]] == ["呼吸器", "小児科", "循環器"]
    # Two questions, one right: resamples have mean 0, .5 or 1 (¼, ½, ¼), so the 95% interval is [0, 1].
    two = rows[0]
    assert (two["low"], two["high"]) == (0.0, 1.0)
    one = next(r for r in rows if r["model"] == "tiny+B" and r["category"] == "循環器")
    assert (one["low"], one["high"]) == (1.0, 1.0)
    one_shot = insights.by_category(evals[:1], 1)
    assert {r["category"]: r["accuracy"] for r in one_shot} == {"呼吸器": 1.0, "小児科": 1.0, "循環器": 1.0}
    assert {r["shots"] for r in insights.by_category(evals[:1])} == {0, 1}     # no --shots: every setting


def test_the_heat_map_grid_is_models_by_specialties(evals):
    grid = insights.category_matrix(insights.by_category(evals, 0))
    assert list(grid.columns) == ["呼吸器", "小児科", "循環器"]
    assert list(grid.index) == ["tiny+A · 0-shot", "tiny+B · 0-shot", "tiny+C · 0-shot"]
    assert grid.loc["tiny+B · 0-shot"].tolist() == [0.5, 0.0, 1.0]


def test_a_question_without_a_category_is_counted_apart(tmp_path):
    data = write_exam(tmp_path, metadata=False)
    ev = insights.load_evaluations([write_eval(tmp_path, "A", [row("Q1", 0, ["a"], category="呼吸器"),
                                                                row("Q2", 0, ["a"])], data)])
    got = {r["category"]: (r["n"], r["accuracy"]) for r in insights.by_category(ev, 0)}
    assert got == {"呼吸器": (1, 1.0), insights.UNCATEGORISED: (1, 0.0)}     # the row's own category counts


# -- model vs examinees ---------------------------------------------------------------------

def test_accuracy_by_band_of_the_examinees_accuracy(evals):
    rows = insights.by_difficulty(evals, (0.5, 0.8), 0)
    got = {(r["model"], r["band"]): (r["n"], r["accuracy"]) for r in rows}
    # < 50 %: Q4 (30.5); 50–80 %: Q2 (exactly 50 is in it); ≥ 80 %: Q1 (90), Q3 (exactly 80).
    assert got == {("tiny+A", "< 50%"): (1, 0.0), ("tiny+A", "50%–80%"): (1, 0.0), ("tiny+A", "≥ 80%"): (2, 0.5),
                   ("tiny+B", "< 50%"): (1, 0.0), ("tiny+B", "50%–80%"): (1, 1.0), ("tiny+B", "≥ 80%"): (2, 0.5),
                   ("tiny+C", "< 50%"): (1, 0.0), ("tiny+C", "50%–80%"): (1, 1.0), ("tiny+C", "≥ 80%"): (2, 0.5)}
    top = rows[2]
    assert (top["from"], top["to"]) == (0.8, 1.0) and top["examinees"] == pytest.approx((0.9 + 0.8) / 2)
    assert rows[0]["examinees"] == pytest.approx(0.305)
    empty = insights.by_difficulty(evals[:1], (0.95,), 0)[1]      # ≥ 95 %: no question
    assert (empty["band"], empty["n"], empty["accuracy"], empty["examinees"]) == ("≥ 95%", 0, None, None)
    with pytest.raises(UserError) as exc:
        insights.by_difficulty(evals, (0.8, 0.5), 0)
    assert exc.value.code == "insights.bands"


def test_how_often_the_wrong_answer_is_the_examinees_favourite(evals):
    a, b, c = (insights.popular_wrong_share(ev, 0) for ev in evals)
    # A: Q2 b = their b ✓, Q3 {a,c}: wrong letter c = their c ✓, Q4 c ≠ their a → 2 of 3.
    assert (a["wrong"], a["comparable"], a["same"], a["questions"]) == (3, 3, 2, ["Q2", "Q3"])
    assert a["share"] == pytest.approx(2 / 3) and a["low"] <= a["share"] <= a["high"]
    # B: Q3 {b,e}: wrong letter b, theirs c → no; Q4 a = their a → 1 of 2.
    assert (b["wrong"], b["comparable"], b["same"], b["share"]) == (2, 2, 1, 0.5)
    # C: Q1 b = their b; Q4 answered nothing: no wrong letter to compare → 1 of 1, one counted apart.
    assert (c["wrong"], c["comparable"], c["same"], c["no_wrong_letter"], c["share"]) == (2, 1, 1, 1, 1.0)


def test_a_shuffled_run_is_read_in_the_files_letters(tmp_path):
    data = write_exam(tmp_path)
    # Q2 shown with its choices reversed: shown 'd' is the file's 'b', the examinees' favourite wrong one.
    order = ["e", "d", "c", "b", "a"]
    shuffled = row("Q2", 0, ["d"], choice_order=order) | {"accuracy": 0.0}
    (ev,) = insights.load_evaluations([write_eval(tmp_path, "S", [shuffled], data)])
    assert insights.popular_wrong_share(ev, 0)["questions"] == ["Q2"]


def test_misses_most_examinees_got_right_come_first(evals):
    rows = insights.embarrassing(evals, 0.8, 0)
    # ≥ 80 % right and missed: Q1 (90 %) by C, Q3 (80 %) by A and by B; easiest for examinees first.
    assert [(r["problem_id"], r["model"]) for r in rows] == [("Q1", "tiny+C"), ("Q3", "tiny+A"), ("Q3", "tiny+B")]
    first = rows[0]
    assert (first["examinees"], first["predicted"], first["answer"], first["category"]) == (0.9, ["b"], ["a"], "呼吸器")
    assert first["examinees_on_predicted"] == {"b": 0.06}
    assert [r["problem_id"] for r in insights.embarrassing(evals, 0.85, 0)] == ["Q1"]
    assert insights.compare_order(evals, 0.8, 0) == ["Q1", "Q3", "Q2", "Q4"]


def test_no_metadata_says_what_is_missing_and_where_it_comes_from(tmp_path):
    data = write_exam(tmp_path, metadata=False)
    evals = insights.load_evaluations([write_eval(tmp_path, "A", [row("Q1", 0, ["a"])], data)])
    for view, code in ((lambda: insights.by_difficulty(evals), "insights.no_examinee_data"),
                       (lambda: insights.popular_wrong_share(evals[0]), "insights.no_examinee_data"),
                       (lambda: insights.embarrassing(evals), "insights.no_examinee_data"),
                       (lambda: insights.by_category(evals), "insights.no_categories")):
        with pytest.raises(UserError) as exc:
            view()
        assert exc.value.code == code and exc.value.params == {"path": data}
        assert data in exc.value.problem and "metadata" in exc.value.problem
        assert "EXAM_metadata.jsonl" in exc.value.fix and "jungokasai/IgakuQA" in exc.value.fix
    assert insights.compare_order(evals) == ["Q1"]                # no data: question order, no error
    gone = insights.load_evaluations([write_eval(tmp_path, "B", [row("Q1", 0, ["a"])], str(tmp_path / "moved.jsonl"))])
    with pytest.raises(UserError) as exc:
        insights.by_difficulty(gone)
    assert "no question file found" in exc.value.problem and exc.value.code == "insights.no_examinee_data"


def test_bad_folders_and_shot_settings_are_refused(tmp_path, evals):
    with pytest.raises(UserError) as exc:
        insights.load_evaluation(tmp_path / "nothing")
    assert exc.value.code == "compare.no_results"
    with pytest.raises(UserError) as exc:
        insights.by_category(evals, 1)                # B and C have no 1-shot answers
    assert exc.value.code == "insights.no_shots" and exc.value.params["has"] == "0-shot"


# -- flips between checkpoints --------------------------------------------------------------

def test_the_flip_matrix_of_four_questions_and_three_checkpoints(evals):
    grid = flip_views.flip_matrix(evals, 0)
    assert list(grid.columns) == ["problem_id", "tiny+A · 0-shot", "tiny+B · 0-shot", "tiny+C · 0-shot"]
    assert grid.astype(object).values.tolist() == [["Q1", 1, 1, 0],
                                                   ["Q2", 0, 1, 1],
                                                   ["Q3", 0, 0, 1],
                                                   ["Q4", 0, 0, 0]]
    assert flip_views.flipping(grid) == ["Q1", "Q2", "Q3"]        # Q4 wrong everywhere never flips
    both = flip_views.flip_matrix(evals, None)                    # A's 1-shot column beside; <NA> nowhere else
    assert list(both.columns)[1:3] == ["tiny+A · 0-shot", "tiny+A · 1-shot"]
    assert both["tiny+A · 1-shot"].tolist() == [1, 1, 1, 1]


def test_an_unanswered_question_is_empty_not_wrong(tmp_path, evals):
    partial = insights.load_evaluations([write_eval(tmp_path, "P", [row("Q2", 0, ["c"])], evals[0].data)])
    grid = flip_views.flip_matrix([evals[0], *partial], 0)
    assert grid["tiny+P · 0-shot"].isna().tolist() == [True, False, True, True]
    assert flip_views.flipping(grid) == ["Q2"]


def test_flips_between_two_checkpoints_with_mcnemar_and_the_bootstrap(evals):
    a, b, c = evals
    res = flip_views.flips(b, c, 0)
    assert (res["right_in_a_only"], res["right_in_b_only"], res["both_right"], res["both_wrong"]) == (["Q1"], ["Q3"], 1, 1)
    assert (res["accuracy_a"], res["accuracy_b"], res["bootstrap"]["diff"]) == (0.5, 0.5, 0.0)
    # 1 vs 1 discordant: 2 · (C(2,0) + C(2,1)) / 2² = 1.5 → 1.
    assert res["mcnemar"] == {"p": 1.0, "method": "exact", "statistic": None, "discordant": 2}
    res = flip_views.flips(a, c, 0)
    assert (res["right_in_a_only"], res["right_in_b_only"]) == (["Q1"], ["Q2", "Q3"])
    assert res["bootstrap"]["diff"] == pytest.approx(0.25)


def test_mcnemar_by_hand_exact_below_25_flips_chi_square_from_25():
    # 0 vs 7: 2 · (1/2)^7
    assert significance.mcnemar(0, 7) == {"p": 2 / 2 ** 7, "method": "exact", "statistic": None, "discordant": 7}
    # 2 vs 22: 2 · (C(24,0) + C(24,1) + C(24,2)) / 2^24 = 2 · 301 / 16777216
    assert significance.mcnemar(2, 22)["p"] == pytest.approx(602 / 16777216, rel=1e-12)
    # 5 vs 25: X² = (|5 − 25| − 1)² / 30 = 361/30; p = P(χ²₁ > X²) = erfc(√(X²/2)) = 0.000522575…
    test = significance.mcnemar(5, 25)
    assert test["method"] == "chi2_cc" and test["statistic"] == pytest.approx(361 / 30)
    assert test["p"] == pytest.approx(0.0005225753951242, rel=1e-9)
    # 10 vs 20: X² = 9² / 30 = 2.7; p = erfc(√1.35). 15 vs 15: no difference, X² = 0 and p = 1 (as R's mcnemar.test).
    assert significance.mcnemar(10, 20)["p"] == pytest.approx(math.erfc(math.sqrt(1.35)))
    assert (significance.mcnemar(15, 15)["statistic"], significance.mcnemar(15, 15)["p"]) == (0, 1.0)


def test_mcnemar_on_ten_questions_that_flip_one_way(tmp_path):
    """A right on Q-0, Q-1; B right on Q-0 … Q-7; both wrong on Q-8, Q-9: 6 flips one way, p = 2/2⁶."""
    data = write_exam(tmp_path)
    a = [{"problem_id": f"Q-{i}", "shots": 0, "predicted": ["a"], "accuracy": float(i < 2)} for i in range(10)]
    b = [{"problem_id": f"Q-{i}", "shots": 0, "predicted": ["a"], "accuracy": float(i < 8)} for i in range(10)]
    ea, eb = insights.load_evaluations([write_eval(tmp_path, "a", a, data), write_eval(tmp_path, "b", b, data)])
    res = flip_views.flips(ea, eb, 0)
    assert res["right_in_b_only"] == [f"Q-{i}" for i in range(2, 8)] and res["right_in_a_only"] == []
    assert res["mcnemar"]["p"] == 2 / 2 ** 6 == significance.paired_comparison(
        {r["problem_id"]: r["accuracy"] for r in a}, {r["problem_id"]: r["accuracy"] for r in b})["p_mcnemar"]


# -- imported predictions, the CLIs ---------------------------------------------------------

def test_imported_predictions_are_a_model_in_every_view(tmp_path, workspace, evals):
    # The examinees' majority picks each question's most popular choice: a, c, (a, e), a.
    preds = write_jsonl(tmp_path / "exam_student-majority.jsonl", [
        {"problem_id": "Q1", "prediction": "a"}, {"problem_id": "Q2", "prediction": "c"},
        {"problem_id": "Q3", "prediction": "a,e"}, {"problem_id": "Q4", "prediction": "a"}])
    out = tmp_path / "majority"
    evaluate_run(EvalConfig(predictions=preds, data=evals[0].data, out=str(out)))
    (maj,) = insights.load_evaluations([out])
    assert maj.imported and maj.label == "受験者多数派 / examinees' majority (IgakuQA, imported)"
    assert {r["category"]: r["accuracy"] for r in insights.by_category([maj], 0)} == {"呼吸器": 1.0, "小児科": 0.0,
                                                                                       "循環器": 1.0}
    assert insights.popular_wrong_share(maj, 0)["same"] == 1          # Q4: a, their favourite wrong answer
    assert flip_views.flips(evals[0], maj, 0)["right_in_b_only"] == ["Q2", "Q3"]


def test_the_insights_cli_prints_each_view_and_its_json(evals, capsys):
    dirs = [ev.path for ev in evals]
    insights_cli.main([*dirs, "--by", "flips", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["flipping"] == ["Q1", "Q2", "Q3"] and len(out["pairs"]) == 2
    assert out["matrix"][0] == {"problem_id": "Q1", "tiny+A · 0-shot": 1, "tiny+B · 0-shot": 1, "tiny+C · 0-shot": 0}
    insights_cli.main([*dirs, "--by", "flips"])
    text = capsys.readouterr().out
    assert "3 of 4 questions flip" in text and "McNemar (exact binomial, 2 discordant): p = 1" in text
    insights_cli.main([*dirs, "--by", "category"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:4] == ["呼吸器", "2", "0.500", "[0.000,"]
    insights_cli.main([*dirs, "--by", "examinees", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert [p["same"] for p in out["popular_wrong"]] == [2, 1, 1] and out["embarrassing"][0]["problem_id"] == "Q1"
    insights_cli.main([*dirs, "--by", "examinees"])
    assert "Missed although ≥ 80% of examinees got them right: 3" in capsys.readouterr().out
    insights_cli.main([dirs[0], "--by", "difficulty", "--json"])
    assert [r["n"] for r in json.loads(capsys.readouterr().out)["rows"]] == [1, 1, 2]


def test_evaluate_by_category_prints_the_table_after_the_summary(tmp_path, workspace, capsys):
    data = write_exam(tmp_path)
    preds = write_jsonl(tmp_path / "p.jsonl", [{"problem_id": pid, "prediction": "a"} for pid, *_ in QUESTIONS])
    evaluate_main(["--predictions", preds, "--data", data, "--out", str(tmp_path / "o"), "--by", "category"])
    text = capsys.readouterr().out
    assert text.index("Accuracy (0-shot)") < text.index("Accuracy by category")
    assert [ln.split()[:3] for ln in text.splitlines() if ln.startswith(("呼吸器", "循環器"))] == [
        ["呼吸器", "2", "0.500"], ["循環器", "1", "0.000"]]


def test_significance_prints_mcnemar_beside_the_bootstrap(evals, capsys):
    significance.main([evals[0].path, evals[2].path])
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("paired bootstrap p = ") and "McNemar (exact binomial, 3 discordant): p = 1" in line
    assert "(1 right only in A, 2 only in B)" in line


def test_a_report_evaluation_or_an_empty_one_is_refused(tmp_path):
    data = write_exam(tmp_path)
    report = write_eval(tmp_path, "report", [{"id": "img1", "bleu4": 0.1}], data)
    empty = write_eval(tmp_path, "empty", [], data)
    for folder, code in ((report, "insights.not_exam"), (empty, "insights.no_answers")):
        with pytest.raises(UserError) as exc:
            insights.load_evaluation(folder)
        assert exc.value.code == code


def test_two_runs_of_one_label_are_told_apart_by_their_folders(tmp_path):
    data = write_exam(tmp_path)
    rows = [row("Q1", 0, ["a"])]
    one = write_eval(tmp_path, "one", rows, data, adapter=None, model="m")
    two = write_eval(tmp_path, "two", rows, data, adapter=None, model="m")
    assert [ev.label for ev in insights.load_evaluations([one, two])] == ["m [one]", "m [two]"]


def test_a_question_file_named_but_missing_is_said_so(tmp_path, evals):
    with pytest.raises(UserError) as exc:
        insights.load_evaluation(evals[0].path, data=tmp_path / "nowhere.jsonl")
    assert exc.value.code == "questions.missing"


def test_ignored_metadata_lines_are_kept_for_the_reader(tmp_path, capsys):
    data = write_exam(tmp_path)
    write_jsonl(tmp_path / "exam_metadata.jsonl", [{"problem_id": "Q1", "human_accuracy": "90", "category": "眼科",
                                                    "breakdown": ["98.0", "500.3", "1", "1", "1"]}])
    folder = write_eval(tmp_path, "A", [row("Q1", 0, ["a"])], data)
    (ev,) = insights.load_evaluations([folder])
    assert [(p.field, p.code) for p in ev.data_problems] == [("breakdown", "question.breakdown_ignored")]
    insights_cli.main([folder])
    assert "warning: ignored" in capsys.readouterr().err
