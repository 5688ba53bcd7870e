"""Training runs on disk: status that stays true, listing, checkpoints, stopping.

A run directory holds::

    config.json          the resolved TrainConfig (what the worker reads)
    run_card.json        config, dataset name and hash, library versions, git commit, hardware
    status.json          {status, pid, pid_start, step, max_steps, message, ...} (pipelines.core.jobs)
    events.jsonl         start, progress (each logged step's metrics), checkpoint, finish/stop/error
    metrics.jsonl        live metrics (pipelines.training.metrics), rewound on resume: the loss curve
    train.log            stdout and stderr of the launched processes
    checkpoints/step-N/  PEFT adapter (or full model for cpt full) + state/ for resume
    resume/              rolling resume point between checkpoints (not a published model)
    evals/step-N/        evaluation of checkpoint N when evaluate-each-checkpoint is on
    model/               cpt with cpt_mode=lora: the merged new base model

Status values: ``queued``, ``running``, ``finished``, ``failed``, ``stopped``. A run whose
process died without saying so (SIGKILL, power cut, OOM killer) reads as ``failed`` (or
``stopped`` if a stop was asked for): :func:`run_status` checks the recorded pid and its
start time (``pipelines.core.jobs``), so a reused pid or a zombie is not taken for a live run.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from pipelines.core import jobs
from pipelines.core.jobs import ACTIVE, STOP_FILE, is_alive, process_start_time, read_json, update_status, write_json  # noqa: F401 (re-exported)

STATUSES = ("queued", "running", "finished", "failed", "stopped")
STATE_MARKER = "trainer_state.json"      # written last: a checkpoint without it is incomplete


def run_status(run_dir: str | os.PathLike) -> dict:
    """The status record (``jobs.status``), a dead process's ``running`` corrected to failed/stopped."""
    status = jobs.status(run_dir)
    message = status.get("message") or ""
    if message == jobs.DEAD:
        status["message"] = "the training process ended without reporting (killed, out of memory, or machine " \
                            "restarted); resume it from its last checkpoint"
    elif status.get("status") == "failed" and message.startswith("exited with code"):
        status["message"] = message + ", fix the cause and resume it from its last checkpoint"
    return status


# -- listing ---------------------------------------------------------------------------

def register_run(ws, run_id: str, run_name: str, run_dir: Path) -> None:
    with ws.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO train_runs (run_id, run_name, run_dir, created_at) VALUES (?,?,?,?)",
                     (run_id, run_name, str(run_dir), time.time()))


def list_runs(ws) -> list[dict]:
    """Every run this workspace launched (newest first), with its current status and last step."""
    runs = []
    for row in ws.query("SELECT * FROM train_runs ORDER BY created_at DESC"):
        run_dir = Path(row["run_dir"])
        if not run_dir.exists():
            continue
        cfg = read_json(run_dir / "config.json").get("config") or {}
        st = run_status(run_dir)
        runs.append({**row, "step": st.get("step", 0),
                     **{k: cfg.get(k) for k in ("max_steps", "method", "model", "preset")},
                     **{k: st.get(k) for k in ("status", "message", "message_code", "message_params", "end",
                                               "updated_at")}})
    return runs


def run_card(run_dir: str | os.PathLike) -> dict:
    return read_json(Path(run_dir) / "run_card.json")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step}"


def _complete_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, dir) of every complete checkpoint: ``step-N`` with its state marker. A leftover
    ``step-N.tmp`` or ``step-N.old`` (a kill mid-save) is not one, and never breaks a listing."""
    found = []
    for d in (Path(run_dir) / "checkpoints").glob("step-*"):
        m = re.fullmatch(r"step-(\d+)", d.name)
        if m and (d / "state" / STATE_MARKER).exists():
            found.append((int(m.group(1)), d))
    return sorted(found)


def _checkpoint_info(run_dir: Path, step: int, d: Path) -> dict:
    """``checkpoint.json``, or (killed between the save and the registration) what it will say."""
    info = read_json(d / "checkpoint.json")
    if info:
        return info
    saved = read_json(Path(run_dir) / "config.json")
    cfg, resolved = saved.get("config") or {}, saved.get("resolved") or {}
    state = read_json(d / "state" / STATE_MARKER)
    full = cfg.get("method") == "cpt" and cfg.get("cpt_mode", "full") == "full"
    run_name = cfg.get("run_name") or Path(run_dir).name
    return {"name": f"{run_name}@{step}", "step": step, "path": str(d), "kind": "base" if full else "adapter",
            "train_hours": state.get("elapsed_s", 0.0) / 3600, "run_id": resolved.get("run_id"),
            "saved_at": state.get("saved_at"), "unregistered": True}


def register_pending(ws, run_dir: str | os.PathLike) -> list[str]:
    """Register complete checkpoints a kill left unregistered (saved, then killed before the
    registry write); called when a run starts or resumes, never from a view. Returns their names."""
    run_dir = Path(run_dir)
    saved = read_json(run_dir / "config.json")
    cfg, resolved = saved.get("config") or {}, saved.get("resolved") or {}
    names = []
    for step, d in _complete_checkpoints(run_dir):
        info = _checkpoint_info(run_dir, step, d)
        if not info.pop("unregistered", False) and ws.model(info["name"]) is not None:
            continue
        write_json(d / "checkpoint.json", info)
        ws.register_model(info["name"], info["kind"], str(d), base_model=cfg.get("model"), step=step,
                          train_hours=info["train_hours"], run_id=resolved.get("run_id"),
                          meta={"method": cfg.get("method"), "run_dir": str(run_dir),
                                "data_hash": resolved.get("data_hash"), "registered_late": True})
        names.append(info["name"])
    return names


def list_checkpoints(run_dir: str | os.PathLike) -> list[dict]:
    """Complete checkpoints, by step: name, path, step, train_hours, kind, eval dir and summary."""
    out = []
    for step, d in _complete_checkpoints(run_dir):
        info = _checkpoint_info(Path(run_dir), step, d)
        eval_dir = Path(run_dir) / "evals" / d.name
        info["eval_dir"] = str(eval_dir) if eval_dir.exists() else None
        info["eval_summary"] = read_json(eval_dir / "summary.json") or None
        out.append(info)
    return out


def latest_resume_point(run_dir: Path) -> tuple[int, Path] | None:
    """(step, dir) of the newest complete training state: a checkpoint or the rolling one."""
    candidates = [Path(run_dir) / "resume"] + [d for _, d in _complete_checkpoints(run_dir)]
    best = None
    for d in candidates:
        state = read_json(d / "state" / STATE_MARKER)
        if state and (best is None or state["step"] > best[0]):
            best = (state["step"], d)
    return best


# -- stopping --------------------------------------------------------------------------

def stop_run(run_dir: str | os.PathLike, *, grace_s: float = 60.0, force: bool = False) -> dict:
    """Stop a run: ask it to save and exit, then end its process group if it does not.

    The worker checks for ``RUN/STOP`` after every step, saves a resume point and exits as
    ``stopped``. ``force`` (or a run that ignores the request for ``grace_s``) gets SIGTERM and
    then SIGKILL to the whole process group, so launcher and workers go together.
    """
    jobs.stop(run_dir, grace_s=grace_s, force=force)
    return run_status(run_dir)
