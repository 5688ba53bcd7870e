"""Training engine vs. a plain padded Hugging Face ``Trainer``, side by side in one run.

    python bench/bench_train.py [--model default] [--steps 3] [--batch-size 8]

Both sides fine-tune the same model on the same tokenized examples (bundled Japanese
instruction records, paper's Japanese template, response-only loss, paper's lengths 512/512)
with the same LoRA config (r 8, alpha 32, dropout 0.05, q_proj/v_proj), optimizer settings,
precision and batch size, each in its own process (so peak memory is its own):

  engine    ``pipelines.training.launch`` as users launch it (``--batching grouped`` by default:
            length-grouped, left-padded batches, LM head only on response columns)
  baseline  ``transformers.Trainer`` + ``DataCollatorForSeq2Seq(padding=True)``: shuffled
            batches padded to their longest example, logits for every position

Tokens/s counts real (non-padding) tokens over the timed steps (after one warm-up step).
Peak memory is each process's peak resident set (CUDA max allocated on a GPU).
Target: engine ≥ 1.5× baseline tokens/s.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipelines.training.metrics import peak_memory_mb  # noqa: E402

LORA = dict(lora_r=8, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "v_proj"])


def examples(model_path: str, data: str, prompt_len: int, target_len: int):
    from pipelines.models.references import load_tokenizer
    from pipelines.tasks.prompts import load_template
    from pipelines.training import data as train_data
    tok = load_tokenizer(model_path, padding_side="right")
    src = train_data.DataSource(data, Path(data), Path(data).stem, "")
    ex, _ = train_data.tokenize_sft(train_data.read_sft_records(src), tok, load_template("ja"),
                                    max_prompt_length=prompt_len, max_target_length=target_len)
    return tok, ex


def run_baseline(args) -> dict:
    """A first script's training: HF Trainer, dynamic padding, full logits."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    tok, ex = examples(args.model_path, args.data, args.max_prompt_length, args.max_target_length)
    ds = Dataset.from_list([{"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
                            for e in ex])
    on_gpu = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(args.model_path, dtype=torch.bfloat16 if on_gpu else torch.float32)
    model = get_peft_model(model, LoraConfig(r=LORA["lora_r"], lora_alpha=LORA["lora_alpha"],
                                             lora_dropout=LORA["lora_dropout"], target_modules=LORA["target_modules"],
                                             task_type="CAUSAL_LM"))
    steps: list[dict] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.t0 = time.perf_counter()
            steps.append({"tokens": 0})

        def on_step_end(self, a, state, control, **kw):
            steps[-1]["seconds"] = time.perf_counter() - self.t0

    class Counting(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            steps[-1]["tokens"] += int(inputs["attention_mask"].sum())
            return super().training_step(model, inputs, num_items_in_batch)

    targs = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=args.batch_size,
                              max_steps=args.steps + 1, learning_rate=5e-5, lr_scheduler_type="linear",
                              logging_steps=1, save_strategy="no", report_to=[], seed=42, bf16=on_gpu,
                              use_cpu=not on_gpu, dataloader_num_workers=0, disable_tqdm=True)
    trainer = Counting(model=model, args=targs, train_dataset=ds, callbacks=[Timer()],
                       data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
    trainer.train()
    timed = steps[1:]                                   # the first step warms up
    mem, kind = peak_memory_mb()
    return {"tokens_per_s": sum(s["tokens"] for s in timed) / sum(s["seconds"] for s in timed),
            "peak_mem_mb": mem, "mem_kind": kind, "steps": len(timed)}


def run_engine(args, ws) -> dict:
    from pipelines.training import launch as train
    from pipelines.training import runs as train_runs
    from pipelines.training.metrics import read_metrics
    out = Path(tempfile.mkdtemp()) / f"bench-{args.batching}-{int(time.time())}"
    cfg = train.TrainConfig(model=args.model, data=args.data, out=str(out), method="lora", template="ja",
                            learning_rate=5e-5, batch_size=args.batch_size, max_steps=args.steps + 1,
                            max_prompt_length=args.max_prompt_length, max_target_length=args.max_target_length,
                            batching=args.batching, resume_every=0, workspace=str(ws.root), **LORA)
    launched = train.launch(cfg)
    final = train.follow(launched.run_dir, poll_s=0.5)
    if final["status"] != "finished":
        raise SystemExit(f"engine run {final['status']}: {final.get('message')}\n"
                         + (out / "train.log").read_text()[-3000:])
    timed = read_metrics(launched.run_dir).records[1:]
    for name in train_runs.list_checkpoints(launched.run_dir):      # keep the workspace clean
        ws.query("DELETE FROM models WHERE name = ?", (name["name"],))
    return {"tokens_per_s": sum(r["tokens"] for r in timed) / sum(r["step_time_s"] for r in timed),
            "peak_mem_mb": timed[-1]["peak_mem_mb"], "mem_kind": timed[-1]["mem_kind"], "steps": len(timed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=str(REPO / "assets" / "sample_instructions.jsonl"))
    ap.add_argument("--steps", type=int, default=3, help="timed optimizer steps (after one warm-up step)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-prompt-length", type=int, default=512)
    ap.add_argument("--max-target-length", type=int, default=512)
    ap.add_argument("--batching", default="grouped", choices=["grouped", "flat", "padded"])
    ap.add_argument("--workspace")
    ap.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)   # the child process
    ap.add_argument("--model-path", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.baseline_only:
        print("RESULT " + json.dumps(run_baseline(args)), flush=True)
        return

    from pipelines.core.workspace import Workspace
    from pipelines.models.references import resolve_model
    ws = Workspace.resolve(args.workspace)
    model_path = resolve_model(args.model, None, ws).path
    _, ex = examples(model_path, args.data, args.max_prompt_length, args.max_target_length)
    lengths = [len(e.input_ids) for e in ex]
    print(f"model {args.model} | {len(ex)} examples, {min(lengths)}-{max(lengths)} tokens (mean "
          f"{sum(lengths) / len(lengths):.0f}) | batch {args.batch_size} | LoRA r8 q_proj,v_proj | "
          f"{args.steps} timed steps each", flush=True)

    engine = run_engine(args, ws)
    child = subprocess.run([sys.executable, __file__, "--baseline-only", "--model-path", model_path, "--data", args.data,
                            "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                            "--max-prompt-length", str(args.max_prompt_length),
                            "--max-target-length", str(args.max_target_length)],
                           capture_output=True, text=True, cwd=REPO)
    line = next((ln for ln in child.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit("baseline failed:\n" + child.stderr[-3000:])
    base = json.loads(line[len("RESULT "):])

    print(f"{'':<34}{'tokens/s':>10}{'peak memory':>16}")
    print(f"{'engine (' + args.batching + ')':<34}{engine['tokens_per_s']:>10.1f}{engine['peak_mem_mb']:>13.0f} MB")
    print(f"{'baseline (Trainer, padded)':<34}{base['tokens_per_s']:>10.1f}{base['peak_mem_mb']:>13.0f} MB")
    ratio = engine["tokens_per_s"] / base["tokens_per_s"]
    print(f"speed ratio engine/baseline: {ratio:.2f}x (target >= 1.5x) | "
          f"memory ratio: {engine['peak_mem_mb'] / base['peak_mem_mb']:.2f} ({engine['mem_kind']})")


if __name__ == "__main__":
    main()
