"""Model merging: seconds per search candidate, and peak memory of a streamed full-model merge.

    jmedlora models prepare-default --workspace /tmp/merge-ws
    python bench/bench_merge.py --workspace /tmp/merge-ws [--questions 50] [--candidates 3]

1. Seconds per candidate: two LoRA adapters (r 8, q_proj/v_proj, random non-zero weights) on
   the embedded model (~135M parameters), mixed by PEFT ``cat`` into the one loaded model and
   scored by log-likelihood accuracy on ``--questions`` questions (the sample file's 46 text
   questions plus the 1-shot pool's 6), through the same code path as ``pipelines.merging.evolve``.
   The same for two full models (linear, every tensor mixed per candidate).
2. Peak memory: two full embedded-size models (the embedded model and a perturbed copy, fp32
   safetensors) merged by task arithmetic into a new directory, in a fresh process (so the peak
   resident set is its own), against the sum of the two inputs' file sizes and the resident set
   of the same process after only importing torch and transformers.
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


def _rss_mb() -> float:
    """Peak resident set of this process (VmHWM: unlike ru_maxrss, not inherited across fork+exec
    from the parent, which has loaded models by then)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_merge(base: str, a: str, b: str, out: str, shard_mb: int) -> None:
    """Runs in its own process: import, note the resident set, stream the merge, note the peak."""
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from pipelines.merging.methods import SafetensorsModel, merge_tensor, stream_merge
    after_import = _rss_mb()
    srcs = [SafetensorsModel(p) for p in (a, b)]
    t0 = time.perf_counter()
    stream_merge(out, SafetensorsModel(base),
                 lambda name, ref: merge_tensor("task_arithmetic", [s.get(name) for s in srcs], [0.5, 0.5], base=ref),
                 shard_bytes=shard_mb * 2 ** 20)
    print(json.dumps({"after_import_mb": after_import, "peak_mb": _rss_mb(),
                      "seconds": time.perf_counter() - t0}))


def perturbed(src: Path, out: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


def adapter(src: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(src),
                           LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(out)
    return out


def seconds_per_candidate(inputs: list[str], n_questions: int, n_candidates: int, ws) -> dict:
    from pipelines.evaluation.prompting import build_prompt
    from pipelines.merging.data import score_questions_with
    from pipelines.merging.inputs import Mixer, plan_merge
    from pipelines.models.generation import LocalGenerator
    from pipelines.tasks.igakuqa import load_questions
    from pipelines.tasks.prompts import load_template

    assets = REPO / "assets" / "questions"
    qs = [q for f in ("sample_ja.jsonl", "shots_ja.jsonl") for q in load_questions(assets / f).questions
          if not q.is_numeric][:n_questions]
    template = load_template("ja")
    prompts = [build_prompt(q, template, None) for q in qs]
    plan = plan_merge(inputs, None, "linear", workspace=ws)
    mixer = Mixer(plan)
    backend = LocalGenerator(mixer.model, mixer.tokenizer)
    cfg = argparse.Namespace(metric="ll_accuracy")
    times = []
    for k in range(n_candidates):
        w = 0.2 + 0.6 * k / max(1, n_candidates - 1)
        t0 = time.perf_counter()
        mixer.apply({"weights": [[w, 1 - w]], "densities": [[1.0, 1.0]]})
        t_mix = time.perf_counter() - t0
        score_questions_with(backend, qs, prompts, cfg)
        times.append((t_mix, time.perf_counter() - t0))
    return {"mode": plan.mode, "questions": len(qs), "candidates": n_candidates,
            "mixing_s": [round(t[0], 3) for t in times], "candidate_s": [round(t[1], 2) for t in times]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workspace", default="/tmp/merge-ws")
    p.add_argument("--questions", type=int, default=50)
    p.add_argument("--candidates", type=int, default=3)
    p.add_argument("--shard-mb", type=int, default=128)
    p.add_argument("--part", choices=["all", "candidates", "memory"], default="all",
                   help="a busy machine: measure one part at a time")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child_merge(*args.child, shard_mb=args.shard_mb)
        return
    from pipelines.core.workspace import Workspace
    from pipelines.models.references import ensure_default_model
    ws = Workspace.resolve(args.workspace)
    base = ensure_default_model(ws)
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        tmp = Path(tmp)
        ads = [str(adapter(base, tmp / f"a{i}", i)) for i in (1, 2)]
        other = perturbed(base, tmp / "m2")
        pairs = (("adapters (PEFT cat)", ads), ("full models (linear)", [str(base), str(other)]))
        for name, inputs in pairs if args.part != "memory" else ():
            r = seconds_per_candidate(inputs, args.questions, args.candidates, ws)
            print(f"{name}: {r['questions']} questions, seconds per candidate {r['candidate_s']} "
                  f"(of which mixing {r['mixing_s']})", flush=True)
        if args.part == "candidates":
            return
        sizes = [sum(f.stat().st_size for f in Path(d).glob("*.safetensors")) / 2 ** 20 for d in (base, other)]
        res = subprocess.run([sys.executable, __file__, "--shard-mb", str(args.shard_mb), "--child",
                              str(base), str(base), str(other), str(tmp / "out")],
                             capture_output=True, text=True, check=True)
        m = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"full-model merge (task arithmetic, shards of {args.shard_mb} MB): inputs {sizes[0]:.0f} + "
              f"{sizes[1]:.0f} = {sum(sizes):.0f} MB; peak RSS {m['peak_mb']:.0f} MB "
              f"({m['after_import_mb']:.0f} MB after imports alone, so {m['peak_mb'] - m['after_import_mb']:.0f} MB "
              f"for the merge); {m['seconds']:.1f} s")


if __name__ == "__main__":
    main()
