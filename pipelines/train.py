"""Launch, follow and resume training runs (LoRA, QLoRA, continual pretraining).

    python -m pipelines.train --preset cpu-tiny-lora --out workspace/runs/try1
    python -m pipelines.train --preset opencalm-7b-lora --model /models/open-calm-7b \\
        --data medical_qa --save-steps 1000,3000,10000 --max-steps 10000 --num-processes 4 --out runs/ocalm
    python -m pipelines.train --resume workspace/runs/try1
    python -m pipelines.train --preset llama2-70b-qlora --model /models/llama2-70b --estimate

Every TrainConfig field is also a flag (``--lora-r 16``, ``--learning-rate 1e-4``, ``--loss-on all``);
a preset fills the fields first (``assets/presets/NAME.json``), flags override it. Everything
is checked before anything starts. The run itself is a separate process (``accelerate launch``
on GPUs, ``torchrun`` for several CPU processes) in its own session, writing to ``OUT/train.log``,
so neither a closed terminal nor a restarted UI stops it; ``--detach`` returns at once.
The training loop is in ``pipelines/train_worker.py``; run files in ``pipelines/train_runs.py``.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from pipelines import train_runs
from pipelines.errors import UserError, cli_guard
from pipelines.train_metrics import read_metrics
from pipelines.workspace import Workspace, add_workspace_argument

REPO = Path(__file__).resolve().parent.parent
PRESET_DIR = REPO / "assets" / "presets"
METHODS = ("lora", "qlora", "cpt")


@dataclass
class TrainConfig:
    # -- what to train --------------------------------------------------------------
    model: str = "default"              # model reference (pipelines.models): default, registered name, HF dir
    data: str = ""                      # JSONL, saved dataset dir, workspace dataset name; cpt: .txt/.md too
    method: str = "lora"                # lora | qlora (4-bit NF4 base) | cpt (continual pretraining)
    out: str = ""                       # run directory (default: WORKSPACE/runs/NAME-TIME)
    run_name: str = ""                  # checkpoints register as RUN_NAME@STEP (default: OUT's name)
    preset: str | None = None
    template: str = "ja"                # ja | en | chat | path.txt: the evaluation format
    loss_on: str = "response"           # response | all (prompt tokens too)
    max_prompt_length: int = 512        # prompt tokens kept (cut from the left: the answer cue stays)
    max_target_length: int = 512        # response tokens kept
    max_seq_length: int = 768           # cpt: packed block length (MedCALM: 768)
    batching: str = "grouped"           # grouped: length-grouped, left-padded, LM head on response columns only
                                        # flat: padding-free rows (best with flash-attention varlen on GPU)
                                        # padded: plain shuffled padded batches (the reference)
    # -- adapters ---------------------------------------------------------------------
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    cpt_mode: str = "full"              # cpt: full (all weights) | lora (merged into a new base at the end)
    # -- optimisation -----------------------------------------------------------------
    learning_rate: float = 5e-5
    batch_size: int = 8                 # examples (cpt: blocks) per optimizer step, all processes together
    micro_batch_size: int = 0           # examples per forward per process (0: batch_size / num_processes);
                                        # smaller saves memory, the rest becomes gradient accumulation
    max_steps: int = 1000
    warmup_steps: int = 0
    lr_scheduler: str = "linear"        # linear | cosine | constant | constant_with_warmup
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optimizer: str = "adamw"            # adamw | paged_adamw_8bit (GPU only)
    gradient_checkpointing: bool = False
    precision: str = "auto"             # auto (bf16 on a capable GPU, else fp32) | bf16 | fp16 | fp32
    seed: int = 42
    # -- run control --------------------------------------------------------------------
    save_steps: list[int] = field(default_factory=list)   # the final step is always saved too
    resume_every: int = 100             # steps between rolling resume points (0: only at checkpoints)
    logging_steps: int = 1
    num_processes: int = 1
    accelerate_config: str | None = None  # accelerate config file (FSDP, DeepSpeed) for GPU runs
    eval_data: str | None = None        # IgakuQA JSONL: evaluate each checkpoint as it is saved
    eval_limit: int = 50
    eval_template: str | None = None    # default: template
    workspace: str | None = None

    @property
    def micro(self) -> int:
        return self.micro_batch_size or max(1, self.batch_size // self.num_processes)

    @property
    def grad_accum(self) -> int:
        return self.batch_size // (self.micro * self.num_processes)

    def all_save_steps(self) -> list[int]:
        return sorted(set(self.save_steps) | {self.max_steps})

    def validate(self) -> None:
        """Field checks that need nothing loaded; :func:`prepare` checks model and data."""
        def bad(problem, fix):
            raise UserError(problem, fix)
        if self.method not in METHODS:
            bad(f"Unknown method {self.method!r}.", "Use lora, qlora or cpt.")
        if self.cpt_mode not in ("full", "lora"):
            bad(f"Unknown cpt_mode {self.cpt_mode!r}.", "Use full or lora.")
        if not self.learning_rate > 0:
            bad(f"learning_rate must be positive (got {self.learning_rate}).", "The paper used 5e-5 (LoRA) and 2e-4 (QLoRA).")
        if self.uses_lora and (self.lora_r <= 0 or self.lora_alpha <= 0):
            bad(f"LoRA rank and alpha must be positive (got r={self.lora_r}, alpha={self.lora_alpha}).",
                "Typical values: r 8-64, alpha 16-32.")
        if not 0 <= self.lora_dropout < 1:
            bad(f"lora_dropout must be in [0, 1) (got {self.lora_dropout}).", "The paper used 0.05 and 0.1.")
        if self.micro_batch_size < 0:
            bad(f"micro_batch_size cannot be negative (got {self.micro_batch_size}).", "Use 0 for automatic.")
        for name in ("batch_size", "max_steps", "num_processes", "logging_steps",
                     "max_prompt_length", "max_target_length", "max_seq_length"):
            if getattr(self, name) < 1:
                bad(f"{name} must be at least 1 (got {getattr(self, name)}).", f"Set --{name.replace('_', '-')} to 1 or more.")
        if self.batch_size % (self.micro * self.num_processes):
            bad(f"batch_size {self.batch_size} is not a multiple of micro_batch_size × num_processes "
                f"({self.micro} × {self.num_processes}).",
                "Choose values so that batch_size = micro_batch_size × num_processes × accumulation steps.")
        wrong = [s for s in self.save_steps if not 1 <= s <= self.max_steps]
        if wrong:
            bad(f"Save step(s) {wrong} outside 1..max_steps ({self.max_steps}).",
                "Raise --max-steps or drop those save steps.")
        if not 0 <= self.warmup_steps < self.max_steps:
            bad(f"warmup_steps {self.warmup_steps} must be below max_steps {self.max_steps}.", "Lower --warmup-steps.")
        if self.resume_every < 0 or self.weight_decay < 0 or self.max_grad_norm < 0:
            bad("resume_every, weight_decay and max_grad_norm cannot be negative.", "Use 0 to turn them off.")
        if self.batching not in ("grouped", "flat", "padded"):
            bad(f"Unknown batching {self.batching!r}.", "Use grouped (default), flat or padded.")
        if self.loss_on not in ("response", "all"):
            bad(f"Unknown loss_on {self.loss_on!r}.", "Use response (default) or all.")
        if self.lr_scheduler not in ("linear", "cosine", "constant", "constant_with_warmup"):
            bad(f"Unknown lr_scheduler {self.lr_scheduler!r}.", "Use linear, cosine, constant or constant_with_warmup.")
        if self.optimizer not in ("adamw", "paged_adamw_8bit"):
            bad(f"Unknown optimizer {self.optimizer!r}.", "Use adamw or paged_adamw_8bit.")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            bad(f"Unknown precision {self.precision!r}.", "Use auto, bf16, fp16 or fp32.")
        if "@" in self.run_name or "/" in self.run_name:
            bad(f"Run name {self.run_name!r} may not contain '@' or '/'.", "Checkpoints are named RUN_NAME@STEP.")
        if self.eval_limit < 1:
            bad("eval_limit must be at least 1.", "Evaluate at least one question per checkpoint.")

    @property
    def uses_lora(self) -> bool:
        return self.method in ("lora", "qlora") or self.cpt_mode == "lora"


# -- presets -------------------------------------------------------------------------

def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name: str) -> dict:
    """A preset file: ``{"description", "config": {field: value}, "notes": {field: trade-off}}``."""
    path = Path(name) if name.endswith(".json") else PRESET_DIR / f"{name}.json"
    if not path.exists():
        raise UserError(f"Unknown preset {name!r}.", f"Use one of: {', '.join(available_presets())}.")
    preset = json.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(preset.get("config", {})) - known
    if unknown:
        raise UserError(f"Preset {path.name} sets unknown field(s) {sorted(unknown)}.", f"Known fields: {sorted(known)}.")
    return preset


def make_config(preset: str | None = None, **overrides) -> TrainConfig:
    """Defaults ← preset ← overrides (None means 'not given')."""
    values = dict(load_preset(preset)["config"], preset=preset) if preset else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        raise UserError(f"Unknown training setting(s) {sorted(unknown)}.", f"Known: {sorted(known)}.")
    return TrainConfig(**values)


# -- checks that need the model and the data ---------------------------------------

def bnb_4bit_problem(device: str) -> str | None:
    """Why 4-bit loading cannot work here, or None."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed"
    import bitsandbytes
    major, minor = (int(x) for x in bitsandbytes.__version__.split(".")[:2])
    if device == "cpu" and (major, minor) < (0, 49):
        return f"bitsandbytes {bitsandbytes.__version__} has no CPU 4-bit kernels (0.49 or newer does)"
    return None


def _data_path(spec: str) -> str:
    """Preset data paths are relative to the repository; user paths to the working directory."""
    if spec and not Path(spec).exists() and (REPO / spec).exists():
        return str(REPO / spec)
    return spec


def prepare(config: TrainConfig, ws: Workspace) -> dict:
    """Check model, data, template and hardware; return what the run will use."""
    config.validate()
    import torch
    from pipelines.models import load_tokenizer, resolve_model
    from pipelines.prompts import load_template
    from pipelines import train_data

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and config.num_processes > torch.cuda.device_count():
        raise UserError(f"{config.num_processes} processes asked for, {torch.cuda.device_count()} GPU(s) present.",
                        "Lower --num-processes to the number of GPUs.")
    if device == "cpu" and config.num_processes > (os.cpu_count() or 1):
        raise UserError(f"{config.num_processes} processes asked for on {os.cpu_count()} CPU cores.",
                        "Use at most one process per core.")
    if config.method == "qlora" and (problem := bnb_4bit_problem(device)):
        raise UserError(f"QLoRA needs 4-bit loading, but {problem}.",
                        "pip install 'bitsandbytes>=0.49', or use --method lora.")
    if config.optimizer == "paged_adamw_8bit" and device != "cuda":
        raise UserError("paged_adamw_8bit needs a CUDA GPU.", "Use --optimizer adamw on CPU.")
    if config.precision in ("bf16", "fp16") and device != "cuda":
        raise UserError(f"precision {config.precision} needs a GPU here.", "Use --precision auto or fp32 on CPU.")

    ref = resolve_model(config.model, None, ws)
    if ref.kind != "local" or ref.adapter:
        raise UserError(f"{config.model} is not a base model directory (it is an "
                        f"{'API endpoint' if ref.kind != 'local' else 'adapter'}).",
                        "Train from a base model: default, a registered base/merged model, or a HF model dir.")
    tokenizer = load_tokenizer(ref.path, padding_side="right")
    _check_target_modules(config, ref.path)

    source = train_data.resolve_data(_data_path(config.data), ws)
    info: dict = {"base_model_path": ref.path, "device": device, "data_path": str(source.path),
                  "data_name": source.name, "data_hash": source.version}
    if config.method == "cpt":
        blocks = train_data.tokenize_cpt(train_data.read_texts(source), tokenizer, block_size=config.max_seq_length)
        info.update(n_examples=len(blocks), n_truncated=0, tokens=len(blocks) * config.max_seq_length)
    else:
        template = load_template(config.template)
        if template.uses_chat_template and not getattr(tokenizer, "chat_template", None):
            raise UserError("This model's tokenizer has no chat template, so --template chat cannot be used.",
                            "Use --template ja or en (the paper's Alpaca formats).")
        examples, truncated = train_data.tokenize_sft(
            train_data.read_sft_records(source), tokenizer, template, max_prompt_length=config.max_prompt_length,
            max_target_length=config.max_target_length, loss_on=config.loss_on)
        info.update(n_examples=len(examples), n_truncated=truncated, tokens=sum(len(e.input_ids) for e in examples))
    if info["n_examples"] < config.micro * config.num_processes:
        raise UserError(f"Only {info['n_examples']} training examples for {config.num_processes} process(es) "
                        f"× micro-batch {config.micro}.", "Add data or lower --micro-batch-size.")
    if config.eval_data and not Path(config.eval_data).exists():
        raise UserError(f"Evaluation data {config.eval_data} not found.", "Pass an IgakuQA-format JSONL file to --eval-data.")
    return info


def _check_target_modules(config: TrainConfig, model_path: str) -> None:
    if not config.uses_lora or config.target_modules == ["all-linear"]:
        return
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM
    with init_empty_weights():            # structure only: no memory, even for 70B
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path))
    names = {n.rsplit(".", 1)[-1] for n, _ in skeleton.named_modules()}
    missing = [m for m in config.target_modules if m not in names]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in skeleton.named_modules()
                         if type(m).__name__ == "Linear" and not n.endswith("lm_head")})
        raise UserError(f"Target module(s) {missing} do not exist in {type(skeleton).__name__}.",
                        f"This model's linear layers are {', '.join(linear)}; or use all-linear.")


# -- launching -----------------------------------------------------------------------

@dataclass
class LaunchedRun:
    run_dir: str
    run_id: str
    pid: int
    command: list[str]           # the process started (accelerate launch / torchrun / ...)
    cli: str                     # the equivalent `python -m pipelines.train ...` line

    @property
    def command_line(self) -> str:
        return shlex.join(self.command)


def worker_command(config: TrainConfig, run_dir: Path, device: str) -> list[str]:
    """GPU: accelerate launch (DDP/FSDP/DeepSpeed per its config); several CPU processes: torchrun (gloo)."""
    worker = ["-m", "pipelines.train_worker", str(run_dir)]
    if device == "cpu" and config.num_processes > 1:
        # accelerate launch --cpu starts a single process; torchrun really starts N.
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(config.num_processes)] + worker
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(config.num_processes),
           "--num_machines", "1", "--dynamo_backend", "no"]
    if config.accelerate_config:
        cmd += ["--config_file", config.accelerate_config]
    if device == "cpu":
        cmd += ["--cpu"]
    elif config.num_processes > 1 and not config.accelerate_config:
        cmd += ["--multi_gpu"]
    mp = {"bf16": "bf16", "fp16": "fp16"}.get(config.precision, "no")
    return cmd + ["--mixed_precision", mp] + worker


def equivalent_cli(config: TrainConfig) -> str:
    """The `python -m pipelines.train` line that makes the same run (for the UI's preview)."""
    base = make_config(config.preset) if config.preset else TrainConfig()
    args = ["python", "-m", "pipelines.train"] + (["--preset", config.preset] if config.preset else [])
    for f in dataclasses.fields(TrainConfig):
        value = getattr(config, f.name)
        if f.name == "preset" or value == getattr(base, f.name) or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + f.name.replace("_", "-"))
        else:
            args += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return shlex.join(args)


def launch(config: TrainConfig, *, on_exit: Callable[[int], None] | None = None,
           workspace: Workspace | None = None) -> LaunchedRun:
    """Check everything, create the run directory and start the run in the background."""
    ws = workspace or Workspace.resolve(config.workspace)
    config.workspace = str(ws.root)
    if not config.out:
        config.out = str(ws.subdir("runs") / f"{config.preset or config.method}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = Path(config.out).expanduser().resolve()
    config.out = str(run_dir)
    config.run_name = config.run_name or run_dir.name
    config.data = _data_path(config.data)
    if (run_dir / "config.json").exists():
        raise UserError(f"{run_dir} already holds a training run.",
                        f"Resume it (python -m pipelines.train --resume {run_dir}) or choose another --out.")
    taken = [m["name"] for m in ws.models() if m["name"].startswith(config.run_name + "@")]
    if taken:
        raise UserError(f"Checkpoints named {config.run_name}@… already exist in the workspace ({taken[0]}).",
                        "Pass another --run-name or --out.")
    info = prepare(config, ws)
    run_id = uuid.uuid4().hex[:12]
    run_dir.mkdir(parents=True, exist_ok=True)
    train_runs.write_json(run_dir / "config.json", {"config": asdict(config), "resolved": {**info, "run_id": run_id}})
    train_runs.write_json(run_dir / "run_card.json", _run_card(config, info, run_id))
    train_runs.update_status(run_dir, status="queued", run_id=run_id, step=0, max_steps=config.max_steps,
                             message="starting", created_at=time.time())
    train_runs.register_run(ws, run_id, config.run_name, run_dir)
    return _spawn(config, run_dir, run_id, info["device"], on_exit)


def resume(run_dir: str | os.PathLike, *, on_exit: Callable[[int], None] | None = None, **overrides) -> LaunchedRun:
    """Start a stopped, failed or killed run again from its newest training state.

    ``overrides`` may extend it (``max_steps``, ``save_steps``, eval settings, ``num_processes``).
    """
    run_dir = Path(run_dir).resolve()
    saved = train_runs.read_json(run_dir / "config.json")
    if not saved:
        raise UserError(f"{run_dir} is not a training run (no config.json).", "Pass the --out directory of a run.")
    status = train_runs.run_status(run_dir)
    if status["status"] in train_runs.ACTIVE and status.get("pid"):
        raise UserError(f"Run {run_dir.name} is still {status['status']} (pid {status['pid']}).", "Stop it first.")
    allowed = {"max_steps", "save_steps", "eval_data", "eval_limit", "eval_template", "num_processes",
               "micro_batch_size", "resume_every", "logging_steps", "accelerate_config"}
    changed = {k: v for k, v in overrides.items() if v is not None}
    if set(changed) - allowed:
        raise UserError(f"{sorted(set(changed) - allowed)} cannot change on resume (they define the run).",
                        f"Start a new run for that; on resume you may change {', '.join(sorted(allowed))}.")
    config = TrainConfig(**{**saved["config"], **changed})
    config.validate()
    point = train_runs.latest_resume_point(run_dir)
    if point and point[0] >= config.max_steps:
        raise UserError(f"Run {run_dir.name} already reached step {point[0]} of {config.max_steps}.",
                        "Pass a larger --max-steps to train further.")
    saved["config"] = asdict(config)
    train_runs.write_json(run_dir / "config.json", saved)
    (run_dir / train_runs.STOP_FILE).unlink(missing_ok=True)
    train_runs.update_status(run_dir, status="queued", message=f"resuming from step {point[0] if point else 0}",
                             max_steps=config.max_steps, exit_code=None)
    return _spawn(config, run_dir, saved["resolved"]["run_id"], saved["resolved"]["device"], on_exit)


def _spawn(config: TrainConfig, run_dir: Path, run_id: str, device: str, on_exit) -> LaunchedRun:
    cmd = worker_command(config, run_dir, device)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // config.num_processes)))
    with open(run_dir / "train.log", "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(cmd)}\n".encode())
        log.flush()
        # Own session: the run survives the UI or terminal that started it, and stop_run can
        # signal the whole group. Output goes to a file, never to a pipe nobody drains.
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    train_runs.update_status(run_dir, pid=proc.pid, pgid=proc.pid, pid_start=train_runs.process_start_time(proc.pid),
                             command=cmd)

    def reap():                           # no zombie left behind, and a crash is recorded
        code = proc.wait()
        if train_runs.read_json(run_dir / "status.json").get("status") in train_runs.ACTIVE:
            stopped = (run_dir / train_runs.STOP_FILE).exists()
            train_runs.update_status(run_dir, status="stopped" if stopped else "failed", exit_code=code,
                                     message="stopped by the user" if stopped else
                                     f"exited with code {code}{' (killed)' if code < 0 else ''}; see train.log, "
                                     f"fix the cause and resume from the last checkpoint")
        if on_exit:
            on_exit(code)
    threading.Thread(target=reap, daemon=True).start()
    return LaunchedRun(str(run_dir), run_id, proc.pid, cmd, equivalent_cli(config))


def _run_card(config: TrainConfig, info: dict, run_id: str) -> dict:
    import platform
    import torch
    versions = {}
    for pkg in ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "datasets"):
        try:
            versions[pkg] = __import__(pkg).__version__
        except Exception:  # an optional package missing or broken is recorded, not fatal
            versions[pkg] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True,
                                    timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"run_id": run_id, "run_name": config.run_name, "created_at": time.time(), "config": asdict(config),
            "dataset": {"spec": config.data, "name": info["data_name"], "path": info["data_path"],
                        "hash": info["data_hash"], "n_examples": info["n_examples"], "n_truncated": info["n_truncated"],
                        "tokens": info["tokens"]},
            "base_model": {"reference": config.model, "path": info["base_model_path"]},
            "versions": {"python": platform.python_version(), **versions},
            "git": {"commit": commit, "dirty": dirty},
            "hardware": {"device": info["device"], "gpus": gpus, "cpu_count": os.cpu_count(),
                         "platform": platform.platform(), "num_processes": config.num_processes},
            "resumes": []}


# -- following -----------------------------------------------------------------------

def follow(run_dir: str | os.PathLike, on_event: Callable[[dict], None] | None = None, poll_s: float = 1.0) -> dict:
    """Block until the run ends, passing each metrics record as ``{"type": "metrics", ...}``."""
    emit = on_event or (lambda e: None)
    cursor = None
    while True:
        status = train_runs.run_status(run_dir)
        chunk = read_metrics(run_dir, cursor)
        cursor = chunk.cursor
        for rec in chunk.records:
            emit({"type": "metrics", **rec})
        if status["status"] not in train_runs.ACTIVE:
            emit({"type": "end", **status})
            return status
        time.sleep(poll_s)


def run(config: TrainConfig, on_event: Callable[[dict], None] | None = None) -> dict:
    """Launch a run and wait for it to end; returns the final status record."""
    launched = launch(config)
    (on_event or (lambda e: None))({"type": "launched", **asdict(launched)})
    return follow(launched.run_dir, on_event)


# -- CLI -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="presets: " + ", ".join(available_presets()))
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest checkpoint")
    p.add_argument("--detach", action="store_true", help="return once the run has started")
    p.add_argument("--estimate", action="store_true", help="print the memory and time estimate and exit")
    p.add_argument("--gpu", help="--estimate for this GPU instead of this machine (e.g. A100-80GB, H100-80GB)")
    p.add_argument("--num-gpus", type=int, default=1, help="with --gpu")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "workspace":
            continue
        if f.type in ("bool", bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif f.name in ("save_steps", "target_modules"):
            conv = (lambda s: [int(x) for x in s.split(",") if x.strip()]) if f.name == "save_steps" else \
                (lambda s: [x.strip() for x in s.split(",") if x.strip()])
            p.add_argument(flag, type=conv, default=None, help="comma-separated")
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            p.add_argument(flag, type=kind, default=None)
    add_workspace_argument(p)
    return p


@cli_guard
def main(argv: list[str] | None = None) -> None:
    args = vars(build_parser().parse_args(argv))
    resume_dir, detach, estimate_only = args.pop("resume"), args.pop("detach"), args.pop("estimate")
    gpu, num_gpus = args.pop("gpu"), args.pop("num_gpus")
    if resume_dir:
        launched = resume(resume_dir, **{k: v for k, v in args.items() if k != "workspace"})
    else:
        config = make_config(args.pop("preset"), **args)
        if estimate_only:
            from pipelines.train_estimate import estimate_config
            avg = None
            if config.data:                 # the real example lengths make the time estimate closer
                try:
                    info = prepare(config, Workspace.resolve(config.workspace))
                    avg = info["tokens"] / info["n_examples"]
                except UserError as exc:
                    print(f"(not using the data for the estimate: {exc.problem})", file=sys.stderr)
            print(estimate_config(config, gpu=gpu, num_gpus=num_gpus, avg_tokens=avg).summary())
            return
        launched = launch(config)
    print(f"run: {launched.run_dir}\npid: {launched.pid}\ncommand: {launched.command_line}\n"
          f"log: {Path(launched.run_dir) / 'train.log'}", flush=True)
    if detach:
        return

    def show(e: dict) -> None:
        if e["type"] == "metrics":
            print(f"step {e['step']:>6}  loss {e['loss']:.4f}  lr {e['lr']:.2e}  {e['tokens_per_s']:.0f} tok/s  "
                  f"eta {e['eta_s'] / 60:.1f} min", flush=True)
    try:
        final = follow(launched.run_dir, show)
    except KeyboardInterrupt:
        print("\nstopping (saving a resume point)…", file=sys.stderr)
        final = train_runs.stop_run(launched.run_dir)
    print(f"{final['status']}: {final.get('message', '')}")
    if final["status"] == "failed":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
