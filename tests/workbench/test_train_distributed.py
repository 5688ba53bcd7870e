"""The Train tab's Distributed section: the file written, shown with the commands, and put into the
run's settings; impossible settings said with the section's labels."""
import json

import yaml

from pipelines.training import distributed
from workbench import train_distributed as d
from workbench import train_handlers as h
from workbench.state import AppState


def other_settings(**extra) -> str:
    return json.dumps({"precision": "auto", "num_processes": 1, **extra})


def test_writing_a_config_puts_it_into_the_run_and_shows_the_commands(workspace, tiny_llama_dir):
    state = AppState(workspace=workspace)
    msg, shown, other = d.write(state, "fsdp", 16, 2, 0, " 10.0.0.1 ", 29501, str(tiny_llama_dir), "lora",
                                other_settings(), "en")
    path = workspace.root / "accelerate" / "fsdp-16p-2m.yaml"
    assert "notice ok" in msg and str(path) in msg
    assert json.loads(other) == {"precision": "auto", "num_processes": 16, "accelerate_config": str(path)}
    written = yaml.safe_load(path.read_text())
    assert written["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    assert (written["main_process_ip"], written["main_process_port"], written["use_cpu"]) == ("10.0.0.1", 29501, False)
    assert shown["visible"] and shown["value"].startswith(path.read_text())
    assert f"accelerate launch --config_file {path} --machine_rank 1 -m pipelines.training.worker RUN_DIR" \
        in shown["value"]
    # The run's settings carry the file: the equivalent command names it.
    values, _ = h.preset_values("cpu-tiny-lora")
    values[h.FORM.index("batch_size")] = 32              # a multiple of 16 processes
    config = h.config_from_form("cpu-tiny-lora", values, other, "en", str(workspace.root))
    assert config.accelerate_config == str(path) and config.num_processes == 16
    # none takes it out again
    msg, shown, other = d.write(state, "none", 16, 2, 0, "", 29501, "", "lora", other, "ja")
    assert "notice info" in msg and "accelerate_config" not in json.loads(other) and shown["visible"] is False


def test_ddp_on_this_cpu_machine_is_written_for_cpu_processes(workspace):
    msg, shown, other = d.write(AppState(workspace=workspace), "ddp", 2, 1, 0, "", 29500, "", "lora",
                                other_settings(), "ja")
    path = json.loads(other)["accelerate_config"]
    assert "notice ok" in msg and "その他の設定" in msg
    back = distributed.read_config(path)
    assert (back.strategy, back.use_cpu, back.mixed_precision, back.num_processes) == ("ddp", True, "no", 2)
    assert "RUN_DIR" not in shown["value"]            # one machine: nobody joins


def test_impossible_settings_name_the_sections_fields(workspace):
    state = AppState(workspace=workspace)
    msg, shown, other = d.write(state, "ddp", 4, 2, 2, "10.0.0.1", 29500, "", "lora", other_settings(), "ja")
    assert "notice error" in msg and "「このマシンの番号（0＝主マシン）」" in msg and shown == other == {"__type__": "update"}
    msg, *_ = d.write(state, "deepspeed-zero3", 2, 1, 0, "", 29500, "", "qlora", other_settings(), "en")
    assert "notice error" in msg and "QLoRA" in msg
    msg, *_ = d.write(state, "ddp", 2, 1, 0, "", 29500, "", "lora", "{not json", "ja")
    assert "notice error" in msg and "JSON" in msg
    assert not (workspace.root / "accelerate").exists() or not list((workspace.root / "accelerate").iterdir())
