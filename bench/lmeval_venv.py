"""lm-evaluation-harness as a peer, shared by the benches that compare us with it.

``bench/bench_lmeval_server.py`` (multiple choice, our server vs lm-eval's ``hf``) and
``bench/bench_eval.py`` (generation, our engine vs lm-eval's ``hf`` ``generate_until``) both need:

- the throwaway venv, ``.venv-lmeval`` at the checkout root (gitignored), created on first use:
  ``python -m venv`` then ``pip install`` of the pinned versions below (torch's CPU wheel and lm-eval
  come from this machine's wheel folders through pip's own configuration). Nothing is installed into
  the project's venv;
- a custom task: the questions as a local JSONL file and a YAML naming it, in a temporary folder
  passed to lm-eval with ``--include_path``;
- one ``lm_eval`` command run offline, timed from outside (its start-up and model load included),
  and the per-sample records it writes with ``--log_samples``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-lmeval"
PINS = ["torch==2.13.0", "transformers==5.25.0", "accelerate==1.16.0", "lm-eval[api]==0.4.13"]


def ensure_venv() -> Path:
    """The interpreter of the throwaway lm-eval venv, created and filled on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if subprocess.run([str(python), "-c", "import lm_eval, transformers, torch"], capture_output=True).returncode:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True)
    return python


def lm_eval_version(python: Path) -> str:
    """The lm-eval version installed for ``python``."""
    return subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('lm_eval'))"],
                          capture_output=True, text=True, check=True).stdout.strip()


def write_task(folder: Path, task: str, rows: list[dict], config: str) -> None:
    """``rows`` as ``folder/<task>.jsonl`` and the task's YAML: its name and test split (that file),
    followed by ``config`` (the YAML lines saying what to do with a row)."""
    data = folder / f"{task}.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (folder / f"{task}.yaml").write_text(
        f"task: {task}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data))}\n"
        "test_split: test\n" + config, encoding="utf-8")


def run_lm_eval(python: Path, task: str, task_dir: Path, out: Path, args: list[str]) -> tuple[str, float]:
    """One ``lm_eval`` run of ``task`` (``--log_samples`` into ``out``) with ``args`` (model, batch …),
    offline; returns its stderr (lm-eval's log and progress bars) and wall seconds. Exits on failure."""
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    env.pop("OPENAI_API_KEY", None)
    cmd = [str(python), "-m", "lm_eval", *args, "--tasks", task, "--include_path", str(task_dir),
           "--output_path", str(out), "--log_samples"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"lm_eval {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc.stderr, wall


def results(out: Path, task: str) -> dict:
    """The task's metrics from the newest ``results_*.json`` under ``out``."""
    return json.loads(max(out.rglob("results_*.json")).read_text())["results"][task]


def samples(out: Path, task: str) -> list[dict]:
    """The ``--log_samples`` records of ``task`` under ``out`` (``doc_id``, ``arguments``, ``resps`` …)."""
    return [json.loads(line) for f in out.rglob(f"samples_{task}_*.jsonl") for line in f.read_text().splitlines()]
