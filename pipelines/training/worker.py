"""The training recipe: what runs inside the launched process(es). One loop, top to bottom.

    accelerate launch -m pipelines.training.worker RUN_DIR         # started by pipelines.training.launch
    torchrun --standalone --nproc_per_node 2 -m pipelines.training.worker RUN_DIR

Reads ``RUN_DIR/config.json`` (written by ``pipelines.training.launch.launch``) and resumes by itself
from the newest training state in the run directory, if there is one.

Shape (torchtune's): ``setup()`` loads model, data, optimizer (and a resume point),
``train()`` is the loop, ``cleanup()`` publishes the final model. Loss is a token-weighted
sum over the whole optimizer step (all micro-batches on all processes), so accumulation and
process count do not change what a step means. Only positions that carry a target go through
the LM head (``logits_to_keep``), which on a response-only SFT loss skips most of the
vocabulary projection and its memory. Batching (``TrainConfig.batching``) is in train_data.
"""
from __future__ import annotations

import json
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core import audit, cli, jobs
from pipelines.core.errors import UserError, disk_full
from pipelines.core.workspace import Workspace
from pipelines.training import checkpoints as train_checkpoints
from pipelines.training import data as train_data
from pipelines.training import runs as train_runs
from pipelines.training import sharded
from pipelines.training.config import TrainConfig
from pipelines.training.metrics import MetricsWriter, peak_memory_mb

# What a saved checkpoint holds, how it is written and read back, published and evaluated:
# pipelines/training/checkpoints.py. This file is the loop that decides when. What changes when
# the weights are sharded (FSDP, DeepSpeed ZeRO-3): pipelines/training/sharded.py.


class Recipe:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        self.cfg = TrainConfig(**saved["config"])
        self.resolved = saved["resolved"]
        self.ws = Workspace.resolve(self.cfg.workspace)
        self.step, self.cursor, self.elapsed, self.tokens_total = 0, 0, 0.0, 0
        self.evals = train_checkpoints.Evaluations(run_dir, self.ws, self.cfg)
        self.events = jobs.EventWriter(run_dir)      # written by the main process only

    # -- setup ------------------------------------------------------------------------
    def setup(self) -> None:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        cfg = self.cfg
        on_gpu = torch.cuda.is_available()
        precision = cfg.precision if cfg.precision != "auto" else (
            "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "fp32")
        self.acc = Accelerator(cpu=not on_gpu, mixed_precision={"fp32": "no"}.get(precision, precision))
        sharded.expect(self.acc, cfg.accelerate_config)      # FSDP / DeepSpeed really applied, or stop now
        self.main = self.acc.is_main_process
        self.compute_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
        if self.main:
            train_runs.update_status(self.run_dir, status="running", **jobs.say("train.loading", "loading model and data"),
                                     worker_pid=os.getpid())
        set_seed(cfg.seed)
        self.resume_point = train_runs.latest_resume_point(self.run_dir)
        if self.main:
            for name in train_runs.register_pending(self.ws, self.run_dir):
                self.events({"event": "checkpoint", "name": name, "message": f"registered {name}, saved "
                                                                            "before the run was interrupted"})
        self.tokenizer = self._load_tokenizer()
        self.examples = self._load_examples()
        if len(self.examples) < cfg.micro * self.acc.num_processes:
            raise UserError(f"Only {len(self.examples)} training examples for {self.acc.num_processes} process(es) "
                            f"× micro-batch {cfg.micro}.", "Add data or lower --micro-batch-size.",
                            code="train.too_few_examples",
                            params={"n": len(self.examples), "processes": self.acc.num_processes, "micro": cfg.micro})
        self.model = self._load_model()

        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optimizer == "paged_adamw_8bit":
            import bitsandbytes as bnb
            optimizer = bnb.optim.PagedAdamW8bit(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        else:
            optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        from transformers import get_scheduler
        # The scheduler stays outside accelerate.prepare: its wrapper would step it once per process.
        self.scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.warmup_steps,
                                       num_training_steps=cfg.max_steps)
        sharded.before_prepare(self.acc, cfg.micro)
        self.model, self.optimizer = self.acc.prepare(self.model, optimizer)
        # Model weights are saved our way (PEFT adapter or HF model dir), not in accelerate's state.
        self.acc.register_save_state_pre_hook(lambda models, weights, out: weights.clear())
        self.acc.register_load_state_pre_hook(lambda models, inp: models.clear())
        if self.main:
            n4 = sum(type(m).__module__.startswith("bitsandbytes") and type(m).__name__ == "Linear4bit"
                     for m in self.model.modules())
            trainable = sum(p.numel() for p in params)
            total = sum(p.numel() for p in self.model.parameters())
            print(f"model: {self.resolved['base_model_path']} | method: {cfg.method} | 4-bit layers: {n4} | "
                  f"trainable: {trainable:,} of {total:,} | examples: {len(self.examples)} | "
                  f"processes: {self.acc.num_processes} | device: {self.acc.device} | precision: {precision} | "
                  f"accumulation: {cfg.grad_accum}", flush=True)
        if self.resume_point:
            self._load_state(self.resume_point[1])
            if self.main:
                print(f"resumed from {self.resume_point[1]} at step {self.step}", flush=True)
        self.metrics = MetricsWriter(self.run_dir)
        if self.main:
            moved = self.metrics.rewind_to(self.step)
            if self.resume_point:
                card = train_runs.read_json(self.run_dir / "run_card.json")
                card.setdefault("resumes", []).append({"at": time.time(), "from_step": self.step,
                                                       "superseded_records": moved,
                                                       "num_processes": self.acc.num_processes})
                train_runs.write_json(self.run_dir / "run_card.json", card)

    def _load_tokenizer(self):
        from pipelines.models.references import load_tokenizer
        return load_tokenizer(self.resolved["base_model_path"], padding_side="right")

    def _load_examples(self) -> list[train_data.Example]:
        """The whole data set, tokenized once, here (the launcher only sampled it)."""
        cfg = self.cfg
        source = train_data.resolve_data(cfg.data, self.ws)
        truncated = 0
        if cfg.method == "cpt":
            examples = train_data.tokenize_cpt(train_data.read_texts(source), self.tokenizer,
                                               block_size=cfg.max_seq_length)
        else:
            from pipelines.tasks.prompts import load_template
            examples, truncated = train_data.tokenize_sft(
                train_data.read_sft_records(source), self.tokenizer, load_template(cfg.template),
                max_prompt_length=cfg.max_prompt_length, max_target_length=cfg.max_target_length, loss_on=cfg.loss_on)
        if self.main:
            card = train_runs.read_json(self.run_dir / "run_card.json")
            card.setdefault("dataset", {}).update(n_examples=len(examples), n_truncated=truncated,
                                                  tokens=sum(len(e.input_ids) for e in examples))
            train_runs.write_json(self.run_dir / "run_card.json", card)
            self.events({"event": "start", "max_steps": cfg.max_steps,
                         "n_examples": len(examples), "n_truncated": truncated})
        return examples

    def _load_model(self):
        import torch
        from transformers import AutoModelForCausalLM

        cfg = self.cfg
        on_gpu = self.acc.device.type == "cuda"
        base = self.resolved["base_model_path"]
        full_resume = cfg.method == "cpt" and cfg.cpt_mode == "full" and self.resume_point
        source = str(self.resume_point[1]) if full_resume else base
        kwargs: dict = {"dtype": self.compute_dtype if cfg.method != "cpt" or cfg.cpt_mode == "lora" else torch.float32}
        if cfg.method == "qlora":
            from transformers import BitsAndBytesConfig
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=self.compute_dtype)
            kwargs["device_map"] = {"": self.acc.device}
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        model.config.use_cache = False
        if cfg.method == "qlora":
            from peft import prepare_model_for_kbit_training
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing,
                                                    gradient_checkpointing_kwargs={"use_reentrant": False})
        elif cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if cfg.uses_lora:
                model.enable_input_require_grads()
        if cfg.uses_lora:
            from peft import LoraConfig, get_peft_model
            targets = "all-linear" if cfg.target_modules == ["all-linear"] else cfg.target_modules
            model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                     lora_dropout=cfg.lora_dropout, target_modules=targets,
                                                     task_type="CAUSAL_LM"))
            if self.resume_point:
                train_checkpoints.load_adapter(model, self.resume_point[1])
        if not on_gpu:
            model.to(self.acc.device)
        model.train()
        return model

    def _load_state(self, point: Path) -> None:
        state = train_checkpoints.load_state(self.acc, self.scheduler, point)
        self.step, self.cursor = state["step"], state["cursor"]
        self.elapsed, self.tokens_total = state["elapsed_s"], state["tokens_total"]

    # -- the loop -----------------------------------------------------------------------
    def train(self) -> None:
        import torch

        cfg, acc = self.cfg, self.acc
        world, rank = acc.num_processes, acc.process_index
        per_step = cfg.grad_accum * world                    # micro-batches per optimizer step
        lengths = [len(e.input_ids) for e in self.examples] if cfg.batching == "grouped" else None
        stream = train_data.micro_batches(len(self.examples), cfg.micro, cfg.seed, start=self.cursor, lengths=lengths)
        save_at = set(cfg.all_save_steps())
        if self.main:
            said = jobs.say("train.training_from", f"training (from step {self.step})", step=self.step) \
                if self.step else jobs.say("train.training", "training")
            train_runs.update_status(self.run_dir, status="running", step=self.step, **said)
        window: list[float] = []                             # recent step times, for the ETA
        while self.step < cfg.max_steps:
            t0 = time.perf_counter()
            step_batches = [next(stream) for _ in range(per_step)]
            mine = [b for i, b in enumerate(step_batches) if i % world == rank]
            # Every process knows the whole step's batches, so each can weight its loss by the
            # global target count: the sum over processes is then the exact token-mean loss.
            n_targets = sum(train_data.n_targets([self.examples[j] for j in idx]) for _, _, idx in step_batches)
            loss_sum = torch.zeros((), device=acc.device)
            tokens = torch.zeros((), device=acc.device)
            for k, (_, _, idx) in enumerate(mine):
                sync = k == len(mine) - 1
                with sharded.micro_step(acc, self.model, last=sync):
                    batch_loss, n_tok = self._forward([self.examples[j] for j in idx])
                    acc.backward(batch_loss * (world / max(n_targets, 1)))
                loss_sum += batch_loss.detach()
                tokens += n_tok
            grad_norm = acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm) if cfg.max_grad_norm else None
            loss_sum, tokens = acc.reduce(loss_sum, "sum"), acc.reduce(tokens, "sum")
            self._check_finite(float(loss_sum) / max(n_targets, 1), grad_norm)   # before the weights change
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            self.cursor = step_batches[-1][0]
            dt = time.perf_counter() - t0
            self.elapsed += dt
            self.tokens_total += int(tokens)
            window = (window + [dt])[-20:]
            if self.main and (self.step % cfg.logging_steps == 0 or self.step == cfg.max_steps):
                mem, mem_kind = peak_memory_mb()
                gn = float(grad_norm) if grad_norm is not None and math.isfinite(float(grad_norm)) else None
                record = {
                    "step": self.step, "epoch": round(step_batches[-1][1], 4),
                    "loss": float(loss_sum) / max(n_targets, 1), "lr": self.scheduler.get_last_lr()[0],
                    "grad_norm": gn, "tokens": int(tokens), "tokens_total": self.tokens_total,
                    "tokens_per_s": round(int(tokens) / dt, 1), "step_time_s": round(dt, 4),
                    "elapsed_s": round(self.elapsed, 2),
                    "eta_s": round((cfg.max_steps - self.step) * sum(window) / len(window), 1),
                    "peak_mem_mb": round(mem, 1), "mem_kind": mem_kind, "time": time.time()}
                self.metrics.write(record)
                self.events({"event": "progress", "done": self.step, "total": cfg.max_steps, **record})
                train_runs.update_status(self.run_dir, step=self.step)
            if self.step in save_at:
                self.save(checkpoints=True)
            elif cfg.resume_every and self.step % cfg.resume_every == 0:
                self.save(checkpoints=False)
            if self._stop_requested():
                if self.step not in save_at:
                    self.save(checkpoints=False)
                self._wait_for_evals()
                if self.main:
                    said = jobs.say("train.stopped", f"stopped by the user at step {self.step}; resume to continue",
                                    step=self.step)
                    train_runs.update_status(self.run_dir, status="stopped", step=self.step, **said)
                    self.events({"event": "stop", "step": self.step, **said})
                self.stopped = True
                return
        self.stopped = False

    def _check_finite(self, loss: float, grad_norm) -> None:
        """Stop at the first NaN/inf loss or gradient: nothing after it is saved or registered."""
        bad = "loss" if not math.isfinite(loss) else \
            "gradient norm" if grad_norm is not None and not math.isfinite(float(grad_norm)) else None
        if bad:
            value = loss if bad == "loss" else float(grad_norm)
            raise UserError(f"Training diverged: the {bad} became {value} at step {self.step + 1}; the run stopped "
                            f"and nothing from this step was saved (checkpoints before it are intact).",
                            f"Lower --learning-rate (now {self.cfg.learning_rate:g}; try a tenth), keep "
                            "--max-grad-norm at 1.0, use --precision fp32 or bf16 rather than fp16, and check the "
                            "data for empty or garbled records; then start a new run or resume from the last "
                            "checkpoint.",
                            code="train.diverged",
                            params={"what": bad, "value": str(value), "step": self.step + 1,
                                    "lr": f"{self.cfg.learning_rate:g}"})

    def _forward(self, batch: list[train_data.Example]):
        """(sum of token losses, number of input tokens) for one micro-batch."""
        import torch
        import torch.nn.functional as F

        dev = self.acc.device
        mode = "padded" if self.cfg.method == "cpt" else self.cfg.batching   # cpt blocks: no padding anyway
        if mode == "flat":
            b = train_data.collate_flat(batch)
            out = self.model(input_ids=b["input_ids"].to(dev), position_ids=b["position_ids"].to(dev),
                             logits_to_keep=b["keep"].to(dev), use_cache=False)
            logits, targets = out.logits[0], b["targets"].to(dev)          # (K, vocab), (K,)
        elif mode == "grouped":
            b = train_data.collate_grouped(batch, self.tokenizer.pad_token_id)
            out = self.model(input_ids=b["input_ids"].to(dev), attention_mask=b["attention_mask"].to(dev),
                             position_ids=b["position_ids"].to(dev), logits_to_keep=b["keep"], use_cache=False)
            logits, targets = out.logits.flatten(0, 1), b["targets"].to(dev).flatten()   # (B*K, vocab)
        else:
            b = train_data.collate_padded(batch, self.tokenizer.pad_token_id)
            out = self.model(input_ids=b["input_ids"].to(dev), attention_mask=b["attention_mask"].to(dev),
                             use_cache=False)
            logits, targets = out.logits.flatten(0, 1), b["targets"].to(dev).flatten()
        loss = F.cross_entropy(logits.float(), targets, ignore_index=train_data.IGNORE, reduction="sum")
        return loss, torch.tensor(float(b["n_tokens"]), device=dev)

    def _stop_requested(self) -> bool:
        import torch
        flag = torch.tensor(float((self.run_dir / train_runs.STOP_FILE).exists()), device=self.acc.device)
        return bool(self.acc.reduce(flag, "sum") > 0) if self.acc.num_processes > 1 else bool(flag)

    # -- saving (pipelines/training/checkpoints.py) ---------------------------------------
    def save(self, checkpoints: bool) -> None:
        """A checkpoint (published, registered) or the rolling resume point; atomic either way."""
        final = train_runs.checkpoint_dir(self.run_dir, self.step) if checkpoints else self.run_dir / "resume"
        train_checkpoints.save(self.acc, self.model, self.tokenizer, self.scheduler, final, step=self.step,
                               cursor=self.cursor, elapsed=self.elapsed, tokens_total=self.tokens_total,
                               adapter_base=self.resolved["base_model_path"] if self.cfg.uses_lora else None)
        if self.main and checkpoints:
            self._publish(final)
        self.acc.wait_for_everyone()

    def _publish(self, ckpt: Path) -> None:
        name = train_checkpoints.publish(self.ws, self.run_dir, ckpt, self.cfg, self.resolved, step=self.step,
                                         elapsed=self.elapsed)
        self.events({"event": "checkpoint", "name": name, "step": self.step, "path": str(ckpt)})
        if self.cfg.eval_data:
            self.evals.add(self.step, name)

    def _wait_for_evals(self) -> None:
        if self.main:
            self.evals.wait()

    # -- end --------------------------------------------------------------------------------
    def cleanup(self) -> None:
        cfg = self.cfg
        if self.main and cfg.method == "cpt":
            train_checkpoints.publish_new_base(self.ws, self.run_dir, cfg, self.resolved, self.tokenizer,
                                               step=self.step, elapsed=self.elapsed, dtype=self.compute_dtype)
        self._wait_for_evals()
        if self.main:
            took = f"{int(self.elapsed // 3600)}:{time.strftime('%M:%S', time.gmtime(self.elapsed))}"     # h:mm:ss
            said = jobs.say("train.finished", f"finished {self.step} steps in {took}", steps=self.step, took=took)
            train_runs.update_status(self.run_dir, status="finished", step=self.step, **said)
            self.events({"event": "finish", "step": self.step, **said})


@dataclass
class WorkerConfig:
    run_dir: str = field(metadata=cli.meta(cli.required(), cli.positional()))  # a run folder made by pipelines.training.launch


def main(argv: list[str] | None = None) -> None:
    """Started by ``jmedlora train`` (through accelerate or torchrun), one per process."""
    args = cli.config_from_args(WorkerConfig, cli.config_parser("train-worker", WorkerConfig, __doc__).parse_args(argv))
    run_dir = Path(args.run_dir).resolve()
    recipe = Recipe(run_dir)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if main_rank:
        _audit(recipe, "start")
    try:
        recipe.setup()
        recipe.train()
        if not recipe.stopped:
            recipe.cleanup()
        if main_rank:
            _audit(recipe, "stopped" if recipe.stopped else "finish", step=recipe.step)
    except BaseException as exc:
        if main_rank:
            exc = (disk_full(exc) or exc) if isinstance(exc, Exception) else exc
            msg = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            if "out of memory" in str(exc).lower():
                msg += " — lower micro_batch_size, enable gradient_checkpointing, or use qlora"
            train_runs.update_status(run_dir, status="failed", message=msg, error=traceback.format_exc()[-4000:])
            jobs.EventWriter(run_dir)({"event": "error", "message": msg, "problem": getattr(exc, "problem", None),
                                       "fix": getattr(exc, "fix", None)})
            _audit(recipe, "failed", step=recipe.step, message=msg[:500])
        raise exc
    finally:
        if getattr(recipe, "acc", None) is not None:
            recipe.acc.end_training()


def _audit(recipe: Recipe, phase: str, **detail) -> None:
    audit.record(recipe.ws.root, audit.current_user(), "train", f"run:{recipe.cfg.run_name}", phase=phase,
                 run_dir=str(recipe.run_dir), **detail)


if __name__ == "__main__":
    main()
