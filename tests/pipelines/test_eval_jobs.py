"""Evaluation batches: stable output folders, commands that match the CLI, and the driver job
(run here with the tiny test job in place of evaluations, so it is fast)."""
from __future__ import annotations

import time

from pipelines.core import jobs
from pipelines.evaluation import batches as eval_jobs


def test_eval_dirs_are_stable_per_settings_and_commands_match_the_cli(tmp_path):
    a = eval_jobs.out_dir_for(tmp_path, "run@10", "q.jsonl", "ja", 256)
    assert a == eval_jobs.out_dir_for(tmp_path, "run@10", "q.jsonl", "ja", 256)
    assert a != eval_jobs.out_dir_for(tmp_path, "run@10", "q.jsonl", "en", 256)
    assert a != eval_jobs.out_dir_for(tmp_path, "run@10", "q.jsonl", "ja", 64)
    assert a.name.startswith("run@10-ja-q-")
    cmd = eval_jobs.command_for("default", "q.jsonl", a, shots=(0, 1), template="ja", limit=2,
                                max_new_tokens=8, workspace=tmp_path)
    from pipelines.evaluation.evaluator import build_parser
    args = build_parser().parse_args(cmd[3:])
    assert (args.model, args.shots, args.limit, args.max_new_tokens, args.out) == ("default", [0, 1], 2, 8, str(a))
    assert eval_jobs.shell_line(cmd).startswith("jmedlora evaluate --model default")


def test_error_from_log_prefers_the_engines_message():
    log = "loading\nerror: Model 'x' not found.\n  Fix: Use 'default'.\n"
    assert eval_jobs.error_from_log(log) == "Model 'x' not found.\n  Fix: Use 'default'."
    assert eval_jobs.error_from_log("a\nTraceback\nKeyError: 1") .endswith("KeyError: 1")


def _tasks(tmp_path, *counts):
    return [{"model": f"m{i}", "out": str(tmp_path / f"out{i}"), "total": n,
             "cmd": jobs.python_module("tests.pipelines.tiny_job", str(n))} for i, n in enumerate(counts)]


def test_a_batch_runs_each_evaluation_in_turn(tmp_path):
    job = eval_jobs.start_batch(tmp_path / "jobs", _tasks(tmp_path, 3, 2))
    assert job.cli.splitlines() == ["python -m tests.pipelines.tiny_job 3", "python -m tests.pipelines.tiny_job 2"]
    assert jobs.follow(job.run_dir, poll_s=0.1)["status"] == "finished"
    b = eval_jobs.batch_status(eval_jobs.latest_batch(tmp_path / "jobs")["run_dir"])
    assert [(t["status"], t["done"], t["total"]) for t in b["tasks"]] == [("finished", 3, 3), ("finished", 2, 2)]
    first, second = (jobs.status(t["out"]) for t in b["tasks"])
    assert first["end"]["time"] <= second["started_at"]                 # one after the other


def test_stopping_a_batch_stops_the_running_evaluation_and_starts_no_more(tmp_path):
    job = eval_jobs.start_batch(tmp_path / "jobs", _tasks(tmp_path, 100000, 3))
    for _ in range(600):
        if eval_jobs.batch_status(job.run_dir)["tasks"][0]["done"] >= 1:
            break
        time.sleep(0.05)
    final = jobs.stop(job.run_dir, grace_s=30)
    assert final["status"] == "stopped" and final["end"]["event"] == "stop"
    b = eval_jobs.batch_status(job.run_dir)
    assert [t["status"] for t in b["tasks"]] == ["stopped", "stopped"]
    assert jobs.status(b["tasks"][0]["out"])["end"]["event"] == "stop"      # it saved and exited by itself
    assert not (tmp_path / "out1").exists()
