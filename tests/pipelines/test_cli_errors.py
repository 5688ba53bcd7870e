"""Every user error a command line can hit ends the same way: exit non-zero, ``error: …`` with a
``Fix: …`` line, no traceback. One table of bad invocations across the CLIs."""
from __future__ import annotations

import importlib
import json

import pytest

from pipelines.core import commands
from tests.conftest import SAMPLE_QUESTIONS


def results(tmp_path, name: str, rows: list[dict]) -> str:
    d = tmp_path / name
    d.mkdir()
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(d)


def generate_run(tmp_path) -> str:
    return results(tmp_path, "gen", [{"problem_id": f"q{i}", "shots": 0, "response": "a", "accuracy": 1.0,
                                      "exact_match": 1.0} for i in range(5)])


def loglik_run(tmp_path) -> str:
    # How evaluate writes --method loglik: the likelihood pick is copied into accuracy, no response.
    return results(tmp_path, "ll", [{"problem_id": f"q{i}", "shots": 0, "response": None, "accuracy": 0.0,
                                     "ll_accuracy": 0.0, "ll_accuracy_norm": 0.0} for i in range(5)])


BAD = {
    "evaluate: wrong type": ("evaluate", lambda t: ["--out", str(t / "e"), "--limit", "two"], "--limit"),
    "evaluate: impossible value": ("evaluate", lambda t: ["--out", str(t / "e"), "--max-new-tokens", "0"],
                                   "at least 1"),
    "evaluate: missing file": ("evaluate", lambda t: ["--out", str(t / "e"), "--data", str(t / "none.jsonl")],
                               "does not exist"),
    "evaluate: unknown method": ("evaluate", lambda t: ["--out", str(t / "e"), "--method", "guess"], "--method"),
    "curate: unknown dataset": ("curate", lambda t: ["list", "--dataset", "typo"], "typo"),
    "curate: unknown format": ("curate", lambda t: ["export", "--dataset", "d", "--format", "csv", "--out", "x"],
                               "--format"),
    "significance: unknown metric": ("significance", lambda t: ["a", "b", "--metric", "acc"], "acc"),
    "significance: missing results": ("significance", lambda t: [str(t), str(t)], "results.jsonl"),
    "significance: metric missing in one run": (
        "significance", lambda t: [generate_run(t), loglik_run(t)], "holds no 'accuracy'"),
    "train: learning rate typo": ("train", lambda t: ["--preset", "cpu-tiny-lora", "--learning-rate", "3e4"],
                                  "--force"),
    "train: non-finite value": ("train", lambda t: ["--learning-rate", "inf"], "learning_rate"),
    "train: unknown run to stop": ("train", lambda t: ["--stop", "no-such-run"], "no-such-run"),
    "train: unknown preset": ("train", lambda t: ["--preset", "nope", "--estimate"], "nope"),
    "estimate: no shape": ("estimate", lambda t: ["--model", str(t / "absent")], "known shape"),
    "datagen: wrong type": ("datagen", lambda t: ["--docs", "d", "--dataset", "x", "--model", "m", "--pairs", "x"],
                            "--pairs"),
    "serve: wrong type": ("serve", lambda t: ["--port", "http"], "--port"),
    "models: unknown model": ("models", lambda t: ["resolve", str(t / "absent")], "not found"),
    "igakuqa: missing file": ("igakuqa", lambda t: [str(t / "none.jsonl")], "does not exist"),
    "table: wrong flag": ("table", lambda t: ["--refrence"], "--refrence"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_user_errors_exit_non_zero_with_a_fix_and_no_traceback(case, workspace, tmp_path, capsys):
    module, argv, mention = BAD[case]
    with pytest.raises(SystemExit) as exc:      # the workspace fixture is the environment's default
        importlib.import_module(commands.COMMANDS[module]).main(argv(tmp_path))
    err = capsys.readouterr().err
    assert exc.value.code not in (0, None), err
    assert "error: " in err and "\n  Fix: " in err, err
    assert mention in err and "Traceback" not in err, err


def test_significance_compares_like_with_like(tmp_path, capsys):
    from pipelines.evaluation import significance
    ll = loglik_run(tmp_path)
    assert significance.load_metric(ll, "ll_accuracy", 0)        # its own metric is there
    significance.main([ll, ll, "--metric", "ll_accuracy", "--json"])
    assert json.loads(capsys.readouterr().out)["verdict"] == "no clear difference"


def test_a_question_file_with_bad_lines_fails(tmp_path, capsys):
    from pipelines.tasks import igakuqa
    bad = tmp_path / "q.jsonl"
    bad.write_text(SAMPLE_QUESTIONS.read_text(encoding="utf-8").splitlines()[0] + "\n{not json\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        igakuqa.main([str(bad)])
    assert exc.value.code == 1 and "1 problem(s)" in capsys.readouterr().out
