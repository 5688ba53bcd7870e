"""Evaluations started from the UI: each checkpoint is one ``python -m pipelines.evaluate``
subprocess (the same CLI a researcher would type), run one after another in a background
thread. Output goes to a log file, never an undrained pipe; progress is read from the
``results.jsonl`` the engine appends to, so a page reload loses nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.evaluate import EvalConfig, read_results

REPO = Path(__file__).resolve().parent.parent


def out_dir_for(evals_root: Path, model: str, data: str, template: str, max_new_tokens: int) -> Path:
    """A stable folder per (checkpoint, data, settings): asking again resumes or reloads it."""
    ident = json.dumps([model, str(Path(data).resolve()), template, max_new_tokens])
    slug = re.sub(r"[^A-Za-z0-9_.@-]+", "_", model)[-40:].strip("_") or "model"
    return evals_root / f"{slug}-{template}-{Path(data).stem}-{hashlib.sha1(ident.encode()).hexdigest()[:8]}"


def command_for(model: str, data: str, out: Path, *, shots: tuple[int, ...], template: str,
                limit: int | None, max_new_tokens: int, workspace: Path) -> list[str]:
    cmd = [sys.executable, "-m", "pipelines.evaluate", "--model", model, "--data", str(data), "--out", str(out),
           "--shots", *[str(s) for s in shots], "--template", template, "--workspace", str(workspace)]
    if max_new_tokens != EvalConfig.max_new_tokens:
        cmd += ["--max-new-tokens", str(max_new_tokens)]
    if limit:
        cmd += ["--limit", str(limit)]
    return cmd


def shell_line(cmd: list[str]) -> str:
    return " ".join(shlex.quote("python" if i == 0 else c) for i, c in enumerate(cmd))


def error_from_log(text: str) -> str:
    """The engine's own message (``error: … Fix: …``) if it printed one, else the log's end."""
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        if ln.startswith("error:"):
            return "\n".join(lines[i:i + 12]).removeprefix("error: ")
    return "\n".join(lines[-15:])


@dataclass
class EvalTask:
    model: str
    out: Path
    cmd: list[str]
    total: int
    shots: tuple[int, ...]
    status: str = "queued"          # queued | running | finished | failed | stopped
    error: str = ""
    started: float | None = None
    ended: float | None = None

    @property
    def log(self) -> Path:
        return self.out / "ui.log"

    def done(self) -> int:
        rows = read_results(self.out)
        return min(self.total, len({(r["problem_id"], r["shots"]) for r in rows if r.get("shots") in self.shots}))


@dataclass
class EvalBatch:
    tasks: list[EvalTask]
    created: float = field(default_factory=time.time)
    _proc: subprocess.Popen | None = None
    _stop: bool = False

    @property
    def running(self) -> bool:
        return any(t.status in ("queued", "running") for t in self.tasks)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="eval-batch").start()

    def stop(self) -> None:
        self._stop = True
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()

    def _run(self) -> None:
        for t in self.tasks:
            if self._stop:
                t.status = "stopped"
                continue
            t.out.mkdir(parents=True, exist_ok=True)
            t.status, t.started = "running", time.time()
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
            with open(t.log, "w", encoding="utf-8") as log:
                self._proc = subprocess.Popen(t.cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, env=env)
                rc = self._proc.wait()
            t.ended = time.time()
            if self._stop:
                t.status = "stopped"
            elif rc == 0:
                t.status = "finished"
            else:
                t.status = "failed"
                t.error = error_from_log(t.log.read_text(encoding="utf-8", errors="replace"))

    def progress(self) -> tuple[int, int]:
        return sum(t.done() for t in self.tasks), sum(t.total for t in self.tasks)
