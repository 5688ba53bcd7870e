"""The train command line's own parts: names to use next, finding a run to stop, the shape-only
estimate, and the prompt format an adapter's checkpoint records for serve."""
from __future__ import annotations

import json

import pytest

from pipelines.core.errors import UserError
from pipelines.models.server import trained_format
from pipelines.training import launch as train
from pipelines.training import runs as train_runs
from pipelines.training.estimate import model_shape


def fake_checkpoint(run_dir, step: int, template: str = "ja"):
    ckpt = train_runs.checkpoint_dir(run_dir, step)
    (ckpt / "state").mkdir(parents=True)
    (ckpt / "state" / train_runs.STATE_MARKER).write_text("{}")
    (ckpt / "checkpoint.json").write_text(json.dumps({"name": f"{run_dir.name}@{step}", "step": step,
                                                      "template": template}))
    return ckpt


def test_a_finished_run_names_its_checkpoints(tmp_path):
    run = tmp_path / "run-1"
    fake_checkpoint(run, 2)
    fake_checkpoint(run, 10)
    text = train.next_steps(run)
    assert "run-1@2, run-1@10" in text and "--model run-1@10" in text
    assert train.next_steps(tmp_path / "empty") == ""


def test_stop_finds_a_run_by_directory_or_name(tmp_path, workspace):
    run = tmp_path / "try1"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert train.find_run(str(run), workspace) == run.resolve()
    train_runs.register_run(workspace, "abc", "try1", run)
    assert train.find_run("try1", workspace) == run
    with pytest.raises(UserError, match="Known runs: try1"):
        train.find_run("try2", workspace)


def test_serve_uses_the_template_a_checkpoint_recorded(tmp_path):
    assert trained_format(str(fake_checkpoint(tmp_path / "r", 1, "en"))) == "en"
    assert trained_format(str(fake_checkpoint(tmp_path / "s", 1, "my.txt"))) == "auto"   # not a serve format
    assert trained_format(str(tmp_path)) == "auto" and trained_format(None) == "auto"


def test_estimate_from_a_config_file_alone(tmp_path):
    from transformers import LlamaConfig
    LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2).save_pretrained(tmp_path)
    by_file, by_dir = model_shape(str(tmp_path / "config.json")), model_shape(str(tmp_path))
    assert by_file.params == by_dir.params > 0 and by_file.layers == 2
    known = model_shape("/not/here/open-calm-7b")                 # named like a known shape
    assert 6e9 < known.params < 8e9


def test_learning_rate_far_out_of_range_needs_force(capsys):
    config = train.config_from(train.build_parser().parse_args(["--learning-rate", "3e4"]))
    with pytest.raises(UserError, match="--force"):
        train.check_ranges(config, force=False)
    train.check_ranges(config, force=True)
    assert "warning: learning_rate 30000" in capsys.readouterr().err
    train.check_ranges(train.config_from(train.build_parser().parse_args([])), force=False)
