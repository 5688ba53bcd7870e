"""Long jobs (train, evaluate, datagen, the merge search to come) as processes that outlive
whatever started them: a terminal, a test, or the workbench.

    job = jobs.start(run_dir, jobs.command("evaluate", "--model", ...))  # returns at once
    jobs.follow(run_dir, on_event)      # each event as the job writes it; returns the final status
    jobs.stop(run_dir)                  # STOP file (graceful), then SIGTERM / SIGKILL to the process group
    jobs.status(run_dir)                # status.json, a dead process's ``running`` corrected
    jobs.list_jobs(ws.subdir("jobs"))   # what a restarted workbench re-attaches to

A job directory holds::

    status.json     written by the launcher: status, pid, pid_start, pgid, command, cli, started_at
    events.jsonl    written by the job itself (EventWriter): {"event": NAME, "time": t, ...} per line
    job.log         stdout and stderr (a file: a pipe nobody drains would stall the job)
    STOP            present once a stop was asked for

Event names: ``start``, ``progress``, ``finish``, ``stop``, ``error`` (the last three end a job:
finished, stopped, failed); jobs add their own (``retry``, ``budget``, ``checkpoint``, …).
A job learns its directory from ``$JMEDLORA_JOB_DIR`` (:meth:`EventWriter.from_env`), so the
command line the UI shows is the one a researcher would type.

This module is the launcher (start, follow, stop) and the one name callers use: ``jobs.X`` for
everything about jobs. What a job writes about itself lives in :mod:`pipelines.core.job_events`
and the status file in :mod:`pipelines.core.job_status`; both are re-exported here.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipelines.core import commands
from pipelines.core.job_events import (
    END_EVENTS,
    EVENTS,
    JOB_DIR_ENV,
    STOP_FILE,
    EventWriter,
    last_events,
    read_events,
    reporting,
    stop_event,
    tee,
)
from pipelines.core.job_status import (
    ACTIVE,
    DEAD,
    DEAD_DISK_FULL,
    DISK_FULL_BYTES,
    died_silently,
    free_bytes,
    is_alive,
    list_jobs,
    process_start_time,
    read_json,
    say,
    status,
    update_status,
    write_json,
)
from pipelines.core.repo import REPO

__all__ = [
    # the job directory's files and events (job_events)
    "JOB_DIR_ENV", "STOP_FILE", "EVENTS", "END_EVENTS", "EventWriter", "tee", "reporting", "stop_event",
    "read_events", "last_events",
    # status.json and what it means now (job_status)
    "ACTIVE", "DEAD", "DISK_FULL_BYTES", "DEAD_DISK_FULL", "write_json", "read_json", "say", "update_status",
    "process_start_time", "is_alive", "status", "free_bytes", "list_jobs",
    # starting, following, stopping (here)
    "python_module", "command", "shell_line", "Job", "start", "follow", "stop",
]
# Held while a job's status is handed from one process to the next in this process's threads
# (a start, a reaper): a late reaper must not write over a restarted job.
_OWNER = threading.Lock()


# -- starting ----------------------------------------------------------------------------------

def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]


def command(name: str, *args: str) -> list[str]:
    """The process for ``jmedlora NAME ARGS``: this interpreter running NAME's module (``python -m``
    form, so a job depends neither on PATH nor on the console script being installed)."""
    return python_module(commands.COMMANDS[name], *args)


def shell_line(cmd: list[str]) -> str:
    """The command as a person would type it: ``jmedlora NAME …`` for a workbench command,
    otherwise ``python`` (not this interpreter's path)."""
    return commands.display(cmd) or shlex.join(["python" if i == 0 and c == sys.executable else c
                                                for i, c in enumerate(cmd)])


@dataclass
class Job:
    run_dir: str
    pid: int
    command: list[str]
    cli: str                                   # the equivalent command line, for the UI to show
    proc: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    @property
    def command_line(self) -> str:
        return shlex.join(self.command)

    def wait(self) -> dict:
        if self.proc is not None:
            self.proc.wait()
        while status(self.run_dir)["status"] in ACTIVE:      # the reaper records the end
            time.sleep(0.05)
        return status(self.run_dir)


def start(run_dir: str | os.PathLike, cmd: list[str], *, kind: str = "", cli: str | None = None,
          log_name: str = "job.log", env: dict | None = None, own_session: bool = True,
          on_exit: Callable[[int], None] | None = None, **status_fields) -> Job:
    """Start ``cmd`` in the background for the job in ``run_dir``; returns once it runs.

    ``own_session``: the job survives the UI or terminal that started it and :func:`stop` can
    signal its whole process group (off only for a child that should die with its parent).
    """
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STOP_FILE).unlink(missing_ok=True)
    cli = cli or shell_line(cmd)
    env = {**os.environ, **(env or {}), JOB_DIR_ENV: str(run_dir), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    with _OWNER:      # pid None: a reaper of this folder's previous process sees that it is not its own
        # started_by: the logged-in user a page passes in the job's environment (a stop names both).
        update_status(run_dir, **status_fields, status="queued", kind=kind or status_fields.get("kind", ""),
                      command=cmd, cli=cli, started_at=time.time(), exit_code=None, pid=None, pid_start=None,
                      started_by=(env or {}).get("JMEDLORA_USER"))
    with open(run_dir / log_name, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=own_session)
    pgid = proc.pid if own_session else os.getpgid(0)
    with _OWNER:
        update_status(run_dir, status="running", pid=proc.pid, pgid=pgid if own_session else None,
                      pid_start=process_start_time(proc.pid))

    def reap():                           # no zombie left behind, and an unreported end is recorded
        code = proc.wait()
        with _OWNER:
            if read_json(run_dir / "status.json").get("pid") == proc.pid:     # not restarted meanwhile
                # A full disk cannot take the end either: status() then reads the dead process and the
                # disk itself (job.dead_disk_full) rather than this thread dying with a traceback.
                with contextlib.suppress(OSError):
                    _record_end(run_dir, code, log_name)
        if on_exit:
            on_exit(code)
    threading.Thread(target=reap, daemon=True, name=f"reap-{proc.pid}").start()
    return Job(str(run_dir), proc.pid, cmd, cli, proc)


def _record_end(run_dir: Path, code: int, log_name: str) -> None:
    """The exit code, and an end the process did not report itself (stopped, exited, killed)."""
    st = status(run_dir)
    fields: dict = {"exit_code": code}
    if read_json(run_dir / "status.json").get("status") in ACTIVE:
        if st["status"] in ACTIVE or died_silently(st):
            stopped = (run_dir / STOP_FILE).exists()
            st["status"] = "stopped" if stopped else "finished" if code == 0 else "failed"
            st.update(say("job.stopped", "stopped by the user") if stopped else say("job.finished", "")
                      if code == 0 else say("job.exit", f"exited with code {code}{' (killed)' if code < 0 else ''}"
                                                        f"; see {log_name}", code=code, log=log_name))
        fields.update(status=st["status"], message=st.get("message", ""), message_code=st.get("message_code"),
                      message_params=st.get("message_params"))
    update_status(run_dir, **fields)


# -- following and stopping ---------------------------------------------------------------------

def follow(run_dir: str | os.PathLike, on_event: Callable[[dict], None] | None = None,
           poll_s: float = 1.0, offset: int = 0) -> dict:
    """Block until the job ends, passing each event to ``on_event``; returns the final status."""
    emit = on_event or (lambda e: None)
    while True:
        st = status(run_dir)
        events, offset = read_events(run_dir, offset)
        for e in events:
            emit(e)
        if st["status"] not in ACTIVE:
            events, offset = read_events(run_dir, offset)      # written between the two reads
            for e in events:
                emit(e)
            return status(run_dir)
        time.sleep(poll_s)


def stop(run_dir: str | os.PathLike, *, grace_s: float = 60.0, force: bool = False) -> dict:
    """Ask the job to save and exit (STOP file); if it has not after ``grace_s`` (or ``force``),
    SIGTERM then SIGKILL its whole process group, so a launcher and its workers go together."""
    run_dir = Path(run_dir)
    (run_dir / STOP_FILE).write_text(str(time.time()))
    st = read_json(run_dir / "status.json")
    pid, start_time = st.get("pid"), st.get("pid_start")
    pgid = st.get("pgid")
    was_alive = is_alive(pid, start_time)
    deadline = time.time() + (0 if force else grace_s)
    while is_alive(pid, start_time) and time.time() < deadline:
        time.sleep(0.2)
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if not is_alive(pid, start_time):
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig) if pgid else os.kill(pid, sig)
        end = time.time() + wait
        while is_alive(pid, start_time) and time.time() < end:
            time.sleep(0.2)
    if was_alive and pgid:
        # Stragglers (a worker whose launcher already died) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    if read_json(run_dir / "status.json").get("status") in ACTIVE and not is_alive(pid, start_time):
        now = status(run_dir)
        if now["status"] == "stopped" or died_silently(now):
            update_status(run_dir, status="stopped", **say("job.stopped", "stopped by the user"))
    return status(run_dir)
