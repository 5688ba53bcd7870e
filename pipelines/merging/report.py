"""The merge's final, honest part: test-set scores of base, inputs and merge; the card; the registry.

The winner was chosen on the dev set before this runs; the test set only reports. The merge is
compared with the input that was best *on the dev set* (choosing the comparison on test scores
would flatter the merge), by a paired bootstrap over the test questions and McNemar's test.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from pipelines.core.workspace import Workspace
from pipelines.evaluation.significance import bootstrap_ci, paired_comparison
from pipelines.merging.data import MergeData, score_questions_with
from pipelines.models.backends import open_backend


def _test_scores(spec: str, data: MergeData, config, ws: Workspace) -> dict[str, float]:
    backend = open_backend(spec, ws, batch_size=config.batch_size, device=config.device)
    try:
        return score_questions_with(backend, data.test, data.test_prompts, config)
    finally:
        del backend


def test_report(plan, candidates: list[dict], best: dict, merged_dir: Path, data: MergeData, config,
                ws: Workspace) -> dict:
    """Test scores with bootstrap intervals, and the paired comparison merge vs best dev input."""
    inputs = [c for c in candidates if c["kind"] == "input"]
    rows = []
    if plan.base is not None:
        rows.append(("base", plan.base.spec, plan.base.path, None))
    for k, ref in enumerate(plan.inputs):
        rows.append((f"input {k + 1}", ref.spec, ref.spec, inputs[k]["score"]))
    rows.append(("merge", str(merged_dir), str(merged_dir), best["score"]))
    per_q: dict[str, dict[str, float]] = {}
    table = []
    for role, label, spec, dev_score in rows:
        values = _test_scores(spec, data, config, ws)
        per_q[role] = values
        ci = bootstrap_ci(values.values(), seed=config.seed)
        table.append({"role": role, "model": label, "dev": dev_score, "test": ci})
    k_best = max(range(len(inputs)), key=lambda k: (inputs[k]["score"], -k))
    best_role = f"input {k_best + 1}"
    paired = paired_comparison(per_q[best_role], per_q["merge"], seed=config.seed)
    if best["kind"] == "input":
        verdict = (f"The search found no merge better than {plan.inputs[k_best].spec} on the dev set; the saved "
                   "model is that input's weights. The merge is not better.")
    elif paired["ci_low"] > 0:
        verdict = (f"The merge is better than the best input ({plan.inputs[k_best].spec}) on the test set: "
                   f"{config.metric} {paired['diff']:+.3f} [95% CI {paired['ci_low']:+.3f}, {paired['ci_high']:+.3f}], "
                   f"n={paired['n']}.")
    else:
        verdict = (f"The merge is NOT better than the best input ({plan.inputs[k_best].spec}) on the test set: "
                   f"{config.metric} {paired['diff']:+.3f} [95% CI {paired['ci_low']:+.3f}, {paired['ci_high']:+.3f}], "
                   f"n={paired['n']}" + (f", McNemar p={paired['p_mcnemar']:.3f}" if "p_mcnemar" in paired else "")
                   + ". The difference is within noise" + (" or against the merge." if paired["diff"] <= 0 else "."))
    # verdict_code: the verdict without its words, for the workbench to say in Japanese.
    code = "no_merge_found" if best["kind"] == "input" else "better" if paired["ci_low"] > 0 else "not_better"
    return {"metric": config.metric, "rows": table, "best_input": plan.inputs[k_best].spec,
            "paired_vs_best_input": paired, "verdict": verdict, "verdict_code": code, "table": format_table(table, config.metric)}


def format_table(table: list[dict], metric: str) -> str:
    lines = [f"{'':10s} {'model':40s} {'dev':>6s}  {'test ' + metric:>16s}  95% CI"]
    for r in table:
        t = r["test"]
        dev = f"{r['dev']:.3f}" if r["dev"] is not None else "—"
        lines.append(f"{r['role']:10s} {r['model'][-40:]:40s} {dev:>6s}  {t['mean']:16.3f}  "
                     f"[{t['ci_low']:.3f}, {t['ci_high']:.3f}]")
    return "\n".join(lines)


def next_merge_name(ws: Workspace) -> str:
    used = [int(m.group(1)) for r in ws.models() if (m := re.fullmatch(r"merge-(\d+)", r["name"]))]
    return f"merge-{max(used, default=0) + 1}"


def write_card(out: Path, plan, kind: str, best: dict, candidates: list[dict], report: dict, data: MergeData,
               config, ws: Workspace, estimate: dict) -> str:
    """``merge_card.json`` beside the weights (it travels with them) and in OUT; registers the model."""
    card_path = out / "merge_card.json"
    previous = json.loads(card_path.read_text()) if card_path.exists() else {}
    name = config.name or previous.get("name") or next_merge_name(ws)
    card = {"name": name, "kind": kind, "mode": plan.mode, "method": plan.method,
            "inputs": [{"spec": r.spec, "path": r.adapter or r.path} for r in plan.inputs],
            "base": plan.base.spec if plan.base else None,
            "params": best["params"], "chosen_candidate": best["i"], "chosen_kind": best["kind"],
            "metric": config.metric, "dev_score": best["score"],
            "input_dev_scores": [c["score"] for c in candidates if c["kind"] == "input"],
            "test": {r["role"]: r["test"] for r in report["rows"]}, "paired_vs_best_input": report["paired_vs_best_input"],
            "verdict": report["verdict"], "budget": config.budget, "candidates_scored": len(candidates),
            "layer_groups": config.layer_groups, "seed": config.seed, "data": data.summary(),
            "estimate": estimate, "created_at": time.time()}
    text = json.dumps(card, ensure_ascii=False, indent=2)
    (out / "model" / "merge_card.json").write_text(text)
    card_path.write_text(text)
    base_model = plan.inputs[0].path if kind == "adapter" else None
    ws.register_model(name, kind, str((out / "model").resolve()), base_model=base_model,
                      meta={"merge_card": str(card_path.resolve()), "method": plan.method,
                            "inputs": [r.spec for r in plan.inputs], "dev_score": best["score"],
                            "test_merge": card["test"]["merge"]["mean"], "verdict": report["verdict"]})
    return name
