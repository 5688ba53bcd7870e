"""Training under bad settings and faults: absurd numbers, a diverging loss, leftovers of a kill."""
from __future__ import annotations

import errno
import json
import math

import pytest

from pipelines.core import audit
from pipelines.core.errors import UserError
from pipelines.training import runs as train_runs
from pipelines.training import worker as train_worker
from pipelines.training.config import TrainConfig


@pytest.mark.parametrize("field, value, says", [
    ("learning_rate", math.inf, "learning_rate must be a finite number"),
    ("learning_rate", math.nan, "learning_rate must be a finite number"),
    ("learning_rate", 2.0, "learning_rate = 2.0 is outside"),
    ("learning_rate", -1e-4, "learning_rate must be positive"),
    ("lora_dropout", 1.0, "lora_dropout must be in [0, 1)"),
    ("lora_dropout", 0.995, "lora_dropout = 0.995 is outside"),
    ("weight_decay", -0.1, "weight_decay and max_grad_norm cannot be negative"),
    ("weight_decay", 5.0, "weight_decay = 5.0 is outside"),
    ("max_grad_norm", math.inf, "max_grad_norm must be a finite number"),
    ("lora_alpha", math.nan, "lora_alpha must be a finite number"),
    ("batch_size", -8, "batch_size must be at least 1"),
    ("batch_size", 10 ** 9, "batch_size = 1000000000 is outside"),
    ("max_steps", 2.5, "max_steps must be a whole number"),
    ("lora_r", "8", "lora_r must be a whole number"),
    ("lora_r", True, "lora_r must be a whole number"),
    ("warmup_steps", -1, "warmup_steps -1 must be below"),
])
def test_non_finite_or_absurd_hyperparameters_are_refused_naming_the_field(field, value, says):
    with pytest.raises(UserError) as err:
        TrainConfig(data="d.jsonl", **{field: value}).validate()
    assert says in err.value.problem and err.value.fix


def _fake_run(tmp_path, steps=(2,), leftovers=("step-4.tmp", "step-3.old")):
    run = tmp_path / "run"
    run.mkdir()
    train_runs.write_json(run / "config.json", {"config": {"run_name": "r1", "model": "base", "method": "lora"},
                                                "resolved": {"run_id": "id1", "data_hash": "h"}})
    for step in steps:
        state = run / "checkpoints" / f"step-{step}" / "state"
        state.mkdir(parents=True)
        train_runs.write_json(state / train_runs.STATE_MARKER, {"step": step, "cursor": 0, "elapsed_s": 36.0,
                                                                "tokens_total": 1, "saved_at": 1.0})
    for name in leftovers:                    # a kill mid-save leaves these behind
        (run / "checkpoints" / name / "state").mkdir(parents=True)
    return run


def test_leftover_tmp_and_old_folders_never_break_a_view(tmp_path):
    run = _fake_run(tmp_path)
    (ck,) = train_runs.list_checkpoints(run)
    assert ck["step"] == 2 and ck["name"] == "r1@2" and ck["unregistered"]
    assert train_runs.latest_resume_point(run) == (2, run / "checkpoints" / "step-2")


def test_a_checkpoint_saved_but_not_registered_is_registered_on_resume_not_on_view(workspace, tmp_path):
    run = _fake_run(tmp_path, steps=(2, 4), leftovers=())
    train_runs.list_checkpoints(run)                      # a view: writes nothing
    assert workspace.model("r1@2") is None and not (run / "checkpoints" / "step-2" / "checkpoint.json").exists()
    assert train_runs.register_pending(workspace, run) == ["r1@2", "r1@4"]
    row = workspace.model("r1@4")
    assert row["kind"] == "adapter" and row["step"] == 4 and row["train_hours"] == pytest.approx(0.01)
    assert json.loads((run / "checkpoints" / "step-4" / "checkpoint.json").read_text())["name"] == "r1@4"
    assert train_runs.register_pending(workspace, run) == []          # once
    assert not any(c.get("unregistered") for c in train_runs.list_checkpoints(run))


def _recipe(tmp_path, workspace):
    recipe = train_worker.Recipe.__new__(train_worker.Recipe)
    recipe.run_dir, recipe.step, recipe.ws = tmp_path, 6, workspace
    recipe.cfg = TrainConfig(data="d.jsonl", learning_rate=0.5, run_name="r1")
    return recipe


@pytest.mark.parametrize("loss, grad_norm, what", [(math.nan, 1.0, "loss became nan"),
                                                   (math.inf, None, "loss became inf"),
                                                   (2.0, math.nan, "gradient norm became nan")])
def test_a_diverging_step_stops_with_what_to_try(tmp_path, workspace, loss, grad_norm, what):
    with pytest.raises(UserError, match=f"{what} at step 7") as err:
        _recipe(tmp_path, workspace)._check_finite(loss, grad_norm)
    assert "--learning-rate (now 0.5" in err.value.fix
    _recipe(tmp_path, workspace)._check_finite(2.0, 1.0)                # finite: goes on


@pytest.mark.parametrize("fault, says", [
    (UserError("Training diverged: the loss became nan at step 7", "Lower --learning-rate"), "loss became nan"),
    (OSError(errno.ENOSPC, "No space left on device", "/ws/runs/r1/checkpoints/step-6.tmp"), "The disk is full"),
])
def test_worker_failure_is_in_the_status_events_and_audit(tmp_path, workspace, monkeypatch, fault, says):
    run = tmp_path / "run"
    run.mkdir()
    train_runs.write_json(run / "config.json", {"config": {"data": "d.jsonl", "run_name": "r1",
                                                           "workspace": str(workspace.root)},
                                                "resolved": {"run_id": "id1"}})
    monkeypatch.setenv(audit.USER_ENV, "dr_sato")
    monkeypatch.setattr(train_worker.Recipe, "setup", lambda self: None)

    def train(self):
        raise fault
    monkeypatch.setattr(train_worker.Recipe, "train", train)
    with pytest.raises(Exception):
        train_worker.main([str(run)])
    st = train_runs.read_json(run / "status.json")
    assert st["status"] == "failed" and says in st["message"] and "Traceback" not in st["message"]
    (event,) = [json.loads(ln) for ln in (run / "events.jsonl").read_text().splitlines()]
    assert event["event"] == "error" and says in event["message"] and event["fix"]
    phases = [(e["user"], e["detail"]["phase"]) for e in audit.entries(workspace.root) if e["action"] == "train"]
    assert phases == [("dr_sato", "start"), ("dr_sato", "failed")]
