"""Training runs on disk: status that stays true, listing, checkpoints, stopping.

A run directory holds::

    config.json          the resolved TrainConfig (what the worker reads)
    run_card.json        config, dataset name and hash, library versions, git commit, hardware
    status.json          {status, pid, pid_start, step, max_steps, message, ...}
    metrics.jsonl        live metrics (pipelines.train_metrics)
    train.log            stdout and stderr of the launched processes
    checkpoints/step-N/  PEFT adapter (or full model for cpt full) + state/ for resume
    resume/              rolling resume point between checkpoints (not a published model)
    evals/step-N/        evaluation of checkpoint N when evaluate-each-checkpoint is on
    model/               cpt with cpt_mode=lora: the merged new base model

Status values: ``queued``, ``running``, ``finished``, ``failed``, ``stopped``. A run whose
process died without saying so (SIGKILL, power cut, OOM killer) reads as ``failed`` (or
``stopped`` if a stop was asked for): :func:`run_status` checks the recorded pid and its
start time, so a reused pid or a zombie is not taken for a live run.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

STATUSES = ("queued", "running", "finished", "failed", "stopped")
ACTIVE = ("queued", "running")
STOP_FILE = "STOP"
STATE_MARKER = "trainer_state.json"      # written last: a checkpoint without it is incomplete

def write_json(path: Path, data: dict) -> None:
    """Atomic: readers see the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


# -- processes -------------------------------------------------------------------------

def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rfind(")") + 2:].split()   # the command name may hold spaces
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_alive(pid: int | None, start_time: int | None) -> bool:
    if not pid:
        return False
    current = process_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


# -- status ----------------------------------------------------------------------------

def update_status(run_dir: Path, **fields) -> dict:
    path = Path(run_dir) / "status.json"
    status = read_json(path)
    status.update(fields, updated_at=time.time())
    write_json(path, status)
    return status


def run_status(run_dir: str | os.PathLike) -> dict:
    """The status record, with a dead process's ``running`` corrected to failed/stopped."""
    run_dir = Path(run_dir)
    status = read_json(run_dir / "status.json")
    if not status:
        return {"status": "failed", "message": "no status.json: not a run directory or never launched"}
    if status.get("status") in ACTIVE and not is_alive(status.get("pid"), status.get("pid_start")):
        if status.get("status") == "queued" and not status.get("pid"):
            return status                 # written, launch not yet attempted
        stopped = (run_dir / STOP_FILE).exists()
        status = dict(status, status="stopped" if stopped else "failed",
                      message=status.get("message") if stopped else
                      "the training process ended without reporting (killed, out of memory, or machine restarted); "
                      "resume it from its last checkpoint")
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
        runs.append({**row, "status": st.get("status"), "step": st.get("step", 0),
                     "max_steps": cfg.get("max_steps"), "method": cfg.get("method"),
                     "model": cfg.get("model"), "preset": cfg.get("preset"),
                     "message": st.get("message"), "updated_at": st.get("updated_at")})
    return runs


def run_card(run_dir: str | os.PathLike) -> dict:
    return read_json(Path(run_dir) / "run_card.json")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step}"


def list_checkpoints(run_dir: str | os.PathLike) -> list[dict]:
    """Complete checkpoints, by step: name, path, step, train_hours, kind, eval dir and summary."""
    out = []
    for d in sorted((Path(run_dir) / "checkpoints").glob("step-*"), key=lambda p: int(p.name[5:])):
        info = read_json(d / "checkpoint.json")
        if not info or not (d / "state" / STATE_MARKER).exists():
            continue
        eval_dir = Path(run_dir) / "evals" / d.name
        info["eval_dir"] = str(eval_dir) if eval_dir.exists() else None
        info["eval_summary"] = read_json(eval_dir / "summary.json") or None
        out.append(info)
    return out


def latest_resume_point(run_dir: Path) -> tuple[int, Path] | None:
    """(step, dir) of the newest complete training state: a checkpoint or the rolling one."""
    candidates = [Path(run_dir) / "resume"] + list((Path(run_dir) / "checkpoints").glob("step-*"))
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
    run_dir = Path(run_dir)
    (run_dir / STOP_FILE).write_text(str(time.time()))
    status = read_json(run_dir / "status.json")
    pid, start = status.get("pid"), status.get("pid_start")
    was_alive = is_alive(pid, start)
    deadline = time.time() + (0 if force else grace_s)
    while is_alive(pid, start) and time.time() < deadline:
        time.sleep(0.5)
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if not is_alive(pid, start):
            break
        try:
            os.killpg(status.get("pgid", pid), sig)
        except ProcessLookupError:
            break
        end = time.time() + wait
        while is_alive(pid, start) and time.time() < end:
            time.sleep(0.2)
    if was_alive:
        # Stragglers (a worker whose launcher already died) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(status.get("pgid", pid), signal.SIGKILL)
    if read_json(run_dir / "status.json").get("status") in ACTIVE and not is_alive(pid, start):
        update_status(run_dir, status="stopped", message="stopped by the user")
    return run_status(run_dir)
