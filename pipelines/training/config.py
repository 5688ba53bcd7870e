"""Training configuration: the TrainConfig fields, presets, and the checks a launch makes.

    from pipelines.training.config import make_config
    config = make_config("cpu-tiny-lora", model="/models/x", max_steps=100)

A preset (``assets/presets/NAME.json``) fills the fields first, keyword overrides win. Used by
the launcher (``pipelines.training.launch``), the estimate (``pipelines.training.estimate``) and the
training process (``pipelines.training.worker``), so none of them imports another.
:func:`prepare` checks only what is cheap (hardware, model reference, tokenizer, template, the
data's records and a bounded sample of them tokenized): the worker tokenizes the whole set once.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipelines.core.errors import UserError
from pipelines.core.repo import REPO
from pipelines.core.workspace import Workspace

PRESET_DIR = REPO / "assets" / "presets"
METHODS = ("lora", "qlora", "cpt")
SAMPLE_RECORDS = 64                     # records tokenized at launch (template and length check)
SAMPLE_CHARS = 200_000                  # cpt: text tokenized at launch


@dataclass
class TrainConfig:
    # -- what to train --------------------------------------------------------------
    model: str = "default"              # model reference (pipelines.models.references): default, registered name, HF dir
    data: str = ""                      # JSONL, saved dataset dir, workspace dataset name; cpt: .txt/.md too
    method: Literal["lora", "qlora", "cpt"] = "lora"  # lora | qlora (4-bit NF4 base) | cpt (continual pretraining)
    out: str = ""                       # run directory (default: WORKSPACE/runs/NAME-TIME)
    run_name: str = ""                  # checkpoints register as RUN_NAME@STEP (default: OUT's name)
    preset: str | None = None           # assets/presets/NAME.json fills the fields first; flags override it
    template: str = "ja"                # ja | en | chat | path.txt: the evaluation format
    loss_on: Literal["response", "all"] = "response"  # response | all (prompt tokens too)
    max_prompt_length: int = 512        # prompt tokens kept (cut from the left: the answer cue stays)
    max_target_length: int = 512        # response tokens kept
    max_seq_length: int = 768           # cpt: packed block length (MedCALM: 768)
    batching: Literal["grouped", "flat", "padded"] = "grouped"  # grouped: length-grouped, left-padded, LM head on response columns only
                                        # flat: padding-free rows (best with flash-attention varlen on GPU)
                                        # padded: plain shuffled padded batches (the reference)
    # -- adapters ---------------------------------------------------------------------
    lora_r: int = 8                     # adapter rank: more capacity, more memory
    lora_alpha: int = 32                # adapter scale (the update is multiplied by alpha / r)
    lora_dropout: float = 0.05          # dropout on the adapter input
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])  # layers that get adapters
    cpt_mode: Literal["full", "lora"] = "full"  # cpt: full (all weights) | lora (merged into a new base at the end)
    # -- optimisation -----------------------------------------------------------------
    learning_rate: float = 5e-5         # the paper: 5e-5 (LoRA), 2e-4 (QLoRA); above 1e-2 needs --force
    batch_size: int = 8                 # examples (cpt: blocks) per optimizer step, all processes together
    micro_batch_size: int = 0           # examples per forward per process (0: batch_size / num_processes);
                                        # smaller saves memory, the rest becomes gradient accumulation
    max_steps: int = 1000               # optimizer steps in the whole run
    warmup_steps: int = 0               # steps of linear learning-rate warm-up
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"  # linear | cosine | constant | constant_with_warmup
    weight_decay: float = 0.0           # AdamW weight decay
    max_grad_norm: float = 1.0          # gradient clipping (0: off)
    optimizer: Literal["adamw", "paged_adamw_8bit"] = "adamw"  # adamw | paged_adamw_8bit (GPU only)
    gradient_checkpointing: bool = False  # recompute activations: less memory, ~30% slower
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto (bf16 on a capable GPU, else fp32) | bf16 | fp16 | fp32
    seed: int = 42
    # -- run control --------------------------------------------------------------------
    save_steps: list[int] = field(default_factory=list)   # the final step is always saved too
    resume_every: int = 100             # steps between rolling resume points (0: only at checkpoints)
    logging_steps: int = 1              # steps between progress events
    num_processes: int = 1              # processes (GPUs, or CPU workers) training together
    accelerate_config: str | None = None  # accelerate config file (DDP, FSDP, DeepSpeed; jmedlora distributed)
    eval_data: str | None = None        # IgakuQA JSONL: evaluate each checkpoint as it is saved
    eval_limit: int = 50                # questions per checkpoint evaluation
    eval_template: str | None = None    # template for those evaluations (default: --template)
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
        def bad(problem, fix, code=None, **params):
            raise UserError(problem, fix, code=code and f"config.{code}", params=params)
        self._check_numbers()
        if self.method not in METHODS:
            bad(f"Unknown method {self.method!r}.", "Use lora, qlora or cpt.",
                "unknown_choice", field="method", value=str(self.method), known=", ".join(METHODS))
        if self.cpt_mode not in ("full", "lora"):
            bad(f"Unknown cpt_mode {self.cpt_mode!r}.", "Use full or lora.",
                "unknown_choice", field="cpt_mode", value=str(self.cpt_mode), known="full, lora")
        if not self.learning_rate > 0:
            bad(f"learning_rate must be positive (got {self.learning_rate}).", "The paper used 5e-5 (LoRA) and 2e-4 (QLoRA).",
                "lr_positive", field="learning_rate", value=self.learning_rate)
        if self.uses_lora and (self.lora_r <= 0 or self.lora_alpha <= 0):
            bad(f"LoRA rank and alpha must be positive (got r={self.lora_r}, alpha={self.lora_alpha}).",
                "Typical values: r 8-64, alpha 16-32.", "lora_positive", r=self.lora_r, alpha=self.lora_alpha)
        if not 0 <= self.lora_dropout < 1:
            bad(f"lora_dropout must be in [0, 1) (got {self.lora_dropout}).", "The paper used 0.05 and 0.1.",
                "dropout", field="lora_dropout", value=self.lora_dropout)
        if self.micro_batch_size < 0:
            bad(f"micro_batch_size cannot be negative (got {self.micro_batch_size}).", "Use 0 for automatic.",
                "micro_negative", field="micro_batch_size", value=self.micro_batch_size)
        for name in ("batch_size", "max_steps", "num_processes", "logging_steps",
                     "max_prompt_length", "max_target_length", "max_seq_length"):
            if getattr(self, name) < 1:
                bad(f"{name} must be at least 1 (got {getattr(self, name)}).", f"Set --{name.replace('_', '-')} to 1 or more.",
                    "at_least_one", field=name, value=getattr(self, name))
        if self.batch_size % (self.micro * self.num_processes):
            bad(f"batch_size {self.batch_size} is not a multiple of micro_batch_size × num_processes "
                f"({self.micro} × {self.num_processes}).",
                "Choose values so that batch_size = micro_batch_size × num_processes × accumulation steps.",
                "batch_multiple", batch=self.batch_size, micro=self.micro, processes=self.num_processes)
        wrong = [s for s in self.save_steps if not 1 <= s <= self.max_steps]
        if wrong:
            bad(f"Save step(s) {wrong} outside 1..max_steps ({self.max_steps}).",
                "Raise --max-steps or drop those save steps.", "save_steps",
                steps=", ".join(map(str, wrong)), max_steps=self.max_steps)
        if not 0 <= self.warmup_steps < self.max_steps:
            bad(f"warmup_steps {self.warmup_steps} must be below max_steps {self.max_steps}.", "Lower --warmup-steps.",
                "warmup", field="warmup_steps", value=self.warmup_steps, max_field="max_steps",
                max_steps=self.max_steps)
        if self.resume_every < 0 or self.weight_decay < 0 or self.max_grad_norm < 0:
            bad("resume_every, weight_decay and max_grad_norm cannot be negative.", "Use 0 to turn them off.", "negative")
        if self.batching not in ("grouped", "flat", "padded"):
            bad(f"Unknown batching {self.batching!r}.", "Use grouped (default), flat or padded.",
                "unknown_choice", field="batching", value=str(self.batching), known="grouped, flat, padded")
        if self.loss_on not in ("response", "all"):
            bad(f"Unknown loss_on {self.loss_on!r}.", "Use response (default) or all.",
                "unknown_choice", field="loss_on", value=str(self.loss_on), known="response, all")
        if self.lr_scheduler not in ("linear", "cosine", "constant", "constant_with_warmup"):
            bad(f"Unknown lr_scheduler {self.lr_scheduler!r}.", "Use linear, cosine, constant or constant_with_warmup.",
                "unknown_choice", field="lr_scheduler", value=str(self.lr_scheduler), known="linear, cosine, constant, constant_with_warmup")
        if self.optimizer not in ("adamw", "paged_adamw_8bit"):
            bad(f"Unknown optimizer {self.optimizer!r}.", "Use adamw or paged_adamw_8bit.",
                "unknown_choice", field="optimizer", value=str(self.optimizer), known="adamw, paged_adamw_8bit")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            bad(f"Unknown precision {self.precision!r}.", "Use auto, bf16, fp16 or fp32.",
                "unknown_choice", field="precision", value=str(self.precision), known="auto, bf16, fp16, fp32")
        if "@" in self.run_name or "/" in self.run_name:
            bad(f"Run name {self.run_name!r} may not contain '@' or '/'.", "Checkpoints are named RUN_NAME@STEP.", "run_name",
                name=self.run_name)
        if self.eval_limit < 1:
            bad("eval_limit must be at least 1.", "Evaluate at least one question per checkpoint.", "at_least_one",
                field="eval_limit", value=self.eval_limit)
        self._check_limits()

    def _check_numbers(self) -> None:
        """Every number finite, of its field's type and within what can train at all: a preset
        file or a typed ``inf``/``nan``/``1e9`` is refused here, not after minutes of loading."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = {"int": int, "float": float}.get(str(f.type))
            if kind is None:
                continue
            if not isinstance(value, bool) and isinstance(value, (int, float)) and not math.isfinite(value):
                raise UserError(f"{f.name} must be a finite number (got {value!r}).",
                                f"Set {f.name} to a real value, e.g. {f.default!r}.", code="config.not_finite",
                                params={"field": f.name, "value": value, "default": f.default})
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    (kind is int and not float(value).is_integer()):
                raise UserError(f"{f.name} must be {'a whole number' if kind is int else 'a number'} "
                                f"(got {value!r}).", f"Set {f.name} to a number, e.g. {f.default!r}.",
                                code="config.not_whole" if kind is int else "config.not_number",
                                params={"field": f.name, "value": value, "default": f.default})

    def _check_limits(self) -> None:
        """The outer bounds, after the finer rules above have said what they know."""
        for name, low, high, hint in _LIMITS:
            value = getattr(self, name)
            if not low <= value <= high:
                raise UserError(f"{name} = {value!r} is outside {low}..{high}: {hint}",
                                f"Set {name} within {low}..{high} (default {getattr(TrainConfig, name, '?')!r}).",
                                code="config.out_of_range", params={"field": name, "value": value, "low": low,
                                                                    "high": high,
                                                                    "default": getattr(TrainConfig, name, "?")})

    @property
    def uses_lora(self) -> bool:
        return self.method in ("lora", "qlora") or self.cpt_mode == "lora"


# (field, lowest, highest, why): beyond these a run cannot learn (lr > 1 diverges at once) or
# asks for more than any machine has; the finer rules are in TrainConfig.validate.
_LIMITS = (
    ("learning_rate", 1e-12, 1.0, "a learning rate above 1 diverges at the first step"),
    ("lora_dropout", 0.0, 0.99, "a dropout of 1 or more drops everything"),
    ("weight_decay", 0.0, 1.0, "a fraction of each weight per step, 0 to turn it off"),
    ("max_grad_norm", 0.0, 1e6, "use 0 to turn clipping off"),
    ("lora_r", 1, 4096, "typical ranks are 8-64"),
    ("lora_alpha", 1e-6, 1e5, "typical values are 16-32"),
    ("batch_size", 1, 65536, "examples per optimizer step"),
    ("micro_batch_size", 0, 65536, "0 means automatic"),
    ("max_steps", 1, 100_000_000, "optimizer steps"),
    ("warmup_steps", 0, 100_000_000, "steps"),
    ("num_processes", 1, 1024, "one process per GPU"),
    ("max_prompt_length", 1, 1_048_576, "tokens"),
    ("max_target_length", 1, 1_048_576, "tokens"),
    ("max_seq_length", 1, 1_048_576, "tokens"),
    ("resume_every", 0, 100_000_000, "steps (0: only at checkpoints)"),
    ("logging_steps", 1, 100_000_000, "steps"),
    ("eval_limit", 1, 1_000_000, "questions per checkpoint"),
)


# -- presets -------------------------------------------------------------------------

def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name: str) -> dict:
    """A preset file: ``{"description": {ja, en}, "command", "config": {field: value}, "notes": {field: {ja, en}}}``."""
    path = Path(name) if name.endswith(".json") else PRESET_DIR / f"{name}.json"
    if not path.exists():
        raise UserError(f"Unknown preset {name!r}.", f"Use one of: {', '.join(available_presets())}.",
                        code="preset.unknown", params={"name": name, "known": ", ".join(available_presets())})
    try:
        preset = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"Preset {path} is not valid JSON: {exc}.", "Fix the file, or copy a shipped preset "
                        "from assets/presets/ and edit it.", code="preset.not_json",
                        params={"path": str(path), "line": getattr(exc, "lineno", None),
                                "column": getattr(exc, "colno", None)}) from None
    if not isinstance(preset, dict) or not isinstance(preset.get("config", {}), dict):
        raise UserError(f"Preset {path} must be an object with a \"config\" object of settings.",
                        "Copy a shipped preset from assets/presets/ and edit it.", code="preset.not_object",
                        params={"path": str(path)})
    # The workbench shows a preset in Japanese or English: a text given per language must have both
    # (a plain string, as in a user's own preset, is shown as it is in either language).
    texts = {"description": preset.get("description"), **{f"notes.{k}": v for k, v in preset.get("notes", {}).items()}}
    one_language = sorted(k for k, v in texts.items()
                          if not (v is None or isinstance(v, str) or (isinstance(v, dict) and v.get("ja") and v.get("en"))))
    if one_language:
        raise UserError(f"Preset {path.name}: {', '.join(one_language)} must give both languages.",
                        'Write each as {"ja": "...", "en": "..."}.',
                        code="preset.one_language", params={"path": path.name, "keys": ", ".join(one_language)})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(preset.get("config", {})) - known
    if unknown:
        raise UserError(f"Preset {path.name} sets unknown field(s) {sorted(unknown)}.", f"Known fields: {sorted(known)}.",
                        code="preset.unknown_fields", params={"path": path.name, "fields": sorted(unknown)})
    return preset


def make_config(preset: str | None = None, **overrides) -> TrainConfig:
    """Defaults ← preset ← overrides (None means 'not given')."""
    values = dict(load_preset(preset)["config"], preset=preset) if preset else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        raise UserError(f"Unknown training setting(s) {sorted(unknown)}.", f"Known: {sorted(known)}.",
                        code="config.unknown_settings", params={"fields": sorted(unknown)})
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


def data_path(spec: str) -> str:
    """Preset data paths are relative to the repository; user paths to the working directory."""
    if spec and not Path(spec).exists() and (REPO / spec).exists():
        return str(REPO / spec)
    return spec


def prepare(config: TrainConfig, ws: Workspace) -> dict:
    """Check hardware, model, tokenizer, template and data (a sample); return what the run will use."""
    config.validate()
    import torch

    from pipelines.models.references import load_tokenizer, resolve_model
    from pipelines.training import data as train_data
    device = "cuda" if torch.cuda.is_available() else "cpu"
    here = config.num_processes                     # processes on this machine (several machines: a share)
    if config.accelerate_config:
        from pipelines.training.distributed import check_run
        here = check_run(config.accelerate_config, num_processes=config.num_processes, method=config.method,
                         device=device).per_machine
    if device == "cuda" and here > torch.cuda.device_count():
        raise UserError(f"{here} processes asked for, {torch.cuda.device_count()} GPU(s) present.",
                        "Lower --num-processes to the number of GPUs.", code="hw.too_many_gpus",
                        params={"n": here, "have": torch.cuda.device_count(), "field": "num_processes"})
    if device == "cpu" and here > (os.cpu_count() or 1):
        raise UserError(f"{here} processes asked for on {os.cpu_count()} CPU cores.",
                        "Use at most one process per core.", code="hw.too_many_cores",
                        params={"n": here, "have": os.cpu_count(), "field": "num_processes"})
    if config.method == "qlora" and (problem := bnb_4bit_problem(device)):
        raise UserError(f"QLoRA needs 4-bit loading, but {problem}.",
                        "pip install 'bitsandbytes>=0.49', or use --method lora.", code="hw.no_4bit",
                        params={"installed": importlib.util.find_spec("bitsandbytes") is not None, "field": "method"})
    if config.optimizer == "paged_adamw_8bit" and device != "cuda":
        raise UserError("paged_adamw_8bit needs a CUDA GPU.", "Use --optimizer adamw on CPU.", code="hw.optimizer_gpu",
                        params={"field": "optimizer"})
    if config.precision in ("bf16", "fp16") and device != "cuda":
        raise UserError(f"precision {config.precision} needs a GPU here.", "Use --precision auto or fp32 on CPU.",
                        code="hw.precision_gpu", params={"field": "precision", "value": config.precision})

    ref = resolve_model(config.model, None, ws)
    if ref.kind != "local" or ref.adapter:
        raise UserError(f"{config.model} is not a base model directory (it is an "
                        f"{'API endpoint' if ref.kind != 'local' else 'adapter'}).",
                        "Train from a base model: default, a registered base/merged model, or a HF model dir.",
                        code="train.not_base", params={"spec": config.model, "field": "model",
                                                       "adapter": ref.kind == "local"})
    tokenizer = load_tokenizer(ref.path, padding_side="right")
    _check_target_modules(config, ref.path)

    source = train_data.resolve_data(data_path(config.data), ws)
    info: dict = {"base_model_path": ref.path, "device": device, "data_path": str(source.path),
                  "data_name": source.name, "data_hash": source.version, **sample_data(config, source, tokenizer)}
    if info["n_examples"] < config.micro * config.num_processes:
        raise UserError(f"Only {info['n_examples']} training examples for {config.num_processes} process(es) "
                        f"× micro-batch {config.micro}.", "Add data or lower --micro-batch-size.",
                        code="train.too_few_examples",
                        params={"n": info["n_examples"], "processes": config.num_processes,
                                                               "micro": config.micro})
    if config.eval_data and not Path(config.eval_data).exists():
        raise UserError(f"Evaluation data {config.eval_data} not found.", "Pass an IgakuQA-format JSONL file to --eval-data.",
                        code="train.eval_data_missing", params={"path": config.eval_data, "field": "eval_data"})
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
                        f"This model's linear layers are {', '.join(linear)}; or use all-linear.",
                        code="train.target_modules", params={"missing": ", ".join(missing), "linear": ", ".join(linear),
                                                             "field": "target_modules"})


def sample_data(config: TrainConfig, source, tokenizer) -> dict:
    """``n_examples`` (exact for SFT, estimated for cpt) and ``avg_tokens`` from a bounded sample:
    every record is read and checked, only a few are tokenized (the worker tokenizes them all)."""
    from pipelines.tasks.prompts import load_template
    from pipelines.training import data as train_data

    if config.method == "cpt":
        texts = train_data.read_texts(source)
        sample, chars = [], 0
        for t in texts:
            if chars >= SAMPLE_CHARS:
                break
            sample.append(t)
            chars += len(t)
        if len(sample) == len(texts):          # all of it: exact (and too little text is caught here)
            n = len(train_data.tokenize_cpt(texts, tokenizer, block_size=config.max_seq_length))
        else:
            tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in sample)
            n = int(tokens * sum(len(t) for t in texts) / max(chars, 1)) // config.max_seq_length
        return {"n_examples": n, "avg_tokens": float(config.max_seq_length), "sampled": len(sample)}
    template = load_template(config.template)
    if template.uses_chat_template and not getattr(tokenizer, "chat_template", None):
        raise UserError("This model's tokenizer has no chat template, so --template chat cannot be used.",
                        "Use --template ja or en (the paper's Alpaca formats).",
                        code="template.no_chat")
    records = train_data.read_sft_records(source)
    examples, _ = train_data.tokenize_sft(records[:SAMPLE_RECORDS], tokenizer, template,
                                          max_prompt_length=config.max_prompt_length,
                                          max_target_length=config.max_target_length, loss_on=config.loss_on)
    return {"n_examples": len(records), "avg_tokens": sum(len(e.input_ids) for e in examples) / len(examples),
            "sampled": len(examples)}
