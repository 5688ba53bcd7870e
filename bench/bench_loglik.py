"""Log-likelihood scoring: this project vs lm-evaluation-harness on the same requests, in one run.

    python bench/bench_loglik.py [--model default] [--workspace W] [--limit 60] [--repeat 2] \
        [--long-limit 60] [--peer-python /work/venv-bench/bin/python]

Questions: the multiple-choice questions of assets/questions/sample_ja.jsonl and shots_ja.jsonl
(distinct problem texts, up to --limit), 0-shot with the paper's Japanese template ``ja``.
Both scorers get the same (context, " " + choice) pairs (``loglik.build_requests``): ours
through ``loglik.score_questions``, the harness through ``HFLM.loglikelihood`` (hf backend,
batch 8, float32 on the CPU, as its CLI with ``--batch_size 8``). Each scorer runs in its own
subprocess, back to back, so peak RSS is per scorer (whole process: model weights included).
Accuracy of both is computed here with the project's ``scoring.score_choice_logprobs``.
A last subprocess runs ours on long 1-shot prompts (first --long-limit questions), for peak memory.

lm-eval is a bench-only extra, never a runtime dependency: install it into its own venv,
    python -m venv --system-site-packages /work/venv-bench
    /work/venv-bench/bin/pip install 'lm-eval==0.4.*' --constraint <(pip freeze | grep -E '^(torch|transformers)==')
(0.4.13 was measured; the constraint keeps the shared torch and transformers as they are)
and pass its interpreter as --peer-python; without lm-eval the peer is skipped.
Targets on a 2-core CPU: wall ≥ 3× faster, peak RSS ≤ half, predictions agree on ≥ 95% of
questions; ours < 2 GB peak on 1-shot prompts with the embedded model.

Endpoint mode: the same questions scored in this process and through a server's
``/v1/completions`` (``openai-completions:MODEL@URL``, ``pipelines.models.completions_endpoint``)
with 1, 4 and 8 requests in flight; questions/s of each and the largest per-choice difference:

    python bench/bench_loglik.py --endpoint serve [--model default]     # starts jmedlora serve on the model
    python bench/bench_loglik.py --endpoint http://gpu-node:8000/v1 --endpoint-model NAME   # vLLM, llama.cpp …
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _measure(fn):
    """(result, wall s, CPU s of this process and its threads) of fn()."""
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = fn()
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    return result, wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def _torch_dtype(name: str):
    import torch
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def worker_ours(job: dict) -> dict:
    from pipelines.models import loglik
    from pipelines.models.references import ModelRef, load_model
    from pipelines.tasks.igakuqa import Question

    model, tok = load_model(ModelRef(spec=job["model"], kind="local", path=job["model"]),
                            device=job["device"], dtype=_torch_dtype(job["dtype"]))
    questions = [Question(**q) for q in job["questions"]]
    cfg = loglik.LoglikConfig(**{k: job[k] for k in ("batch_size", "memory_mb") if job.get(k) is not None})
    if job["device"] == "cuda":     # CUDA's lazy start (context, kernels) is not the scorer's time
        loglik.score_questions(model, tok, questions[:2], job["prompts"][:2], config=cfg)
    res, wall, cpu = _measure(lambda: loglik.score_questions(model, tok, questions, job["prompts"], config=cfg))
    flat = [sums[letter] for (sums, _), q in zip(res, questions) for letter in q.letters]
    return {"logprobs": flat, "wall": wall, "cpu": cpu}


def worker_harness(job: dict) -> dict:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=job["model"], backend="causal", batch_size=job["peer_batch"], device=job["device"],
              dtype=job["dtype"])
    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=tuple(r), idx=i)
            for i, r in enumerate(job["requests"])]
    if job["device"] == "cuda":     # as for ours: CUDA's lazy start is not the scorer's time
        lm.loglikelihood(reqs[:10], disable_tqdm=True)
    res, wall, cpu = _measure(lambda: lm.loglikelihood(reqs, disable_tqdm=True))
    return {"logprobs": [float(ll) for ll, _ in res], "wall": wall, "cpu": cpu}


def run_worker(python: str, kind: str, job_file: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    subprocess.run([python, __file__, "--worker", kind, "--job", str(job_file), "--result", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def build_job(args) -> tuple[dict, dict, list]:
    from dataclasses import asdict

    from pipelines.core.repo import ASSETS
    from pipelines.core.workspace import Workspace
    from pipelines.evaluation.prompting import build_prompt, pick_example
    from pipelines.models import loglik
    from pipelines.models.references import pick_device, resolve_model
    from pipelines.tasks.igakuqa import load_questions
    from pipelines.tasks.prompts import load_template

    qdir = ASSETS / "questions"
    pool = load_questions(qdir / "shots_ja.jsonl").questions
    seen, questions = set(), []
    for q in load_questions(qdir / "sample_ja.jsonl").questions + pool:
        if not q.is_numeric and q.problem_text not in seen:
            seen.add(q.problem_text)
            questions.append(q)
    questions = questions[:args.limit]
    template = load_template("ja")
    zero = [build_prompt(q, template, None).text for q in questions]
    one = [build_prompt(q, template, pick_example(q, pool, 0)).text for q in questions[:args.long_limit]]
    model = resolve_model(args.model, None, Workspace.resolve(args.workspace)).path
    fields = [{k: v for k, v in asdict(q).items() if k != "translation"} for q in questions]

    device = args.device or pick_device()
    dtype = args.dtype or ("bfloat16" if device == "cuda" else "float32")
    peer_batch = args.peer_batch if args.peer_batch == "auto" else int(args.peer_batch)

    def job(prompts):
        reqs = [r for qr in loglik.build_requests(questions, prompts) for r in qr]
        return {"model": str(model), "questions": fields[:len(prompts)], "prompts": prompts, "requests": reqs,
                "device": device, "dtype": dtype, "peer_batch": peer_batch,
                "batch_size": args.batch_size, "memory_mb": args.memory_mb}
    return job(zero), job(one), questions


def accuracy(questions, flat: list[float]):
    from pipelines.evaluation.scoring import score_choice_logprobs
    rows, pos = [], 0
    for q in questions:
        lps = flat[pos:pos + len(q.choices)]
        pos += len(q.choices)
        sums = dict(zip(q.letters, lps))
        rows.append(score_choice_logprobs(q, sums, {l: lp / len(t) for l, lp, t in zip(q.letters, lps, q.choices)}))
    n = len(rows)
    return rows, sum(r["ll_accuracy"] for r in rows) / n, sum(r["ll_accuracy_norm"] for r in rows) / n


def _job_file(job: dict) -> Path:
    path = Path(tempfile.mkstemp(suffix=".json")[1])
    path.write_text(json.dumps(job, ensure_ascii=False))
    return path


def _gpu(res: dict) -> str:
    return f"  peak GPU {res['peak_gpu_mb']:7.0f} MB" if "peak_gpu_mb" in res else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--workspace")
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--long-limit", type=int, default=60, help="questions for the 1-shot memory run (0: skip)")
    ap.add_argument("--peer-python", default=sys.executable, help="interpreter with lm-eval installed")
    ap.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when there is one")
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"],
                    help="both scorers (default: bfloat16 on cuda, float32 on cpu)")
    ap.add_argument("--peer-batch", default="8", help="the harness's --batch_size (a number or auto)")
    ap.add_argument("--batch-size", type=int, help="ours: most rows per forward pass (LoglikConfig)")
    ap.add_argument("--memory-mb", type=int, help="ours: activation budget per forward pass (LoglikConfig)")
    ap.add_argument("--endpoint", help="'serve' (start jmedlora serve on --model) or a server's base URL")
    ap.add_argument("--endpoint-model", help="the model name the server answers to (default: its only model)")
    ap.add_argument("--in-flight", default="1,4,8", help="endpoint mode: requests in flight to measure")
    ap.add_argument("--worker", choices=["ours", "harness"], help=argparse.SUPPRESS)
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        job = json.loads(Path(args.job).read_text())
        res = (worker_ours if args.worker == "ours" else worker_harness)(job)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        if job["device"] == "cuda":
            import torch
            res["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        Path(args.result).write_text(json.dumps(res))
        return

    sys.stdout.reconfigure(line_buffering=True)  # each figure shows as soon as it is measured
    zero, one, questions = build_job(args)
    if args.endpoint:
        from loglik_endpoint import endpoint_mode
        return endpoint_mode(args, zero, questions, lambda: run_worker(sys.executable, "ours", _job_file(zero)))
    has_peer = subprocess.run([args.peer_python, "-c", "import lm_eval"], capture_output=True).returncode == 0
    n_choices = sorted({len(q.choices) for q in questions})
    print(f"questions={len(questions)} (choices per question: {n_choices}) requests={len(zero['requests'])} "
          f"model={zero['model']} device={zero['device']} dtype={zero['dtype']} peer batch={zero['peer_batch']}")
    if not has_peer:
        print(f"lm-eval is not importable by {args.peer_python}: peer skipped (see the docstring to install it)")
    files = {}
    for name, job in (("zero", zero), ("one", one)):
        files[name] = Path(tempfile.mkstemp(suffix=".json")[1])
        files[name].write_text(json.dumps(job, ensure_ascii=False))
    for rep in range(1, args.repeat + 1):
        ours = run_worker(sys.executable, "ours", files["zero"])
        peer = run_worker(args.peer_python, "harness", files["zero"]) if has_peer else None
        rows_o, acc_o, norm_o = accuracy(questions, ours["logprobs"])
        print(f"run {rep}, 0-shot:")
        print(f"  ours     wall {ours['wall']:7.2f} s  CPU {ours['cpu']:7.1f} s  peak RSS {ours['peak_rss_mb']:7.0f} MB"
              f"{_gpu(ours)}  acc {acc_o:.3f}  acc_norm {norm_o:.3f}")
        if peer:
            rows_p, acc_p, norm_p = accuracy(questions, peer["logprobs"])
            print(f"  harness  wall {peer['wall']:7.2f} s  CPU {peer['cpu']:7.1f} s  peak RSS {peer['peak_rss_mb']:7.0f} MB"
                  f"{_gpu(peer)}  acc {acc_p:.3f}  acc_norm {norm_p:.3f}")
            differ = sum(a["ll_predicted"] != b["ll_predicted"] for a, b in zip(rows_o, rows_p))
            differ_n = sum(a["ll_predicted_norm"] != b["ll_predicted_norm"] for a, b in zip(rows_o, rows_p))
            gap = max(abs(a - b) for a, b in zip(ours["logprobs"], peer["logprobs"]))
            gpu = (f"  GPU memory ours/harness {ours['peak_gpu_mb'] / peer['peak_gpu_mb']:.2f}"
                   if "peak_gpu_mb" in ours else "")
            print(f"  harness / ours: wall {peer['wall'] / ours['wall']:.2f}x  CPU {peer['cpu'] / ours['cpu']:.2f}x  "
                  f"RSS ours/harness {ours['peak_rss_mb'] / peer['peak_rss_mb']:.2f}{gpu}")
            print(f"  predictions differ on {differ}/{len(questions)} questions (acc_norm: {differ_n}); "
                  f"agreement {1 - differ / len(questions):.1%}; max |Δ log-prob| {gap:.2e}")
    if one["prompts"]:
        long = run_worker(sys.executable, "ours", files["one"])
        print(f"ours, 1-shot prompts ({len(one['prompts'])} questions, up to {max(map(len, one['prompts']))} chars): "
              f"wall {long['wall']:.1f} s  CPU {long['cpu']:.1f} s  peak RSS {long['peak_rss_mb']:.0f} MB{_gpu(long)}")
    for f in files.values():
        f.unlink()


if __name__ == "__main__":
    main()
