"""The job runner on a tiny real ``python -m`` job: events, graceful stop, dead processes, re-attach."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from pipelines.core import job_status, jobs


def _start(run_dir, *args):
    return jobs.start(run_dir, jobs.python_module("tests.pipelines.tiny_job", *args), kind="tiny")


def _wait_for(pred, what):
    for _ in range(600):                       # bounded by iterations, not by wall-clock assertions
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def test_follow_passes_every_event_and_returns_the_final_status(tmp_path):
    job = _start(tmp_path / "a", "5")
    assert job.cli == "python -m tests.pipelines.tiny_job 5"
    seen = []
    final = jobs.follow(job.run_dir, seen.append, poll_s=0.05)
    assert final["status"] == "finished" and final["pid"] == job.pid
    assert [e["event"] for e in seen] == ["start"] + ["progress"] * 5 + ["finish"]
    assert all("time" in e for e in seen)
    assert final["progress"]["done"] == 5
    _wait_for(lambda: jobs.read_json(tmp_path / "a" / "status.json").get("exit_code") == 0, "reaped")


def test_an_error_is_reported_with_its_fix(tmp_path):
    job = _start(tmp_path / "b", "5", "--fail")
    final = jobs.follow(job.run_dir, poll_s=0.05)
    assert final["status"] == "failed"
    assert final["end"]["problem"] == "step 2 is broken" and final["end"]["fix"] == "do not pass --fail"
    assert "error: step 2 is broken" in (tmp_path / "b" / "job.log").read_text()


def test_graceful_stop_keeps_finished_work(tmp_path):
    job = _start(tmp_path / "c", "100000")
    _wait_for(lambda: (jobs.status(job.run_dir).get("progress") or {}).get("done", 0) >= 3, "three steps")
    final = jobs.stop(job.run_dir, grace_s=30)
    assert final["status"] == "stopped"
    assert final["end"]["event"] == "stop"              # the job said so itself: no signal was needed
    done = final["end"]["done"]
    assert (tmp_path / "c" / "done.txt").read_text().split() == [str(i) for i in range(1, done + 1)]


def test_a_job_that_ignores_stop_is_killed_with_its_process_group(tmp_path):
    job = _start(tmp_path / "d", "100000", "--hang")
    _wait_for(lambda: (jobs.status(job.run_dir).get("progress") or {}).get("done", 0) >= 1, "a step")
    final = jobs.stop(job.run_dir, grace_s=0.3)
    assert final["status"] == "stopped" and not jobs.is_alive(job.pid, final["pid_start"])


def test_sigkill_reads_as_failed_not_running(tmp_path):
    job = _start(tmp_path / "e", "100000")
    _wait_for(lambda: (jobs.status(job.run_dir).get("progress") or {}).get("done", 0) >= 1, "a step")
    os.kill(job.pid, signal.SIGKILL)
    job.proc.wait()
    st = jobs.status(job.run_dir)
    assert st["status"] == "failed" and ("without reporting" in st["message"] or "(killed)" in st["message"])


def test_status_is_checked_against_pid_and_start_time(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = jobs.process_start_time(proc.pid)
    jobs.update_status(tmp_path, status="running", pid=proc.pid, pid_start=start)
    proc.wait()
    assert jobs.status(tmp_path)["status"] == "failed"
    (tmp_path / jobs.STOP_FILE).write_text("x")
    assert jobs.status(tmp_path)["status"] == "stopped"
    (tmp_path / jobs.STOP_FILE).unlink()
    jobs.update_status(tmp_path, status="running", pid=os.getpid(), pid_start=1)     # a reused pid
    assert jobs.status(tmp_path)["status"] == "failed"
    jobs.update_status(tmp_path, status="running", pid=os.getpid(), pid_start=jobs.process_start_time(os.getpid()))
    assert jobs.status(tmp_path)["status"] == "running"


def test_a_restarted_ui_reattaches_from_the_job_directories(tmp_path):
    """A second process (a restarted workbench) lists the jobs and follows the live one."""
    root = tmp_path / "jobs"
    done = _start(root / "done", "2")
    jobs.follow(done.run_dir, poll_s=0.05)
    live = _start(root / "live", "100000")
    _wait_for(lambda: jobs.status(live.run_dir)["status"] == "running", "running")
    listing = subprocess.run([sys.executable, "-c", "import json, sys; from pipelines import jobs; "
                              f"print(json.dumps([(j['run_dir'], j['status']) for j in jobs.list_jobs({str(root)!r}, 'tiny')]))"],
                             capture_output=True, text=True, check=True, cwd=jobs.REPO).stdout
    assert __import__("json").loads(listing) == [[live.run_dir, "running"], [done.run_dir, "finished"]]
    seen = []
    stopper = subprocess.Popen([sys.executable, "-c", f"from pipelines import jobs; jobs.stop({live.run_dir!r})"],
                               cwd=jobs.REPO)
    final = jobs.follow(live.run_dir, seen.append, poll_s=0.05)
    stopper.wait()
    assert final["status"] == "stopped" and seen[0]["event"] == "start" and seen[-1]["event"] == "stop"


def test_read_events_waits_for_a_whole_line(tmp_path):
    (tmp_path / jobs.EVENTS).write_text('{"event": "start"}\n{"event": "pro')
    events, offset = jobs.read_events(tmp_path)
    assert [e["event"] for e in events] == ["start"]
    with open(tmp_path / jobs.EVENTS, "a") as fh:
        fh.write('gress"}\n')
    assert [e["event"] for e in jobs.read_events(tmp_path, offset)[0]] == ["progress"]


def test_a_long_last_event_is_read_whole(tmp_path):
    import json
    big = {"event": "error", "findings": [{"text": "x" * 100}] * 5000}
    with open(tmp_path / jobs.EVENTS, "w") as fh:
        fh.write('{"event": "start"}\n' * 3000 + json.dumps(big) + "\n")
    assert jobs.last_events(tmp_path)[-1] == big


def test_a_late_reaper_leaves_the_restarted_job_alone(tmp_path, monkeypatch):
    """A job restarted in its folder (resume) before the first process's reaper ran: the old
    reaper must not write its end over the new job's status."""
    import threading
    gate, first = threading.Event(), []
    wait = subprocess.Popen.wait

    def held_wait(self, *args, **kwargs):
        code = wait(self, *args, **kwargs)
        if threading.current_thread().name == f"reap-{first[0]}" if first else False:
            gate.wait(30)
        return code
    monkeypatch.setattr(subprocess.Popen, "wait", held_wait)
    old = _start(tmp_path / "r", "1")
    first.append(old.pid)
    _wait_for(lambda: old.proc.poll() is not None, "the first process ended")
    new = _start(tmp_path / "r", "100000")
    gate.set()
    reaper = next(t for t in threading.enumerate() if t.name == f"reap-{old.pid}")
    reaper.join(30)
    st = jobs.status(new.run_dir)
    assert st["status"] == "running" and st["pid"] == new.pid and st["exit_code"] is None, st
    assert jobs.stop(new.run_dir, grace_s=30)["status"] == "stopped"


def test_a_job_that_died_on_a_full_disk_says_so_not_killed_or_out_of_memory(tmp_path, monkeypatch):
    """On a full disk the worker cannot even write why it failed: the silent end is read as the disk,
    when the disk holding the run has next to no room, instead of "killed, out of memory"."""
    from pipelines.training import runs as train_runs
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    jobs.update_status(tmp_path, status="running", pid=proc.pid, pid_start=jobs.process_start_time(proc.pid))
    proc.wait()
    # status() reads the disk where it lives (job_status); jobs.free_bytes is the same function, re-exported.
    monkeypatch.setattr(job_status, "free_bytes", lambda path: 200_000)
    st = train_runs.run_status(tmp_path)
    assert st["status"] == "failed" and st["message_code"] == "job.dead_disk_full", st
    assert "disk" in st["message"] and "0.2 MB" in st["message"] and "out of memory" not in st["message"]
    monkeypatch.setattr(job_status, "free_bytes", lambda path: 50 * 2 ** 30)
    assert "out of memory" in train_runs.run_status(tmp_path)["message"]         # room left: the old reading
    monkeypatch.undo()
    assert jobs.free_bytes(tmp_path) > 0 and jobs.free_bytes(tmp_path / "no such folder") is None
