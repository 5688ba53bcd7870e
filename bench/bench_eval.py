"""Evaluation engine vs. plain one-question-at-a-time ``generate``, in one run.

    python bench/bench_eval.py [--model default] [--limit 16] [--batch-size 16]

Both sides load the same model once, build the same 0-shot prompts (paper's Japanese
template) and decode with the paper's settings (temperature 0.1, top_p 0.9,
repetition_penalty 1.05, max_new_tokens 256, same seed). The baseline is what a first
script does: ``model.generate`` per question, no stop string, output cut afterwards.
A third line isolates batching: one at a time, but with the engine's stop strings.
Prints questions/s of each and the ratios. Target on a 2-core CPU: engine ≥ 3× baseline.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.core.repo import ASSETS  # noqa: E402
from pipelines.core.workspace import Workspace  # noqa: E402
from pipelines.evaluation.prompting import build_prompt  # noqa: E402
from pipelines.models.decoding import cut_at_stop  # noqa: E402
from pipelines.models.generation import GenerationSettings, LocalGenerator  # noqa: E402
from pipelines.models.references import load_model, resolve_model  # noqa: E402
from pipelines.tasks.igakuqa import load_questions  # noqa: E402
from pipelines.tasks.prompts import load_template  # noqa: E402


def plain_generate(model, tokenizer, prompts, settings: GenerationSettings, use_stop: bool) -> float:
    import torch

    t0 = time.perf_counter()
    for i, p in enumerate(prompts):
        enc = tokenizer(p.text, return_tensors="pt")
        torch.manual_seed(settings.seed + i)
        kwargs = dict(max_new_tokens=settings.max_new_tokens, do_sample=True, temperature=settings.temperature,
                      top_p=settings.top_p, repetition_penalty=settings.repetition_penalty,
                      pad_token_id=tokenizer.pad_token_id)
        if use_stop:
            kwargs.update(stop_strings=list(settings.stop), tokenizer=tokenizer)
        with torch.inference_mode():
            out = model.generate(**enc, **kwargs)
        cut_at_stop(tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True), settings.stop)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=str(ASSETS / "questions" / "sample_ja.jsonl"))
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workspace")
    args = ap.parse_args()

    import torch
    ws = Workspace.resolve(args.workspace)
    questions = load_questions(args.data, limit=args.limit).questions
    template = load_template("ja")
    prompts = [build_prompt(q, template, None) for q in questions]
    model, tokenizer = load_model(resolve_model(args.model, None, ws))
    settings = GenerationSettings()
    n = len(prompts)
    print(f"model={args.model} questions={n} threads={torch.get_num_threads()} device={model.device}")

    t_plain = plain_generate(model, tokenizer, prompts, settings, use_stop=False)
    print(f"(a) plain generate, one at a time:       {n / t_plain:.3f} q/s  ({t_plain:.1f} s)")
    t_stop = plain_generate(model, tokenizer, prompts, settings, use_stop=True)
    print(f"    one at a time + stop strings:        {n / t_stop:.3f} q/s  ({t_stop:.1f} s)")
    engine = LocalGenerator(model, tokenizer, batch_size=args.batch_size)
    t0 = time.perf_counter()
    for _ in engine.generate(prompts, settings):
        pass
    t_engine = time.perf_counter() - t0
    print(f"(b) engine (batch {args.batch_size}, sorted, KV cache, stop): {n / t_engine:.3f} q/s  ({t_engine:.1f} s)")
    print(f"speed-up engine / plain: {t_plain / t_engine:.2f}x   "
          f"(batching alone, vs one-at-a-time with stop: {t_stop / t_engine:.2f}x)")


if __name__ == "__main__":
    main()
