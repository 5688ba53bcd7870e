"""A job's ``status.json`` and what it means now: written by the launcher, read by anyone.

``pipelines.core.jobs`` re-exports all of this and is the name callers use. The file is written
atomically (:func:`write_json`) and merged into (:func:`update_status`); a message goes in English
with a code a UI translates (:func:`say`). :func:`status` reads it back with what the file alone
cannot say: the end the job reported in its events, and a process that died without reporting
(matched by pid *and* start time, so a reused pid is not taken for the job), read as a full disk
when the disk holding the job has next to no room left.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from pipelines.core.job_events import END_EVENTS, STOP_FILE, last_events

ACTIVE = ("queued", "running")
DEAD = "the process ended without reporting (killed, out of memory, or machine restarted)"
DISK_FULL_BYTES = 16 * 2 ** 20
DEAD_DISK_FULL = ("the process ended without reporting, and the disk holding {path} is full ({free} free): "
                  "free space (old runs, checkpoints, exports), then resume")


# -- the file ------------------------------------------------------------------------------

def write_json(path: Path, data: dict) -> None:
    """Atomic: readers see the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def say(code: str, text: str, /, **params) -> dict:
    """Status fields for a message: the English ``text`` (CLIs, logs) and a ``code`` + ``params``
    a UI renders in its own language (workbench/messages_ja.py ``STATUS``)."""
    return {"message": text, "message_code": code, "message_params": params}


def update_status(run_dir: str | os.PathLike, **fields) -> dict:
    """Merge ``fields`` into ``status.json``; a new message without a code drops the old code."""
    if "message" in fields and "message_code" not in fields:
        fields.update(message_code=None, message_params=None)
    path = Path(run_dir) / "status.json"
    status = read_json(path)
    status.update(fields, updated_at=time.time())
    write_json(path, status)
    return status


# -- processes ----------------------------------------------------------------------------

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


# -- status ---------------------------------------------------------------------------------

def status(run_dir: str | os.PathLike) -> dict:
    """The job's status: ``status.json``, its end taken from the events, a dead process's
    ``running`` corrected to failed (or stopped, if a stop was asked for). ``progress`` is
    the latest progress (or start) event of this start, ``end`` the event that ended it."""
    run_dir = Path(run_dir)
    st = read_json(run_dir / "status.json")
    if not st:
        return {"status": "failed", **say("job.no_status", "no status.json: not a job directory or never started")}
    since = st.get("started_at", 0)
    for e in reversed(last_events(run_dir)):
        if e.get("time", 0) < since:
            break
        if e.get("event") in ("progress", "start") and "progress" not in st:
            st["progress"] = e
        if e.get("event") in END_EVENTS and "end" not in st:
            st["end"] = e
    end = st.get("end")
    if st.get("status") in ACTIVE and end:
        st["status"] = END_EVENTS[end["event"]]
        if end.get("message") and end.get("message") != st.get("message"):
            st.update(message=end["message"], message_code=end.get("message_code"),
                      message_params=end.get("message_params"))
    if st.get("status") in ACTIVE and not is_alive(st.get("pid"), st.get("pid_start")):
        if st.get("status") == "queued" and not st.get("pid"):
            return st                             # written, start not yet attempted
        stopped = (run_dir / STOP_FILE).exists()
        free = free_bytes(run_dir)
        if stopped:
            st.update(status="stopped", **say("job.stopped", "stopped by the user"))
        elif free is not None and free < DISK_FULL_BYTES:
            # A full disk also kills the report of the failure (status.json cannot be written): say
            # what is likely, rather than "killed or out of memory".
            st.update(status="failed", **say("job.dead_disk_full", DEAD_DISK_FULL.format(
                path=run_dir, free=f"{free / 1e6:.1f} MB"), path=str(run_dir), free=f"{free / 1e6:.1f} MB"))
        else:
            st.update(status="failed", **say("job.dead", DEAD))
    return st


def died_silently(st: dict) -> bool:
    """Whether :func:`status` read the job as a process that ended without reporting."""
    return st.get("message") == DEAD or st.get("message_code") in ("job.dead", "job.dead_disk_full")


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes a non-root writer can still use on the disk holding ``path`` (None if unknown)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def list_jobs(root: str | os.PathLike, kind: str | None = None) -> list[dict]:
    """Job directories under ``root`` (newest first), each status with its ``run_dir``."""
    out = []
    for path in Path(root).glob("*/status.json"):
        st = status(path.parent)
        if kind is None or st.get("kind") == kind:
            out.append({**st, "run_dir": str(path.parent)})
    return sorted(out, key=lambda s: s.get("started_at") or 0, reverse=True)
