"""Report merge (JRadiEvo): seconds per candidate for ROUGE-L vs log-likelihood, and how well the cheap one ranks.

    python bench/bench_vlm_merge.py [--candidates 24] [--max-new-tokens N] [--json out.json]
    python bench/bench_vlm_merge.py --shape small                     # the 8b builder at tiny sizes, CPU
    python bench/bench_vlm_merge.py --shape 8b --device cuda --work /big/disk [--link-base]   # a GPU only

``jmedlora merge --task report`` scores each candidate by one of two objectives
(``pipelines/merging/report_data.py``): ``rouge_l``, JRadiEvo's (generate every dev report, ROUGE-L
on MeCab tokens), or ``loglik`` (the mean log-likelihood per token of the reference findings given
the image: one forward pass, no generation). This measures both on the same candidates:

1. A VLM, two text LLMs and their base are built offline (``bench/vlm_merge_models.py``): with
   ``--shape tiny`` the tests' tiny LLaVA with its language tower fitted to the six sample reports
   (``assets/reports/sample_ja.jsonl``), the LLMs carrying part of its update with noise, so that
   mixing coefficients move ROUGE-L from the VLM's reports to noise.
2. ``--candidates`` candidates of the ``jradievo`` space (3 inputs: 10 variables), seeded: the VLM
   alone first, then by turns a ``box`` point (uniform within the search bounds: what a wide
   search's first generations see; most of them write noise) and a ``near`` point (the VLM's point
   plus Gaussian steps of the merge's default ``--sigma`` 0.2, clipped to the bounds: where a search
   that found the VLM good goes on looking). Each is written into the loaded VLM by ``TowerMixer``
   and scored on the six reports by both objectives, as the merge scores them (``score_loglik``,
   ``score_rouge`` with the merge's decoding): seconds for mixing and for each objective,
   separately, after one warm-up of each.
3. Across candidates (all, and each kind of draw with the VLM): Spearman's rank correlation between
   mean ROUGE-L and mean log-likelihood (ties given their mean rank), whether a ROUGE-L-best
   candidate is in log-likelihood's top 3, and the ROUGE-L of log-likelihood's own pick. When it
   ranks well, log-likelihood can be a first stage: ``jmedlora merge --task report --objective loglik
   --rescore-top K`` searches by it, then scores its best few by ROUGE-L.

``--shape small`` and ``8b`` have random weights: their figures are seconds (and, on a GPU, peak
GPU memory), their rankings mean nothing and are not printed. ``8b`` needs about 65 GB of disk
for the four models (``--link-base``: 49 GB) and is refused where it is missing, or without CUDA.
``TowerMixer`` mixes on the VLM's device (on a CPU, one 14336×4096 tensor of three inputs took 15 s
on 2 busy cores, and a candidate has about 126 such; on the GPU it is the device's work); build once
with ``--work``, which keeps the models and reuses them when built the same way.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

SAMPLES = REPO / "assets" / "reports" / "sample_ja.jsonl"
TOP_K = 3
RANKS_WELL = 0.7            # Spearman at or above which log-likelihood is offered as a first stage
MIN_JUDGED = 20             # fewer candidates than this: the ranking figures are printed, not judged
NEAR_SIGMA = 0.2            # jmedlora merge's default --sigma: CMA-ES's first step size, in weight units


def rank(values) -> np.ndarray:
    """1-based ranks, ties given the mean of the ranks they span (as scipy's rankdata 'average')."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, group = np.unique(x, return_inverse=True)
    return (np.bincount(group, weights=ranks) / np.bincount(group))[group]


def spearman(a, b) -> float | None:
    """Spearman's rho: the Pearson correlation of the two rankings; None when either is constant."""
    ra, rb = rank(a), rank(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def agreement(rouge: list[float], loglik: list[float], k: int = TOP_K) -> dict:
    """How log-likelihood ranks the candidates that ROUGE-L judges."""
    rouge_arr, ll = np.asarray(rouge), np.asarray(loglik)
    best = set(np.flatnonzero(rouge_arr == rouge_arr.max()).tolist())
    top = np.argsort(-ll, kind="mergesort")[:k].tolist()
    pick = top[0]
    return {"spearman": spearman(rouge, loglik), "n": len(rouge), "top_k": k, "loglik_top": top,
            "rouge_best": sorted(best), "best_in_top_k": bool(best & set(top)),
            "rouge_of_loglik_pick": float(rouge_arr[pick]), "rouge_best_value": float(rouge_arr.max())}


def draws(space, n: int, seed: int) -> list[tuple[str, dict]]:
    """The VLM alone, then ``n - 1`` points taking turns: ``box``, uniform within the space's bounds
    (what a wide search's first generations see), and ``near``, the VLM's point plus Gaussian steps of
    ``NEAR_SIGMA`` clipped to the bounds (where a search that found the VLM good goes on looking)."""
    rng = np.random.default_rng(seed)
    bounds = space.bounds()
    anchor = space.anchor(0)                        # one layer group: x is its values in this order
    vlm = np.array(anchor["weights"][0] + anchor["densities"][0] + [anchor["drop"], anchor["scale"]])
    out = [("vlm", anchor)]
    for k in range(n - 1):
        if k % 2 == 0:
            x, kind = bounds[:, 0] + (bounds[:, 1] - bounds[:, 0]) * rng.random(space.dim), "box"
        else:
            x, kind = np.clip(vlm + NEAR_SIGMA * rng.standard_normal(space.dim), bounds[:, 0], bounds[:, 1]), "near"
        out.append((kind, space.decode(x)))
    return out


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load_part(image_size: int):
    from pipelines.merging.report_data import ReportPart
    from pipelines.tasks.images import load_image, pixel_hash
    from pipelines.tasks.reports import load_reports

    samples = load_reports(SAMPLES, check_images=False)
    images = [load_image(s.image_path, size=image_size) for s in samples]
    return ReportPart(samples, images, [pixel_hash(im) for im in images])


def build(args, work: Path, part) -> dict:
    import vlm_merge_models

    if args.shape == "tiny":
        return vlm_merge_models.build_fitted(work, part.images, part.references, fit_steps=args.fit_steps,
                                             seed=args.seed)
    return vlm_merge_models.build_random(work, args.shape, args.device, link_base=args.link_base, seed=args.seed)


def measure(args, models: dict, part) -> dict:
    """Every candidate mixed and scored by both objectives; per-candidate seconds and means."""
    import torch

    from pipelines.merging import towers
    from pipelines.merging.report_data import REPORT_PROMPT, report_settings, score_loglik, score_rouge
    from pipelines.merging.search import SearchSpace
    from pipelines.merging.tower_mixer import TowerMixer
    from pipelines.models.generation import GenerationSettings

    cuda = args.device.startswith("cuda")

    def sync() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    plan = towers.check_compatible(models["vlm"], models["lms"], models["base"])
    mixer = TowerMixer(plan, "jradievo", seed=args.seed, device=args.device, batch_size=args.batch_size)
    gen = mixer.generator
    longest = max(len(gen.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in part.references)
    max_new = args.max_new_tokens or longest + 8
    # The merge's decoding: the report evaluation's defaults, this length and seed.
    settings = report_settings(argparse.Namespace(max_new_tokens=max_new, seed=args.seed))
    score_loglik(gen, part)                      # warm-up, not counted
    list(gen.generate_reports(part.images[:1], REPORT_PROMPT, GenerationSettings(max_new_tokens=2)))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    space = SearchSpace(1 + len(plan.lm_dirs), 1, True, scaled=True)
    rows = []
    for i, (kind, params) in enumerate(draws(space, args.candidates, args.seed)):
        t0 = sync()
        mixer.apply(params)
        t1 = sync()
        ll = score_loglik(gen, part)
        t2 = sync()
        rouge = score_rouge(gen, part, settings)
        t3 = sync()
        rows.append({"i": i, "kind": kind, "params": params, "mixing_s": t1 - t0, "loglik_s": t2 - t1,
                     "rouge_s": t3 - t2, "loglik": float(np.mean(list(ll.values()))),
                     "rouge_l": float(np.mean(list(rouge.values())))})
        print(row_line(rows[-1]), flush=True)
    return {"candidates": rows, "max_new_tokens": max_new, "longest_reference_tokens": longest,
            "parameters": sum(p.numel() for p in gen.model.parameters()), "reports": len(part),
            "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None}


HEADER = (f"{'i':>3s} {'kind':6s} {'w vlm/lm1/lm2':>15s} {'trim vlm/lm1/lm2':>17s} {'drop':>5s} {'λ':>5s} "
          f"{'mix s':>6s} {'loglik s':>8s} {'rouge s':>8s} {'loglik':>8s} {'ROUGE-L':>7s}")


def row_line(r: dict) -> str:
    p = r["params"]
    w = "/".join(f"{v:.2f}" for v in p["weights"][0])
    d = "/".join(f"{v:.2f}" for v in p["densities"][0])
    return (f"{r['i']:3d} {r['kind']:6s} {w:>15s} {d:>17s} {p['drop']:5.2f} {p['scale']:5.2f} "
            f"{r['mixing_s']:6.2f} {r['loglik_s']:8.3f} {r['rouge_s']:8.2f} {r['loglik']:8.3f} {r['rouge_l']:7.3f}")


def summarize(result: dict, ranked: bool) -> dict:
    rows = result["candidates"]
    mixed = [r["mixing_s"] for r in rows if r["kind"] != "vlm"] or [0.0]
    s = {"mixing_s": float(np.mean(mixed)), "loglik_s": float(np.mean([r["loglik_s"] for r in rows])),
         "rouge_s": float(np.mean([r["rouge_s"] for r in rows]))}
    s["ratio"] = s["rouge_s"] / s["loglik_s"]
    s["candidate_ratio"] = (s["mixing_s"] + s["rouge_s"]) / (s["mixing_s"] + s["loglik_s"])
    if ranked:
        s["ranking"] = agreement([r["rouge_l"] for r in rows], [r["loglik"] for r in rows])
        for kind in ("box", "near"):        # each kind of draw with the VLM alone
            some = [r for r in rows if r["kind"] in ("vlm", kind)]
            s[f"ranking_{kind}"] = agreement([r["rouge_l"] for r in some], [r["loglik"] for r in some])
    return s


def _rho(ranking: dict) -> str:
    return "—" if ranking["spearman"] is None else f"{ranking['spearman']:.2f}"


def final_line(s: dict, result: dict) -> str:
    n = len(result["candidates"])
    line = (f"seconds/candidate ({n} candidates, {result['reports']} reports): ROUGE-L {s['rouge_s']:.2f} vs "
            f"loglik {s['loglik_s']:.3f} ({s['ratio']:.1f}× cheaper), mixing {s['mixing_s']:.2f} for both "
            f"(with mixing {s['candidate_ratio']:.1f}×)")
    if result.get("gpu_peak_mb") is not None:
        line += f"; GPU peak {result['gpu_peak_mb'] / 1024:.1f} GiB"
    rk = s.get("ranking")
    if rk is None:
        return line + "; random weights: rankings mean nothing"
    rho = _rho(rk)
    per_kind = ", ".join(f"{kind} {_rho(s[f'ranking_{kind}'])} over {s[f'ranking_{kind}']['n']}"
                         for kind in ("box", "near"))
    line += (f"; Spearman {rho} over {rk['n']} ({per_kind}, each with the VLM); "
             f"ROUGE-L best in loglik's top {rk['top_k']}: {'yes' if rk['best_in_top_k'] else 'no'} "
             f"(loglik's pick {rk['rouge_of_loglik_pick']:.3f} vs best {rk['rouge_best_value']:.3f})")
    return line


def verdict(s: dict) -> str | None:
    rk = s.get("ranking")
    if rk is None:
        return None
    if rk["n"] < MIN_JUDGED:
        return f"{rk['n']} candidates are too few to judge the ranking (it takes {MIN_JUDGED} or more)."
    if rk["spearman"] is not None and rk["spearman"] >= RANKS_WELL and rk["best_in_top_k"]:
        return (f"loglik ranks these candidates well (Spearman ≥ {RANKS_WELL}, the best within its top {TOP_K}): "
                f"use it as a first stage: jmedlora merge --task report --objective loglik --rescore-top 3.")
    return (f"loglik does not rank these candidates well enough to filter them (Spearman < {RANKS_WELL} or the "
            f"ROUGE-L best outside its top {TOP_K}): search on ROUGE-L.")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="tiny", choices=["tiny", "small", "8b"],
                    help="tiny: fitted, ranked; small and 8b: random weights, seconds only (see above)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--candidates", type=int, help="candidates scored (default 24 for tiny, 3 for small, 2 for 8b)")
    ap.add_argument("--max-new-tokens", type=int, default=0,
                    help="ROUGE-L's most tokens per report (default: the longest reference's tokens + 8)")
    ap.add_argument("--batch-size", type=int, default=8, help="reports per batch, as jmedlora merge --batch-size")
    ap.add_argument("--fit-steps", type=int, default=300, help="tiny: the most steps fitting the VLM's tower")
    ap.add_argument("--image-size", type=int, default=512, help="images resized to this square, as the merge does")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", help="where the models are built (kept and reused; default: a temporary folder)")
    ap.add_argument("--link-base", action="store_true",
                    help="small/8b: the base's weights are hard links to lm2's (49 instead of 65 GB for 8b)")
    ap.add_argument("--json", help="also write the measured figures to this file")
    args = ap.parse_args()
    args.candidates = args.candidates or {"tiny": 24, "small": 3, "8b": 2}[args.shape]
    return args


def main() -> None:
    args = parse_args()
    cuda = args.device.startswith("cuda")
    if args.shape == "8b" and not cuda:
        raise SystemExit("--shape 8b needs --device cuda (four 16 GB models in bfloat16); on a CPU use --shape small")
    if cuda:
        import torch
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {args.device}: no CUDA device is available here")
    if args.candidates < 2:
        raise SystemExit("--candidates must be at least 2 (the VLM alone and one more)")
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()           # shard writing and loading bars would break the table
    sys.stdout.reconfigure(line_buffering=True)
    load = os.getloadavg()[0]
    print(f"shape={args.shape} device={args.device} candidates={args.candidates} seed={args.seed} "
          f"load average {load:.1f} on {os.cpu_count()} CPUs")
    part = load_part(args.image_size)
    with tempfile.TemporaryDirectory(prefix="bench-vlm-merge-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        t0 = time.perf_counter()
        models = build(args, work, part)
        built = time.perf_counter() - t0
        fit = models.get("fit")
        how = "reused from an earlier build" if models["reused"] else f"built in {built:.1f} s"
        print(f"models {how} in {work}" + (f"; tower fitted: {fit}" if fit else ""))
        print(HEADER)
        result = measure(args, models, part)
    summary = summarize(result, ranked=args.shape == "tiny")
    print(f"{result['parameters'] / 1e6:,.1f} M parameters; ROUGE-L up to {result['max_new_tokens']} new tokens "
          f"(longest reference {result['longest_reference_tokens']}); peak RSS {_rss_mb():.0f} MB; load average "
          f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(final_line(summary, result))
    said = verdict(summary)
    if said:
        print(said)
    if args.json:
        figures = {"shape": args.shape, "device": args.device, "seed": args.seed, "build_s": built,
                   "reused": models["reused"], "fit": fit, "load_average": load, "peak_rss_mb": _rss_mb(),
                   "verdict": said, "summary": summary, **result}
        Path(args.json).write_text(json.dumps(figures, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
