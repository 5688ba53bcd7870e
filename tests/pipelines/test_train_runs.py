"""Real training runs on tiny random models: LoRA, QLoRA, cpt, kill/resume, 2 processes, stop."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from pipelines.core import jobs
from pipelines.training import launch as train
from pipelines.training import runs as train_runs
from pipelines.training.config import TrainConfig
from pipelines.training.metrics import read_metrics

KEYS = {"step", "epoch", "loss", "lr", "grad_norm", "tokens", "tokens_total", "tokens_per_s", "step_time_s",
        "elapsed_s", "eta_s", "peak_mem_mb", "mem_kind", "time"}


def alpaca(path: Path, n: int = 24) -> Path:
    rows = [{"instruction": f"深部静脈血栓症の治療について{i}番目の要点を述べてください。",
             "input": "" if i % 3 else "外来患者、70歳",
             "output": "抗凝固療法を行い、" + "肺塞栓症の予防に努める。" * (1 + i % 5)} for i in range(n)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def run_to_end(config: TrainConfig, timeout: float = 240) -> tuple[dict, list[dict]]:
    launched = train.launch(config)
    assert launched.command[:3] != ["python", "-m", "pipelines.training.launch"]
    deadline = time.time() + timeout
    while train_runs.run_status(launched.run_dir)["status"] in train_runs.ACTIVE:
        assert time.time() < deadline, (Path(launched.run_dir) / "train.log").read_text()[-3000:]
        time.sleep(0.3)
    status = train_runs.run_status(launched.run_dir)
    assert status["status"] == "finished", (Path(launched.run_dir) / "train.log").read_text()[-3000:]
    return status, read_metrics(launched.run_dir).records


def outputs_of(model_dir, adapter=None):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    if adapter:
        model = PeftModel.from_pretrained(model, str(adapter))
    with torch.no_grad():
        return model.eval()(input_ids=torch.tensor([[5, 17, 300, 42, 7]])).logits


@pytest.mark.parametrize("fixture, targets, batching", [("tiny_llama_dir", ["all-linear"], "grouped"),
                                                       ("tiny_neox_dir", ["query_key_value"], "flat")])
def test_lora_run_checkpoints_reload_and_change_the_model(fixture, targets, batching, request, workspace, tmp_path):
    import torch
    from peft import PeftModel
    base = request.getfixturevalue(fixture)
    cfg = TrainConfig(model=str(base), data=str(alpaca(tmp_path / "d.jsonl")), out=str(tmp_path / "run"),
                      method="lora", target_modules=targets, batching=batching, lora_r=4, lora_alpha=8, learning_rate=5e-3,
                      batch_size=4, max_steps=6, save_steps=[3], warmup_steps=1, max_prompt_length=64,
                      max_target_length=32)
    status, records = run_to_end(cfg)
    assert status["step"] == 6
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6] and KEYS <= set(records[0])
    assert records[-1]["eta_s"] == 0 and records[-1]["tokens_total"] == sum(r["tokens"] for r in records)
    assert records[-1]["loss"] < records[0]["loss"]

    ckpts = train_runs.list_checkpoints(tmp_path / "run")
    assert [c["step"] for c in ckpts] == [3, 6] and [c["name"] for c in ckpts] == ["run@3", "run@6"]
    reg = workspace.model("run@6")
    assert reg["kind"] == "adapter" and reg["step"] == 6 and reg["base_model"] == str(base) and reg["train_hours"] > 0
    adapter = Path(reg["path"])
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)
    model = PeftModel.from_pretrained(__import__("transformers").AutoModelForCausalLM.from_pretrained(str(base)), str(adapter))
    assert model.peft_config["default"].r == 4
    assert not torch.allclose(outputs_of(base), outputs_of(base, adapter))

    from pipelines.models.references import resolve_model
    ref = resolve_model("run@3", None, workspace)                   # how evaluation finds a checkpoint
    assert ref.path == str(base) and ref.adapter == str(tmp_path / "run" / "checkpoints" / "step-3")

    card = train_runs.run_card(tmp_path / "run")
    assert card["dataset"]["hash"] and card["dataset"]["n_examples"] == 24 and card["config"]["lora_r"] == 4
    assert card["dataset"]["tokens"] > 0 and card["dataset"]["n_truncated"] >= 0      # counted by the worker
    events = [e["event"] for e in jobs.read_events(tmp_path / "run")[0]]
    assert events == ["start"] + ["progress"] * 3 + ["checkpoint"] + ["progress"] * 3 + ["checkpoint", "finish"]
    assert card["versions"]["torch"] and card["versions"]["peft"] and "commit" in card["git"]
    assert card["hardware"]["device"] == "cpu"
    runs = train_runs.list_runs(workspace)
    assert runs[0]["run_dir"] == str(tmp_path / "run") and runs[0]["status"] == "finished"
    assert runs[0]["max_steps"] == 6 and runs[0]["method"] == "lora" and runs[0]["model"] == str(base)


@pytest.mark.smoke
def test_qlora_run_trains_a_4bit_base(tiny_llama_dir, workspace, tmp_path):
    import torch
    cfg = TrainConfig(model=str(tiny_llama_dir), data=str(alpaca(tmp_path / "d.jsonl")), out=str(tmp_path / "q"),
                      method="qlora", lora_r=8, lora_alpha=16, lora_dropout=0.1, learning_rate=5e-3,
                      batch_size=4, max_steps=3, max_prompt_length=64, max_target_length=32)
    status, records = run_to_end(cfg)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert "4-bit layers: 14" in (tmp_path / "q" / "train.log").read_text()     # 2 layers x 7 linear
    adapter = tmp_path / "q" / "checkpoints" / "step-3"
    ac = json.loads((adapter / "adapter_config.json").read_text())
    assert {m.rsplit(".", 1)[-1] for m in ac["target_modules"]} == {"q_proj", "k_proj", "v_proj", "o_proj",
                                                                    "gate_proj", "up_proj", "down_proj"}
    assert not torch.allclose(outputs_of(tiny_llama_dir), outputs_of(tiny_llama_dir, adapter))


@pytest.mark.parametrize("mode, kind", [("full", "base"), ("lora", "merged")])
def test_continual_pretraining_makes_a_new_base_model(mode, kind, tiny_llama_dir, workspace, tmp_path):
    import torch
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("心不全は心臓のポンプ機能が低下した状態である。" * 40, encoding="utf-8")
    (docs / "b.md").write_text("# 糖尿病\nインスリン抵抗性と分泌不全。" * 40, encoding="utf-8")
    cfg = TrainConfig(model=str(tiny_llama_dir), data=str(docs), out=str(tmp_path / "cpt"), method="cpt",
                      cpt_mode=mode, max_seq_length=64, batch_size=2, max_steps=3, learning_rate=1e-2)
    run_to_end(cfg)
    reg = workspace.model("cpt")
    assert reg["kind"] == kind and reg["step"] == 3
    from transformers import AutoModelForCausalLM
    AutoModelForCausalLM.from_pretrained(reg["path"])                 # a normal HF model directory
    assert not torch.allclose(outputs_of(tiny_llama_dir), outputs_of(reg["path"]))
    # SFT can start from it by name
    from pipelines.models.references import resolve_model
    assert resolve_model("cpt", None, workspace).path == reg["path"]


def _launch_and_wait_for_step(config: TrainConfig, step: int, timeout: float = 180):
    launched = train.launch(config)
    deadline = time.time() + timeout
    while not any(r["step"] >= step for r in read_metrics(launched.run_dir).records):
        assert time.time() < deadline, (Path(launched.run_dir) / "train.log").read_text()[-3000:]
        assert train_runs.run_status(launched.run_dir)["status"] in train_runs.ACTIVE, \
            (Path(launched.run_dir) / "train.log").read_text()[-3000:]
        time.sleep(0.05)
    return launched


def _wait_end(run_dir, timeout=240) -> dict:
    deadline = time.time() + timeout
    while train_runs.run_status(run_dir)["status"] in train_runs.ACTIVE:
        assert time.time() < deadline
        time.sleep(0.3)
    return train_runs.run_status(run_dir)


def _long_config(model, data, out, **kw) -> TrainConfig:
    base = dict(model=str(model), data=str(data), out=str(out), method="lora", lora_r=4, lora_alpha=8,
                lora_dropout=0.0, learning_rate=3e-3, batch_size=4, max_steps=30, save_steps=[10],
                resume_every=4, max_prompt_length=96, max_target_length=64)
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_sigkill_then_resume_continues_exactly(tiny_llama_dir, workspace, tmp_path):
    data = alpaca(tmp_path / "d.jsonl", 40)
    ref_status, ref = run_to_end(_long_config(tiny_llama_dir, data, tmp_path / "ref"))

    launched = _launch_and_wait_for_step(_long_config(tiny_llama_dir, data, tmp_path / "killed"), 14)
    os.killpg(launched.pid, signal.SIGKILL)                          # launcher and worker, no goodbye
    time.sleep(1)
    st = train_runs.run_status(launched.run_dir)
    assert st["status"] == "failed" and "resume" in st["message"]
    killed_at = max(r["step"] for r in read_metrics(launched.run_dir).records)

    resumed = train.resume(launched.run_dir)
    assert _wait_end(resumed.run_dir)["status"] == "finished"
    records = read_metrics(resumed.run_dir).records
    assert [r["step"] for r in records] == list(range(1, 31))       # each step exactly once
    point = train_runs.read_json(Path(launched.run_dir) / "run_card.json")["resumes"][0]["from_step"]
    assert 12 <= point <= killed_at and point % 4 == 0 or point == 10
    # optimizer, scheduler and data position restored: the same losses as the uninterrupted run
    for a, b in zip(ref, records):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a["step"], a["loss"], b["loss"])
        assert a["lr"] == pytest.approx(b["lr"])
    assert records[-1]["elapsed_s"] >= records[point - 1]["elapsed_s"]
    assert [c["step"] for c in train_runs.list_checkpoints(resumed.run_dir)] == [10, 30]


@pytest.mark.slow
def test_two_process_run_matches_one_process(tiny_llama_dir, workspace, tmp_path):
    data = alpaca(tmp_path / "d.jsonl", 24)
    _, one = run_to_end(_long_config(tiny_llama_dir, data, tmp_path / "one", max_steps=4, save_steps=[]))
    launched_cfg = _long_config(tiny_llama_dir, data, tmp_path / "two", max_steps=4, save_steps=[], num_processes=2)
    status, two = run_to_end(launched_cfg)
    cmd = train_runs.read_json(tmp_path / "two" / "status.json")["command"]
    assert "torch.distributed.run" in cmd and "2" in cmd
    assert "processes: 2" in (tmp_path / "two" / "train.log").read_text()
    assert [r["step"] for r in two] == [1, 2, 3, 4]
    # the same global batch, split over two processes, gives the same token-mean loss
    for a, b in zip(one, two):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)
        assert a["tokens"] == b["tokens"]
    assert train_runs.run_card(tmp_path / "two")["resumes"] == []


@pytest.mark.slow
def test_stop_saves_a_resume_point_and_resume_finishes(tiny_llama_dir, workspace, tmp_path):
    data = alpaca(tmp_path / "d.jsonl", 24)
    launched = _launch_and_wait_for_step(_long_config(tiny_llama_dir, data, tmp_path / "s", resume_every=0,
                                                      save_steps=[]), 3)
    st = train_runs.stop_run(launched.run_dir, grace_s=60)
    assert st["status"] == "stopped"
    step, where = train_runs.latest_resume_point(Path(launched.run_dir))
    assert where.name == "resume" and step >= 3
    resumed = train.resume(launched.run_dir, max_steps=step + 2)
    assert _wait_end(resumed.run_dir)["status"] == "finished"
    assert [r["step"] for r in read_metrics(launched.run_dir).records] == list(range(1, step + 3))


@pytest.mark.slow
def test_each_checkpoint_is_evaluated_when_asked(tiny_llama_dir, workspace, tmp_path):
    from tests.conftest import SAMPLE_QUESTIONS
    cfg = TrainConfig(model=str(tiny_llama_dir), data=str(alpaca(tmp_path / "d.jsonl")), out=str(tmp_path / "e"),
                      lora_r=4, batch_size=4, max_steps=2, save_steps=[1], max_prompt_length=64,
                      max_target_length=32, eval_data=str(SAMPLE_QUESTIONS), eval_limit=2)
    run_to_end(cfg, timeout=400)
    ckpts = train_runs.list_checkpoints(tmp_path / "e")
    assert [c["step"] for c in ckpts] == [1, 2]
    for c in ckpts:
        assert c["eval_summary"] is not None, (tmp_path / "e" / "evals" / f"step-{c['step']}" / "job.log").read_text()[-2000:]
        assert c["eval_summary"]["model"] == c["name"]
    assert {e["model"] for e in workspace.evaluations()} == {"e@1", "e@2"}
