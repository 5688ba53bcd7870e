"""Will it fit, and how long will it take? A memory and time estimate before launching.

    jmedlora estimate --preset llama2-70b-qlora --gpu H100-80GB
    jmedlora estimate --preset opencalm-7b-lora --gpu A100-80GB --num-gpus 4
    jmedlora train --preset cpu-tiny-lora --estimate          # this machine

The model's shape comes from its config.json (built on the meta device: no weights are
read, so 70B costs nothing) or, for the paper's hub models, from their known configs.
Memory per device = base weights (bf16, fp32 on CPU, or 4-bit NF4 with double quantisation)
+ trainable weights with gradients and AdamW states + activations (fewer with gradient
checkpointing) + logits + runtime overhead. Time assumes a sustained share of the device's
peak (about 30-40% on GPUs, measured matmul speed × 0.3 on CPU): expect ±50%, and far more
if a model is split across GPUs layer by layer instead of trained data-parallel.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core import cli
from pipelines.core.errors import UserError, cli_guard
from pipelines.core.workspace import Workspace

GB = 1024**3
# name: (memory GB, dense bf16 TFLOPS)
GPUS = {"A100-80GB": (80, 312), "A100-40GB": (40, 312), "H100-80GB": (80, 989), "H200": (141, 989),
        "L40S": (48, 362), "A6000": (48, 155), "RTX4090": (24, 165), "RTX3090": (24, 71), "V100-32GB": (32, 125),
        "T4": (16, 65)}
# The paper's models, so presets can be estimated before anything is downloaded.
KNOWN_CONFIGS = {
    "cyberagent/open-calm-7b": {"model_type": "gpt_neox", "hidden_size": 4096, "num_hidden_layers": 32,
                                "num_attention_heads": 32, "intermediate_size": 16384, "vocab_size": 52224},
    "meta-llama/Llama-2-70b-chat-hf": {"model_type": "llama", "hidden_size": 8192, "num_hidden_layers": 80,
                                       "num_attention_heads": 64, "num_key_value_heads": 8,
                                       "intermediate_size": 28672, "vocab_size": 32000},
}


@dataclass
class Hardware:
    kind: str              # gpu | cpu
    name: str
    memory_gb: float       # per device
    count: int
    tflops: float          # per device, what one can hope to sustain at 100% (bf16 GPU, fp32 CPU measured)


@dataclass
class ModelShape:
    name: str
    params: int
    layers: int
    hidden: int
    vocab: int
    linear: dict[str, list[tuple[int, int]]]     # module short name -> [(in, out), ...] in decoder layers


@dataclass
class Estimate:
    model: ModelShape
    hardware: Hardware
    method: str
    memory_gb: dict[str, float]
    trainable: int
    step_s: float
    total_h: float
    max_steps: int
    checkpointing: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def total_gb(self) -> float:
        return sum(self.memory_gb.values())

    @property
    def fits(self) -> bool:
        return self.total_gb <= self.hardware.memory_gb

    def summary(self) -> str:
        hw = self.hardware
        where = f"{hw.count} × {hw.name} ({hw.memory_gb:.0f} GB each)" if hw.kind == "gpu" else \
            f"CPU {hw.name} ({hw.memory_gb:.0f} GB RAM)"
        tips = [t for t, show in (("qlora", self.method != "qlora"), ("gradient checkpointing", not self.checkpointing),
                                  ("a smaller micro_batch_size", True), ("shorter sequences", True),
                                  ("a GPU with more memory", True)) if show]
        verdict = (f"fits ({hw.memory_gb - self.total_gb:.1f} GB to spare)" if self.fits else
                   f"does NOT fit ({self.total_gb - hw.memory_gb:.1f} GB short): try {', '.join(tips)}")
        lines = [f"{self.model.name}: {self.model.params / 1e9:.2f} B parameters, {self.method}, "
                 f"{self.trainable / 1e6:.1f} M trainable",
                 f"Memory per device on {where}: about {self.total_gb:.1f} GB — {verdict}."]
        lines += [f"  {k:<32}{v:7.1f} GB" for k, v in self.memory_gb.items()]
        lines.append(f"Time: about {self.step_s:.1f} s per step, {self.total_h:.1f} h for {self.max_steps} steps.")
        return "\n".join(lines + [f"Note: {n}" for n in self.notes])


def detect_hardware() -> Hardware:
    import torch
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        mem = torch.cuda.get_device_properties(0).total_memory / GB
        tflops = next((t for key, (_, t) in GPUS.items() if key.split("-")[0].lower() in name.lower()), 100.0)
        return Hardware("gpu", name, mem, torch.cuda.device_count(), tflops)
    a = torch.randn(1024, 1024)
    a @ a
    t0 = time.perf_counter()
    for _ in range(10):
        a @ a
    gflops = 10 * 2 * 1024**3 / (time.perf_counter() - t0) / 1e9
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    return Hardware("cpu", f"{os.cpu_count()} cores", mem, 1, gflops / 1000)


def named_gpu(name: str, count: int) -> Hardware:
    if name not in GPUS:
        raise UserError(f"Unknown GPU {name!r}.", f"Use one of {', '.join(GPUS)}.",
                        code="estimate.unknown_gpu", params={"name": str(name), "known": ", ".join(GPUS)})
    mem, tflops = GPUS[name]
    return Hardware("gpu", name, mem, count, tflops)


def known_shape(model: str) -> str | None:
    """The KNOWN_CONFIGS entry for a hub name or a folder named like one (``/models/open-calm-7b``)."""
    if model in KNOWN_CONFIGS:
        return model
    tail = Path(model.rstrip("/")).name.lower()
    return next((k for k in KNOWN_CONFIGS if k.split("/")[-1].lower() == tail), None)


def shape_config(model: str, ws: Workspace | None = None):
    """The architecture config alone: from a config.json (a file, or a folder holding one: no weights or
    tokenizer needed), a model reference, or a known shape when the folder is not on this machine."""
    from transformers import AutoConfig

    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".json":
        return AutoConfig.from_pretrained(str(path))
    if (path / "config.json").is_file():
        return AutoConfig.from_pretrained(str(path))
    if not path.exists() and (name := known_shape(model)):
        known = dict(KNOWN_CONFIGS[name])
        return AutoConfig.for_model(known.pop("model_type"), **known)
    from pipelines.models.references import resolve_model
    try:
        ref = resolve_model(model, None, ws or Workspace.resolve(), prepare=False)
    except UserError as exc:
        raise UserError(f"{exc.problem} The estimate needs only the model's shape.",
                        f"Pass a config.json (or a folder holding one), or a known shape: "
                        f"{', '.join(KNOWN_CONFIGS)}.",
                        code="estimate.model_unresolved",
                        params={"inner": {"problem": exc.problem, "code": exc.code, "params": exc.params},
                                "known": ", ".join(KNOWN_CONFIGS)}) from None
    ref_path = Path(ref.path or "")
    if not (ref_path / "config.json").exists():
        raise UserError(f"No config.json for {model} at {ref_path}.",
                        f"Prepare the model first, pass a config.json, or a known shape: {', '.join(KNOWN_CONFIGS)}.",
                        code="estimate.no_config",
                        params={"model": str(model), "path": str(ref_path), "known": ", ".join(KNOWN_CONFIGS)})
    return AutoConfig.from_pretrained(ref_path)


def model_shape(model: str, ws: Workspace | None = None) -> ModelShape:
    """Parameter counts from the architecture alone (meta device: nothing is allocated)."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    config = shape_config(model, ws)
    with init_empty_weights():
        skeleton = AutoModelForCausalLM.from_config(config)
    linear: dict[str, list[tuple[int, int]]] = {}
    for name, mod in skeleton.named_modules():
        if type(mod).__name__ == "Linear" and name != "lm_head" and not name.endswith(".lm_head"):
            linear.setdefault(name.rsplit(".", 1)[-1], []).append((mod.in_features, mod.out_features))
    tied = getattr(config, "tie_word_embeddings", False)     # tied input/output embeddings count once
    params = sum(p.numel() for n, p in skeleton.named_parameters() if not (tied and n.endswith("lm_head.weight")))
    return ModelShape(model, params, config.num_hidden_layers,
                      config.hidden_size, config.vocab_size, linear)


def estimate(shape: ModelShape, cfg, hw: Hardware, avg_tokens: float | None = None) -> Estimate:
    """``cfg`` is a TrainConfig; ``avg_tokens`` per example when the data is known."""
    gpu = hw.kind == "gpu"
    w = 2 if gpu else 4                                  # bytes per weight / activation value
    lin_params = sum(i * o for mods in shape.linear.values() for i, o in mods)
    other = shape.params - lin_params
    mem: dict[str, float] = {}
    notes: list[str] = []
    if cfg.uses_lora:
        targets = shape.linear if cfg.target_modules == ["all-linear"] else \
            {k: v for k, v in shape.linear.items() if k in cfg.target_modules}
        trainable = sum(cfg.lora_r * (i + o) for mods in targets.values() for i, o in mods)
    else:
        trainable = shape.params
    opt_bytes = 2 if cfg.optimizer == "paged_adamw_8bit" else 8
    if cfg.method == "qlora":
        # NF4 = 4 bits + double-quantised block scales (~0.127 bits); the rest is upcast to fp32 for stability.
        mem["base weights (4-bit NF4)"] = lin_params * 4.127 / 8 / GB
        mem["embeddings, norms (fp32)"] = other * 4 / GB
    elif cfg.uses_lora:
        mem[f"base weights ({'bf16' if gpu else 'fp32'})"] = shape.params * w / GB
    else:
        mem["weights (fp32 master)"] = shape.params * 4 / GB
    mem["trainable: weights+grads+AdamW"] = trainable * (4 + 4 + opt_bytes) / GB
    seq = cfg.max_seq_length if cfg.method == "cpt" else cfg.max_prompt_length + cfg.max_target_length
    tokens_micro = cfg.micro * seq
    per_token_layer = 17 * shape.hidden * w              # Korthikanti et al.: 34·h bytes at 16 bit
    if cfg.gradient_checkpointing:
        act = tokens_micro * shape.layers * shape.hidden * w + tokens_micro * per_token_layer
    else:
        act = tokens_micro * shape.layers * per_token_layer
    mem["activations"] = act / GB
    logit_tokens = cfg.micro * (cfg.max_target_length if cfg.method != "cpt" and cfg.batching != "padded" and cfg.loss_on == "response"
                                else seq)
    mem["logits + their gradient"] = logit_tokens * shape.vocab * 4 * 2 / GB
    mem["runtime overhead"] = 1.5 if gpu else 0.5
    if gpu and cfg.num_processes > 1 and hw.count < cfg.num_processes:
        notes.append(f"{cfg.num_processes} processes asked for but {hw.count} GPU(s) given.")

    # FLOPs per token: forward 2N, activation gradients 2N, weight gradients 2N (full only), recompute 2N.
    n = shape.params
    fpt = 4 * n + (2 * n if not cfg.uses_lora else 0) + (2 * n if cfg.gradient_checkpointing else 0)
    per_example = avg_tokens or 0.6 * seq
    if avg_tokens is None:
        notes.append("time assumes examples fill 60% of the maximum length; pass the data for a closer figure.")
    tokens_step = cfg.batch_size * (seq if cfg.method == "cpt" else per_example)
    efficiency = (0.3 if cfg.method == "qlora" else 0.4) if gpu else 0.3
    devices = min(hw.count, cfg.num_processes) if gpu else 1
    step_s = tokens_step * fpt / (hw.tflops * 1e12 * efficiency * devices)
    return Estimate(shape, hw, cfg.method, {k: round(v, 2) for k, v in mem.items()}, trainable, step_s,
                    step_s * cfg.max_steps / 3600, cfg.max_steps, cfg.gradient_checkpointing, notes)


def estimate_config(config, *, gpu: str | None = None, num_gpus: int = 1, ws: Workspace | None = None,
                    avg_tokens: float | None = None) -> Estimate:
    hw = named_gpu(gpu, num_gpus) if gpu else detect_hardware()
    return estimate(model_shape(config.model, ws or Workspace.resolve(config.workspace)), config, hw, avg_tokens)


@dataclass
class EstimateOptions:
    gpu: str | None = field(default=None, metadata=cli.choices(*GPUS))  # estimate for this GPU (default: this machine)
    num_gpus: int = 1                   # with --gpu: how many of them
    json: bool = False


def print_estimate(config, options: EstimateOptions, ws: Workspace | None = None) -> None:
    """The estimate for a TrainConfig; the data's real example lengths are used when they can be read."""
    from pipelines.training.config import prepare
    ws = ws or Workspace.resolve(config.workspace)
    avg = None
    if config.data:
        try:
            avg = prepare(config, ws)["avg_tokens"]
        except UserError as exc:
            print(f"(not using the data for the estimate: {exc.problem})", file=sys.stderr)
    est = estimate_config(config, gpu=options.gpu, num_gpus=options.num_gpus, ws=ws, avg_tokens=avg)
    if options.json:
        print(json.dumps({"memory_gb": est.memory_gb, "total_gb": round(est.total_gb, 2), "fits": est.fits,
                          "step_s": est.step_s, "total_h": est.total_h, "trainable": est.trainable,
                          "params": est.model.params, "notes": est.notes}, indent=2))
    else:
        print(est.summary())


def train_parser(name: str, doc: str | None, options: type):
    """``options`` first, then every TrainConfig field: pipelines.training.launch and this module share the flags."""
    from pipelines.training.config import TrainConfig, available_presets
    parser = cli.new_parser(name, doc, epilog="presets: " + ", ".join(available_presets()))
    cli.add_config_arguments(parser, options)
    cli.add_config_arguments(parser, TrainConfig, group_title="training settings (pipelines/training/config.py)")
    return parser


def config_from(args):
    """The TrainConfig the flags describe: defaults ← preset ← flags."""
    from pipelines.training.config import TrainConfig, make_config
    given = cli.given(TrainConfig, args)
    return make_config(given.pop("preset", None), **given)


@cli_guard
def main(argv: list[str] | None = None) -> None:
    args = train_parser("estimate", __doc__, EstimateOptions).parse_args(argv)
    config = config_from(args)
    config.validate()            # field checks before any estimate: a text max_steps, a NaN learning rate
    print_estimate(config, cli.config_from_args(EstimateOptions, args))


if __name__ == "__main__":
    main()
