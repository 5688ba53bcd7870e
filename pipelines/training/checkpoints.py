"""Checkpoints as the training worker writes and reads them: a saved folder (atomic, all
processes taking part), a resume point read back, a checkpoint published as a model (and a
cpt run's result as a new base model), and each published checkpoint evaluated beside the
training.

A saved folder, ``checkpoints/step-N/`` or the rolling ``resume/``, holds::

    adapter or model     our way (PEFT adapter or HF model dir), never in accelerate's state
    tokenizer files
    checkpoint.json      a published checkpoint only: its name and what it was trained from
    state/               accelerate's optimizer and RNG state, scheduler.pt and, written last,
                         runs.STATE_MARKER (step, data cursor, time and tokens so far)

Finding the newest resume point, listing checkpoints and registering ones saved before a crash
is ``pipelines/training/runs.py``'s business (no torch there); the loop is ``worker.py``.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

from pipelines.core import jobs, safe_load
from pipelines.core.errors import UserError
from pipelines.training import runs as train_runs
from pipelines.training import sharded
from pipelines.training.config import TrainConfig


def save(acc, model, tokenizer, scheduler, final: Path, *, step: int, cursor: int, elapsed: float,
         tokens_total: int, adapter_base: str | None) -> None:
    """Write ``final`` whole or not at all: built in ``final.tmp``, swapped in by renames. Every
    process calls it (accelerate's state is saved by all); ``adapter_base``: the base model path
    a LoRA adapter's config is to name (None: not an adapter)."""
    import torch

    main = acc.is_main_process
    tmp = final.with_name(final.name + ".tmp")
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    unwrapped = acc.unwrap_model(model)
    gathered = sharded.full_state_dict(acc, model)        # FSDP / ZeRO-3: the whole weights, on the main process
    if sharded.any_process(acc, not _finite(unwrapped, gathered)):
        raise UserError(f"Training diverged: weights hold NaN or inf at step {step}; not saved.",
                        "Lower --learning-rate and keep --max-grad-norm at 1.0, then resume from the last "
                        "checkpoint.",
                        code="train.diverged_weights", params={"step": step})
    if main:
        unwrapped.save_pretrained(tmp, safe_serialization=True, **({} if gathered is None else {"state_dict": gathered}))
        tokenizer.save_pretrained(tmp)
        if adapter_base is not None:          # PeftModel.from_pretrained finds the base by this path
            ac = json.loads((tmp / "adapter_config.json").read_text())
            ac["base_model_name_or_path"] = adapter_base
            (tmp / "adapter_config.json").write_text(json.dumps(ac, indent=2))
    acc.save_state(str(tmp / "state"))
    if main:
        torch.save(scheduler.state_dict(), tmp / "state" / "scheduler.pt")
        # Written last: its presence marks a complete, resumable state.
        train_runs.write_json(tmp / "state" / train_runs.STATE_MARKER, {
            "step": step, "cursor": cursor, "elapsed_s": elapsed,
            "tokens_total": tokens_total, "num_processes": acc.num_processes, "saved_at": time.time()})
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)


def _finite(model, gathered: dict | None) -> bool:
    """The trained weights hold no NaN or inf: this process's own parameters, or (sharded) the gathered ones."""
    import torch
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    values = [p for p in model.parameters() if p.requires_grad] if gathered is None else \
        [t for n, t in gathered.items() if n in trained] or list(gathered.values())
    return all(torch.isfinite(t).all() for t in values)


def load_state(acc, scheduler, point: Path) -> dict:
    """Optimizer, RNG and scheduler state back from a saved folder; returns its progress record
    (step, cursor, elapsed_s, tokens_total)."""
    # Weights-only reads (pipelines/core/safe_load.py): a planted pickle in a run folder is refused, not run.
    safe_load.torch_state_folder(point / "state", lambda: acc.load_state(str(point / "state")))
    scheduler.load_state_dict(safe_load.torch_state(point / "state" / "scheduler.pt"))
    return safe_load.json_file(point / "state" / train_runs.STATE_MARKER, "training state")


def load_adapter(model, point: Path) -> None:
    """A resume point's LoRA weights into a freshly wrapped PEFT model."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    set_peft_model_state_dict(model, load_file(str(point / "adapter_model.safetensors")))


def publish(ws, run_dir: Path, ckpt: Path, cfg: TrainConfig, resolved: dict, *, step: int, elapsed: float) -> str:
    """A saved checkpoint as a model: ``checkpoint.json`` beside it and an entry in the workspace
    registry; returns its name (``RUN@STEP``)."""
    name = f"{cfg.run_name}@{step}"
    full = cfg.method == "cpt" and cfg.cpt_mode == "full"
    info = {"name": name, "step": step, "path": str(ckpt), "kind": "base" if full else "adapter",
            "train_hours": elapsed / 3600, "run_id": resolved["run_id"], "saved_at": time.time(),
            "template": cfg.template}           # serve and evaluate default to the format it learned
    train_runs.write_json(ckpt / "checkpoint.json", info)
    ws.register_model(name, info["kind"], str(ckpt), base_model=cfg.model, step=step,
                      train_hours=info["train_hours"], run_id=resolved["run_id"],
                      meta={"method": cfg.method, "run_dir": str(run_dir), "data_hash": resolved["data_hash"]})
    return name


def publish_new_base(ws, run_dir: Path, cfg: TrainConfig, resolved: dict, tokenizer, *, step: int, elapsed: float,
                     dtype) -> None:
    """cpt: register the result under the run name as a base model that SFT can start from (the
    last checkpoint itself for full training, the adapter merged into ``RUN/model`` for LoRA)."""
    final_ckpt = train_runs.checkpoint_dir(run_dir, step)
    if cfg.cpt_mode == "full":
        path, kind = final_ckpt, "base"
    else:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM
        base = AutoModelForCausalLM.from_pretrained(resolved["base_model_path"], dtype=dtype)
        merged = PeftModel.from_pretrained(base, str(final_ckpt)).merge_and_unload()
        path, kind = run_dir / "model", "merged"
        merged.save_pretrained(path, safe_serialization=True)
        tokenizer.save_pretrained(path)
    ws.register_model(cfg.run_name, kind, str(path), base_model=cfg.model, step=step,
                      train_hours=elapsed / 3600, run_id=resolved["run_id"],
                      meta={"method": "cpt", "cpt_mode": cfg.cpt_mode, "run_dir": str(run_dir)})


class Evaluations:
    """Each published checkpoint evaluated in a child process, one at a time, without holding up
    training (``cfg.eval_data``, into ``RUN/evals/step-N``)."""

    def __init__(self, run_dir: Path, ws, cfg: TrainConfig):
        self.run_dir, self.ws, self.cfg = run_dir, ws, cfg
        self.queue: list[tuple[int, str]] = []
        self.thread: threading.Thread | None = None

    def add(self, step: int, name: str) -> None:
        self.queue.append((step, name))
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._work, daemon=True)
            self.thread.start()

    def _work(self) -> None:
        cfg = self.cfg
        while self.queue:
            step, name = self.queue.pop(0)
            out = self.run_dir / "evals" / f"step-{step}"
            out.mkdir(parents=True, exist_ok=True)
            cmd = jobs.command("evaluate", "--model", name, "--data", cfg.eval_data,
                               "--shots", "0", "--template", cfg.eval_template or cfg.template,
                               "--limit", str(cfg.eval_limit), "--out", str(out), "--workspace", str(self.ws.root))
            # In the run's process group: stopping the run stops its evaluation too.
            jobs.start(out, cmd, kind="evaluate", own_session=False).wait()

    def wait(self) -> None:
        """Until every queued evaluation has finished; at once if none was ever started."""
        if self.thread is not None:
            train_runs.update_status(self.run_dir, **jobs.say("train.waiting_evals", "waiting for checkpoint evaluations"))
            self.thread.join()
