"""Imported predictions scored as IgakuQA's evaluate_main.py scores them, into an evaluation folder
Table 1 and the Compare tab read like a model's.

The fixtures (tests/fixtures/igakuqa/, hand-made in IgakuQA's format: its repository has no licence)
and the figures evaluate_main.py printed for them are described in that folder's README.md.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from pipelines.core.errors import UserError
from pipelines.evaluation import evaluator, imported, paper_table
from pipelines.evaluation.evaluator import EvalConfig, run
from pipelines.evaluation.results import read_results
from pipelines.tasks.igakuqa import Question
from tests.conftest import REPO

FIX = REPO / "tests" / "fixtures" / "igakuqa"

# What IgakuQA's scripts/evaluate_main.py printed for each pair (README.md there has the command).
# By hand, 116-A gpt4: 116A1 c ✓ (1 point), 116A2 e ✗ (its 禁忌肢), 116A3 "d,b" ✓ (1), 116A4 a ✓ (worth 0),
# 116A71 a ✓ (any answer, 1), 116A72 a sentence ✗ (3), 116A75 "4" ≠ "04" ✗ (1) -> 4/7, 3 of 8 points.
EVALUATE_MAIN = {
    ("116-A", "gpt4"): {"accuracy": 0.5714285714285714, "score": 3, "total": 8, "kinki": 1},
    ("116-A", "student-majority"): {"accuracy": 0.7142857142857143, "score": 4, "total": 8, "kinki": 1},
    ("112-B", "gpt4"): {"accuracy": 0.8, "score": 8, "total": 11, "kinki": 0},
    ("112-B", "chatgpt"): {"accuracy": 0.4, "score": 4, "total": 11, "kinki": 1},
}


def _import(tmp_path, exam: str, system: str, **kw) -> dict:
    return run(EvalConfig(predictions=str(FIX / f"{exam}_{system}.jsonl"), data=str(FIX / f"{exam}.jsonl"),
                          out=str(tmp_path / f"{exam}_{system}"), **kw))


@pytest.mark.parametrize("exam,system", sorted(EVALUATE_MAIN))
def test_figures_equal_what_evaluate_main_printed(workspace, tmp_path, exam, system):
    want = EVALUATE_MAIN[(exam, system)]
    summary = _import(tmp_path, exam, system)
    n = {"116-A": 7, "112-B": 5}[exam]
    assert (summary["n"], summary["accuracy"], summary["score"], summary["total"]) == \
        (n, want["accuracy"], want["score"], want["total"])
    zero = summary["by_shots"]["0"]          # what Table 1 and the charts read
    assert zero["n"] == n and zero["accuracy"]["mean"] == want["accuracy"]
    assert zero["exam"]["points_earned"] == want["score"] and zero["exam"]["points_total"] == want["total"]
    assert zero["exam"]["kinki_picked"] == want["kinki"]
    assert "exact_match" not in zero and "gestalt" not in zero       # a letter is not a free-text response


def test_the_two_special_cases_and_the_literal_reading_of_a_prediction():
    q116 = Question("116A71", "t", ["p", "q", "r", "s", "u"], ["e"])
    q112 = Question("112B30", "t", ["p", "q", "r", "s", "u"], ["a"], alternatives=[["a"], ["d"]])
    plain = Question("116A3", "t", ["p", "q", "r", "s", "u"], ["b", "d"])
    assert all(imported.official_correct(q116, p) for p in ([""], ["a"], ["a", "b"], ["e"]))
    assert [imported.official_correct(q112, p) for p in (["a"], ["d"], ["a", "d"], ["e"])] == [True, True, False, False]
    # evaluate_main.py hard-codes 112B30: "a" or "d" even where the file's answer says only "a"
    assert imported.official_correct(Question("112B30", "t", ["p", "q", "r", "s", "u"], ["a"]), ["d"])
    assert imported.official_letters("d,b") == ["b", "d"] and imported.official_correct(plain, ["b", "d"])
    assert imported.official_letters("b, d") == [" d", "b"] and not imported.official_correct(plain, [" d", "b"])
    assert imported.official_letters("") == [""]


def test_rows_count_image_questions_and_mark_the_import(workspace, tmp_path):
    summary = _import(tmp_path, "112-B", "gpt4")
    rows = {r["problem_id"]: r for r in read_results(tmp_path / "112-B_gpt4")}
    assert len(rows) == 5 and rows["112B30"]["text_only"] is False          # an image question, counted
    assert rows["112B30"]["accuracy"] == 1.0 and rows["112B30"]["points_earned"] == 3.0   # "d" of "a or d"
    assert rows["112B30"]["official_correction"] == "a or d"
    assert all(r["imported"] and r["scoring"] == "igakuqa_official" and r["shots"] == 0 for r in rows.values())
    assert rows["112B31"]["response"] == "e" and rows["112B31"]["accuracy"] == 0.0
    src = summary["imported"]
    assert src["format"] == "igakuqa" and src["source"] == str((FIX / "112-B_gpt4.jsonl").resolve())
    assert len(src["sha256"]) == 64 and src["questions_without_prediction"]["n"] == 0
    config = json.loads((tmp_path / "112-B_gpt4" / "config.json").read_text())
    assert config["imported"]["sha256"] == src["sha256"] and config["label"] == "GPT-4 (IgakuQA, imported)"
    assert not {"temperature", "top_p", "max_new_tokens", "template", "seed"} & set(config)


def test_unreadable_predictions_are_counted_as_evaluate_main_scores_them(workspace, tmp_path):
    src = _import(tmp_path, "116-A", "student-majority")["imported"]
    # "b, d" (a space), "" (116A71, still correct) — 116A75 "04" is a number, readable
    assert src["unreadable_predictions"] == {"n": 2, "ids": ["116A3", "116A71"]}


def test_table1_and_the_workspace_show_the_import_beside_models(workspace, tmp_path):
    _import(tmp_path, "116-A", "gpt4")
    (ev,) = workspace.evaluations()
    assert ev["status"] == "finished" and ev["model"] == "GPT-4 (IgakuQA, imported)" and ev["config"]["imported"]
    entries = paper_table.entries_from_registry(workspace.evaluations(), workspace.models())
    table = paper_table.build_table1(entries)
    col = "GPT-4 (IgakuQA, imported)"           # no step: it is no checkpoint
    assert table.loc["Accuracy (0s)", col] == 4 / 7 and math.isnan(table.loc["Exact match (0s)", col])
    assert entries[-1].imported and paper_table.entries_long(entries)["source"].eq("imported").all()


@pytest.mark.parametrize("name,label", [("116-A_gpt4.jsonl", "GPT-4 (IgakuQA, imported)"),
                                        ("116-A_chatgpt.jsonl", "ChatGPT (IgakuQA, imported)"),
                                        ("116-A_gpt3.jsonl", "GPT-3 (IgakuQA, imported)"),
                                        ("116-A_student-majority.jsonl",
                                         "受験者多数派 / examinees' majority (IgakuQA, imported)"),
                                        ("mine.jsonl", "mine (imported)")])
def test_label_from_the_file_name(tmp_path, name, label):
    pf = imported.PredictionFile(tmp_path / name, "igakuqa", "", {}, [])
    assert imported.default_label(pf) == label


def test_label_option_overrides(workspace, tmp_path):
    assert _import(tmp_path, "116-A", "gpt4", label="GPT-4 (Kasai 2023)")["label"] == "GPT-4 (Kasai 2023)"


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_own_results_are_rescored_on_the_exam_file(workspace, tmp_path):
    """0-shot: 112B1 answered 選択肢ア (a ✓, exact), 112B31 '答えは選択肢イです' (b ✗), 112B30 by
    log-likelihood with shuffled choices ('b' shown = 'a' of the file ✓, 3 points); 1-shot: 112B2 ✓."""
    run_dir = tmp_path / "ckpt-eval"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"label": "my-ckpt"}))
    _write(run_dir / "results.jsonl", [
        {"problem_id": "112B1", "shots": 0, "response": "選択肢ア", "scoring": "paper", "predicted": ["e"]},
        {"problem_id": "112B31", "shots": 0, "response": "答えは選択肢イです", "scoring": "paper", "predicted": ["c"]},
        {"problem_id": "112B30", "shots": 0, "response": None, "scoring": "paper", "predicted": ["b"],
         "choice_order": ["d", "a", "b", "c", "e"]},
        {"problem_id": "112B2", "shots": 1, "response": "選択肢イ", "scoring": "paper", "predicted": ["b"]},
    ])
    summary = run(EvalConfig(predictions=str(run_dir / "results.jsonl"), data=str(FIX / "112-B.jsonl"),
                             out=str(tmp_path / "again")))
    assert summary["label"] == "my-ckpt (imported)" and summary["imported"]["format"] == "results"
    assert (summary["n"], summary["accuracy"], summary["score"], summary["total"]) == (5, 0.4, 4.0, 11.0)
    assert summary["by_shots"]["0"]["exact_match"]["mean"] == 0.5     # of the two rows with a response
    assert summary["by_shots"]["1"]["accuracy"]["mean"] == 0.2 and summary["by_shots"]["1"]["exam"]["points_earned"] == 1
    rows = {(r["problem_id"], r["shots"]): r for r in read_results(tmp_path / "again")}
    assert rows[("112B1", 0)]["predicted"] == ["a"] and rows[("112B31", 0)]["predicted"] == ["b"]
    assert rows[("112B30", 0)]["predicted"] == ["a"] and rows[("112B30", 0)]["points_earned"] == 3.0
    assert summary["imported"]["questions_without_prediction"]["n"] == 6     # 2 of 5 at 0-shot, 4 of 5 at 1-shot


def test_unmatched_ids_are_listed_and_count_as_evaluate_main_counts(workspace, tmp_path):
    preds = _write(tmp_path / "116-A_gpt4.jsonl", [{"problem_id": "116A1", "prediction": "c"},
                                                   {"problem_id": "999Z1", "prediction": "a"}])
    summary = run(EvalConfig(predictions=str(preds), data=str(FIX / "116-A.jsonl"), out=str(tmp_path / "o")))
    assert (summary["n"], summary["accuracy"], summary["score"]) == (7, 1 / 7, 1.0)
    src = summary["imported"]
    assert src["predictions_not_in_exam"] == {"n": 1, "ids": ["999Z1"]}
    assert src["questions_without_prediction"]["n"] == 6 and "116A71" in src["questions_without_prediction"]["ids"]


def test_a_wrong_pairing_is_refused_naming_both_files(workspace, tmp_path):
    with pytest.raises(UserError) as exc:
        run(EvalConfig(predictions=str(FIX / "116-A_gpt4.jsonl"), data=str(FIX / "112-B.jsonl"),
                       out=str(tmp_path / "o")))
    assert exc.value.code == "predictions.none_matched"
    assert "116-A_gpt4.jsonl" in exc.value.problem and "112-B.jsonl" in exc.value.problem
    assert not (tmp_path / "o").exists() and workspace.evaluations() == []


def test_bad_lines_stop_or_are_skipped(workspace, tmp_path):
    preds = _write(tmp_path / "p.jsonl", [{"problem_id": "116A1", "prediction": "c"},
                                          {"problem_id": "116A2", "prediction": 3},
                                          {"problem_id": "116A1", "prediction": "a"}])
    cfg = dict(predictions=str(preds), data=str(FIX / "116-A.jsonl"), out=str(tmp_path / "o"))
    with pytest.raises(UserError) as exc:
        run(EvalConfig(**cfg))
    assert exc.value.code == "predictions.bad_lines" and exc.value.params["n"] == 2
    assert [p["code"] for p in exc.value.params["problems"]] == ["predictions.not_text", "predictions.duplicate"]
    summary = run(EvalConfig(**cfg, on_error="skip"))
    assert summary["accuracy"] == 1 / 7 and summary["imported"]["prediction_problems"] == 2   # the first 116A1 kept


def test_not_a_predictions_file_and_a_missing_one(workspace, tmp_path):
    other = _write(tmp_path / "x.jsonl", [{"problem_id": "116A1", "answer": ["c"]}])
    for path, code in ((other, "predictions.format"), (tmp_path / "none.jsonl", "predictions.missing")):
        with pytest.raises(UserError) as exc:
            run(EvalConfig(predictions=str(path), data=str(FIX / "116-A.jsonl"), out=str(tmp_path / "o")))
        assert exc.value.code == code
    with pytest.raises(UserError) as exc:
        run(EvalConfig(predictions=str(FIX / "116-A_gpt4.jsonl"), task="report", out=str(tmp_path / "o")))
    assert exc.value.code == "predictions.report_task"


def test_import_again_replaces_but_never_overwrites_a_model_evaluation(workspace, tmp_path):
    out = tmp_path / "o"
    cfg = dict(predictions=str(FIX / "116-A_gpt4.jsonl"), data=str(FIX / "116-A.jsonl"), out=str(out))
    run(EvalConfig(**cfg))
    run(EvalConfig(**cfg))
    assert len(read_results(out)) == 7 and len(workspace.evaluations()) == 1
    model_run = tmp_path / "model"
    model_run.mkdir()
    (model_run / "config.json").write_text(json.dumps({"model": "default", "adapter": None, "data": cfg["data"]}))
    with pytest.raises(UserError) as exc:
        run(EvalConfig(**{**cfg, "out": str(model_run)}))
    assert exc.value.code == "eval.out_differs"


def test_cli_json_gives_n_accuracy_and_score(workspace, tmp_path, capsys):
    evaluator.main(["--predictions", str(FIX / "112-B_chatgpt.jsonl"), "--data", str(FIX / "112-B.jsonl"),
                    "--out", str(tmp_path / "o"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert (out["n"], out["accuracy"], out["score"], out["total"]) == (5, 0.4, 4, 11)


def test_the_documented_command_runs(workspace, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipelines.evaluate", "--predictions", str(FIX / "116-A_gpt4.jsonl"),
                           "--data", str(FIX / "116-A.jsonl"), "--out", str(tmp_path / "o"), "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["n"], out["accuracy"], out["score"]) == (7, 0.5714285714285714, 3)
