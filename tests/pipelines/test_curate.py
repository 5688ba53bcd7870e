"""Curation: each filter, review with audit trail, statistics, export and registration."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.core.errors import UserError
from pipelines.data import curate, dataset_export, filters
from pipelines.data import store as datastore
from pipelines.data.dataset_export import ExportConfig
from pipelines.data.filters import CurateConfig

RECORDS = [
    {"instruction": "心不全の定義を説明してください。", "output": "心臓のポンプ機能が低下し、症状が出る臨床症候群です。"},   # 1 clean
    {"instruction": "心不全の定義を説明してください。", "output": "心臓のポンプ機能が低下し、症状が出る臨床症候群です。"},   # 2 exact dup of 1
    {"instruction": "心不全の定義を説明してください！", "output": "心臓のポンプ機能が低下し、症状が出る臨床症候群である。"},  # 3 near dup of 1
    {"instruction": "BNPとは？", "output": "BNPとは？"},                                                   # 4 copies question
    {"instruction": "短い", "output": "はい"},                                                              # 5 too short
    {"instruction": "What is heart failure?", "output": "A syndrome of impaired cardiac pump function."},  # 6 not Japanese
    {"instruction": "糖尿病の診断基準は？", "output": "HbA1c 6.5%以上など。" + "詳細。" * 800},              # 7 too long
    {"instruction": "DVTの治療は？", "output": "抗凝固療法を行う。ワルファリンまたはDOACを用いる。"},          # 8 keyword DOAC
    {"instruction": "SGLT2阻害薬の効果を述べよ。", "output": "心不全入院を減らし、腎保護効果がある。"},       # 9 clean
    {"instruction": "", "output": "質問のない回答です。"},                                                  # 10 empty
]


@pytest.fixture
def ws(workspace):
    datastore.add_records(workspace, "d", [dict(r, input="") for r in RECORDS])
    return workspace


def flagged(ws, name):
    return [r["id"] for r in datastore.list_records(ws, "d", flag=name)]


def test_each_filter_flags_what_it_should(ws):
    counts = filters.run(CurateConfig(dataset="d", keywords=["DOAC"], workspace=str(ws.root)))
    assert flagged(ws, "exact_duplicate") == [2]
    assert flagged(ws, "near_duplicate") == [3]
    assert flagged(ws, "copies_question") == [4]
    assert flagged(ws, "too_short") == [5, 10]
    assert flagged(ws, "not_japanese") == [6]
    assert flagged(ws, "too_long") == [7]
    assert flagged(ws, "keyword") == [8]
    assert flagged(ws, "empty") == [10]
    assert counts["total"] == 10 and counts["clean"] == 2 and counts["exportable"] == 2
    assert counts["near_duplicate"] == 1 and counts["too_short"] == 2
    assert [r["id"] for r in datastore.list_records(ws, "d", flag="clean")] == [1, 9]
    assert datastore.get_record(ws, 2)["flags"] == {"exact_duplicate": "1"}
    assert datastore.count_records(ws, "d", flag="any") == 8


def test_filters_can_be_chosen_and_turned_off(ws):
    counts = filters.run(CurateConfig(dataset="d", min_japanese_share=0, filters=["not_japanese", "too_long"],
                                     workspace=str(ws.root)))
    assert counts["not_japanese"] == 0 and counts["too_long"] == 1 and counts["exact_duplicate"] == 0
    with pytest.raises(UserError, match="Unknown filter"):
        filters.run(CurateConfig(dataset="d", filters=["spelling"], workspace=str(ws.root)))
    with pytest.raises(UserError, match="no records"):
        filters.run(CurateConfig(dataset="nothing", workspace=str(ws.root)))


def test_accepted_record_is_the_one_kept_among_duplicates(ws):
    datastore.set_status(ws, [3], "accepted", who="dr_a")
    filters.run(CurateConfig(dataset="d", workspace=str(ws.root)))
    assert 3 not in flagged(ws, "near_duplicate") and 1 in flagged(ws, "near_duplicate")


def test_review_and_edit_keep_the_original_and_an_audit_trail(ws):
    assert datastore.set_status(ws, [1, 9], "accepted", who="dr_a") == 2
    assert datastore.set_status(ws, [1], "accepted", who="dr_a") == 0        # no change, no audit row
    rec = datastore.edit_record(ws, 9, who="dr_b", output="心不全入院と腎機能低下を抑制する。")
    assert rec["output"] == "心不全入院と腎機能低下を抑制する。" and rec["edited"] == 1
    assert rec["orig_output"] == RECORDS[8]["output"]
    trail = datastore.history(ws, 9)
    assert [(h["field"], h["who"], h["before"], h["after"]) for h in trail] == [
        ("status", "dr_a", "pending", "accepted"),
        ("output", "dr_b", RECORDS[8]["output"], "心不全入院と腎機能低下を抑制する。")]
    assert datastore.revert_record(ws, 9, who="dr_b")["output"] == RECORDS[8]["output"]
    assert len(datastore.history(ws, 9)) == 3
    with pytest.raises(UserError, match="empty"):
        datastore.edit_record(ws, 9, output="  ")
    with pytest.raises(UserError, match="No record"):
        datastore.set_status(ws, [999], "rejected")
    with pytest.raises(UserError, match="status"):
        datastore.set_status(ws, [1], "maybe")


def test_bulk_review_by_filter_and_counts(ws):
    filters.run(CurateConfig(dataset="d", workspace=str(ws.root)))
    assert curate.review_where(ws, "d", "rejected", flag="any", who="dr_a") == 7
    assert datastore.count_records(ws, "d", status="rejected") == 7
    assert datastore.count_records(ws, "d", search="心不全") == 4
    stats = curate.dataset_stats(ws, "d")
    assert stats["by_status"] == {"pending": 3, "accepted": 0, "rejected": 7}
    assert stats["records"] == 10 and stats["lengths"]["answer_max"] > 1000
    assert datastore.list_datasets(ws)[0] == {**datastore.list_datasets(ws)[0], "name": "d", "n_records": 10}


def test_export_formats_split_and_registration(ws, tmp_path):
    filters.run(CurateConfig(dataset="d", workspace=str(ws.root)))
    datastore.set_status(ws, [6], "accepted")          # a reviewer keeps a flagged record: it is exported
    datastore.set_status(ws, [9], "rejected")
    exports = ws.root / "exports"
    out = dataset_export.export(ExportConfig(dataset="d", format="alpaca", out="d.jsonl", workspace=str(ws.root)))
    lines = [json.loads(l) for l in (exports / "d.jsonl").read_text().splitlines()]
    assert [l["instruction"] for l in lines] == [RECORDS[i]["instruction"] for i in (0, 5, 7)]
    assert set(lines[0]) == {"instruction", "input", "output"} and out["n_records"] == 3
    again = dataset_export.export(ExportConfig(dataset="d", format="alpaca", out=str(exports / "d2.jsonl"), workspace=str(ws.root)))
    assert again["version"] == out["version"]                                  # same content, same version
    datastore.edit_record(ws, 1, output="変更した回答です。")
    with pytest.raises(UserError, match="already exists"):       # never replaced without asking
        dataset_export.export(ExportConfig(dataset="d", format="alpaca", out="d.jsonl", workspace=str(ws.root)))
    changed = dataset_export.export(ExportConfig(dataset="d", format="alpaca", out="d.jsonl", overwrite=True,
                                         workspace=str(ws.root)))
    assert changed["version"] != out["version"]
    registered = {(r["name"], r["version"], r["kind"]) for r in ws.datasets()}
    assert ("d", out["version"], "alpaca") in registered and ("d", changed["version"], "alpaca") in registered

    text = dataset_export.export(ExportConfig(dataset="d", format="text", out="corpus.txt", workspace=str(ws.root)))
    assert (exports / "corpus.txt").read_text().split("\n\n")[0] == RECORDS[0]["instruction"] + "\n変更した回答です。"
    assert text["n_records"] == 3


def test_hf_export_has_a_seeded_split(workspace, tmp_path):
    from datasets import load_from_disk
    datastore.add_records(workspace, "big", [{"instruction": f"質問{i}は何ですか？", "output": f"回答{i}です。"}
                                             for i in range(200)])
    def split(seed, name):
        res = dataset_export.export(ExportConfig(dataset="big", format="hf", out=name, eval_fraction=0.1,
                                         seed=seed, workspace=str(workspace.root)))
        dd = load_from_disk(str(workspace.root / "exports" / name))
        return res, sorted(dd["eval"]["id"]), dd
    a, eval_a, dd = split(0, "a")
    b, eval_b, _ = split(0, "b")
    c, eval_c, _ = split(1, "c")
    assert len(dd["train"]) == 180 and len(eval_a) == 20 and a["split"]["eval"] == 20
    assert eval_a == eval_b and eval_a != eval_c and a["version"] == b["version"] != c["version"]
    assert {"instruction", "input", "output", "source_doc", "chunk_id"} <= set(dd["train"].column_names)


def test_export_errors(ws, tmp_path):
    with pytest.raises(UserError, match="format"):
        dataset_export.export(ExportConfig(dataset="d", format="csv", out=str(tmp_path / "x"), workspace=str(ws.root)))
    with pytest.raises(UserError, match="none accepted"):
        dataset_export.export(ExportConfig(dataset="d", format="alpaca", out=str(tmp_path / "x.jsonl"), only_accepted=True,
                                   workspace=str(ws.root)))


def test_cli_round_trip(workspace, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(dict(r, input=""), ensure_ascii=False) for r in RECORDS[:3]), encoding="utf-8")
    w = ["--workspace", str(workspace.root)]
    curate.main(["import", "--dataset", "c", "--jsonl", str(src), *w])
    curate.main(["filter", "--dataset", "c", *w])
    assert '"exact_duplicate": 1' in capsys.readouterr().out
    curate.main(["review", "--dataset", "c", "--flag", "any", "--status", "rejected", "--who", "cli", *w])
    curate.main(["edit", "1", "--output", "編集済みの回答です。", "--who", "cli", *w])
    curate.main(["list", "--dataset", "c", "--status", "pending", "--json", *w])
    listed = [json.loads(l) for l in capsys.readouterr().out.splitlines() if l.startswith("{")]
    assert [r["id"] for r in listed] == [1] and listed[0]["output"] == "編集済みの回答です。"
    curate.main(["export", "--dataset", "c", "--format", "alpaca", "--out", "c.jsonl", *w])
    assert json.loads(capsys.readouterr().out)["n_records"] == 1
    curate.main(["stats", "--dataset", "c", *w])
    assert json.loads(capsys.readouterr().out)["by_status"]["rejected"] == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x"}\n')
    with pytest.raises(SystemExit):
        curate.main(["import", "--dataset", "c", "--jsonl", str(bad), *w])
    # The command-line import is in the access log, as the page's is (it was not), and a refused one is not.
    from pipelines.core import audit
    imports = [e for e in audit.entries(workspace.root) if e["action"] == "import"]
    assert [(e["object"], e["detail"]["records"], e["detail"]["path"]) for e in imports] == \
        [("dataset:c", 3, str(src.resolve()))]
    assert imports[0]["user"].startswith("cli:")


def test_search_is_literal_for_percent_and_underscore(workspace):
    datastore.add_records(workspace, "lit", [{"instruction": "HbA1c の目標は？", "output": "7.0%未満"},
                                             {"instruction": "a_b とは？", "output": "記号"},
                                             {"instruction": "axb とは？", "output": "別物"}])
    find = lambda s: [r["instruction"] for r in datastore.list_records(workspace, "lit", search=s)]
    assert find("%") == ["HbA1c の目標は？"]
    assert find("a_b") == ["a_b とは？"]
    assert find("\\") == []


def test_exports_stay_inside_the_exports_folder(ws, tmp_path, monkeypatch):
    """An export never writes outside WORKSPACE/exports (or an allowed folder), through a link,
    over an existing file without asking, or a folder named like a file."""
    other = tmp_path / "other_ws"
    other.mkdir()
    (other / "registry.sqlite").write_text("precious")
    cfg = lambda out, **kw: ExportConfig(dataset="d", format="alpaca", out=out, workspace=str(ws.root), **kw)
    for bad, msg in ((str(other / "registry.sqlite"), "only inside"), ("../other_ws/registry.sqlite", "'..'"),
                     ("/etc/passwd", "only inside")):
        with pytest.raises(UserError, match=msg):
            dataset_export.export(cfg(bad, overwrite=True))
    assert (other / "registry.sqlite").read_text() == "precious"
    (ws.root / "exports").mkdir(exist_ok=True)
    (ws.root / "exports" / "link").symlink_to(other)
    with pytest.raises(UserError, match="symbolic link"):
        dataset_export.export(cfg("link/registry.sqlite", overwrite=True))
    with pytest.raises(UserError, match="writes a folder"):
        dataset_export.export(ExportConfig(dataset="d", format="hf", out="x.jsonl", workspace=str(ws.root)))
    assert not (ws.root / "exports" / "x.jsonl").exists()
    monkeypatch.setenv("JMEDLORA_EXPORT_DIRS", str(tmp_path / "shared"))
    res = dataset_export.export(cfg(str(tmp_path / "shared" / "d.jsonl")))
    assert res["path"] == str(tmp_path / "shared" / "d.jsonl")
    assert dataset_export.export(cfg(""))["path"] == str(ws.root / "exports" / "d.jsonl")   # default name


@pytest.mark.parametrize("fmt, name", [("alpaca", "d.jsonl"), ("hf", "d_hf")])
def test_a_planted_link_at_the_old_temporary_name_is_not_followed(fmt, name, ws, tmp_path):
    """An export's temporary file used to be NAME.tmp: a link planted there sent the write elsewhere."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (ws.root / "exports").mkdir(exist_ok=True)
    (ws.root / "exports" / f"{name}.tmp").symlink_to(victim)
    res = dataset_export.export(ExportConfig(dataset="d", format=fmt, out=name, workspace=str(ws.root)))
    assert victim.read_text() == "precious"
    assert res["path"] == str(ws.root / "exports" / name) and not Path(res["path"]).is_symlink()
    assert (ws.root / "exports" / f"{name}.tmp").is_symlink()               # left alone, never written through
