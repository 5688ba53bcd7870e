"""The bad-inputs corpus (tests/bad_inputs/) through the real CLIs, as a user would run them:
every case exits non-zero with an ``error:`` line, and no output holds a traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

CORPUS = REPO / "tests" / "bad_inputs"
QUESTIONS = sorted(p.name for p in CORPUS.glob("questions_*"))
PRESETS = sorted(p.name for p in CORPUS.glob("preset_*"))
ALPACA = sorted(p.name for p in CORPUS.glob("alpaca_*"))
SAMPLE = REPO / "assets" / "questions" / "sample_ja.jsonl"


def cli(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def refused(proc: subprocess.CompletedProcess, says: str = "") -> str:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    assert proc.returncode != 0, out
    assert any(line.startswith("error:") for line in out.splitlines()), out
    assert says in out, out
    return out


def test_the_corpus_is_there():
    assert len(QUESTIONS) >= 10 and len(PRESETS) >= 9 and len(ALPACA) >= 2


@pytest.mark.parametrize("name", QUESTIONS)
def test_validator_refuses_bad_question_files(name):
    refused(cli("pipelines.tasks.igakuqa", str(CORPUS / name), "--on-error", "stop"), name)


@pytest.mark.parametrize("name", QUESTIONS)
def test_evaluate_refuses_bad_question_files(name, workspace, tiny_llama_dir, tmp_path):
    refused(cli("pipelines.evaluation.evaluator", "--model", str(tiny_llama_dir), "--data", str(CORPUS / name),
                "--out", str(tmp_path / "ev"), "--limit", "2"), name)


def test_a_50_mb_question_line_is_refused_before_it_is_read(workspace, tiny_llama_dir, tmp_path):
    huge = tmp_path / "huge.jsonl"
    with open(huge, "w", encoding="utf-8") as fh:        # made here: 50 MB is not committed
        fh.write('{"problem_id": "H-1", "problem_text": "' + "心" * (50_000_000 // 3) + '", "choices": []}\n')
    out = refused(cli("pipelines.evaluation.evaluator", "--model", str(tiny_llama_dir), "--data", str(huge),
                      "--out", str(tmp_path / "ev")), "huge.jsonl")
    assert "MB" in out and not (tmp_path / "ev" / "results.jsonl").exists()


# What each preset's refusal must name: the field at fault, or the file for one that does not parse.
PRESET_SAYS = {"preset_dropout_one.json": "lora_dropout", "preset_lr_infinity.json": "learning_rate",
               "preset_lr_nan.json": "learning_rate", "preset_lr_overflow.json": "learning_rate",
               "preset_lr_ten.json": "learning_rate", "preset_negative_batch.json": "batch_size",
               "preset_not_json.json": "preset_not_json.json", "preset_steps_as_text.json": "max_steps",
               "preset_unknown_field.json": "learning_rte"}
VALID_TRAINING_DATA = REPO / "assets" / "sample_instructions.jsonl"


def test_every_bad_preset_has_its_expected_message():
    assert set(PRESET_SAYS) == set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_train_refuses_impossible_presets_before_launch(name, workspace, tiny_llama_dir, tmp_path):
    # Valid training data, so the preset alone is what gets refused (a valid preset gets past this point:
    # the control below).
    refused(cli("pipelines.training.launch", "--preset", str(CORPUS / name), "--model", str(tiny_llama_dir),
                "--data", str(VALID_TRAINING_DATA), "--out", str(tmp_path / "run"), "--estimate"), PRESET_SAYS[name])
    assert not (tmp_path / "run" / "status.json").exists()             # nothing was started


def test_a_valid_preset_with_the_same_data_is_not_refused(workspace, tiny_llama_dir, tmp_path):
    proc = cli("pipelines.training.launch", "--preset", str(REPO / "assets" / "presets" / "cpu-tiny-lora.json"),
               "--model", str(tiny_llama_dir), "--data", str(VALID_TRAINING_DATA), "--out", str(tmp_path / "run"),
               "--estimate")
    assert proc.returncode == 0 and "error:" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@pytest.mark.parametrize("flag, value, says", [("--learning-rate", "inf", "learning_rate"),
                                               ("--learning-rate", "nan", "learning_rate"),
                                               ("--learning-rate", "3", "learning_rate"),
                                               ("--lora-dropout", "1", "lora_dropout"),
                                               ("--max-grad-norm", "-1", "max_grad_norm"),
                                               ("--batch-size", "0", "batch_size")])
def test_train_refuses_impossible_flags(flag, value, says, workspace, tiny_llama_dir, tmp_path):
    refused(cli("pipelines.training.launch", "--model", str(tiny_llama_dir), "--data", str(CORPUS / ALPACA[0]),
                "--out", str(tmp_path / "run"), flag, value), says)


@pytest.mark.parametrize("name", ALPACA)
def test_train_refuses_bad_training_data(name, workspace, tiny_llama_dir, tmp_path):
    refused(cli("pipelines.training.launch", "--model", str(tiny_llama_dir), "--data", str(CORPUS / name),
                "--out", str(tmp_path / "run"), "--max-steps", "1", "--batch-size", "1"), name)


def test_evaluate_refuses_an_adapter_for_another_base(workspace, tiny_llama_dir, tiny_neox_dir, tmp_path):
    from tests.workbench.conftest import make_adapter
    adapter = make_adapter(tiny_llama_dir, tmp_path / "llama-adapter")
    refused(cli("pipelines.evaluation.evaluator", "--model", str(tiny_neox_dir), "--adapter", str(adapter),
                "--data", str(REPO / "assets" / "questions" / "sample_ja.jsonl"), "--out", str(tmp_path / "ev"),
                "--limit", "1"), str(tiny_llama_dir))


@pytest.mark.parametrize("flag, value, says", [("--temperature", "nan", "temperature"), ("--top-p", "inf", "top_p"),
                                               ("--max-new-tokens", "0", "--max-new-tokens")])
def test_evaluate_refuses_impossible_generation_settings(flag, value, says, workspace, tiny_llama_dir, tmp_path):
    refused(cli("pipelines.evaluation.evaluator", "--model", str(tiny_llama_dir), "--out", str(tmp_path / "ev"),
                "--data", str(REPO / "assets" / "questions" / "sample_ja.jsonl"), flag, value), says)


# -- devices and pipes where a file is expected: refused at once, never read ---------------------

@pytest.fixture
def fifo(tmp_path):
    import os
    path = tmp_path / "questions.jsonl"
    os.mkfifo(path)
    return path


def _refused_quickly(*args: str) -> str:
    # 120 s, not the suite's 600: a regression spins or blocks, and should not hold the suite for long.
    proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    return refused(proc, "not a file")


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_a_device_or_pipe_as_question_file_is_refused(special, fifo, workspace, tiny_llama_dir, tmp_path):
    data = str(fifo) if special == "fifo" else special
    _refused_quickly("pipelines.tasks.igakuqa", data)
    _refused_quickly("pipelines.evaluation.evaluator", "--model", str(tiny_llama_dir), "--data", data, "--out", str(tmp_path / "ev"))


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_a_device_or_pipe_as_training_data_or_import_is_refused(special, fifo, workspace, tiny_llama_dir, tmp_path):
    data = str(fifo) if special == "fifo" else special
    _refused_quickly("pipelines.training.launch", "--model", str(tiny_llama_dir), "--data", data, "--out", str(tmp_path / "run"))
    assert not (tmp_path / "run" / "status.json").exists()
    _refused_quickly("pipelines.data.curate", "import", "--dataset", "d", "--jsonl", data, "--workspace", str(workspace.root))


# -- output folders and model files that cannot be used: a message, not a traceback --------------

@pytest.mark.parametrize("kind", ["existing file", "name too long"])
def test_an_unusable_output_path_is_refused_by_evaluate_train_and_merge(kind, workspace, tiny_llama_dir, tmp_path):
    out = tmp_path / "afile"
    if kind == "existing file":
        out.write_text("keep me")
    else:
        out = tmp_path / ("x" * 300)
    says = "existing file" if kind == "existing file" else "shorter --out"
    refused(cli("pipelines.evaluation.evaluator", "--model", str(tiny_llama_dir), "--data", str(SAMPLE), "--limit", "1",
                "--out", str(out)), says)
    refused(cli("pipelines.training.launch", "--preset", "cpu-tiny-lora", "--model", str(tiny_llama_dir), "--data",
                str(VALID_TRAINING_DATA), "--out", str(out)), says)
    refused(cli("pipelines.merging.evolve", "--inputs", str(tiny_llama_dir), str(tiny_llama_dir), "--dev", str(SAMPLE),
                "--out", str(out)), says)
    if kind == "existing file":
        assert out.read_text() == "keep me"


def test_a_truncated_safetensors_file_is_a_clear_error(workspace, tiny_llama_dir, tmp_path):
    import shutil
    model = tmp_path / "cut"
    shutil.copytree(tiny_llama_dir, model)
    weights = model / "model.safetensors"
    with open(weights, "r+b") as fh:                   # a copy that did not finish
        fh.truncate(weights.stat().st_size // 2)
    out = refused(cli("pipelines.evaluation.evaluator", "--model", str(model), "--data", str(SAMPLE), "--limit", "1",
                      "--out", str(tmp_path / "ev")), str(model))
    assert "incomplete metadata" in out or "cut short" in out or "safetensors" in out.lower(), out
