"""Training settings, presets, data handling and run bookkeeping: no training here (fast)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from pipelines.core.errors import UserError
from pipelines.training import config as train_config
from pipelines.training import data as train_data
from pipelines.training import launch as train
from pipelines.training import runs as train_runs
from pipelines.training.config import TrainConfig, make_config
from pipelines.training.metrics import MetricsWriter, read_metrics


def write_alpaca(path, n=12):
    rows = [{"instruction": f"心不全の症状を{i}つ挙げてください。", "input": "" if i % 2 else "成人患者",
             "output": "呼吸困難、浮腫、倦怠感など。" * (1 + i % 4)} for i in range(n)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# -- presets ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", train_config.available_presets())
def test_every_shipped_preset_loads_validates_and_explains_its_fields(name):
    preset = train_config.load_preset(name)
    config = make_config(name)
    config.validate()
    assert preset["description"]["ja"] and preset["description"]["en"] and preset["notes"]
    assert all(note["ja"] and note["en"] for note in preset["notes"].values())
    assert preset["command"].startswith(f"jmedlora train --preset {name}")
    fields = {f for f in TrainConfig.__dataclass_fields__}
    assert set(preset["notes"]) - fields <= {"training_hours"}
    # every tuned setting says what it trades off (model/method excepted when obvious)
    assert set(preset["config"]) - set(preset["notes"]) <= {"model", "method", "template", "lr_scheduler", "warmup_steps",
                                                            "weight_decay"}


def test_paper_presets_match_table_3_exactly():
    o = make_config("opencalm-7b-lora")
    assert (o.method, o.learning_rate, o.max_prompt_length, o.max_target_length, o.batch_size) == ("lora", 5e-5, 512, 512, 8)
    assert (o.lora_r, o.lora_alpha, o.lora_dropout, o.target_modules) == (8, 32, 0.05, ["query_key_value"])
    assert o.all_save_steps() == [1000, 3000, 10000]
    q = make_config("llama2-70b-qlora")
    assert (q.method, q.learning_rate, q.max_prompt_length, q.max_target_length, q.batch_size) == ("qlora", 2e-4, 512, 512, 8)
    assert (q.lora_r, q.lora_alpha, q.lora_dropout, q.target_modules) == (64, 16, 0.1, ["all-linear"])
    assert q.all_save_steps() == [900, 3000]


def test_cli_flags_override_preset_and_preview_command_round_trips():
    args = train.build_parser().parse_args(
        ["--preset", "cpu-tiny-lora", "--lora-r", "4", "--save-steps", "2,4", "--batching", "flat",
         "--target-modules", "q_proj,k_proj"])
    config = train.config_from(args)
    assert (config.lora_r, config.save_steps, config.batching, config.target_modules) == (4, [2, 4], "flat", ["q_proj", "k_proj"])
    assert config.learning_rate == 3e-4                       # from the preset
    cli = train.equivalent_cli(config)
    assert "--preset cpu-tiny-lora" in cli and "--lora-r 4" in cli and "--batching flat" in cli
    assert "--save-steps 2,4" in cli and "--learning-rate" not in cli


# -- bad configurations -------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    ({"learning_rate": 0}, "learning_rate must be positive"),
    ({"learning_rate": -1e-4}, "learning_rate must be positive"),
    ({"lora_r": 0}, "LoRA rank and alpha must be positive"),
    ({"lora_dropout": 1.0}, "lora_dropout"),
    ({"max_steps": 10, "save_steps": [5, 20]}, "Save step(s) [20] outside"),
    ({"batch_size": 6, "micro_batch_size": 4}, "not a multiple"),
    ({"method": "dpo"}, "Unknown method"),
    ({"warmup_steps": 50, "max_steps": 10}, "warmup_steps"),
    ({"run_name": "a@b"}, "may not contain"),
])
def test_impossible_settings_are_rejected_with_a_fix(overrides, message):
    with pytest.raises(UserError) as err:
        TrainConfig(data="x.jsonl", **overrides).validate()
    assert message in err.value.problem and err.value.fix


def test_unknown_preset_lists_the_real_ones():
    with pytest.raises(UserError) as err:
        make_config("opencalm-70b")
    assert "Unknown preset" in err.value.problem and "cpu-tiny-lora" in err.value.fix


def test_missing_data_file(workspace, tiny_llama_dir):
    with pytest.raises(UserError, match="not found"):
        train_config.prepare(TrainConfig(model=str(tiny_llama_dir), data="/no/such/file.jsonl"), workspace)


def test_malformed_jsonl_line_is_reported_with_its_number(workspace, tiny_llama_dir, tmp_path):
    path = write_alpaca(tmp_path / "d.jsonl", 5)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(3, '{"instruction": "x", "output": ')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"d\.jsonl:4: malformed JSON"):
        train_config.prepare(TrainConfig(model=str(tiny_llama_dir), data=str(path)), workspace)
    path.write_text('{"instruction": "x", "output": "y"}\n{"instruction": "q", "input": ""}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"d\.jsonl:2: missing or empty 'output'"):
        train_config.prepare(TrainConfig(model=str(tiny_llama_dir), data=str(path)), workspace)


def test_target_module_missing_from_the_architecture(workspace, tiny_llama_dir, tmp_path):
    cfg = TrainConfig(model=str(tiny_llama_dir), data=str(write_alpaca(tmp_path / "d.jsonl")),
                      target_modules=["query_key_value"])
    with pytest.raises(UserError) as err:
        train_config.prepare(cfg, workspace)
    assert "query_key_value" in err.value.problem and "q_proj" in err.value.fix


def test_qlora_without_bitsandbytes_support(workspace, tiny_llama_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(train_config, "bnb_4bit_problem", lambda device: "bitsandbytes is not installed")
    cfg = TrainConfig(model=str(tiny_llama_dir), data=str(write_alpaca(tmp_path / "d.jsonl")), method="qlora")
    with pytest.raises(UserError) as err:
        train_config.prepare(cfg, workspace)
    assert "QLoRA needs 4-bit" in err.value.problem and "--method lora" in err.value.fix


def test_bnb_support_is_detected_here():
    assert train_config.bnb_4bit_problem("cpu") is None


def test_too_few_examples_and_endpoint_model(workspace, tiny_llama_dir, tmp_path):
    data = str(write_alpaca(tmp_path / "d.jsonl", 3))
    with pytest.raises(UserError, match="Only 3 training examples"):
        train_config.prepare(TrainConfig(model=str(tiny_llama_dir), data=data, batch_size=8), workspace)
    with pytest.raises(UserError, match="not a base model"):
        train_config.prepare(TrainConfig(model="openai:gpt-4o", data=data), workspace)


def test_launch_checks_tokenize_only_a_sample(workspace, tiny_llama_dir, tmp_path, monkeypatch):
    data = str(write_alpaca(tmp_path / "d.jsonl", train_config.SAMPLE_RECORDS + 40))
    sizes = []
    real = train_data.tokenize_sft
    monkeypatch.setattr(train_data, "tokenize_sft", lambda records, *a, **k: sizes.append(len(records)) or real(records, *a, **k))
    info = train_config.prepare(TrainConfig(model=str(tiny_llama_dir), data=data, batch_size=4), workspace)
    assert sizes == [train_config.SAMPLE_RECORDS]
    assert info["n_examples"] == train_config.SAMPLE_RECORDS + 40 and info["avg_tokens"] > 10


def test_config_estimate_and_worker_do_not_import_the_launcher():
    code = ("import sys, pipelines.training.config, pipelines.training.estimate, pipelines.training.worker; "
            "print('pipelines.training.launch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=train_config.REPO).stdout
    assert out.strip() == "False"


def test_existing_run_dir_is_not_overwritten(workspace, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(UserError, match="already holds a training run"):
        train.launch(TrainConfig(data="x", out=str(out), workspace=str(workspace.root)))


# -- data ------------------------------------------------------------------------------

def test_sft_tokens_use_the_eval_template_and_mask_the_prompt(tiny_llama_dir, tmp_path, workspace):
    from pipelines.models.references import load_tokenizer
    from pipelines.tasks.prompts import load_template
    tok = load_tokenizer(str(tiny_llama_dir), padding_side="right")
    src = train_data.resolve_data(str(write_alpaca(tmp_path / "d.jsonl", 4)), workspace)
    recs = train_data.read_sft_records(src)
    tpl = load_template("ja")
    ex, _ = train_data.tokenize_sft(recs, tok, tpl, max_prompt_length=512, max_target_length=512)
    prompt = tok(tpl.render(recs[0]["instruction"], recs[0]["input"]))["input_ids"]
    assert ex[0].input_ids[:len(prompt)] == prompt                      # exactly what evaluation feeds
    assert ex[0].labels[:len(prompt)] == [train_data.IGNORE] * len(prompt)
    assert ex[0].labels[len(prompt):] == ex[0].input_ids[len(prompt):] and ex[0].input_ids[-1] == tok.eos_token_id
    full, _ = train_data.tokenize_sft(recs, tok, tpl, max_prompt_length=512, max_target_length=512, loss_on="all")
    assert full[0].labels == full[0].input_ids
    cut, n = train_data.tokenize_sft(recs, tok, tpl, max_prompt_length=10, max_target_length=5)
    assert n == 4 and all(len(e.input_ids) <= 15 for e in cut)
    assert cut[0].input_ids[:10] == prompt[-10:]                          # the answer cue is kept
    chat, _ = train_data.tokenize_sft(recs, tok, load_template("chat"), max_prompt_length=512, max_target_length=512)
    text = tok.decode(chat[0].input_ids)
    assert "<|im_start|>assistant" in text and text.endswith("<|im_end|>")


def test_workspace_dataset_name_and_saved_dataset_dir(workspace, tmp_path):
    from datasets import Dataset
    d = tmp_path / "saved"
    Dataset.from_list([{"instruction": "a", "input": "", "output": "b"}] * 3).save_to_disk(str(d))
    workspace.register_dataset("cardio", "v1", "alpaca", str(d), n_records=3)
    src = train_data.resolve_data("cardio", workspace)
    assert src.path == d and src.name == "cardio" and len(src.version) == 16
    assert len(train_data.read_sft_records(src)) == 3
    with pytest.raises(UserError, match="workspace datasets: cardio"):
        train_data.resolve_data("cardi", workspace)


def test_data_position_is_a_function_of_examples_consumed():
    first = list(zip(range(7), train_data.micro_batches(10, 3, seed=1)))
    cursor_after_3 = first[2][1][0]
    resumed = train_data.micro_batches(10, 3, seed=1, start=cursor_after_3)
    assert [next(resumed)[2] for _ in range(4)] == [b[2] for _, b in first[3:]]
    flat = [i for _, b in first for i in b[2]]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))   # each epoch once
    # another micro-batch size continues from the same example
    other = train_data.micro_batches(10, 2, seed=1, start=cursor_after_3)
    assert next(other)[2] == flat[cursor_after_3:cursor_after_3 + 2]


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_neox_dir"])
def test_flattened_batch_gives_the_same_loss_as_separate_examples(fixture, request):
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(str(request.getfixturevalue(fixture))).eval()
    g = torch.Generator().manual_seed(0)
    batch = [train_data.Example(ids := torch.randint(5, 500, (n,), generator=g).tolist(),
                                [train_data.IGNORE] * (n // 2) + ids[n // 2:]) for n in (9, 4, 13)]
    with torch.no_grad():
        b = train_data.collate_flat(batch)
        out = model(input_ids=b["input_ids"], position_ids=b["position_ids"], logits_to_keep=b["keep"], use_cache=False)
        flat = F.cross_entropy(out.logits[0], b["targets"], reduction="sum")
        separate = 0.0
        for ex in batch:
            logits = model(input_ids=torch.tensor([ex.input_ids]), use_cache=False).logits[0, :-1]
            separate += F.cross_entropy(logits, torch.tensor(ex.labels[1:]), ignore_index=-100, reduction="sum")
    assert b["targets"].numel() == train_data.n_targets(batch)
    assert torch.allclose(flat, separate, rtol=1e-4), (flat, separate)


# -- metrics and status -------------------------------------------------------------------

def test_metrics_are_read_incrementally_and_restart_after_a_resume_rewind(tmp_path):
    w = MetricsWriter(tmp_path)
    assert read_metrics(tmp_path).records == []
    for s in (1, 2, 3):
        w.write({"step": s, "loss": 1.0 / s})
    first = read_metrics(tmp_path)
    assert [r["step"] for r in first.records] == [1, 2, 3]
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 4, "lo')                             # a line still being written
    nxt = read_metrics(tmp_path, first.cursor)
    assert nxt.records == [] and not nxt.restarted
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('ss": 0.25}\n')
    nxt = read_metrics(tmp_path, nxt.cursor)
    assert [r["step"] for r in nxt.records] == [4]
    assert w.rewind_to(2) == 2
    again = read_metrics(tmp_path, nxt.cursor)
    assert again.restarted and [r["step"] for r in again.records] == [1, 2]
    assert (tmp_path / "metrics.superseded.jsonl").read_text().count("\n") == 2


def test_status_of_a_dead_process_is_not_running(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = train_runs.process_start_time(proc.pid)
    train_runs.update_status(tmp_path, status="running", pid=proc.pid, pid_start=start)
    proc.wait()
    st = train_runs.run_status(tmp_path)
    assert st["status"] == "failed" and "resume" in st["message"]
    (tmp_path / train_runs.STOP_FILE).write_text("x")
    assert train_runs.run_status(tmp_path)["status"] == "stopped"
    # a live process with another start time (a reused pid) is not our run either
    train_runs.update_status(tmp_path, status="running", pid=os.getpid(), pid_start=1)
    (tmp_path / train_runs.STOP_FILE).unlink()
    assert train_runs.run_status(tmp_path)["status"] == "failed"
    train_runs.update_status(tmp_path, status="running", pid=os.getpid(),
                             pid_start=train_runs.process_start_time(os.getpid()))
    assert train_runs.run_status(tmp_path)["status"] == "running"


def test_stop_run_ends_the_whole_process_group(tmp_path):
    child_pid = tmp_path / "grandchild.pid"
    proc = subprocess.Popen([sys.executable, "-c", "import pathlib,subprocess,sys,time; "
                             "c = subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); "
                             f"pathlib.Path({str(child_pid)!r}).write_text(str(c.pid)); time.sleep(60)"],
                            start_new_session=True)
    deadline = time.time() + 60                  # the grandchild exists before the stop, however slow the start
    while not child_pid.exists() or not child_pid.read_text():
        assert time.time() < deadline and proc.poll() is None, "the run never started its child"
        time.sleep(0.05)
    grandchild = int(child_pid.read_text())
    os.kill(grandchild, 0)                       # alive now
    train_runs.update_status(tmp_path, status="running", pid=proc.pid, pgid=proc.pid,
                             pid_start=train_runs.process_start_time(proc.pid))
    st = train_runs.stop_run(tmp_path, grace_s=0.5)
    proc.wait(timeout=5)
    assert st["status"] == "stopped"
    deadline = time.time() + 5
    while time.time() < deadline and subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).stdout:
        time.sleep(0.1)
    assert subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split() == []
    with pytest.raises(ProcessLookupError):
        os.kill(grandchild, 0)                   # the grandchild went with its group


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_neox_dir"])
def test_grouped_left_padded_batch_gives_the_same_loss_and_finite_gradients(fixture, request):
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(str(request.getfixturevalue(fixture)))
    g = torch.Generator().manual_seed(1)
    batch = [train_data.Example(ids := torch.randint(5, 500, (n,), generator=g).tolist(),
                                [train_data.IGNORE] * (n - 3) + ids[n - 3:]) for n in (11, 6, 8)]
    b = train_data.collate_grouped(batch, pad_id=0)
    assert b["keep"] == 4 and b["targets"].shape == (3, 4)           # response columns (+ the last, no target)
    out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], position_ids=b["position_ids"],
                logits_to_keep=b["keep"], use_cache=False)
    grouped = F.cross_entropy(out.logits.flatten(0, 1), b["targets"].flatten(), ignore_index=-100, reduction="sum")
    grouped.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.no_grad():
        separate = sum(F.cross_entropy(model(input_ids=torch.tensor([ex.input_ids]), use_cache=False).logits[0, :-1],
                                       torch.tensor(ex.labels[1:]), ignore_index=-100, reduction="sum") for ex in batch)
    assert torch.allclose(grouped.detach(), separate, rtol=1e-4), (grouped, separate)


def test_grouped_order_puts_similar_lengths_together_and_still_covers_each_epoch():
    lengths = [(i * 37) % 100 for i in range(300)]
    order = train_data.epoch_order(300, seed=0, epoch=0, lengths=lengths)
    assert sorted(order) == list(range(300))
    window = [lengths[i] for i in order[:train_data.GROUP_WINDOW]]
    assert window == sorted(window, reverse=True)
    assert order != train_data.epoch_order(300, seed=0, epoch=1, lengths=lengths)


def test_a_preset_in_one_language_is_refused(tmp_path):
    preset = {"description": {"en": "English only"}, "config": {"max_steps": 2},
              "notes": {"max_steps": {"ja": "2", "en": "2"}}}
    path = tmp_path / "one.json"
    path.write_text(json.dumps(preset), encoding="utf-8")
    with pytest.raises(UserError) as err:
        train_config.load_preset(str(path))
    assert "description" in err.value.problem and "both languages" in err.value.problem
