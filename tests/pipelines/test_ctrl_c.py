"""Ctrl-C on a real ``python -m`` run: it stops at once, keeps what finished, says how to resume,
exits 130 without a traceback; running the same command again finishes the rest."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO, SAMPLE_QUESTIONS
from tests.pipelines.fake_openai_server import FakeOpenAIServer


def start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, proc: subprocess.Popen, limit_s: float = 600) -> None:
    """Poll until ``predicate()``; the limit only keeps a broken run from hanging the suite."""
    end = time.monotonic() + limit_s
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "the run never got going"
        time.sleep(0.2)


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def interrupt(proc: subprocess.Popen) -> tuple[int, str, float]:
    """Ctrl-C; the exit code, stderr and the seconds from the signal to the exit."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)          # a hang fails here; promptness is asserted by the caller
    return proc.returncode, err, time.monotonic() - t0


PROMPT_S = 20        # well under the 60 s a slow request takes: the exit did not wait for it


def test_ctrl_c_stops_evaluate_keeps_answers_and_a_rerun_resumes(tiny_llama_dir, workspace, tmp_path):
    out = tmp_path / "eval"
    args = ["pipelines.evaluation.evaluator", "--model", str(tiny_llama_dir), "--data", str(SAMPLE_QUESTIONS), "--out", str(out),
            "--batch-size", "1", "--max-new-tokens", "96", "--limit", "46", "--temperature", "0",
            "--workspace", str(workspace.root)]
    # 46 questions one at a time, up to 96 tokens each: the run is far from done when the first answer lands,
    # so the resume below is always exercised (it was skipped when a fast machine finished 6 first).
    total = 44                                                   # the 46 less its 2 image questions (skipped)
    proc = start(args, {})
    wait_for(lambda: lines(out / "results.jsonl") >= 1, proc)
    code, err, seconds = interrupt(proc)
    assert code == 130, err
    assert seconds < PROMPT_S, f"Ctrl-C took {seconds:.1f} s"
    assert "Traceback" not in err and "Resume: jmedlora evaluate" in err
    kept = lines(out / "results.jsonl")
    assert 1 <= kept < total, kept
    again = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert lines(out / "results.jsonl") == total                 # nothing answered twice, nothing lost


def test_ctrl_c_stops_datagen_promptly_and_a_rerun_resumes(workspace, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("\n".join(f"心不全の第{i}の知見。" for i in range(40)), encoding="utf-8")
    reply = "'instruction': 心不全とは何か？, 'output': 心臓のポンプ機能の低下である。"
    args = ["pipelines.data.generate", "--docs", str(docs), "--dataset", "d", "--model", "fake-model", "--pairs", "1",
            "--chunk-size", "4", "--chunk-overlap", "0", "--concurrency", "2", "--workspace", str(workspace.root)]
    # 10 chunks, 2 at a time; the first two answer at once, the rest take 60 s (a slow endpoint),
    # so an exit that waited for the requests in flight would take a minute.
    # The slow ones are decided by request number, not by a switch the test flips in time: on a
    # quiet machine the client once finished all ten before the switch.
    with FakeOpenAIServer(reply, latency=lambda n: 0.0 if n <= 2 else 60.0) as srv:
        args += ["--base-url", srv.base_url]
        proc = start(args, {})
        wait_for(lambda: srv.answered.total() >= 2, proc)
        time.sleep(1.0)                                          # the next two are in flight
        code, err, seconds = interrupt(proc)
        assert code == 130, err
        assert seconds < PROMPT_S, f"Ctrl-C took {seconds:.1f} s: it waited for the 60 s requests in flight"
        assert "Traceback" not in err and "terminate called" not in err
        assert "Resume: jmedlora datagen" in err
        sent = srv.requests
        srv.latency = 0.0
        again = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
    from pipelines.data import store as datastore
    assert datastore.count_records(workspace, "d") >= 10
    assert srv.requests < sent + 10          # answers saved before Ctrl-C were not asked for again
