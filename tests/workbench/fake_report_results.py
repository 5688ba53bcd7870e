"""Two fake chest X-ray report evaluations over the sample report file (6 synthetic images), as
``jmedlora evaluate --task report`` leaves them: ``OUT/results.jsonl`` (one row per image, scored
by ``report_metrics.score_report``), ``OUT/summary.json`` and a finished registry row.

``demo-vlm`` is the weak one: it misses the cardiomegaly, the left effusion, the pneumonia and the
rib fracture, and adds a pneumothorax to the fracture study. ``demo-vlm+cxr-lora`` says what the
reference says, in other words."""
from __future__ import annotations

import json
from pathlib import Path

from pipelines.evaluation import report_metrics
from pipelines.tasks.reports import load_reports

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "assets" / "reports" / "sample_ja.jsonl"

WEAK = {
    "synthetic-normal": "両側肺野に明らかな異常影なし。心拡大なし。",
    "synthetic-cardiomegaly": "両側肺野に明らかな浸潤影なし。心拡大なし。",
    "synthetic-effusion-left": "心拡大なし。胸水なし。",
    "synthetic-consolidation-right-lower": "右下肺野に浸潤影を認める。",
    "synthetic-rib-fracture-right": "右気胸を認める。骨に明らかな異常なし。",
    "synthetic-normal-dicom": "異常所見なし。",
}
TUNED = {
    "synthetic-normal": "両側肺野に明らかな浸潤影を認めない。心拡大なし。両側肋骨横隔膜角は鋭。",
    "synthetic-cardiomegaly": "心拡大を認める。両側肺野に明らかな浸潤影なし。",
    "synthetic-effusion-left": "左胸水を認める。心拡大なし。",
    "synthetic-consolidation-right-lower": "右下肺野に浸潤影を認め、肺炎を疑う。心拡大なし。",
    "synthetic-rib-fracture-right": "右肋骨骨折を疑う。心拡大なし。",
    "synthetic-normal-dicom": "両側肺野に明らかな浸潤影を認めない。心拡大なし。",
}


def report_rows(generated: dict[str, str], data: Path = SAMPLE) -> list[dict]:
    rows = []
    for s in load_reports(data, check_images=False):
        text = generated[s.id]
        rows.append({"id": s.id, "image": s.image, "image_hash": "0" * 16, "reference": s.findings_ja,
                     "generated": text, "raw": text, "n_tokens": len(text), "seconds": 0.5,
                     **report_metrics.score_report(text, s.findings_ja)})
    return rows


def record_report(ws, out_dir: Path, model: str, generated: dict[str, str], *, adapter: str | None = None,
                  data: Path = SAMPLE, status: str = "finished") -> str:
    """One evaluation written to ``out_dir`` and recorded in ``ws``; returns ``out_dir`` as the registry has it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = report_rows(generated, data)
    with open(out_dir / "results.jsonl", "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    summary = {"task": "report", "label": model, "model": model, "adapter": adapter, "data": str(data),
               "prompt": "ja", "image_size": 512, "trust_remote_code": False, "n": len(rows),
               "metrics": report_metrics.summarize_reports(rows, resamples=200), "seconds": 3.0,
               "reports_per_s": len(rows) / 3.0}
    (out_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False), encoding="utf-8")
    ws.record_evaluation(str(out_dir), model=model, adapter=adapter, data=str(data),
                         config={"task": "report", "prompt": "ja", "image_size": 512}, status=status,
                         summary=summary)
    return str(out_dir)


def record_pair(ws, root: Path) -> list[str]:
    """The weak evaluation, then the tuned one (the order they were run in)."""
    return [record_report(ws, root / "weak", "demo-vlm", WEAK),
            record_report(ws, root / "tuned", "demo-vlm", TUNED, adapter=str(root / "adapters" / "cxr-lora"))]
