"""Evaluation batches: one ``jmedlora evaluate`` job per checkpoint, run one after
another by a tiny driver job, so a batch goes on (and can be followed) when the UI that
started it is closed or restarted.

    jmedlora eval-batch WORKSPACE/jobs/eval-20250101-120000     # reads batch.json there

Each checkpoint's evaluation is a job in its own output directory (``status.json``,
``events.jsonl``, ``job.log`` next to ``results.jsonl``), started in the driver's process
group: stopping the batch (``jobs.stop`` on its directory) forwards the STOP to the
evaluation that is running, which saves its answers and exits; the rest are not started.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core import cli, jobs
from pipelines.evaluation.evaluator import EvalConfig


def out_dir_for(evals_root: Path, model: str, data: str, template: str, max_new_tokens: int,
                method: str = "generate") -> Path:
    """A stable folder per (checkpoint, data, settings): asking again resumes or reloads it (the
    method counts only when it is not the paper's generate, so folders made before it still match)."""
    ident = json.dumps([model, str(Path(data).resolve()), template, max_new_tokens]
                       + ([method] if method != "generate" else []))
    slug = re.sub(r"[^A-Za-z0-9_.@-]+", "_", model)[-40:].strip("_") or "model"
    return evals_root / f"{slug}-{template}-{Path(data).stem}-{hashlib.sha1(ident.encode()).hexdigest()[:8]}"


def command_for(model: str, data: str, out: Path, *, shots: tuple[int, ...], template: str,
                limit: int | None, max_new_tokens: int, workspace: Path, method: str = "generate") -> list[str]:
    cmd = jobs.command("evaluate", "--model", model, "--data", str(data), "--out", str(out),
                             "--shots", *[str(s) for s in shots], "--template", template, "--workspace", str(workspace))
    if max_new_tokens != EvalConfig.max_new_tokens:
        cmd += ["--max-new-tokens", str(max_new_tokens)]
    if limit:
        cmd += ["--limit", str(limit)]
    if method != "generate":
        cmd += ["--method", method]
    return cmd


def shell_line(cmd: list[str]) -> str:
    return jobs.shell_line(cmd)


def error_from_log(text: str) -> str:
    """The engine's own message (``error: … Fix: …``) if it printed one, else the log's end."""
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        if ln.startswith("error:"):
            return "\n".join(lines[i:i + 12]).removeprefix("error: ")
    return "\n".join(lines[-15:])


# -- a batch ------------------------------------------------------------------------------

def start_batch(jobs_root: Path, tasks: list[dict]) -> jobs.Job:
    """``tasks``: ``{"model", "out", "cmd", "total"}`` each; returns the driver job."""
    batch_dir = Path(jobs_root) / f"eval-{time.strftime('%Y%m%d-%H%M%S')}-{len(list(Path(jobs_root).glob('eval-*')))}"
    batch_dir.mkdir(parents=True, exist_ok=True)
    jobs.write_json(batch_dir / "batch.json", {"tasks": [{**t, "out": str(t["out"])} for t in tasks]})
    return jobs.start(batch_dir, jobs.command("eval-batch", str(batch_dir)), kind="eval-batch",
                      cli="\n".join(shell_line(t["cmd"]) for t in tasks))


def latest_batch(jobs_root: Path) -> dict | None:
    found = jobs.list_jobs(jobs_root, kind="eval-batch")
    return found[0] if found else None


def batch_status(batch_dir: str | Path) -> dict:
    """The driver's status, with ``tasks``: each checkpoint's model, out, total, done, status, error."""
    st = jobs.status(batch_dir)
    tasks = []
    for t in jobs.read_json(Path(batch_dir) / "batch.json").get("tasks", []):
        ts = jobs.status(t["out"])
        if ts.get("started_at", 0) < st.get("started_at", 0) or "pid" not in ts:     # not started by this batch
            ts = {"status": "queued" if st["status"] in jobs.ACTIVE else "stopped"}
        done = t["total"] if ts["status"] == "finished" else int((ts.get("progress") or {}).get("done", 0))
        error = ""
        if ts["status"] == "failed":
            error = ts.get("message") or ""
            if not ts.get("end"):            # no error event: the log says what happened
                log = Path(t["out"]) / "job.log"
                error = error_from_log(log.read_text(encoding="utf-8", errors="replace")) if log.exists() else error
        tasks.append({**t, "status": ts["status"], "done": min(done, t["total"]), "error": error,
                      "started_at": ts.get("started_at"), "ended_at": (ts.get("end") or {}).get("time"),
                      "end": ts.get("end") if ts["status"] == "failed" else None})
    return {**st, "tasks": tasks}


@dataclass
class DriverConfig:
    batch_dir: str = field(metadata=cli.meta(cli.required(), cli.positional()))  # a batch folder holding batch.json


def main(argv: list[str] | None = None) -> None:
    """The driver: each evaluation in turn, a stop request passed on to the one running."""
    args = cli.config_from_args(DriverConfig, cli.config_parser("eval-batch", DriverConfig, __doc__).parse_args(argv))
    batch_dir = Path(args.batch_dir).resolve()
    tasks = jobs.read_json(batch_dir / "batch.json")["tasks"]
    events = jobs.EventWriter(batch_dir)
    stop = jobs.stop_event(events)
    events({"event": "start", "done": 0, "total": len(tasks)})
    with jobs.reporting(events):
        for i, t in enumerate(tasks):
            if stop.is_set():
                break
            job = jobs.start(t["out"], t["cmd"], kind="evaluate", own_session=False)
            while job.proc.poll() is None:
                if stop.is_set() and not (Path(t["out"]) / jobs.STOP_FILE).exists():
                    (Path(t["out"]) / jobs.STOP_FILE).write_text(str(time.time()))
                time.sleep(0.3)
            final = job.wait()
            events({"event": "progress", "done": i + 1, "total": len(tasks), "model": t["model"],
                    "status": final["status"]})
        events({"event": "stop" if stop.is_set() else "finish", "total": len(tasks)})


if __name__ == "__main__":
    main()
