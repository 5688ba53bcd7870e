"""The merge search as a job: one event vocabulary in events.jsonl, a graceful stop, a resume."""
from __future__ import annotations

import time

import pytest

from pipelines.core import jobs
from pipelines.core.errors import UserError
from pipelines.merging.evolve import MergeConfig
from pipelines.merging.jobs import command_for, merge_status, start_merge
from tests.pipelines.test_merge import make_adapter, small_questions


def test_command_names_only_what_differs_from_the_defaults():
    cmd = command_for(MergeConfig(inputs=("a@1", "a@2"), dev="d.jsonl", budget=3, out="o"))
    assert cmd[1:] == ["-m", "pipelines.merging.evolve", "--inputs", "a@1", "a@2", "--dev", "d.jsonl", "--budget", "3",
                       "--out", "o"]


def test_plain_mistakes_are_refused_before_a_job_starts(workspace, tmp_path):
    with pytest.raises(UserError, match="dev set"):
        start_merge(MergeConfig(inputs=("a", "b"), out=str(tmp_path / "m")), workspace)
    assert not (tmp_path / "m" / "status.json").exists()


def test_a_stopped_merge_job_resumes_and_reports(workspace, tiny_llama_dir, tmp_path):
    a1 = make_adapter(tiny_llama_dir, tmp_path / "a1", seed=1)
    a2 = make_adapter(tiny_llama_dir, tmp_path / "a2", seed=2)
    out = tmp_path / "m"
    config = MergeConfig(inputs=(str(a1), str(a2)), dev=str(small_questions(tmp_path / "dev.jsonl", 4)),
                         test_fraction=0.5, budget=40, population=4, batch_size=4, out=str(out))
    # A budget the tiny model cannot finish before the stop arrives (budget 4 once finished first).
    job = start_merge(config, workspace)
    while job.proc.poll() is None and not any(e["event"] == "progress" for e in jobs.read_events(out)[0]):
        time.sleep(0.2)
    stopped = jobs.stop(out)
    assert stopped["status"] == "stopped", stopped
    while jobs.read_json(out / "status.json").get("exit_code") is None:
        time.sleep(0.1)      # this process's reaper of the first start records its end before the resume
    first = [e["event"] for e in jobs.read_events(out)[0]]
    assert first[0] == "start" and first[-1] == "stop" and "progress" in first
    n_before = len(merge_status(out)["candidates"])
    assert 1 <= n_before < 42

    final = start_merge(MergeConfig(resume=str(out)), workspace).wait()
    assert final["status"] == "finished", (out / "job.log").read_text()
    events = jobs.read_events(out)[0]
    assert {e["event"] for e in events} <= {"start", "progress", "finish", "stop", "error"}
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] == 42
    assert all(e["best"] >= e["score"] or e["best"] == max(p["score"] for p in progress[:i + 1])
               for i, e in enumerate(progress))
    st = merge_status(out)
    assert len(st["candidates"]) == 42 and st["best_so_far"][-1] == max(c["score"] for c in st["candidates"])
    assert st["report"]["registered_as"] == events[-1]["registered_as"] == "merge-1"
    assert workspace.model("merge-1")["kind"] == "adapter"
