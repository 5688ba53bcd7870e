"""JRadiEvo's model on the workbench: a VLM's language tower merged with text LLMs, chosen on reports.

    jmedlora merge --task report --inputs /models/vlm /models/med-llm /models/ja-llm --base /models/base \\
        --method jradievo --dev cxr/dev.jsonl --test cxr/test.jsonl --budget 100 --out workspace/merges/cxr

Reached through ``jmedlora merge --task report`` (``evolve.run`` hands the run over here). The first
input is the VLM, the others text causal LMs of its tower's architecture, ``--base`` the text model
they all derive from (``pipelines/merging/towers.py`` checks all that before anything loads in
full). The VLM alone is scored first; CMA-ES then proposes candidates (``--method jradievo``:
JRadiEvo's 10 variables for 4 inputs), each mixed into the loaded VLM's tower
(``tower_mixer``) and scored on the dev reports by ``--objective``:

``rouge_l``  JRadiEvo's: ROUGE-L (MeCab tokens) of generated findings, mean over the dev set;
``loglik``   the mean log-likelihood per token of the reference findings given the image: one
             forward pass, no generation. On the tiny fitted models of ``bench/bench_vlm_merge.py``
             it ranked 24 candidates as ROUGE-L did with Spearman 0.88 at 1/14 of the cost, the
             ROUGE-L best among its top 3 — so it is offered as a first stage: ``--rescore-top K``
             re-scores the VLM and loglik's K best by ROUGE-L and chooses among them by ROUGE-L.

The best candidate on the dev set is saved as a VLM directory (vision tower and projector the
VLM's, byte for byte) with ``merge_card.json``, registered as ``merge-N``; then the VLM and the
merge are evaluated on the test reports as any report evaluation is (``OUT/test/vlm``,
``OUT/test/merge``, listed in the Reports view), and compared pairwise: the verdict says plainly
when the merge is not better.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

from pipelines.core import audit
from pipelines.core.errors import Interrupted, UserError, disk_full
from pipelines.core.workspace import Workspace
from pipelines.evaluation import report_metrics, report_run, results
from pipelines.evaluation.evaluator import EvalConfig
from pipelines.merging import towers
from pipelines.merging.methods import SCALED_METHODS, SPARSE_METHODS
from pipelines.merging.report import next_merge_name
from pipelines.merging.report_data import (
    ReportMergeData,
    ReportPart,
    load_report_merge_data,
    report_settings,
    score_loglik,
    score_rouge,
)
from pipelines.merging.search import SearchSpace, append_candidate, best_candidate, read_candidates, search
from pipelines.merging.tower_mixer import TowerMixer
from pipelines.models.modality import VISION
from pipelines.models.references import resolve_model

OBJECTIVES = ("rouge_l", "loglik")
VERDICT_METRIC = "rouge_l"          # the paired verdict's metric: JRadiEvo's objective


def prepare(config, ws: Workspace) -> tuple[towers.TowerPlan, ReportMergeData]:
    """The inputs checked (nothing loaded in full) and the dev/test reports loaded; refusals first."""
    refs = [resolve_model(s, None, ws) for s in config.inputs]
    if refs[0].kind != VISION:
        raise UserError(f"The first input of a report merge must be the vision-language model; {refs[0].spec} is "
                        f"a {refs[0].kind} model.", "Pass the VLM first: --inputs VLM LLM [LLM …].",
                        code="merge.report_vlm_first", params={"spec": refs[0].spec})
    for r in refs[1:]:
        if r.kind == VISION or r.adapter or r.kind == "endpoint":
            raise UserError(f"{r.spec} is not a text causal LM with its own weights; the inputs after the VLM must "
                            "be (fold an adapter into its base first).", "Pass full text models after the VLM.",
                            code="merge.report_text_inputs", params={"spec": r.spec})
    if refs[0].adapter:
        raise UserError(f"The VLM {refs[0].spec} is an adapter on a VLM; merge its folded model.",
                        "Fold the adapter into its VLM (merge_and_unload, save) and pass that directory.",
                        code="merge.report_vlm_adapter", params={"spec": refs[0].spec})
    base = resolve_model(config.base, None, ws) if config.base else None
    plan = towers.check_compatible(refs[0].path, [r.path for r in refs[1:]], base.path if base else None)
    return plan, load_report_merge_data(config)


def _scorer(config):
    """(generator, part) → id → the objective's value."""
    if config.objective == "loglik":
        return lambda generator, part: score_loglik(generator, part, batch_size=config.batch_size)
    settings = report_settings(config)
    return lambda generator, part: score_rouge(generator, part, settings)


def estimate(mixer: TowerMixer, data: ReportMergeData, config, space: SearchSpace) -> dict:
    """Seconds per candidate measured on a few dev reports; the rest is multiplication. The test
    phase (and ``--rescore-top``) generates reports: with ``--objective loglik`` one report's
    generation is timed too, since a forward pass says nothing of how long generation takes."""
    t0 = time.perf_counter()
    mixer.apply(space.decode(space.start()))
    t_apply = time.perf_counter() - t0

    def seconds_per_report(objective: str, k: int) -> float:
        part = ReportPart(data.dev.samples[:k], data.dev.images[:k], data.dev.image_hashes[:k])
        t0 = time.perf_counter()
        _scorer(dataclasses.replace(config, objective=objective))(mixer.generator, part)
        return (time.perf_counter() - t0) / len(part)

    per_report = seconds_per_report(config.objective, min(2, len(data.dev)))
    generating = per_report if config.objective == "rouge_l" else seconds_per_report("rouge_l", 1)
    per_candidate = t_apply + per_report * len(data.dev)
    n_candidates = config.budget + 1
    rescoring = (config.rescore_top + 1) * (t_apply + generating * len(data.dev)) if config.rescore_top else 0.0
    model = mixer.generator.model
    work_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    tower_bytes = sum(t.numel() * t.element_size() for t in mixer.originals.values())
    return {"candidates": n_candidates, "dev_reports": len(data.dev), "test_reports": len(data.test),
            "seconds_per_report": round(per_report, 4), "seconds_mixing": round(t_apply, 3),
            "seconds_per_candidate": round(per_candidate, 2),
            "search_seconds": round(n_candidates * per_candidate + rescoring),
            "test_seconds": round(2 * len(data.test) * generating),
            "parameters": sum(p.numel() for p in model.parameters()),
            "memory_bytes": work_bytes + tower_bytes + config.shard_mb * 2 ** 20, "mode": "tower",
            "dimensions": space.dim, "objective": config.objective}


def search_and_report(config, plan: towers.TowerPlan, data: ReportMergeData, ws: Workspace, out: Path, emit,
                      stop) -> dict:
    n_inputs = 1 + len(plan.lm_dirs)
    space = SearchSpace(n_inputs, config.layer_groups, config.method in SPARSE_METHODS,
                        scaled=config.method in SCALED_METHODS)
    mixer = TowerMixer(plan, config.method, seed=config.seed, layer_groups=config.layer_groups,
                       device=config.device, batch_size=config.batch_size)
    est = estimate(mixer, data, config, space)
    emit({"event": "start", "mode": "tower", "method": config.method, "inputs": list(config.inputs),
          "base": config.base, "estimate": est, "data": data.summary(),
          "done": len(read_candidates(out / "candidates.jsonl"))})
    if config.estimate:
        return {"estimate": est}
    audit.record(ws.root, audit.current_user(), "merge", f"merge:{out.resolve()}", phase="start", task="report",
                 inputs=list(config.inputs), method=config.method)
    scorer = _scorer(config)

    def score(params: dict) -> dict:
        mixer.apply(params)
        values = scorer(mixer.generator, data.dev)
        return {"score": sum(values.values()) / len(values), "n": len(values)}

    # The VLM alone first (anchor 0): the merge chosen can never be worse than it on the dev set.
    candidates = search(space, score, budget=config.budget, path=out / "candidates.jsonl", seed=config.seed,
                        sigma=config.sigma, population=config.population, emit=emit, should_stop=stop,
                        resume_hint=f"jmedlora merge --resume {out}", anchors=[0])
    best = rescore(mixer, data, candidates, config, out, emit, stop) if config.rescore_top else \
        best_candidate(candidates)
    try:
        mixer.save(out / "model", best["params"], shard_bytes=config.shard_mb * 2 ** 20)
    except Exception as exc:            # safetensors reports a full disk as its own error: name the folder
        full = disk_full(exc, str(out / "model"))
        if full is None:
            raise
        raise full from None
    del mixer
    # Registered before its test evaluation, so the evaluation (and the Reports view) names it merge-N.
    name = merge_name(config, out, ws)
    ws.register_model(name, "merged", str((out / "model").resolve()), meta={"task": "report", "method": config.method,
                                                                           "inputs": list(config.inputs)})
    report = test_report(config, best, out, data, ws, emit, merge_spec=name)
    report["registered_as"] = write_card(config, plan, best, candidates, report, data, out, ws, est, name)
    audit.record(ws.root, audit.current_user(), "merge", f"merge:{out.resolve()}", phase="finish",
                 registered_as=report["registered_as"])
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    emit({"event": "finish", "report": report})
    return report


def rescore(mixer: TowerMixer, data: ReportMergeData, candidates: list[dict], config, out: Path, emit,
            stop) -> dict:
    """The second stage after a log-likelihood search: ROUGE-L on the dev reports for the VLM alone and
    the ``rescore_top`` candidates the log-likelihood ranked best; the best by ROUGE-L is chosen (the VLM
    first among equals, so the merge is never worse than it on the dev set by JRadiEvo's measure).
    Each score is a line of ``OUT/rescored.jsonl`` as it finishes: a resumed run asks for none twice."""
    path = out / "rescored.jsonl"
    done = {r["i"]: r for r in read_candidates(path, repair=True)}
    ranked = sorted((c for c in candidates if c["kind"] == "search"), key=lambda c: (-c["score"], c["i"]))
    chosen = [c for c in candidates if c["kind"] == "input"] + ranked[:config.rescore_top]
    scorer = _scorer(dataclasses.replace(config, objective="rouge_l"))
    for c in chosen:
        if c["i"] not in done:
            if stop():
                raise Interrupted(f"jmedlora merge --resume {out}")
            mixer.apply(c["params"])
            values = scorer(mixer.generator, data.dev)
            done[c["i"]] = {"i": c["i"], "rouge_l": sum(values.values()) / len(values), "loglik": c["score"]}
            append_candidate(path, done[c["i"]])
        emit({"event": "rescore", "i": c["i"], "rouge_l": done[c["i"]]["rouge_l"], "loglik": c["score"]})
    best = max(chosen, key=lambda c: (done[c["i"]]["rouge_l"], c["kind"] == "input", -c["i"]))
    return {**best, "rescored": [done[c["i"]] for c in chosen], "dev_rouge_l": done[best["i"]]["rouge_l"]}


def _evaluate(config, spec: str, out: Path, data: ReportMergeData, ws: Workspace, emit) -> list[dict]:
    """A report evaluation of ``spec`` on the test reports, in ``out`` (as ``jmedlora evaluate`` writes it)."""
    ev = EvalConfig(model=spec, data=data.hashes["test_file"], task="report", out=str(out), max_new_tokens=config.max_new_tokens,
                    seed=config.seed, batch_size=config.batch_size, image_size=config.image_size,
                    workspace=str(ws.root))
    summary = report_run.run(ev, lambda e: emit({**e, "phase": f"test:{out.name}"}) if e["event"] == "progress"
                             else None, ws, threading.Event(), samples=data.test.samples)
    if summary.get("stopped"):
        raise UserError("The test evaluation stopped before its end.", f"Resume the merge: jmedlora merge --resume "
                        f"{out.parent.parent}", code="merge.test_stopped", params={"path": str(out.parent.parent)})
    return results.read_results(out)


def test_report(config, best: dict, out: Path, data: ReportMergeData, ws: Workspace, emit, *,
                merge_spec: str | None = None) -> dict:
    """BLEU-1…4, METEOR, ROUGE-L and finding F1 with intervals for the VLM and the merge on the test
    reports, and the paired comparison (merge − VLM)."""
    rows = {"vlm": _evaluate(config, config.inputs[0], out / "test" / "vlm", data, ws, emit),
            "merge": _evaluate(config, merge_spec or str(out / "model"), out / "test" / "merge", data, ws, emit)}
    table = {role: report_metrics.summarize_reports(r, seed=config.seed) for role, r in rows.items()}
    paired = report_metrics.compare_reports(rows["vlm"], rows["merge"], seed=config.seed)
    p = paired[VERDICT_METRIC]
    if best["kind"] == "input":
        code = "no_merge_found"
        verdict = ("The search found no merge better than the VLM alone on the dev set; the saved model is the "
                   "VLM's weights. The merge is not better.")
    else:
        code = "better" if p["ci_low"] is not None and p["ci_low"] > 0 else "not_better"
        said = f"ROUGE-L {p['diff']:+.3f} [95% CI {p['ci_low']:+.3f}, {p['ci_high']:+.3f}], n={p['n']}"
        verdict = (f"The merge is better than the VLM on the test reports: {said}." if code == "better" else
                   f"The merge is NOT better than the VLM on the test reports: {said}. The difference is within "
                   "noise" + (" or against the merge." if (p["diff"] or 0) <= 0 else "."))
    return {"task": "report", "metric": VERDICT_METRIC, "objective": config.objective, "table": table,
            "paired_vs_vlm": paired, "verdict": verdict, "verdict_code": code,
            "evaluations": {role: str((out / "test" / role).resolve()) for role in rows}}


def merge_name(config, out: Path, ws: Workspace) -> str:
    """--name, else the name a resumed merge already had, else the next merge-N."""
    card_path = out / "merge_card.json"
    previous = json.loads(card_path.read_text()) if card_path.exists() else {}
    registered = [m["name"] for m in ws.models() if m["path"] == str((out / "model").resolve())]
    return config.name or previous.get("name") or (registered[0] if registered else next_merge_name(ws))


def write_card(config, plan: towers.TowerPlan, best: dict, candidates: list[dict], report: dict,
               data: ReportMergeData, out: Path, ws: Workspace, est: dict, name: str) -> str:
    """``merge_card.json`` beside the weights and in OUT; registers the merged VLM with its scores."""
    card_path = out / "merge_card.json"
    card = {"name": name, "kind": "merged", "task": "report", "mode": "tower", "method": config.method,
            "family": plan.family, "inputs": [{"spec": s, "role": "vlm" if i == 0 else "text"}
                                              for i, s in enumerate(config.inputs)],
            "base": config.base, "params": best["params"], "chosen_candidate": best["i"],
            "chosen_kind": best["kind"], "objective": config.objective, "dev_score": best["score"],
            "rescored_by_rouge_l": best.get("rescored"), "dev_rouge_l": best.get("dev_rouge_l"),
            "vlm_dev_score": next(c["score"] for c in candidates if c["kind"] == "input"),
            "test": report["table"], "paired_vs_vlm": report["paired_vs_vlm"], "verdict": report["verdict"],
            "budget": config.budget, "candidates_scored": len(candidates), "layer_groups": config.layer_groups,
            "seed": config.seed, "data": data.summary(), "estimate": est, "created_at": time.time()}
    text = json.dumps(card, ensure_ascii=False, indent=2)
    (out / "model" / "merge_card.json").write_text(text)
    card_path.write_text(text)
    ws.register_model(name, "merged", str((out / "model").resolve()),
                      meta={"merge_card": str(card_path.resolve()), "method": config.method, "task": "report",
                            "inputs": list(config.inputs), "dev_score": best["score"],
                            "test_merge": report["table"]["merge"][VERDICT_METRIC]["mean"],
                            "verdict": report["verdict"]})
    return name


def format_table(report: dict) -> str:
    """Each report metric for the VLM and the merge on the test reports, and merge − VLM, as printed."""
    from pipelines.evaluation import metrics
    names = metrics.labels("en", task="report")
    lines = [f"{'':24s} {'VLM':>22s} {'merge':>22s} {'merge − VLM':>24s}"]
    for key, vlm in report["table"]["vlm"].items():
        merge, d = report["table"]["merge"][key], report["paired_vs_vlm"][key]

        def cell(v: dict) -> str:
            return "—" if v["mean"] is None else f"{v['mean']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"

        diff = "—" if d["diff"] is None else f"{d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
        lines.append(f"{names.get(key, key)[:24]:24s} {cell(vlm):>22s} {cell(merge):>22s} {diff:>24s}")
    return "\n".join(lines)
