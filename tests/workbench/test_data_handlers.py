"""Data tab helpers that read a generation job's status (no browser)."""
from pipelines import jobs
from workbench import data_handlers as tab_data


def test_job_html_shows_counts_the_refusal_and_the_running_state():
    started = 1000.0
    running = {"status": "running", "dataset": "d", "started_at": started,
               "progress": {"event": "progress", "done": 2, "total": 5, "added": 3, "unparseable": 1,
                            "cached": 0, "errors": 0, "total_tokens": 40}}
    html = tab_data.job_html(running, "en")
    assert "runmon running" in html and "2/5" in html and "added 3 · unparseable 1" in html
    blocked = {"status": "failed", "dataset": "d", "started_at": started, "message": "Personal data found",
               "end": {"event": "error", "time": started + 2, "base_url": "http://192.0.2.1/v1",
                       "findings": [{"chunk_id": "case.txt@0", "label": "name", "text": "山田太郎"}]}}
    html = tab_data.job_html(blocked, "ja")
    assert "runmon failed" in html and "何も送信していません" in html and "http://192.0.2.1/v1" in html
    assert tab_data.findings_frame(blocked["end"]["findings"]).iloc[0]["chunk"] == "case.txt@0"
    finished = {**running, "status": "finished", "end": {"event": "finish", "time": started + 9, "done": 5,
                                                         "total": 5, "records": 0, "unparseable": 5}}
    assert tab_data.job_counters(finished)["done"] == 5
    assert "解析不能として保存済み" in tab_data.job_html(finished, "ja")


def test_latest_job_is_found_on_disk(workspace):
    assert tab_data.latest_job(workspace) is None
    root = workspace.subdir("jobs")
    for name in ("datagen-a", "eval-b", "datagen-c"):
        (root / name).mkdir()
    jobs.update_status(root / "datagen-a", status="finished", kind="datagen", started_at=1.0)
    jobs.update_status(root / "eval-b", status="finished", kind="eval-batch", started_at=3.0)
    jobs.update_status(root / "datagen-c", status="finished", kind="datagen", started_at=2.0)
    assert tab_data.latest_job(workspace)["run_dir"] == str(root / "datagen-c")
