"""Write the accelerate config file for training on several GPUs or machines (DDP, FSDP, DeepSpeed ZeRO-3).

    jmedlora distributed --strategy fsdp --num-processes 16 --num-machines 2 \\
        --main-process-ip 10.0.0.1 --model /models/open-calm-7b --mixed-precision bf16
    jmedlora train --preset opencalm-7b-lora --model /models/open-calm-7b --data medical_qa \\
        --accelerate-config workspace/accelerate/fsdp-16p-2m.yaml --num-processes 16

Also here: reading such a file back (``yaml.safe_load``, then accelerate's own ``ClusterConfig`` checks
its keys), the checks a launch makes with one, and the command each machine runs. The Train tab's
"Distributed" section writes files through this module; the launcher (``launch.py``) runs them.

A file is what ``accelerate config`` writes for the installed accelerate: it is built by accelerate's
``ClusterConfig`` itself, so ``accelerate launch --config_file F`` reads it unchanged. What the
worker (``worker.py``, ``sharded.py``) needs from each strategy:

- ``fsdp``: FSDP2, every parameter sharded (reshard after forward), one wrap per decoder layer (the
  model's own class, read from its config), ``FULL_STATE_DICT``: accelerate reads that training
  state back with the weights-only unpickler, while a sharded state's DCP metadata is a pickle
  (never unpickled here: ``pipelines/core/safe_load.py``). Each process loads the weights lazily
  (rank 0 reads them, the others receive their shard). Checkpoints are gathered whole and saved our
  way (PEFT adapter or model folder), as in a one-GPU run.
- ``deepspeed-zero3``: ZeRO stage 3 with ``zero3_save_16bit_model`` (without it the weights cannot be
  gathered for saving), ``zero3_init_flag`` (each process builds only its shard) and accumulation
  left to the worker (``gradient_accumulation_steps: 1``; it marks the last micro-batch itself).
- On CPU only ``ddp`` runs, as torchrun with the file's machines and port (``accelerate launch``
  starts one process for a ``MULTI_CPU`` file unless it runs mpirun). accelerate applies FSDP to
  GPU-type processes only: an FSDP file on CPU would train as plain DDP, so it is refused; DeepSpeed
  needs a GPU.
- Several machines need one shared folder (NFS) holding the run: every process writes its part of
  each checkpoint's training state into it.
"""
from __future__ import annotations

import importlib.util
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipelines.core import cli, commands
from pipelines.core.errors import UserError, cli_guard
from pipelines.core.workspace import Workspace

STRATEGIES = ("ddp", "fsdp", "deepspeed-zero3")
SHARDED = ("fsdp", "deepspeed-zero3")
# accelerate's distributed_type for each strategy (ddp: MULTI_GPU, or MULTI_CPU / NO as accelerate config writes them)
TYPES = {"fsdp": "FSDP", "deepspeed-zero3": "DEEPSPEED"}
DDP_TYPES = ("NO", "MULTI_GPU", "MULTI_CPU")


@dataclass
class DistributedConfig:
    strategy: Literal["ddp", "fsdp", "deepspeed-zero3"] = "ddp"  # ddp (a whole copy per GPU) | fsdp | deepspeed-zero3 (both shard the weights)
    num_processes: int = 2              # processes on all machines together (one per GPU)
    num_machines: int = 1               # machines (nodes) taking part
    machine_rank: int = 0               # this machine's rank; 0 is the main machine, where a run is started
    main_process_ip: str = ""           # the main machine's address, reachable from the others (several machines)
    main_process_port: int = 29500      # a free TCP port on the main machine (1024-65535)
    mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"  # what the GPUs compute in (no: fp32; CPU: no)
    gpu_ids: str = "all"                # GPUs used on each machine: all, or ids such as 0,1,2,3
    use_cpu: bool = False               # CPU processes (gloo) instead of GPUs: ddp only
    offload: Literal["none", "cpu"] = "none"  # fsdp, deepspeed-zero3: keep parameters and optimizer state in CPU memory
    max_grad_norm: float = 1.0          # deepspeed-zero3: gradient clipping done by DeepSpeed (0: off)
    layer_class: str = ""               # fsdp: decoder layer class wrapped as one shard (empty: read from --model)
    model: str = ""                     # fsdp: the base model (reference or folder) whose layer class is wrapped
    out: str = ""                       # the YAML file written (default: WORKSPACE/accelerate/NAME.yaml)
    workspace: str | None = None

    @property
    def per_machine(self) -> int:
        return self.num_processes // max(self.num_machines, 1)

    def default_name(self) -> str:
        return f"{self.strategy}-{self.num_processes}p-{self.num_machines}m" + \
            (f"-rank{self.machine_rank}" if self.machine_rank else "") + ("-cpu" if self.use_cpu else "") + ".yaml"

    def validate(self, method: str | None = None) -> None:
        """Settings no launch can run, as UserErrors (``method``: the training method, for QLoRA)."""
        if self.strategy not in STRATEGIES:
            raise UserError(f"Unknown strategy {self.strategy!r}.", f"Use one of {', '.join(STRATEGIES)}.",
                            code="config.unknown_choice",
                            params={"field": "strategy", "value": str(self.strategy), "known": ", ".join(STRATEGIES)})
        for name in ("num_processes", "num_machines"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1 (got {getattr(self, name)}).", f"Set {name} to 1 or more.",
                                code="config.at_least_one", params={"field": name, "value": getattr(self, name)})
        if self.num_processes % self.num_machines:
            raise UserError(f"{self.num_processes} processes cannot be shared evenly by {self.num_machines} machines.",
                            "Give every machine the same number of GPUs: num_processes = machines × GPUs per machine.",
                            code="dist.uneven", params={"field": "num_processes", "processes": self.num_processes,
                                                        "machines": self.num_machines})
        if not 0 <= self.machine_rank < self.num_machines:
            raise UserError(f"machine_rank {self.machine_rank} is outside 0…{self.num_machines - 1} "
                            f"({self.num_machines} machine(s)).", "The main machine is rank 0, the others 1, 2, … in turn.",
                            code="dist.rank", params={"field": "machine_rank", "rank": self.machine_rank,
                                                      "machines": self.num_machines})
        if not 1024 <= self.main_process_port <= 65535:
            raise UserError(f"main_process_port {self.main_process_port} is not a usable port.",
                            "Choose a free port between 1024 and 65535 (29500 is usual).",
                            code="dist.port", params={"field": "main_process_port", "value": self.main_process_port})
        if self.num_machines > 1 and (not self.main_process_ip or any(c.isspace() for c in self.main_process_ip)):
            raise UserError(f"{self.num_machines} machines need the main machine's address "
                            f"(got {self.main_process_ip!r}).",
                            "Enter the IP address or host name of the rank-0 machine, as the other machines reach it.",
                            code="dist.main_ip", params={"field": "main_process_ip", "machines": self.num_machines})
        self._check_devices()
        if method == "qlora" and self.strategy in SHARDED:
            raise UserError(f"QLoRA cannot be combined with {self.strategy} here: sharding 4-bit weights needs them "
                            "loaded with bnb_4bit_quant_storage and without a device map, and this workbench loads a "
                            "whole 4-bit copy per process.",
                            f"Use ddp for QLoRA (each GPU holds the 4-bit base), or LoRA with {self.strategy}.",
                            code="dist.qlora_sharded", params={"strategy": self.strategy, "field": "method"})

    def _check_devices(self) -> None:
        if self.use_cpu and self.strategy != "ddp":
            why = ("accelerate applies FSDP only to GPU processes: on CPU the same file trains as plain DDP"
                   if self.strategy == "fsdp" else "DeepSpeed runs on GPUs only")
            raise UserError(f"{self.strategy} cannot run on CPU processes ({why}).",
                            "Use ddp on CPU, or write the file for GPUs and start the run on a GPU machine.",
                            code="dist.cpu_strategy", params={"strategy": self.strategy})
        if self.use_cpu and self.mixed_precision != "no":
            raise UserError(f"mixed_precision {self.mixed_precision} is for GPUs; CPU processes compute in fp32.",
                            "Set mixed_precision to no for CPU processes.",
                            code="dist.cpu_precision", params={"field": "mixed_precision", "value": self.mixed_precision})
        if self.offload != "none" and self.strategy == "ddp":
            raise UserError("offload needs fsdp or deepspeed-zero3 (ddp keeps a whole copy on every GPU).",
                            "Set offload to none, or choose fsdp or deepspeed-zero3.",
                            code="dist.offload_ddp", params={"field": "offload"})
        ids = [] if self.gpu_ids in ("", "all") else self.gpu_ids.replace(" ", "").split(",")
        if ids and (not all(i.isdigit() for i in ids) or len(set(ids)) != len(ids) or len(ids) < self.per_machine):
            raise UserError(f"gpu_ids {self.gpu_ids!r} must be {self.per_machine} or more different GPU numbers "
                            f"({self.per_machine} process(es) per machine, one GPU each).",
                            "Write all, or GPU numbers separated by commas (0,1,2,3).",
                            code="dist.gpu_ids", params={"field": "gpu_ids", "value": self.gpu_ids,
                                                         "n": self.per_machine})


def mixed_precision_for(precision: str, use_cpu: bool) -> str:
    """A TrainConfig.precision as accelerate's mixed_precision (auto: bf16 on GPUs, as the worker picks)."""
    return "no" if use_cpu else {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}.get(precision, "bf16")


def decoder_layer_class(model_path: str) -> str:
    """The class FSDP wraps as one unit: the model's own ``_no_split_modules`` (LlamaDecoderLayer, …)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM
    with init_empty_weights():            # structure only: no memory, even for 70B
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path))
    names = list(getattr(skeleton, "_no_split_modules", None) or [])
    if not names:
        raise UserError(f"{type(skeleton).__name__} does not name its decoder layer class.",
                        "Name it yourself with --layer-class (the class of one transformer block).",
                        code="dist.no_layer_class", params={"model": type(skeleton).__name__, "field": "layer_class"})
    return ",".join(names)


def cluster_config(dc: DistributedConfig):
    """accelerate's ``ClusterConfig`` for these settings, filled as ``accelerate config`` fills it."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils import ComputeEnvironment
    if dc.strategy == "ddp":
        kind = "MULTI_CPU" if dc.use_cpu else "NO" if dc.num_processes == 1 else "MULTI_GPU"
    else:
        kind = TYPES[dc.strategy]
    fsdp = {"fsdp_version": 2, "fsdp_reshard_after_forward": True, "fsdp_offload_params": dc.offload == "cpu",
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_transformer_layer_cls_to_wrap": dc.layer_class,
            "fsdp_state_dict_type": "FULL_STATE_DICT", "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_activation_checkpointing": False} if dc.strategy == "fsdp" else {}
    deepspeed = {"zero_stage": 3, "offload_optimizer_device": dc.offload, "offload_param_device": dc.offload,
                 "gradient_accumulation_steps": 1, "zero3_save_16bit_model": True, "zero3_init_flag": True,
                 **({"gradient_clipping": dc.max_grad_norm} if dc.max_grad_norm else {}),
                 **({"deepspeed_multinode_launcher": "standard"} if dc.num_machines > 1 else {})
                 } if dc.strategy == "deepspeed-zero3" else {}
    return ClusterConfig(
        compute_environment=ComputeEnvironment.LOCAL_MACHINE, distributed_type=kind,
        mixed_precision=dc.mixed_precision, use_cpu=dc.use_cpu, debug=False, num_processes=dc.num_processes,
        machine_rank=dc.machine_rank, num_machines=dc.num_machines,
        gpu_ids=None if dc.use_cpu else dc.gpu_ids.replace(" ", "") or "all",
        main_process_ip=dc.main_process_ip or None, main_process_port=dc.main_process_port,
        rdzv_backend="static", same_network=True, main_training_function="main", enable_cpu_affinity=False,
        fsdp_config=fsdp, deepspeed_config=deepspeed, downcast_bf16="no", tpu_env=[], tpu_use_cluster=False,
        tpu_use_sudo=False)


def write_config(dc: DistributedConfig, ws: Workspace | None = None, method: str | None = None) -> Path:
    """Validate, write the YAML (atomically) and return its path: ``dc.out`` or WORKSPACE/accelerate/NAME.yaml."""
    import yaml
    if dc.strategy == "fsdp" and not dc.layer_class and dc.model:
        from pipelines.models.references import resolve_model
        ref = resolve_model(dc.model, None, ws or Workspace.resolve(dc.workspace))
        if ref.kind != "local":
            raise UserError(f"{dc.model} is not a text base model folder (it is {ref.kind}): FSDP has no layers to read.",
                            "Train from a base model: default, a registered base/merged model, or a HF model dir.",
                            code="train.not_base", params={"spec": dc.model, "field": "model", "adapter": False})
        dc.layer_class = decoder_layer_class(ref.path)
    dc.validate(method)
    path = Path(dc.out) if dc.out else (ws or Workspace.resolve(dc.workspace)).subdir("accelerate") / dc.default_name()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(cluster_config(dc).to_dict()), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_config(path: str | os.PathLike) -> DistributedConfig:
    """A config file back (``yaml.safe_load`` only; accelerate's ClusterConfig checks its keys and values)."""
    import yaml
    from accelerate.commands.config.config_args import ClusterConfig

    def unreadable(detail: str):
        return UserError(f"The accelerate config file {path} cannot be used: {detail}.",
                         "Write it again (Train tab, Distributed section, or jmedlora distributed).",
                         code="dist.unreadable", params={"path": str(path), "detail": detail[:200],
                                                         "field": "accelerate_config"})
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise unreadable(f"{type(exc).__name__}: {exc}") from None
    if not isinstance(raw, dict) or raw.get("compute_environment", "LOCAL_MACHINE") != "LOCAL_MACHINE":
        raise unreadable("not an accelerate config for local machines")
    try:
        settings = ClusterConfig.process_config(dict(raw))
        extra = sorted(set(settings) - set(ClusterConfig.__dataclass_fields__))
        if extra:
            raise ValueError(f"unknown keys {extra}")
        cc = ClusterConfig(**settings)
    except (TypeError, ValueError) as exc:
        raise unreadable(str(exc)) from None
    kind = cc.distributed_type.value
    ds, fs = cc.deepspeed_config or {}, cc.fsdp_config or {}
    strategy = "ddp" if kind in DDP_TYPES else "fsdp" if kind == "FSDP" else \
        "deepspeed-zero3" if kind == "DEEPSPEED" and int(ds.get("zero_stage", 0)) == 3 else None
    if strategy is None:
        raise UserError(f"{path} asks for {kind}" + (f" stage {ds.get('zero_stage')}" if kind == "DEEPSPEED" else "")
                        + ", which this workbench does not train with.",
                        f"Use a file for {', '.join(STRATEGIES)} (DeepSpeed: ZeRO stage 3).",
                        code="dist.unsupported", params={"path": str(path), "kind": kind,
                                                         "known": ", ".join(STRATEGIES), "field": "accelerate_config"})
    offloaded = fs.get("fsdp_offload_params") or {ds.get("offload_param_device"), ds.get("offload_optimizer_device")} \
        - {None, "none"}
    return DistributedConfig(
        strategy=strategy, num_processes=cc.num_processes, num_machines=cc.num_machines, machine_rank=cc.machine_rank,
        main_process_ip=cc.main_process_ip or "", main_process_port=cc.main_process_port or 29500,
        mixed_precision=cc.mixed_precision or "no", gpu_ids=str(cc.gpu_ids or "all"), use_cpu=bool(cc.use_cpu),
        offload="cpu" if offloaded else "none", max_grad_norm=float(ds.get("gradient_clipping", 0) or 0),
        layer_class=str(fs.get("fsdp_transformer_layer_cls_to_wrap") or ""), out=str(path))


def check_run(path: str, *, num_processes: int, method: str, device: str) -> DistributedConfig:
    """The file a run is started with, checked against the run and this machine (``device``: cuda or cpu)."""
    dc = read_config(path)
    dc.validate(method)
    if dc.num_processes != num_processes:
        raise UserError(f"The run asks for {num_processes} process(es) but {path} for {dc.num_processes}.",
                        f"Set num_processes to {dc.num_processes} (all machines together), or write the file again.",
                        code="dist.processes_mismatch",
                        params={"n": num_processes, "file": dc.num_processes, "path": str(path),
                                "field": "num_processes"})
    if dc.use_cpu != (device == "cpu"):
        raise UserError(f"{path} is written for {'CPU processes' if dc.use_cpu else 'GPUs'}, but this machine "
                        f"{'has a GPU' if device != 'cpu' else 'has no CUDA GPU'}.",
                        "Write the file again on (or for) the machine that runs it.", code="dist.device_mismatch",
                        params={"path": str(path), "file_cpu": dc.use_cpu, "field": "accelerate_config"})
    if dc.strategy == "deepspeed-zero3" and importlib.util.find_spec("deepspeed") is None:
        raise UserError("DeepSpeed is not installed on this machine.",
                        "pip install deepspeed on every GPU machine of the run (it builds against the installed "
                        "CUDA and torch), or choose fsdp.", code="dist.no_deepspeed",
                        params={"field": "accelerate_config"})
    if dc.machine_rank != 0:
        raise UserError(f"{path} is for machine rank {dc.machine_rank}; a run is started on the main machine (rank 0).",
                        "Start the run on the main machine, then on this one run the command it shows for this rank.",
                        code="dist.not_main", params={"path": str(path), "rank": dc.machine_rank,
                                                      "field": "machine_rank"})
    return dc


def machine_command(dc: DistributedConfig, run_dir: str | os.PathLike, machine_rank: int | None = None, *,
                    shown: bool = False) -> list[str]:
    """The command machine ``machine_rank`` (default: the file's) runs for the run in ``run_dir``;
    ``shown``: as a person types it (``accelerate launch``, ``torchrun``)."""
    rank = dc.machine_rank if machine_rank is None else machine_rank
    worker = ["-m", commands.COMMANDS["train-worker"], str(run_dir)]
    if dc.use_cpu:
        program = ["torchrun"] if shown else [sys.executable, "-m", "torch.distributed.run"]
        where = ["--standalone"] if dc.num_machines == 1 else [
            "--nnodes", str(dc.num_machines), "--node_rank", str(rank), "--master_addr", dc.main_process_ip,
            "--master_port", str(dc.main_process_port)]
        return program + where + ["--nproc_per_node", str(dc.per_machine)] + worker
    program = ["accelerate", "launch"] if shown else [sys.executable, "-m", "accelerate.commands.launch"]
    return program + ["--config_file", str(dc.out)] + \
        (["--machine_rank", str(rank)] if rank != dc.machine_rank else []) + worker


def join_commands(dc: DistributedConfig, run_dir: str | os.PathLike) -> list[str]:
    """What each other machine runs to join the run, once it has started (one line per rank)."""
    return [shlex.join(machine_command(dc, run_dir, rank, shown=True)) for rank in range(dc.num_machines)
            if rank != dc.machine_rank]


@cli_guard
def main(argv: list[str] | None = None) -> None:
    dc = cli.config_from_args(DistributedConfig,
                              cli.config_parser("distributed", DistributedConfig, __doc__).parse_args(argv))
    path = write_config(dc)
    print(path.read_text(encoding="utf-8"))
    print(f"written: {path}\nstart the run on the main machine (rank 0): jmedlora train ... "
          f"--accelerate-config {path} --num-processes {dc.num_processes}")
    for line in join_commands(read_config(path), "RUN_DIR"):
        print(f"then on each other machine, in the repository, with RUN_DIR on the shared folder: {line}")


if __name__ == "__main__":
    main()
