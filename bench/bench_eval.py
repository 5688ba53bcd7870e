"""Evaluation engine vs. plain one-question-at-a-time ``generate`` vs. lm-eval, in one run.

    python bench/bench_eval.py [--model default] [--limit 16] [--batch-size 16] [--max-new-tokens 256]
                               [--peer | --no-peer] [--peer-python PATH]

All sides use the same model, the same 0-shot prompts (paper's Japanese template) and the paper's
decoding settings (temperature 0.1, top_p 0.9, repetition_penalty 1.05, max_new_tokens 256 or
``--max-new-tokens`` for a quick check, same seed). The baseline is what a first script does:
``model.generate`` per question, no stop string, output cut afterwards. A second line isolates
batching: one at a time, but with the engine's stop strings. Target on a 2-core CPU: engine ≥ 4×
baseline.

(c) is what a user would pick instead: lm-evaluation-harness 0.4.13's ``hf`` backend doing
``generate_until`` at ``--batch-size`` on the same prompts, run as ``lm_eval --model hf --model_args
pretrained=<model dir>,dtype=float32 --device cpu`` from the throwaway venv of ``bench/lmeval_venv.py``
(``--peer-python``: an interpreter that has lm-eval already). Its custom task (YAML + JSONL in a
temporary folder) has ``doc_to_text`` giving our prompt text as it is, 0 shots, no description and
empty target/fewshot delimiters; the bench checks in lm-eval's ``--log_samples`` records that the
context it handed to ``generate_until`` is byte-identical to ours, and prints the result. Its
``generation_kwargs``: do_sample true, temperature, top_p, repetition_penalty, max_gen_toks and
until ["###"] as ours, which lm-eval forwards to ``generate`` (max_gen_toks as max_length = padded
prompt + max_gen_toks: every row may write that many tokens). Matched with care or not at all:

- top_k: our engine samples the whole vocabulary unless the model's generation config names a top_k
  (``decoding.sampling_top_k``), where ``generate`` alone would cut to its default 50; the task passes
  that top_k, or 0 (no cut), which lm-eval forwards to ``generate``. (Line (a) keeps generate's 50.)
- seeds: ours seeds each question's generator (seed + index); lm-eval seeds torch once (``--seed``)
  and a batch draws from that one generator, so sampled answers (near-greedy at temperature 0.1) and
  hence their lengths may differ.
- stopping: lm-eval's batch runs until its last row has written "###" (or EOS, which lm-eval adds to
  ``until``) or max_gen_toks; finished rows stay in the batch. That is the peer's design, kept.
- tokens: both tokenize with the tokenizer's default special tokens (lm-eval's ``add_bos_token``
  unset). A prompt longer than the context less max_gen_toks lm-eval would cut from the left where
  ours skips it; the sample questions are far shorter.

Its seconds: the wall time of the ``lm_eval`` command (start-up, task building and its model load
included: that is the (c) line), and below it its ``generate_until`` progress bar's elapsed time
(tqdm, whole seconds: generation alone). Ratios are engine vs each.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmeval_venv  # noqa: E402  (bench/, this script's folder)

from pipelines.core.repo import ASSETS  # noqa: E402
from pipelines.core.workspace import Workspace  # noqa: E402
from pipelines.evaluation.prompting import build_prompt  # noqa: E402
from pipelines.models.decoding import cut_at_stop, sampling_top_k  # noqa: E402
from pipelines.models.generation import GenerationSettings, LocalGenerator  # noqa: E402
from pipelines.models.references import load_model, resolve_model  # noqa: E402
from pipelines.tasks.igakuqa import load_questions  # noqa: E402
from pipelines.tasks.prompts import load_template  # noqa: E402

PEER_TASK = "igakuqa_sample_generate"


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


def peer_generation_kwargs(settings: GenerationSettings, top_k: int) -> dict:
    """The task's ``generation_kwargs``: our settings in lm-eval's names (``top_k`` 0: no cut)."""
    return {"until": list(settings.stop), "do_sample": True, "temperature": settings.temperature,
            "top_p": settings.top_p, "top_k": top_k, "repetition_penalty": settings.repetition_penalty,
            "max_gen_toks": settings.max_new_tokens}


def write_peer_task(folder: Path, questions, prompts, gen_kwargs: dict) -> None:
    """The ``generate_until`` task: each row's ``prompt`` is our prompt text, used as it is."""
    rows = [{"id": q.problem_id, "prompt": p.text, "answer": ",".join(q.answer)} for q, p in zip(questions, prompts)]
    lmeval_venv.write_task(folder, PEER_TASK, rows,
                           "output_type: generate_until\n"
                           "doc_to_text: prompt\n"
                           "doc_to_target: answer\n"
                           "num_fewshot: 0\n"
                           'target_delimiter: ""\n'
                           'fewshot_delimiter: ""\n'
                           f"generation_kwargs: {json.dumps(gen_kwargs)}\n"
                           "metric_list:\n  - metric: bypass\n    aggregation: bypass\n    higher_is_better: true\n")


def progress_seconds(log: str, desc: str) -> int | None:
    """The elapsed time of lm-eval's tqdm bar ``desc`` at 100% (``[MM:SS<`` or ``[H:MM:SS<``), or None."""
    found = re.findall(re.escape(desc) + r": 100%[^\[\r\n]*\[(\d+(?::\d+)+)<", log)
    if not found:
        return None
    seconds = 0
    for part in found[-1].split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


def run_peer(python: Path, model_dir: Path, questions, prompts, settings: GenerationSettings, top_k: int,
             batch: int) -> dict:
    """lm-eval's ``hf`` ``generate_until`` on ``prompts``: wall and generation seconds, and whether the
    contexts and generation kwargs it logged are ours."""
    gen_kwargs = peer_generation_kwargs(settings, top_k)
    with tempfile.TemporaryDirectory(prefix="bench_eval_peer_") as tmp:
        tmp = Path(tmp)
        write_peer_task(tmp, questions, prompts, gen_kwargs)
        log, wall = lmeval_venv.run_lm_eval(
            python, PEER_TASK, tmp, tmp / "out",
            ["--model", "hf", "--model_args", f"pretrained={model_dir},dtype=float32", "--device", "cpu",
             "--batch_size", str(batch), "--seed", str(settings.seed)])
        samples = sorted(lmeval_venv.samples(tmp / "out", PEER_TASK), key=lambda r: r["doc_id"])
    requests = [r["arguments"]["gen_args_0"] for r in samples]      # the (context, kwargs) it was handed
    sent = [a["arg_0"] for a in requests]
    identical = sum(a == p.text for a, p in zip(sent, prompts))     # equal code points: equal UTF-8 bytes
    return {"wall": wall, "generation": progress_seconds(log, "Running generate_until requests"),
            "identical": identical, "kwargs_same": bool(requests) and all(a["arg_1"] == gen_kwargs for a in requests),
            "mismatch": next((first_difference(a, p.text) for a, p in zip(sent, prompts) if a != p.text), None)}


def first_difference(theirs: str, ours: str) -> str:
    """Where two prompts part, for the printout."""
    at = len(os.path.commonprefix([theirs, ours]))
    return f"at character {at}: lm-eval {theirs[at:at + 20]!r}, ours {ours[at:at + 20]!r}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=str(ASSETS / "questions" / "sample_ja.jsonl"))
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16, help="the engine's rows and lm-eval's --batch_size")
    ap.add_argument("--max-new-tokens", type=int, default=256, help="256: the paper's; less for a quick check")
    ap.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                    help="also run (c), lm-eval's hf generate_until (creates .venv-lmeval on first use)")
    ap.add_argument("--peer-python", help="an interpreter with lm-eval installed (default: .venv-lmeval's)")
    ap.add_argument("--workspace")
    args = ap.parse_args()

    import torch
    ws = Workspace.resolve(args.workspace)
    questions = load_questions(args.data, limit=args.limit).questions
    template = load_template("ja")
    prompts = [build_prompt(q, template, None) for q in questions]
    ref = resolve_model(args.model, None, ws)
    model, tokenizer = load_model(ref)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    n = len(prompts)
    print(f"model={args.model} questions={n} threads={torch.get_num_threads()} device={model.device} "
          f"max_new_tokens={settings.max_new_tokens}", flush=True)

    t_plain = plain_generate(model, tokenizer, prompts, settings, use_stop=False)
    print(f"(a) plain generate, one at a time:       {n / t_plain:.3f} q/s  ({t_plain:.1f} s)", flush=True)
    t_stop = plain_generate(model, tokenizer, prompts, settings, use_stop=True)
    print(f"    one at a time + stop strings:        {n / t_stop:.3f} q/s  ({t_stop:.1f} s)", flush=True)
    engine = LocalGenerator(model, tokenizer, batch_size=args.batch_size)
    t0 = time.perf_counter()
    for _ in engine.generate(prompts, settings):
        pass
    t_engine = time.perf_counter() - t0
    print(f"(b) engine (batch {args.batch_size}, sorted, KV cache, stop): {n / t_engine:.3f} q/s  ({t_engine:.1f} s)")
    print(f"speed-up engine / plain: {t_plain / t_engine:.2f}x   "
          f"(batching alone, vs one-at-a-time with stop: {t_stop / t_engine:.2f}x)", flush=True)
    if args.peer:
        print_peer(args, ref.path, questions, prompts, settings, sampling_top_k(model) or 0, t_engine)


def print_peer(args, model_dir: Path, questions, prompts, settings: GenerationSettings, top_k: int,
               t_engine: float) -> None:
    """Line (c): lm-eval's hf generate_until, its prompt check and the engine's speed-up over it."""
    python = Path(args.peer_python) if args.peer_python else lmeval_venv.ensure_venv()
    version = lmeval_venv.lm_eval_version(python)
    peer = run_peer(python, model_dir, questions, prompts, settings, top_k, args.batch_size)
    n, wall, gen = len(prompts), peer["wall"], peer["generation"]
    print(f"(c) lm-eval {version} hf generate_until (batch {args.batch_size}): {n / wall:.3f} q/s  ({wall:.1f} s)"
          "  [wall time of the lm_eval command: start-up and model load included]")
    if gen:
        print(f"    its generate_until requests alone:   {n / gen:.3f} q/s  ({gen} s, progress bar, whole seconds)")
    else:
        print(f"    (no generate_until time: its progress bar said {gen!r} s)")
    print(f"    prompts lm-eval sent (--log_samples): {peer['identical']}/{n} byte-identical to ours"
          + (f" (first differing: {peer['mismatch']})" if peer["mismatch"] else "")
          + f"; generation kwargs as ours (top_k {top_k}): {peer['kwargs_same']}")
    print(f"speed-up engine / lm-eval: {wall / t_engine:.2f}x wall"
          + (f", {gen / t_engine:.2f}x generation alone" if gen else ""))


if __name__ == "__main__":
    main()
