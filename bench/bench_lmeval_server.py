"""lm-evaluation-harness as a client of our server vs its own ``hf`` backend: same questions, same accuracy?

    python bench/bench_lmeval_server.py [--model default] [--workspace W] [--limit 0] [--batch-size 1]

The peer check of "scale out through engines people already run": lm-eval's ``local-completions``
model scores multiple-choice answers through ``POST /v1/completions`` (token ids, ``echo``,
``max_tokens`` 1, ``logprobs`` 1, summing ``token_logprobs[ctxlen:-1]``), so a server whose prompt
log-probs or token handling were off would show here as a different accuracy from lm-eval's
in-process ``hf`` backend on the same model.

- lm-eval lives in a throwaway venv, ``.venv-lmeval`` at the checkout root (gitignored; ``bench/lmeval_venv.py``,
  shared with ``bench/bench_eval.py``), created on first use: ``python -m venv`` then ``pip install`` of the pinned versions below (torch's CPU wheel
  and lm-eval come from this machine's wheel folders through pip's own configuration). Nothing is
  installed into the project's venv.
- The task: a custom lm-eval task (YAML + local JSONL, ``output_type: multiple_choice``) written to a
  temporary folder from the repository's sample IgakuQA questions (assets/questions/sample_ja.jsonl and
  shots_ja.jsonl): the questions with one correct choice, prompted 0-shot with the paper's Japanese
  template ``ja`` (as ``bench/bench_loglik.py``), choices after lm-eval's default " " delimiter.
- Ours: ``jmedlora serve`` in this process (``start_server``) on ``--model`` (``default``: the embedded
  model, converted into the workspace on first use), float32 on the CPU; lm-eval runs ``--model
  local-completions`` against it with the model's own tokenizer (``tokenizer_backend=huggingface``),
  ``num_concurrent=1``. Theirs: ``lm_eval --model hf`` on the same model directory, float32 on the CPU.
  Both at ``--batch-size`` (1: lm-eval's default). Seconds are each ``lm_eval`` command's wall time
  (its start-up and the hf backend's model load included; the server loaded its model before).
Printed: acc and acc_norm of both, whether they are equal, the per-choice log-likelihoods' largest
difference (from ``--log_samples``), and the seconds of each.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import lmeval_venv  # noqa: E402  (bench/, this script's folder)

TASK = "igakuqa_sample_mc"


def write_task(folder: Path, limit: int) -> int:
    """The multiple-choice task (YAML + JSONL) in ``folder``; returns the number of questions."""
    from pipelines.core.repo import ASSETS
    from pipelines.evaluation.prompting import build_prompt
    from pipelines.tasks.igakuqa import load_questions
    from pipelines.tasks.prompts import load_template

    template, seen, rows = load_template("ja"), set(), []
    qdir = ASSETS / "questions"
    for q in load_questions(qdir / "sample_ja.jsonl").questions + load_questions(qdir / "shots_ja.jsonl").questions:
        if q.is_numeric or len(q.answer) != 1 or q.problem_text in seen:
            continue
        seen.add(q.problem_text)
        rows.append({"id": q.problem_id, "prompt": build_prompt(q, template, None).text, "choices": q.choices,
                     "gold": q.letters.index(q.answer[0])})
    rows = rows[:limit] if limit else rows
    lmeval_venv.write_task(folder, TASK, rows,
                           "output_type: multiple_choice\n"
                           "doc_to_text: prompt\n"
                           "doc_to_choice: choices\n"
                           "doc_to_target: gold\n"
                           "metric_list:\n"
                           "  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
                           "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n")
    return len(rows)


def run_lm_eval(python: Path, task_dir: Path, out: Path, model: str, model_args: str, batch: int) -> dict:
    """One ``lm_eval`` run: (acc, acc_norm, per-sample log-likelihoods, wall seconds)."""
    _, wall = lmeval_venv.run_lm_eval(python, TASK, task_dir, out, ["--model", model, "--model_args", model_args,
                                                                    "--batch_size", str(batch), "--device", "cpu"])
    results = lmeval_venv.results(out, TASK)
    samples = lmeval_venv.samples(out, TASK)
    lls = {s["doc_id"]: [float(r[0][0]) for r in s["resps"]] for s in samples}
    return {"acc": results["acc,none"], "acc_norm": results["acc_norm,none"], "lls": lls, "wall": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", help="any model reference (default: the embedded model)")
    ap.add_argument("--workspace")
    ap.add_argument("--limit", type=int, default=0, help="questions (0: all with one correct choice)")
    ap.add_argument("--batch-size", type=int, default=1, help="lm-eval's --batch_size for both backends")
    args = ap.parse_args()

    from pipelines.core.workspace import Workspace
    from pipelines.models.references import resolve_model
    from pipelines.models.server import ServeConfig, start_server

    python = lmeval_venv.ensure_venv()
    version = lmeval_venv.lm_eval_version(python)
    ws = Workspace.resolve(args.workspace)
    model_dir = resolve_model(args.model, None, ws).path
    with tempfile.TemporaryDirectory(prefix="bench_lmeval_") as tmp:
        tmp = Path(tmp)
        n = write_task(tmp, args.limit)
        t0 = time.perf_counter()
        handle = start_server(ServeConfig(model=args.model, port=0, device="cpu", batch_size=8,
                                          workspace=str(ws.root)))
        load = time.perf_counter() - t0
        print(f"lm-eval {version}; model {args.model} ({model_dir}); {n} questions, 0-shot, batch {args.batch_size}; "
              f"server up in {load:.1f} s at {handle.base_url}", flush=True)
        try:
            api = run_lm_eval(python, tmp, tmp / "api", "local-completions",
                              f"model={handle.model_id},base_url={handle.base_url}/completions,tokenizer={model_dir},"
                              "tokenizer_backend=huggingface,num_concurrent=1,max_retries=1,timeout=600",
                              args.batch_size)
        finally:
            handle.stop()
        hf = run_lm_eval(python, tmp, tmp / "hf", "hf", f"pretrained={model_dir},dtype=float32",
                         args.batch_size)
    gap = max(abs(a - b) for d in hf["lls"] for a, b in zip(api["lls"][d], hf["lls"][d]))
    same_pick = sum(max(range(len(v)), key=v.__getitem__) == max(range(len(hf["lls"][d])), key=hf["lls"][d].__getitem__)
                    for d, v in api["lls"].items())
    print(f"  local-completions (our server)  acc {api['acc']:.4f}  acc_norm {api['acc_norm']:.4f}  {api['wall']:7.1f} s")
    print(f"  hf (in-process)                 acc {hf['acc']:.4f}  acc_norm {hf['acc_norm']:.4f}  {hf['wall']:7.1f} s")
    print(f"  equal: acc {api['acc'] == hf['acc']}, acc_norm {api['acc_norm'] == hf['acc_norm']}; "
          f"same argmax on {same_pick}/{len(api['lls'])} questions; max |Δ log-likelihood| {gap:.2e}; "
          f"server / hf time {api['wall'] / hf['wall']:.2f}x")


if __name__ == "__main__":
    main()
