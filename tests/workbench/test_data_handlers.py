"""Data tab handlers (no browser): job readers, and the handlers called as the page calls them."""
import json
from types import SimpleNamespace

import pytest

from pipelines.core import audit, jobs
from pipelines.core.errors import UserError
from pipelines.data import store as datastore
from workbench import data_handlers as h
from workbench import field_errors
from workbench.data_text import FIELDS
from workbench.state import AppState


def test_job_html_shows_counts_the_refusal_and_the_running_state():
    started = 1000.0
    running = {"status": "running", "dataset": "d", "started_at": started,
               "progress": {"event": "progress", "done": 2, "total": 5, "added": 3, "unparseable": 1,
                            "cached": 0, "errors": 0, "total_tokens": 40}}
    html = h.job_html(running, "en")
    assert "runmon running" in html and "2/5" in html and "added 3 · unparseable 1" in html
    # Answers still streaming in: the bar says so while the counts wait for a whole chunk.
    writing = {**running, "progress": {**running["progress"], "receiving": 2, "receiving_chars": 1234}}
    assert "生成中の回答 2 件・ここまで 1,234 文字" in h.job_html(writing, "ja")
    assert "2 answers being written, 1,234 chars so far" in h.job_html(writing, "en")
    assert "being written" not in html
    blocked = {"status": "failed", "dataset": "d", "started_at": started, "message": "Personal data found",
               "end": {"event": "error", "time": started + 2, "base_url": "http://192.0.2.1/v1",
                       "findings": [{"chunk_id": "case.txt@0", "label": "name", "text": "山田太郎"}]}}
    html = h.job_html(blocked, "ja")
    assert "runmon failed" in html and "何も送信していません" in html and "http://192.0.2.1/v1" in html
    assert h.findings_frame(blocked["end"]["findings"]).iloc[0]["chunk"] == "case.txt@0"
    # What was found is named in the page's language (the job's event carries the English label and the kind).
    found = [{"chunk_id": "case.txt@0", "kind": "phone", "label": "phone number", "text": "090-1234-5678"}]
    assert list(h.findings_frame(found, "ja").iloc[0])[1] == "電話番号"
    assert list(h.findings_frame(found, "en").iloc[0])[1] == "phone number"
    finished = {**running, "status": "finished", "end": {"event": "finish", "time": started + 9, "done": 5,
                                                         "total": 5, "records": 0, "unparseable": 5}}
    assert h.job_counters(finished)["done"] == 5
    assert "解析不能として保存済み" in h.job_html(finished, "ja")
    # A generation that failed on a user-fixable problem says it in Japanese, the field named as on the form.
    missing = {"status": "failed", "dataset": "d", "started_at": started, "message": "Document folder /x does not exist.",
               "end": {"event": "error", "time": started + 1, "problem": "Document folder /x does not exist.",
                       "fix": "Pass --docs DIR with .txt/.md/.pdf files.", "code": "docs.missing",
                       "params": {"path": "/x"}}}
    assert "文書フォルダ /x がありません" in h.job_html(missing, "ja")
    assert "Document folder /x does not exist." in h.job_html(missing, "en")


def test_latest_job_is_found_on_disk(workspace):
    assert h.latest_job(workspace) is None
    root = workspace.subdir("jobs")
    for name in ("datagen-a", "eval-b", "datagen-c"):
        (root / name).mkdir()
    jobs.update_status(root / "datagen-a", status="finished", kind="datagen", started_at=1.0)
    jobs.update_status(root / "eval-b", status="finished", kind="eval-batch", started_at=3.0)
    jobs.update_status(root / "datagen-c", status="finished", kind="datagen", started_at=2.0)
    assert h.latest_job(workspace)["run_dir"] == str(root / "datagen-c")


# -- handlers on a real workspace, as the page calls them --------------------------------------

REQUEST = SimpleNamespace(username="dr-sato")      # what gr.Request carries for a logged-in user


@pytest.fixture
def curated(workspace, tmp_path):
    rows = [{"instruction": f"心不全の治療について{i}番目の要点を説明してください。", "input": "",
             "output": "利尿薬で体液量を調整し、原因疾患を治療する。" * 2} for i in range(4)]
    src = workspace.root / "qa.jsonl"                  # a page imports from inside the workspace (page_paths)
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    state = AppState(workspace=workspace)
    msg, _ = h.import_jsonl(state, str(src), "qa", "ja", REQUEST)
    assert "4 件を取り込みました" in msg
    return state


def ids(state):
    return [r["id"] for r in datastore.list_records(state.workspace, "qa", limit=-1)]


def test_opening_a_record_is_a_view_in_the_access_log(curated):
    first = ids(curated)[0]
    instruction, *_ = h.load_record(curated, first, "ja", REQUEST)
    assert instruction.startswith("心不全の治療について")
    views = [e for e in audit.entries(curated.workspace.root) if e["action"] == "view"]
    assert [(e["user"], e["object"], e["detail"]["dataset"]) for e in views] == [("dr-sato", f"record:{first}", "qa")]
    h.load_record(curated, None, "ja", REQUEST)                           # nothing opened: nothing logged
    assert len([e for e in audit.entries(curated.workspace.root) if e["action"] == "view"]) == 1


def test_edits_and_reviews_name_the_logged_in_user_in_history_and_audit(curated):
    first, second = ids(curated)[:2]
    msg, hist = h.save_edit(curated, first, "改訂した質問", "", "改訂した回答", "ja", REQUEST)
    assert "保存しました" in msg and list(hist.columns) == ["日時", "利用者", "項目", "変更前", "変更後"]
    assert set(hist["利用者"]) == {"dr-sato"} and "改訂した回答" in set(hist["変更後"])
    msg, hist = h.set_status(curated, "accepted", second, "ja", None)     # --no-auth: no request user
    assert "採用" in msg and hist.iloc[-1]["利用者"] == "local" and hist.iloc[-1]["変更後"] == "採用"
    actions = [(e["user"], e["action"]) for e in audit.entries(curated.workspace.root)]
    assert actions == [("dr-sato", "import"), ("dr-sato", "edit"), ("local", "review")]
    assert audit.verify(curated.workspace.root).ok


def test_listing_shows_statuses_and_headers_in_the_page_language(curated):
    h.set_status(curated, "rejected", ids(curated)[0], "en", REQUEST)
    count, frame, fig = h.listing(curated, "qa", "rejected", "", "", 1, "ja")
    assert count == "1 件" and list(frame["状態"]) == ["除外"] and "件数" in fig.layout.yaxis.title.text
    count, frame, _ = h.listing(curated, "qa", "", "", "", 1, "en")
    assert count == "4 records" and "status" in frame.columns


def test_csv_export_has_a_bom_follows_the_scope_and_never_overwrites_unasked(curated):
    root = curated.workspace.root
    h.set_status(curated, "accepted", ids(curated)[0], "ja", REQUEST)
    assert h.default_scope("accepted") == "accepted" and h.default_scope("") == "exportable"
    assert h.default_name("qa", "csv") == "qa.csv" and h.default_name("qa", "alpaca") == "qa.jsonl"
    msg, download = h.export(curated, "qa", "csv", "qa.csv", "accepted", False, "ja", REQUEST)
    assert "1 件（採用済みのみ）" in msg and download["visible"]
    data = (root / "exports" / "qa.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and "心不全" in data.decode("utf-8-sig")
    assert download["value"] == str(root / "exports" / "qa.csv")
    msg, download = h.export(curated, "qa", "csv", "qa.csv", "exportable", False, "ja", REQUEST)
    assert "notice error" in msg and "既にあります（上書きしていません）" in msg
    assert "「同名のファイルがあれば上書きする」" in msg and "--overwrite" not in msg and not download["visible"]
    msg, _ = h.export(curated, "qa", "csv", "qa.csv", "exportable", True, "ja", REQUEST)
    assert "4 件（除外・フィルタ該当を除くすべて" in msg
    assert len((root / "exports" / "qa.csv").read_text(encoding="utf-8-sig").strip().splitlines()) == 5
    msg, _ = h.export(curated, "qa", "csv", "../elsewhere.csv", "exportable", True, "en", REQUEST)
    assert "notice error" in msg and not (root.parent / "elsewhere.csv").exists()
    msg, download = h.export(curated, "qa", "alpaca", "", "accepted", False, "en", REQUEST)
    assert "Exported 1 records (accepted only)" in msg and download["value"].endswith("qa.jsonl")
    exported = [e for e in audit.entries(root) if e["action"] == "export"]
    assert [e["detail"]["format"] for e in exported] == ["csv", "csv", "alpaca"]
    assert {e["user"] for e in exported} == {REQUEST.username}


def test_generation_job_carries_the_user_and_stop_knows_when_nothing_runs(curated, monkeypatch):
    started = {}
    monkeypatch.setattr(h.jobs, "start", lambda run_dir, cmd, **kw: started.update(kw) or
                        SimpleNamespace(run_dir=run_dir, cli="jmedlora datagen …"))
    monkeypatch.setattr(h.jobs, "status", lambda run_dir: {"status": "queued", "dataset": "d"})
    assert "実行中の生成はありません" in h.stop(curated, "ja")
    form = [str(curated.workspace.root), "d", "default", "", curate_template(), 1, 64, 0, False, "ja"]
    msg, _, _, cli, stop_btn = h.generate(curated, *form, request=REQUEST)
    assert started["env"] == {"JMEDLORA_USER": "dr-sato"} and "待機中" in msg and stop_btn["interactive"]
    assert audit.entries(curated.workspace.root)[-1]["action"] == "generate"


def curate_template() -> str:
    from pipelines.data import generate as datagen
    return datagen.DatagenConfig.template


def test_errors_name_the_form_field_not_the_flag():
    exc = UserError("pairs must be at least 1 (got 0).", "Pass --pairs 1 or more; --max-tokens too.")
    html = field_errors.error_html(exc, FIELDS, "ja")
    assert "「1チャンクあたりのペア数」" in html and "「1回答あたりの最大トークン数」" in html and "--" not in html
    assert field_errors.name_fields("max_tokens is 0", FIELDS, "en") == "「Max tokens per response」 is 0"
    assert field_errors.name_fields("--seed 3", FIELDS, "en") == "「seed」 3"       # no widget: its own name


def test_a_stop_names_who_asked_and_who_started_the_job(curated):
    """A job started by one user can be stopped by another: the access log names both."""
    import sys
    ws = curated.workspace
    run_dir = ws.subdir("jobs") / "datagen-d-20261206-000000"
    jobs.start(run_dir, [sys.executable, "-c", "import time; time.sleep(60)"], kind="datagen",
               env={"JMEDLORA_USER": "dr-sato"})
    try:
        msg = h.stop(curated, "ja", SimpleNamespace(username="dr-tanaka"))
        assert "停止" in msg, msg
        stops = [e for e in audit.entries(ws.root) if e["detail"].get("phase") == "stop requested"]
        assert [(e["user"], e["action"], e["detail"]["started_by"]) for e in stops] == \
            [("dr-tanaka", "generate", "dr-sato")]
        assert stops[0]["object"] == f"job:{run_dir.resolve()}"
    finally:
        jobs.stop(run_dir, force=True)
