"""``jmedlora evaluate --task report``: a tiny random LLaVA writes reports for the sample images;
rows, summary and registry as for exams, resume after a stop, and a DICOM's patient name nowhere.

The reports of a random model mean nothing: what is checked is the path, not the prose."""
from __future__ import annotations

import json
import shutil
import threading

import pytest

from pipelines.core.errors import UserError
from pipelines.core.repo import ASSETS
from pipelines.evaluation import evaluator, report_run
from pipelines.evaluation.evaluator import EvalConfig

SAMPLE = ASSETS / "reports" / "sample_ja.jsonl"


def _config(model, out, **kw) -> EvalConfig:
    return EvalConfig(task="report", model=str(model), data=str(SAMPLE), out=str(out), max_new_tokens=8,
                      temperature=0.0, image_size=32, **kw)


def test_reports_for_the_sample_images_scored_summarised_and_registered(tiny_vlm_dir, workspace, tmp_path):
    events = []
    summary = evaluator.run(_config(tiny_vlm_dir, tmp_path / "e"), events.append, workspace=workspace)
    rows = [json.loads(line) for line in (tmp_path / "e" / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    n = len(SAMPLE.read_text(encoding="utf-8").splitlines())
    assert summary["task"] == "report" and summary["n"] == n == len(rows)
    for r in rows:
        assert {"id", "image", "image_hash", "reference", "generated", "rouge_l", "bleu4", "findings_reference"} <= set(r)
        assert 0 <= r["rouge_l"] <= 1 and r["reference"]
    m = summary["metrics"]
    assert {"bleu1", "bleu4", "rouge_l", "meteor", "finding_micro_f1"} <= set(m)
    assert all(v["ci_low"] <= v["mean"] <= v["ci_high"] for v in m.values() if v["mean"] is not None)
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "finish"
    (ev,) = workspace.evaluations(task="report")
    assert ev["status"] == "finished" and ev["summary"]["n"] == n and workspace.evaluations() == []
    assert "ROUGE" in report_run.format_table(summary) or "rouge" in report_run.format_table(summary).lower()


def test_a_stopped_run_resumes_with_the_images_not_yet_reported(tiny_vlm_dir, workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(report_run, "GROUP", 2)
    stop = threading.Event()

    def stop_after_two(e):
        if e["event"] == "progress" and e["done"] == 2:
            stop.set()
    first = evaluator.run(_config(tiny_vlm_dir, tmp_path / "e"), stop_after_two, workspace=workspace, stop=stop)
    assert first["stopped"] and first["done"] == 2
    seen = []
    summary = evaluator.run(_config(tiny_vlm_dir, tmp_path / "e"), seen.append, workspace=workspace)
    assert seen[0]["done"] == 2 and summary["n"] == first["total"]
    ids = [json.loads(line)["id"] for line in (tmp_path / "e" / "results.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == first["total"]


def test_a_text_model_or_loglik_is_refused_before_anything_is_written(tiny_llama_dir, tiny_vlm_dir, workspace,
                                                                      tmp_path):
    with pytest.raises(UserError) as err:
        evaluator.run(_config(tiny_llama_dir, tmp_path / "t"), workspace=workspace)
    assert err.value.code == "vision.text_model" and not (tmp_path / "t").exists()
    with pytest.raises(UserError) as err:
        evaluator.run(_config(tiny_vlm_dir, tmp_path / "l", method="loglik"), workspace=workspace)
    assert err.value.code == "eval.report_method"


def test_an_exam_run_into_a_report_folder_is_refused(tiny_vlm_dir, tiny_llama_dir, workspace, tmp_path):
    evaluator.run(_config(tiny_vlm_dir, tmp_path / "e", limit=1), workspace=workspace)
    with pytest.raises(UserError) as err:
        evaluator.run(EvalConfig(model=str(tiny_llama_dir), out=str(tmp_path / "e"), limit=1), workspace=workspace)
    assert err.value.code == "eval.out_differs"


def test_a_dicom_reports_and_its_patient_name_is_in_no_output(tiny_vlm_dir, workspace, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(ASSETS / "reports" / "normal_pa_tiny.dcm", data / "x.dcm")
    (data / "r.jsonl").write_text(json.dumps({"id": "d1", "image": "x.dcm", "findings_ja": "心拡大なし。"},
                                             ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "e"
    evaluator.main(["--task", "report", "--model", str(tiny_vlm_dir), "--data", str(data / "r.jsonl"),
                    "--out", str(out), "--max-new-tokens", "4", "--image-size", "32", "--temperature", "0",
                    "--workspace", str(workspace.root)])
    printed = capsys.readouterr()
    written = "".join(p.read_text(encoding="utf-8", errors="replace") for p in out.rglob("*") if p.is_file())
    audit_log = (workspace.root / "audit" / "audit.jsonl").read_text(encoding="utf-8")
    for secret in ("YAMADA", "TARO", "FAKE-0001", "19500101"):
        assert secret not in printed.out + printed.err + written + audit_log
    assert json.loads((out / "summary.json").read_text())["n"] == 1
