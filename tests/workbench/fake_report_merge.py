"""A finished image-report merge folder, as ``jmedlora merge --task report`` leaves it, written
straight (no model runs): ``OUT/config.json``, ``OUT/candidates.jsonl`` (the VLM alone, then four
search candidates), ``OUT/test/vlm`` and ``OUT/test/merge`` (report evaluations recorded in the
workspace, from ``fake_report_results``) and ``OUT/report.json`` computed from them as
``report_merge.test_report`` does (summaries, the paired comparison, the verdict by ROUGE-L); the
merge registered under its name, as ``report_merge.write_card`` does.

``merge_better``: the merge wrote the tuned reports and the VLM the weak ones (else the reverse:
a merge that is not better). The report files are a copy of the sample reports in ``data_dir``,
so other tests that pick the newest evaluations of the sample file do not pick these.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from pipelines.evaluation import report_metrics
from pipelines.merging.evolve import MergeConfig
from pipelines.merging.search import append_candidate
from tests.workbench.fake_report_results import SAMPLE, TUNED, WEAK, record_report, report_rows

CANDIDATES = [(0, "input", 0.210), (1, "search", 0.180), (1, "search", 0.260), (2, "search", 0.240),
              (2, "search", 0.305)]


def copy_samples(data_dir: Path) -> Path:
    """The sample report file and its images, copied (the evaluations name this copy)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for f in SAMPLE.parent.iterdir():
        if f.suffix in (".jsonl", ".png", ".dcm"):
            shutil.copy(f, data_dir / f.name)
    return data_dir / SAMPLE.name


def write_report_merge(ws, out: Path, data_dir: Path, *, merge_better: bool = False, vlm: str = "demo-vlm",
                       name: str = "merge-7", objective: str = "rouge_l") -> dict:
    """The folder ``out`` of a finished report merge; returns its report."""
    out.mkdir(parents=True, exist_ok=True)
    data = copy_samples(data_dir)
    config = MergeConfig(task="report", inputs=(vlm, "llm-med", "llm-ja"), base="llm-base", method="jradievo",
                         objective=objective, dev=str(data), test_fraction=0.5, budget=4, max_new_tokens=128,
                         out=str(out), workspace=str(ws.root))
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), ensure_ascii=False))
    for i, (generation, kind, score) in enumerate(CANDIDATES):
        append_candidate(out / "candidates.jsonl", {"i": i, "generation": generation, "kind": kind, "score": score})
    texts = {"vlm": WEAK, "merge": TUNED} if merge_better else {"vlm": TUNED, "merge": WEAK}
    dirs = {"vlm": (out / "test" / "vlm").resolve(), "merge": (out / "test" / "merge").resolve()}
    record_report(ws, dirs["vlm"], vlm, texts["vlm"], data=data)
    record_report(ws, dirs["merge"], str((out / "model").resolve()), texts["merge"], data=data)
    rows = {role: report_rows(texts[role], data) for role in dirs}
    paired = report_metrics.compare_reports(rows["vlm"], rows["merge"], resamples=500)
    p = paired["rouge_l"]
    code = "better" if p["ci_low"] is not None and p["ci_low"] > 0 else "not_better"
    report = {"task": "report", "metric": "rouge_l", "objective": objective,
              "table": {role: report_metrics.summarize_reports(r, resamples=500) for role, r in rows.items()},
              "paired_vs_vlm": paired, "verdict": f"The merge is {'' if code == 'better' else 'NOT '}better "
                                                  "than the VLM on the test reports.",
              "verdict_code": code, "evaluations": {role: str(d) for role, d in dirs.items()}, "registered_as": name}
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    ws.register_model(name, "merged", str((out / "model").resolve()),
                      meta={"task": "report", "method": "jradievo", "inputs": list(config.inputs)})
    (out / "status.json").write_text(json.dumps({"status": "finished", "pid": None,
                                                 "cli": f"jmedlora merge --resume {out}"}))
    return report
