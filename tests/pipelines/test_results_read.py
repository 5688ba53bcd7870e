"""``read_results`` over a report evaluation's rows: one row per image, keyed by ``id`` (no shots),
the later row for an id winning, a torn last line dropped; exam rows read as before."""
import json

from pipelines.evaluation.results import read_results


def test_report_rows_are_read_one_per_id_later_wins(tmp_path):
    rows = [{"id": "cxr-1", "generated": "心拡大なし。"}, {"id": 2, "generated": "胸水あり。"},
            {"id": "cxr-1", "generated": "心拡大を認める。"}, {"problem_id": "q1", "shots": 0, "response": "a"}]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + '{"id": "cxr-3", "gener'
    (tmp_path / "results.jsonl").write_text(text, encoding="utf-8")
    got = read_results(tmp_path)
    assert [r.get("id", r.get("problem_id")) for r in got] == ["cxr-1", 2, "q1"]
    assert got[0]["generated"] == "心拡大を認める。"
