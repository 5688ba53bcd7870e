"""accelerate config files for several GPUs or machines (pipelines/training/distributed.py): written
as accelerate reads them, read back with safe_load only, impossible settings refused, the command
each machine runs; DDP files really training two CPU processes, on one "machine" and on two."""
from __future__ import annotations

import importlib.util
import shlex
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from pipelines.core.errors import UserError
from pipelines.training import distributed as dist
from pipelines.training import launch as train
from pipelines.training import sharded
from pipelines.training.config import TrainConfig
from tests.conftest import REPO
from tests.pipelines.test_train_runs import alpaca, outputs_of, run_to_end

FSDP_GPU = dict(strategy="fsdp", num_processes=16, num_machines=2, main_process_ip="10.0.0.1", main_process_port=29555)


def code_of(fn, *args, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        fn(*args, **kwargs)
    return info.value.code


def test_each_strategy_is_written_as_accelerate_reads_it(workspace, tiny_llama_dir):
    from accelerate.commands.config.config_args import load_config_from_file
    fsdp = dist.write_config(dist.DistributedConfig(**FSDP_GPU, model=str(tiny_llama_dir)), ws=workspace)
    assert fsdp == workspace.root / "accelerate" / "fsdp-16p-2m.yaml"
    zero3 = dist.write_config(dist.DistributedConfig("deepspeed-zero3", 4, offload="cpu", max_grad_norm=0.5,
                                                     out=str(workspace.root / "z3.yaml")))
    gpus = dist.write_config(dist.DistributedConfig("ddp", 4, gpu_ids="0, 1,2,3", mixed_precision="fp16"), ws=workspace)
    one = dist.write_config(dist.DistributedConfig("ddp", 1), ws=workspace)
    cpu = dist.write_config(dist.DistributedConfig("ddp", 2, use_cpu=True, mixed_precision="no"), ws=workspace)
    for path in (fsdp, zero3, gpus, one, cpu):
        # accelerate's own loader takes the file and writes back exactly what it read
        assert load_config_from_file(str(path)).to_dict() == yaml.safe_load(path.read_text()), path.name
    got = load_config_from_file(str(fsdp))
    assert (got.distributed_type.value, got.num_processes, got.num_machines, got.machine_rank, got.main_process_ip,
            got.main_process_port, got.mixed_precision, got.use_cpu) == ("FSDP", 16, 2, 0, "10.0.0.1", 29555, "bf16",
                                                                         False)
    assert got.fsdp_config == {
        "fsdp_version": 2, "fsdp_reshard_after_forward": True, "fsdp_offload_params": False,
        "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_transformer_layer_cls_to_wrap": "LlamaDecoderLayer",
        "fsdp_state_dict_type": "FULL_STATE_DICT", "fsdp_cpu_ram_efficient_loading": True,
        "fsdp_activation_checkpointing": False}
    assert load_config_from_file(str(zero3)).deepspeed_config == {
        "zero_stage": 3, "offload_optimizer_device": "cpu", "offload_param_device": "cpu",
        "gradient_accumulation_steps": 1, "zero3_save_16bit_model": True, "zero3_init_flag": True,
        "gradient_clipping": 0.5}
    kinds = {p.name: (load_config_from_file(str(p)).distributed_type.value, load_config_from_file(str(p)).gpu_ids)
             for p in (gpus, one, cpu)}
    assert kinds == {"ddp-4p-1m.yaml": ("MULTI_GPU", "0,1,2,3"), "ddp-1p-1m.yaml": ("NO", "all"),
                     "ddp-2p-1m-cpu.yaml": ("MULTI_CPU", None)}
    back = dist.read_config(fsdp)
    assert (back.strategy, back.num_processes, back.per_machine, back.layer_class, back.offload) == \
        ("fsdp", 16, 8, "LlamaDecoderLayer", "none")
    back = dist.read_config(zero3)
    assert (back.strategy, back.offload, back.max_grad_norm, back.mixed_precision) == ("deepspeed-zero3", "cpu", 0.5,
                                                                                      "bf16")


def test_accelerate_launch_takes_the_machines_and_the_plugin_from_the_file(workspace):
    """What ``accelerate launch --config_file F --machine_rank 1`` hands torchrun and the processes."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    def launched(path):
        args = launch_command_parser().parse_args(["--config_file", str(path), "--machine_rank", "1", "-m",
                                                   "pipelines.training.worker", "RUN"])
        return _validate_launch_command(args)

    fsdp = dist.write_config(dist.DistributedConfig(**FSDP_GPU, layer_class="LlamaDecoderLayer"), ws=workspace)
    args, _, _ = launched(fsdp)
    env = prepare_multi_gpu_env(args)
    assert (args.use_fsdp, args.nproc_per_node, args.nnodes, args.node_rank, args.rdzv_endpoint) == \
        (True, "8", "2", 1, "10.0.0.1:29555")
    assert {k: env[k] for k in ("ACCELERATE_USE_FSDP", "FSDP_VERSION", "FSDP_TRANSFORMER_CLS_TO_WRAP",
                                "FSDP_STATE_DICT_TYPE", "ACCELERATE_MIXED_PRECISION")} == {
        "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_TRANSFORMER_CLS_TO_WRAP": "LlamaDecoderLayer",
        "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT", "ACCELERATE_MIXED_PRECISION": "bf16"}
    zero3 = dist.write_config(dist.DistributedConfig("deepspeed-zero3", 4, 2, 0, "10.0.0.1", 29556), ws=workspace)
    args, defaults, _ = launched(zero3)
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
    cmd, env = prepare_deepspeed_cmd_env(args)
    assert cmd is None and (args.use_deepspeed, args.nproc_per_node, args.nnodes, args.node_rank) == \
        (True, "2", "2", 1)             # the "standard" multi-node launcher: torchrun on each machine, no ssh
    assert {k: env[k] for k in ("ACCELERATE_DEEPSPEED_ZERO_STAGE", "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL",
                                "ACCELERATE_DEEPSPEED_ZERO3_INIT", "ACCELERATE_GRADIENT_ACCUMULATION_STEPS")} == {
        "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3", "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": "true",
        "ACCELERATE_DEEPSPEED_ZERO3_INIT": "true", "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "1"}


def test_the_command_each_machine_runs(workspace):
    gpu = dist.read_config(dist.write_config(dist.DistributedConfig(**FSDP_GPU, layer_class="X"), ws=workspace))
    assert dist.machine_command(gpu, "/runs/r") == [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                                                    gpu.out, "-m", "pipelines.training.worker", "/runs/r"]
    assert dist.join_commands(gpu, "/runs/r") == [
        f"accelerate launch --config_file {gpu.out} --machine_rank 1 -m pipelines.training.worker /runs/r"]
    cpu = dist.read_config(dist.write_config(dist.DistributedConfig(
        "ddp", 4, 2, main_process_ip="10.0.0.1", use_cpu=True, mixed_precision="no"), ws=workspace))
    assert dist.join_commands(cpu, "/runs/r") == [
        "torchrun --nnodes 2 --node_rank 1 --master_addr 10.0.0.1 --master_port 29500 --nproc_per_node 2 "
        "-m pipelines.training.worker /runs/r"]
    one = dist.read_config(dist.write_config(dist.DistributedConfig("ddp", 2, use_cpu=True, mixed_precision="no"),
                                             ws=workspace))
    assert dist.machine_command(one, "/runs/r")[3:] == ["--standalone", "--nproc_per_node", "2", "-m",
                                                        "pipelines.training.worker", "/runs/r"]
    assert dist.join_commands(one, "/runs/r") == []
    assert train.join_commands(TrainConfig(accelerate_config=gpu.out), "/runs/r") == dist.join_commands(gpu, "/runs/r")


@pytest.mark.parametrize("settings, method, code", [
    (dict(num_processes=3, num_machines=2, main_process_ip="h"), None, "dist.uneven"),
    (dict(num_processes=4, num_machines=2, machine_rank=2, main_process_ip="h"), None, "dist.rank"),
    (dict(num_processes=4, num_machines=2, machine_rank=-1, main_process_ip="h"), None, "dist.rank"),
    (dict(num_processes=4, num_machines=2), None, "dist.main_ip"),
    (dict(main_process_port=80), None, "dist.port"),
    (dict(main_process_port=70000), None, "dist.port"),
    (dict(num_processes=0), None, "config.at_least_one"),
    (dict(strategy="zero2"), None, "config.unknown_choice"),
    (dict(num_processes=4, gpu_ids="0,1"), None, "dist.gpu_ids"),
    (dict(gpu_ids="0,0"), None, "dist.gpu_ids"),
    (dict(gpu_ids="cuda:0,1"), None, "dist.gpu_ids"),
    (dict(strategy="fsdp"), "qlora", "dist.qlora_sharded"),
    (dict(strategy="deepspeed-zero3"), "qlora", "dist.qlora_sharded"),
    (dict(strategy="fsdp", use_cpu=True, mixed_precision="no"), None, "dist.cpu_strategy"),
    (dict(strategy="deepspeed-zero3", use_cpu=True, mixed_precision="no"), None, "dist.cpu_strategy"),
    (dict(use_cpu=True), None, "dist.cpu_precision"),
    (dict(offload="cpu"), None, "dist.offload_ddp"),
])
def test_impossible_settings_are_refused_before_a_file_is_written(settings, method, code, workspace):
    dc = dist.DistributedConfig(**settings)
    assert code_of(dist.write_config, dc, ws=workspace, method=method) == code
    assert not (workspace.root / "accelerate").exists() or not list((workspace.root / "accelerate").iterdir())
    if code in ("dist.qlora_sharded", "dist.cpu_strategy"):       # the same numbers with ddp are fine
        dist.DistributedConfig(**{**settings, "strategy": "ddp"}).validate("qlora")


def test_a_launch_refuses_what_cannot_run_on_this_machine(workspace, tiny_llama_dir, tmp_path):
    """This machine has no GPU and no DeepSpeed: the checks a launch (and a resume) makes with a file."""
    def launch_with(path, **kw):
        cfg = TrainConfig(model=str(tiny_llama_dir), data=str(alpaca(tmp_path / "d.jsonl", 8)), out=str(tmp_path / "r"),
                          accelerate_config=str(path), **{"num_processes": 2, **kw})
        return code_of(train.launch, cfg, workspace=workspace)

    fsdp_gpu = dist.write_config(dist.DistributedConfig("fsdp", 2, layer_class="LlamaDecoderLayer"), ws=workspace)
    assert launch_with(fsdp_gpu) == "dist.device_mismatch"
    assert launch_with(fsdp_gpu, method="qlora") == "dist.qlora_sharded"
    hand_made = tmp_path / "fsdp-cpu.yaml"        # as a person might write it: FSDP on CPU processes
    hand_made.write_text(fsdp_gpu.read_text().replace("use_cpu: false", "use_cpu: true")
                         .replace("mixed_precision: bf16", "mixed_precision: 'no'"))
    assert launch_with(hand_made) == "dist.cpu_strategy"
    zero3 = dist.write_config(dist.DistributedConfig("deepspeed-zero3", 2), ws=workspace)
    assert launch_with(zero3) == "dist.device_mismatch"
    if importlib.util.find_spec("deepspeed") is None:     # on a GPU machine without it: the pip line
        with pytest.raises(UserError) as info:
            dist.check_run(str(zero3), num_processes=2, method="lora", device="cuda")
        assert info.value.code == "dist.no_deepspeed" and "pip install deepspeed" in info.value.fix
    cpu = dist.write_config(dist.DistributedConfig("ddp", 2, use_cpu=True, mixed_precision="no"), ws=workspace)
    assert launch_with(cpu, num_processes=1, batch_size=8) == "dist.processes_mismatch"
    rank1 = dist.write_config(dist.DistributedConfig("ddp", 2, 2, 1, "10.0.0.1", use_cpu=True, mixed_precision="no"),
                              ws=workspace)
    assert launch_with(rank1) == "dist.not_main"
    assert not (tmp_path / "r" / "config.json").exists()


@pytest.mark.parametrize("text, code", [
    ("!!python/object/apply:os.system ['touch {marker}']\n", "dist.unreadable"),
    ("distributed_type: MULTI_GPU\nnum_processes: 2\nmy_own_key: 1\n", "dist.unreadable"),
    ("distributed_type: NOT_A_TYPE\n", "dist.unreadable"),
    ("- a list\n", "dist.unreadable"),
    ("compute_environment: AMAZON_SAGEMAKER\ndistributed_type: MULTI_GPU\n", "dist.unreadable"),
    ("distributed_type: MEGATRON_LM\nnum_processes: 2\n", "dist.unsupported"),
    ("distributed_type: DEEPSPEED\nnum_processes: 2\ndeepspeed_config:\n  zero_stage: 2\n", "dist.unsupported"),
])
def test_a_file_is_read_with_safe_load_and_checked_by_accelerate(text, code, tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "f.yaml"
    path.write_text(text.format(marker=marker))
    assert code_of(dist.read_config, path) == code
    assert not marker.exists()                     # a YAML tag never runs anything
    assert code_of(dist.read_config, tmp_path / "missing.yaml") == "dist.unreadable"


def test_the_worker_stops_when_the_processes_do_not_run_the_files_strategy(workspace):
    """accelerate 1.16 trains an FSDP file on CPU processes as plain DDP (MULTI_CPU): the worker says so."""
    import torch
    from accelerate.utils import DistributedType
    fsdp = dist.write_config(dist.DistributedConfig("fsdp", 2, layer_class="LlamaDecoderLayer"), ws=workspace)
    ddp = dist.write_config(dist.DistributedConfig("ddp", 2), ws=workspace)
    on_cpu = SimpleNamespace(distributed_type=DistributedType.MULTI_CPU, device=torch.device("cpu"))
    with pytest.raises(UserError) as info:
        sharded.expect(on_cpu, str(fsdp))
    assert info.value.code == "dist.not_applied" and "MULTI_CPU" in info.value.problem
    sharded.expect(on_cpu, str(ddp))
    sharded.expect(on_cpu, None)
    sharded.expect(SimpleNamespace(distributed_type=DistributedType.FSDP, device=torch.device("cuda")), str(fsdp))


def test_the_nan_check_before_saving_reads_the_gathered_weights_when_sharded():
    """Sharded, a process's own parameters are a slice: the check reads the gathered trained weights."""
    import torch
    from pipelines.training.checkpoints import _finite
    model = torch.nn.Linear(2, 2)
    model.bias.requires_grad_(False)
    with torch.no_grad():
        model.bias[0] = float("nan")               # frozen: not what training changed
    assert _finite(model, None)
    assert _finite(model, {"weight": torch.ones(2, 2), "bias": torch.full((2,), float("nan"))})
    assert not _finite(model, {"weight": torch.tensor([[1.0, float("inf")], [0.0, 0.0]]), "bias": torch.zeros(2)})
    with torch.no_grad():
        model.weight[1, 1] = float("nan")
    assert not _finite(model, None)


# -- real runs: two CPU processes (gloo) -------------------------------------------------------------

def _tiny_run(model, data, out, config_file, **kw) -> TrainConfig:
    return TrainConfig(model=str(model), data=str(data), out=str(out), method="lora", lora_r=4, lora_alpha=8,
                       lora_dropout=0.0, learning_rate=5e-3, batch_size=4, max_steps=3, save_steps=[],
                       max_prompt_length=64, max_target_length=32, accelerate_config=str(config_file),
                       num_processes=2, **kw)


def _both_processes_saved(run_dir: Path) -> None:
    """Each process writes its own random state into the checkpoint: both took part to the end."""
    state = run_dir / "checkpoints" / "step-3" / "state"
    assert sorted(p.name for p in state.glob("random_states_*")) == ["random_states_0.pkl", "random_states_1.pkl"]


def _adapter_changes_the_base(workspace, name: str, base: Path) -> None:
    import torch
    reg = workspace.model(name)
    assert reg["kind"] == "adapter"
    assert not torch.allclose(outputs_of(base), outputs_of(base, reg["path"]))


@pytest.mark.slow
def test_a_ddp_file_trains_two_cpu_processes(tiny_llama_dir, workspace, tmp_path):
    path = dist.write_config(dist.DistributedConfig("ddp", 2, use_cpu=True, mixed_precision="no"), ws=workspace)
    started = time.perf_counter()
    status, records = run_to_end(_tiny_run(tiny_llama_dir, alpaca(tmp_path / "d.jsonl", 16), tmp_path / "ddp", path))
    print(f"ddp file, 2 CPU processes, 3 steps: {time.perf_counter() - started:.1f} s")
    command = status["command"]
    assert "torch.distributed.run" in command and command[command.index("--nproc_per_node") + 1] == "2"
    log = (tmp_path / "ddp" / "train.log").read_text()
    assert "processes: 2" in log and [r["step"] for r in records] == [1, 2, 3]     # one world of two processes
    _both_processes_saved(tmp_path / "ddp")
    _adapter_changes_the_base(workspace, "ddp@3", tiny_llama_dir)


@pytest.mark.slow
def test_two_machines_run_one_training_over_a_shared_folder(tiny_llama_dir, workspace, tmp_path):
    """Two "machines" on this host: the run starts as rank 0, rank 1 joins with the command shown for it."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = dist.write_config(dist.DistributedConfig("ddp", 2, 2, 0, "127.0.0.1", port, use_cpu=True,
                                                    mixed_precision="no"), ws=workspace)
    cfg = _tiny_run(tiny_llama_dir, alpaca(tmp_path / "d.jsonl", 16), tmp_path / "two", path)
    started = time.perf_counter()
    launched = train.launch(cfg, workspace=workspace)
    [join] = train.join_commands(cfg, launched.run_dir)
    assert join.startswith("torchrun --nnodes 2 --node_rank 1 --master_addr 127.0.0.1")
    argv = [sys.executable, "-m", "torch.distributed.run", *shlex.split(join)[1:]]
    other = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert other.returncode == 0, other.stdout[-2000:] + other.stderr[-2000:]
    final = train.follow(launched.run_dir, poll_s=0.3)
    print(f"ddp file, 2 machines x 1 CPU process, 3 steps: {time.perf_counter() - started:.1f} s")
    assert final["status"] == "finished", (Path(launched.run_dir) / "train.log").read_text()[-3000:]
    assert "--node_rank 0" in " ".join(final["command"]) and "processes: 2" in (tmp_path / "two" / "train.log").read_text()
    _both_processes_saved(tmp_path / "two")
    _adapter_changes_the_base(workspace, "two@3", tiny_llama_dir)
