"""The first hour on a hospital PC, in figures: evaluation progress and memory per method.

    python bench/bench_first_hour.py [--model default] [--workspace W] [--limit 18] [--methods generate loglik both]

Each case runs ``jmedlora evaluate`` as the workbench does (a job: events in
``RUN/events.jsonl``) on the sample questions with the paper's Japanese template and settings,
0-shot and then 1-shot (the long prompts), and prints per case: seconds from the process start
to its first ``progress`` event and to its end, and the process's peak RSS (``wait4``: this
child alone, model weights included). Target for the embedded model: first progress within
seconds of the model being loaded, peak < 2 GB for every method.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_case(args, method: str, shots: int) -> dict:
    run = Path(tempfile.mkdtemp(prefix=f"first-hour-{method}-{shots}-"))
    cmd = [sys.executable, "-m", "pipelines.evaluation.evaluator", "--model", args.model, "--method", method,
           "--shots", str(shots), "--limit", str(args.limit), "--out", str(run / "out")]
    if args.workspace:
        cmd += ["--workspace", args.workspace]
    env = {**os.environ, "JMEDLORA_JOB_DIR": str(run), "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=open(run / "log", "wb"))
    first = started = None
    events = run / "events.jsonl"
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if events.exists():
            for line in events.read_text(encoding="utf-8").splitlines():
                e = json.loads(line)
                if e["event"] == "start" and started is None:
                    started = time.perf_counter() - t0
                if e["event"] == "progress" and first is None:
                    first = time.perf_counter() - t0
        if pid:
            break
        time.sleep(0.2)
    end = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed; see {run / 'log'}")
    summary = json.loads((run / "out" / "summary.json").read_text())
    return {"method": method, "shots": shots, "start_s": started, "first_progress_s": first, "end_s": end,
            "peak_rss_mb": usage.ru_maxrss / 1024, "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--workspace")
    ap.add_argument("--limit", type=int, default=18, help="questions per case (18: more than one full batch of 16)")
    ap.add_argument("--methods", nargs="+", default=["generate", "loglik", "both"])
    ap.add_argument("--shots", nargs="+", type=int, default=[0, 1])
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    print(f"model={args.model} questions per case={args.limit} (sample_ja.jsonl, template ja, paper settings)")
    for shots in args.shots:
        for method in args.methods:
            r = run_case(args, method, shots)
            print(f"{method:8s} {shots}-shot  start event {r['start_s'] or float('nan'):5.1f} s  "
                  f"first progress {r['first_progress_s'] or float('nan'):6.1f} s  end {r['end_s']:7.1f} s  "
                  f"peak RSS {r['peak_rss_mb']:6.0f} MB")


if __name__ == "__main__":
    main()
