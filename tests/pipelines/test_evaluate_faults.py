"""Evaluation under faults: torn lines, two writers, kills, resumes, full disks, long prompts."""
import errno
import json
import signal
import subprocess
import sys
import time

import pytest

from pipelines.core import audit, run_lock
from pipelines.core.errors import UserError
from pipelines.evaluation import evaluator as evaluate
from pipelines.evaluation import results
from pipelines.evaluation.evaluator import run
from pipelines.evaluation.results import drop_torn_tail, read_results
from tests.pipelines.test_evaluate import config


def test_torn_last_line_is_dropped_and_that_question_redone(workspace, tiny_llama_dir, tmp_path):
    out = tmp_path / "ev"
    run(config(tiny_llama_dir, out, limit=2, shots=(0,)))
    results = out / "results.jsonl"
    whole = results.read_bytes()
    third = json.dumps({"problem_id": "cut", "shots": 0, "response": "a"})
    results.write_bytes(whole + third[:17].encode())          # killed (or disk full) mid-line
    events = []
    run(config(tiny_llama_dir, out, limit=3, shots=(0,)), events.append)
    lines = results.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(ln) for ln in lines]                     # every line whole: no append onto a half line
    assert results.read_bytes().startswith(whole)
    assert len(rows) == 3 and len({(r["problem_id"], r["shots"]) for r in rows}) == 3
    assert any(e["event"] == "warning" and "incomplete last line" in e["message"] for e in events)
    assert json.loads((out / "summary.json").read_text())["by_shots"]["0"]["n"] == 3


def test_drop_torn_tail_keeps_whole_lines(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b"x" * 200_000)            # a tail longer than one read block
    assert drop_torn_tail(path) == 200_000 and path.read_bytes() == b'{"a": 1}\n'
    assert drop_torn_tail(path) == 0
    path.write_bytes(b'{"no newline at all"')
    drop_torn_tail(path)
    assert path.read_bytes() == b""


def test_a_second_evaluation_into_the_same_out_is_refused(workspace, tiny_llama_dir, tmp_path):
    out = tmp_path / "ev"
    out.mkdir()
    with run_lock.exclusive(out, "evaluation"):
        with pytest.raises(UserError, match="Another evaluation is writing to"):
            run(config(tiny_llama_dir, out, limit=1, shots=(0,)))
    assert not (out / "results.jsonl").exists()
    run(config(tiny_llama_dir, out, limit=1, shots=(0,)))      # free again once the holder is done
    assert len(read_results(out)) == 1


def test_the_lock_dies_with_its_process_and_the_registry_says_failed(workspace, tmp_path):
    out = tmp_path / "ev"
    out.mkdir()
    workspace.record_evaluation(str(out), model="m", adapter=None, data="d", config={}, status="running")
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from pipelines import run_lock\n"
                               f"with run_lock.exclusive({str(out)!r}):\n"
                               "    print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert run_lock.held(out) is True
        assert workspace.evaluations()[0]["status"] == "running"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert run_lock.held(out) is False
    (ev,) = workspace.evaluations()
    assert ev["status"] == "failed" and "without reporting" in ev["message"]
    # reading wrote nothing: the registry row is unchanged
    assert workspace.query("SELECT status FROM evaluations")[0]["status"] == "running"


def test_resumed_sampling_run_answers_as_an_uninterrupted_one(workspace, tiny_llama_dir, tmp_path):
    sampled = dict(shots=(0,), temperature=1.0, top_p=0.95, max_new_tokens=5, seed=7, batch_size=4)
    run(config(tiny_llama_dir, tmp_path / "whole", limit=4, **sampled))
    run(config(tiny_llama_dir, tmp_path / "parts", limit=2, **sampled))
    run(config(tiny_llama_dir, tmp_path / "parts", limit=4, **sampled))
    whole = {r["problem_id"]: r["response"] for r in read_results(tmp_path / "whole")}
    parts = {r["problem_id"]: r["response"] for r in read_results(tmp_path / "parts")}
    assert len(whole) == 4 and whole == parts
    assert len(set(whole.values())) > 1                          # sampling was on: answers differ


def test_fewer_answers_than_planned_is_never_finished(workspace, tiny_llama_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate, "_evaluate", lambda todo, *a, **kw: 0)   # an engine that answered nothing
    events = []
    summary = run(config(tiny_llama_dir, tmp_path / "ev", limit=2, shots=(0,)), events.append)
    assert summary["incomplete"] and summary["planned"] == 2 and summary["answered"] == 0
    assert workspace.evaluations()[0]["status"] == "stopped"
    assert events[-1]["event"] == "stop" and "only 0 of 2" in events[-1]["message"]


def test_prompt_over_the_context_is_reported_per_question(workspace, tiny_llama_dir, tmp_path, monkeypatch):
    from pipelines.models.generation import LocalGenerator
    monkeypatch.setattr(LocalGenerator, "context_length", lambda self: 40)
    events = []
    run(config(tiny_llama_dir, tmp_path / "ev", limit=2, shots=(0,)), events.append)
    rows = read_results(tmp_path / "ev")
    assert len(rows) == 2
    for r in rows:
        assert r["context_overflow"]["context"] == 40 and r["context_overflow"]["prompt_tokens"] > 34
        assert r["response"] == "" and r["accuracy"] == 0.0
    warned = [e for e in events if e["event"] == "warning"]
    assert {e["problem_id"] for e in warned} == {r["problem_id"] for r in rows}
    assert "exceeds the model's context of 40" in warned[0]["message"]


def test_disk_full_while_answering_names_the_path_and_keeps_earlier_answers(workspace, tiny_llama_dir, tmp_path,
                                                                            monkeypatch):
    out = tmp_path / "ev"
    run(config(tiny_llama_dir, out, limit=1, shots=(0,)))
    before = (out / "results.jsonl").read_bytes()
    real_dumps = json.dumps

    def full(obj, *a, **kw):
        if isinstance(obj, dict) and "response" in obj:
            raise OSError(errno.ENOSPC, "No space left on device", str(out / "results.jsonl"))
        return real_dumps(obj, *a, **kw)
    monkeypatch.setattr(results.json, "dumps", full)
    with pytest.raises(UserError, match="disk is full") as err:
        run(config(tiny_llama_dir, out, limit=2, shots=(0,)))
    assert "results.jsonl" in str(err.value) and "MB free" in str(err.value)
    assert (out / "results.jsonl").read_bytes() == before
    monkeypatch.undo()
    assert workspace.evaluations()[0]["status"] == "failed"


def test_start_and_finish_are_audited_with_the_user_from_the_environment(workspace, tiny_llama_dir, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv(audit.USER_ENV, "dr_sato")
    run(config(tiny_llama_dir, tmp_path / "ev", limit=1, shots=(0,)))
    mine = [e for e in audit.entries(workspace.root) if e["action"] == "evaluate"]
    assert [(e["user"], e["detail"]["phase"]) for e in mine] == [("dr_sato", "start"), ("dr_sato", "finish")]
    assert audit.verify(workspace.root).ok


def test_current_user_defaults_to_the_os_user(monkeypatch):
    monkeypatch.delenv(audit.USER_ENV, raising=False)
    assert audit.current_user().startswith("cli:")


def test_accepted_alternatives_are_counted_in_the_summary():
    rows = [{"problem_id": "a", "shots": 0, "points": 1, "accuracy": 1.0, "accepted": [["a"], ["d"]]},
            {"problem_id": "b", "shots": 0, "points": 1, "accuracy": 0.0, "accepted": [["b"]]}]
    exam = results.summarize(rows)[0].exam.to_dict()
    assert exam["questions_with_alternatives"] == 1
