"""Evolutionary model merging on a small dev set (the JRadiEvo technique), then an honest test.

    jmedlora merge --inputs run-1@1000 run-1@3000 --method linear \\
        --dev dev.jsonl --test-fraction 0.3 --budget 24 --out workspace/merges/m1
    jmedlora merge --inputs /models/ja /models/med --base /models/base --method ties \\
        --dev dev.jsonl --test test.jsonl --out workspace/merges/m2
    jmedlora merge --resume workspace/merges/m1          # after a kill or a stop
    jmedlora merge --task report --inputs VLM LLM1 LLM2 --base BASE --method jradievo \
        --dev cxr/dev.jsonl --test cxr/test.jsonl --out workspace/merges/cxr   # JRadiEvo: merging/report_merge.py

Inputs are LoRA checkpoints/adapters of one base, or full models of one architecture (see
``pipelines/merging/inputs.py`` for which merges are exact). A seeded CMA-ES proposes weights
(and densities for TIES/DARE); each candidate is mixed into one preloaded model and scored on
the dev set (log-likelihood accuracy by default). The best candidate on the dev set is saved as
a model or adapter directory with ``merge_card.json`` and registered as ``merge-N``; then the
base, each input and the merge are scored on the test set, which the search never saw.

Writes ``OUT/config.json``, ``OUT/candidates.jsonl`` (one line per scored candidate),
``OUT/model/`` (the result, with its card) and ``OUT/report.json``. Touch ``OUT/STOP`` to stop
after the current candidate.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from pipelines.core import audit, cli, jobs, run_lock
from pipelines.core.errors import UserError, cli_guard, disk_full
from pipelines.core.workspace import Workspace
from pipelines.evaluation import metrics
from pipelines.merging import report_merge
from pipelines.merging.data import MergeData, load_merge_data, score_questions_with
from pipelines.merging.inputs import Mixer, plan_merge
from pipelines.merging.methods import METHODS, SCALED_METHODS, SPARSE_METHODS
from pipelines.merging.report import test_report, write_card
from pipelines.merging.search import SearchSpace, best_candidate, read_candidates, search
from pipelines.models.backends import BackendSettings
from pipelines.models.generation import GenerationSettings, LocalGenerator

# Searchable: the registry's per-question metrics where higher is better (loglik ones are fastest).
METRICS = tuple(sorted((m.key for m in metrics.mean_metrics() if m.higher_is_better),
                       key=lambda k: metrics.get(k).method != "loglik"))
# Fields that a resumed run may change without making its candidates.jsonl mean something else.
_MAY_CHANGE = ("budget", "resume", "estimate", "workspace", "name")


@dataclass
class MergeConfig:
    inputs: tuple[str, ...] = ()        # two or more model references: adapters of one base, or full models
    base: str | None = None             # the model the inputs derive from (task vectors are relative to it)
    method: Literal["linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "jradievo"] = "linear"  # merging/methods.py
    task: Literal["exam", "report"] = "exam"  # exam questions | image → report (a VLM's tower: report_merge.py)
    dev: str = ""                       # IgakuQA-format JSONL the search scores candidates on (report: report JSONL)
    test: str | None = None             # held-out questions for the final comparison
    test_fraction: float = 0.3          # without --test: this share of --dev is held out (seeded split)
    metric: str = field(default="ll_accuracy", metadata=cli.choices(*METRICS))  # dev-set score (pipelines.evaluation.metrics)
    objective: Literal["rouge_l", "loglik"] = "rouge_l"  # report: dev-set score (ROUGE-L of generated findings | reference log-likelihood)
    rescore_top: int = 0                # report, --objective loglik: the K best re-scored by ROUGE-L, chosen among
    image_size: int = 512               # report: images resized to this square, as JRadiEvo did
    budget: int = 24                    # search candidates scored (besides one per input)
    out: str = ""                       # output directory
    resume: str | None = field(default=None, metadata=cli.metavar("DIR"))  # go on with the search in DIR
    layer_groups: int = 1               # separate weights for this many contiguous layer groups
    population: int | None = None       # CMA-ES population (default: 4 + 3·ln(dimensions))
    sigma: float = 0.2                  # CMA-ES initial step size, in weight units
    seed: int = 0
    template: str = "ja"                # prompt template (pipelines.tasks.prompts)
    scoring: str = "paper"              # generation metrics only: paper | harness
    max_new_tokens: int = GenerationSettings.max_new_tokens
    batch_size: int = BackendSettings.batch_size  # questions per forward pass when scoring a candidate
    shard_mb: int = 1024                # output shard size: the most merged weights held in memory at once
    name: str | None = None             # registry name (default: the next merge-N)
    estimate: bool = False              # print the time and memory estimate and stop
    device: str | None = None           # cpu | cuda …; None = a GPU if there is one
    workspace: str | None = None

    def validate(self) -> None:
        if not self.out:
            raise UserError("No output directory given.", "Pass --out DIR (or --resume DIR).",
                            code="out.missing", params={"field": "out"})
        if not self.dev:
            raise UserError("No dev set given.", "Pass --dev FILE.jsonl (IgakuQA format; 50 questions are enough).",
                            code="merge.no_dev", params={"field": "dev"})
        if self.method not in METHODS:
            raise UserError(f"Unknown merge method {self.method!r}.", f"Use one of {', '.join(METHODS)}.",
                            code="merge.method", params={"value": str(self.method), "known": ", ".join(METHODS)})
        if self.task == "report" and self.method != "linear" and not self.base:
            raise UserError(f"{self.method} merges task vectors relative to a base model, and no --base was given.",
                            "Pass --base (the text model the VLM's tower and the LLMs derive from), or use "
                            "--method linear.", code="merge.needs_base", params={"method": self.method, "field": "base"})
        if self.rescore_top < 0 or (self.rescore_top and (self.task != "report" or self.objective != "loglik")):
            raise UserError("--rescore-top re-scores by ROUGE-L what a report merge's log-likelihood search found best.",
                            "Use it with --task report --objective loglik (e.g. --rescore-top 3), or leave it out.",
                            code="merge.rescore_needs_loglik", params={"field": "rescore_top"})
        if self.metric not in METRICS:
            raise UserError(f"Unknown metric {self.metric!r}.", f"Use one of {', '.join(METRICS)}.",
                            code="merge.metric", params={"value": str(self.metric), "known": ", ".join(METRICS)})
        if self.budget < 0 or self.layer_groups < 1:
            raise UserError("--budget must be ≥ 0 and --layer-groups ≥ 1.",
                            code="merge.budget", params={"field": "budget", "groups_field": "layer_groups"})
        if self.population is not None and self.population < 4:
            raise UserError("--population must be at least 4 (CMA-ES learns from the better half of each generation).",
                            "Leave it out for the default 4 + 3·ln(dimensions).", code="merge.population")
        if not self.test and not 0 < self.test_fraction < 1:
            raise UserError("--test-fraction must be between 0 and 1.", "Or pass a separate --test file.",
                            code="merge.test_fraction", params={"field": "test_fraction", "test_field": "test"})

    def identity(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()
                if k not in _MAY_CHANGE}


def resume_config(out: str | Path, **overrides) -> MergeConfig:
    path = Path(out) / "config.json"
    if not path.exists():
        raise UserError(f"{out} holds no merge to resume (no config.json).", "Pass the --out directory of a merge.",
                        code="merge.nothing_to_resume", params={"path": str(out), "field": "out"})
    saved = json.loads(path.read_text())
    saved["inputs"] = tuple(saved["inputs"])
    saved.pop("resume", None)
    return MergeConfig(**{**saved, **{k: v for k, v in overrides.items() if k in _MAY_CHANGE and k != "resume"},
                          "out": str(out)})


def _prepare_out(config: MergeConfig) -> Path:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.json"
    if saved.exists():
        old = json.loads(saved.read_text())
        diff = sorted(k for k, v in config.identity().items() if old.get(k) != v)
        if diff:
            raise UserError(f"{out} holds a merge with other settings (differs in {diff}).",
                            "Resume it with --resume DIR, or use another --out directory.",
                            code="merge.out_differs", params={"path": str(out), "diff": str(diff)})
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}
    saved.write_text(json.dumps(settings, ensure_ascii=False, indent=2))
    (out / "STOP").unlink(missing_ok=True)
    return out


def estimate(mixer: Mixer, backend: LocalGenerator, data: MergeData, config: MergeConfig, space: SearchSpace) -> dict:
    """Seconds per candidate measured on a few dev questions; the rest is multiplication."""
    t0 = time.perf_counter()
    mixer.apply(space.anchor(0))
    t_apply = time.perf_counter() - t0
    k = min(4, len(data.dev))
    t0 = time.perf_counter()
    score_questions_with(backend, data.dev[:k], data.dev_prompts[:k], config)
    per_q = (time.perf_counter() - t0) / k
    per_candidate = t_apply + per_q * len(data.dev)
    n_candidates = config.budget + space.n_inputs
    n_models = len(mixer.plan.inputs) + 1 + (mixer.plan.base is not None)
    params = sum(p.numel() for p in mixer.model.parameters())
    work_bytes = sum(p.numel() * p.element_size() for p in mixer.model.parameters())
    delta_bytes = sum(t.numel() * 4 for ds in mixer.deltas.values() for t in ds)
    return {"candidates": n_candidates, "dev_questions": len(data.dev), "test_questions": len(data.test),
            "seconds_per_question": round(per_q, 4), "seconds_mixing": round(t_apply, 3),
            "seconds_per_candidate": round(per_candidate, 2),
            "search_seconds": round(n_candidates * per_candidate),
            "test_seconds": round(n_models * len(data.test) * per_q),
            "parameters": params, "memory_bytes": work_bytes + delta_bytes + config.shard_mb * 2 ** 20,
            "mode": mixer.plan.mode, "dimensions": space.dim}


def run(config: MergeConfig, on_event: Callable[[dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None) -> dict:
    """The whole merge: plan, estimate, search on dev, save the best, compare on test, register."""
    emit = on_event or (lambda e: None)
    if config.resume:
        # Only what the caller changed from the defaults overrides the saved run (--budget extends it).
        defaults = MergeConfig()
        config = resume_config(config.resume, **{k: getattr(config, k) for k in _MAY_CHANGE
                                                 if getattr(config, k) != getattr(defaults, k)})
    config.validate()
    ws = Workspace.resolve(config.workspace)
    if config.task == "report":
        plan, data = report_merge.prepare(config, ws)        # refused here before any model loads in full
        run_lock.output_folder(config.out, "merge")
        with run_lock.exclusive(config.out, "merge"):
            out = _prepare_out(config)
            return report_merge.search_and_report(config, plan, data, ws, out, emit,
                                                  should_stop or (lambda: (out / "STOP").exists()))
    data = load_merge_data(config)
    plan = plan_merge(config.inputs, config.base, config.method, layer_groups=config.layer_groups,
                      seed=config.seed, workspace=ws)
    run_lock.output_folder(config.out, "merge")
    # One merge per output folder, as evaluation holds its own: two merges with one --out scored every
    # candidate twice and the second crashed.
    with run_lock.exclusive(config.out, "merge"):
        return _search_and_report(config, plan, data, ws, emit, should_stop)


def _search_and_report(config: MergeConfig, plan, data: MergeData, ws: Workspace, emit, should_stop) -> dict:
    out = _prepare_out(config)
    stop = should_stop or (lambda: (out / "STOP").exists())
    space = SearchSpace(len(plan.inputs), config.layer_groups, config.method in SPARSE_METHODS,
                        scaled=config.method in SCALED_METHODS)

    mixer = Mixer(plan, device=config.device)
    backend = LocalGenerator(mixer.model, mixer.tokenizer, batch_size=config.batch_size, label="merge candidate")
    est = estimate(mixer, backend, data, config, space)
    emit({"event": "start", "mode": plan.mode, "method": plan.method, "inputs": [r.spec for r in plan.inputs],
          "base": plan.base.spec if plan.base else None, "estimate": est, "data": data.summary(),
          "done": len(read_candidates(out / "candidates.jsonl"))})
    if config.estimate:
        return {"estimate": est}
    audit.record(ws.root, audit.current_user(), "merge", f"merge:{out.resolve()}", phase="start",
                 inputs=[r.spec for r in plan.inputs], method=plan.method)

    def score(params: dict) -> dict:
        mixer.apply(params)
        values = score_questions_with(backend, data.dev, data.dev_prompts, config)
        return {"score": sum(values.values()) / len(values), "n": len(values)}

    candidates = search(space, score, budget=config.budget, path=out / "candidates.jsonl", seed=config.seed,
                        sigma=config.sigma, population=config.population, emit=emit, should_stop=stop,
                        resume_hint=f"jmedlora merge --resume {out}")
    best = best_candidate(candidates)
    try:
        kind = mixer.save(out / "model", best["params"], shard_bytes=config.shard_mb * 2 ** 20)
    except Exception as exc:            # safetensors reports a full disk as its own error: name the folder
        full = disk_full(exc, str(out / "model"))
        if full is None:
            raise
        raise full from None
    del backend, mixer
    report = test_report(plan, candidates, best, out / "model", data, config, ws)
    name = write_card(out, plan, kind, best, candidates, report, data, config, ws, est)
    report["registered_as"] = name
    audit.record(ws.root, audit.current_user(), "merge", f"merge:{out.resolve()}", phase="finish", registered_as=name)
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    emit({"event": "finish", "report": report})
    return report


def build_parser():
    p = cli.config_parser("merge", MergeConfig, __doc__)
    cli.add_common(p, "json")
    return p


@cli_guard
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    config = cli.config_from_args(MergeConfig, args)
    if config.resume and not config.out:
        config = dataclasses.replace(config, out=config.resume)

    def on_event(e: dict) -> None:
        if e["event"] == "start":
            est = e["estimate"]
            print(f"merge ({e['mode']}, {e['method']}) of {', '.join(e['inputs'])}"
                  + (f" on base {e['base']}" if e["base"] else ""), file=sys.stderr)
            unit = "reports" if "dev_reports" in est else "questions"
            print(f"estimate: {est['candidates']} candidates × {est['dev_' + unit]} dev {unit} × "
                  f"{est['seconds_per_' + unit[:-1]]:.3f} s + {est['seconds_mixing']:.2f} s mixing = "
                  f"{est['seconds_per_candidate']:.1f} s per candidate, ~{est['search_seconds'] / 60:.1f} min search, "
                  f"~{est['test_seconds'] / 60:.1f} min test; memory ~{est['memory_bytes'] / 2 ** 30:.2f} GiB"
                  + (f"; {e['done']} candidates already scored" if e["done"] else ""), file=sys.stderr, flush=True)
        elif e["event"] == "candidate":
            par = e["params"]
            extra = (f" drop {par['drop']:.2f} λ {par['scale']:.2f} trim-keep {par['densities']}" if "scale" in par
                     else "")
            print(f"[{e['i']:3d}] gen {e['generation']} {e['kind']:6s} score {e['score']:.3f} best {e['best']:.3f}"
                  f" weights {par['weights']}{extra}" + (" (recorded)" if e["resumed"] else ""),
                  file=sys.stderr, flush=True)
        elif e["event"] == "rescore":
            print(f"[{e['i']:3d}] re-scored: ROUGE-L {e['rouge_l']:.3f} (log-likelihood {e['loglik']:.3f})",
                  file=sys.stderr, flush=True)

    events = jobs.EventWriter.from_env()          # started as a job: events.jsonl in its directory
    total = {"n": 0}

    def to_job(e: dict) -> None:
        # The job file speaks the runner's vocabulary: per candidate a ``progress``.
        if events is None:
            return
        if e["event"] == "start":
            total["n"] = e["estimate"]["candidates"]
            events({**e, "total": total["n"]})
        elif e["event"] == "candidate":
            events({"event": "progress", "done": e["i"] + 1, "total": total["n"], "generation": e["generation"],
                    "kind": e["kind"], "score": e["score"], "best": e["best"]})
        elif e["event"] == "finish":
            events({"event": "finish", "verdict": e["report"]["verdict"],
                    "registered_as": e["report"].get("registered_as")})

    with jobs.reporting(events):
        result = run(config, jobs.tee(on_event, to_job))
    if "estimate" in result:
        print(json.dumps(result["estimate"], indent=2))
        return
    if args.json:
        shown = result if result.get("task") == "report" else {k: v for k, v in result.items() if k != "table"}
        print(json.dumps(shown, ensure_ascii=False, indent=2, default=str))
        return
    print(report_merge.format_table(result) if result.get("task") == "report" else result["table"])
    print(result["verdict"])


if __name__ == "__main__":
    main()
