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
"""
from __future__ import annotations

import contextlib
import json
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
from pipelines.core.repo import REPO

JOB_DIR_ENV = "JMEDLORA_JOB_DIR"
STOP_FILE = "STOP"
EVENTS = "events.jsonl"
ACTIVE = ("queued", "running")
END_EVENTS = {"finish": "finished", "stop": "stopped", "error": "failed"}
# Held while a job's status is handed from one process to the next in this process's threads
# (a start, a reaper): a late reaper must not write over a restarted job.
_OWNER = threading.Lock()
DEAD = "the process ended without reporting (killed, out of memory, or machine restarted)"


# -- files ------------------------------------------------------------------------------

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


# -- events -------------------------------------------------------------------------------

class EventWriter:
    """Appends events to ``RUN/events.jsonl``; usable as an ``on_event`` callback."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> EventWriter | None:
        """The writer of the job this process runs as, or None when started by hand."""
        path = os.environ.get(JOB_DIR_ENV)
        return cls(path) if path else None

    def __call__(self, event: dict) -> None:
        line = json.dumps({**event, "time": event.get("time", time.time())}, ensure_ascii=False, default=str)
        with self._lock, open(self.run_dir / EVENTS, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def stop_requested(self) -> bool:
        return (self.run_dir / STOP_FILE).exists()


def tee(*callbacks: Callable[[dict], None] | None) -> Callable[[dict], None]:
    """One on_event that calls each given callback (None ones are left out)."""
    live = [c for c in callbacks if c is not None]

    def emit(event: dict) -> None:
        for c in live:
            c(event)
    return emit


@contextlib.contextmanager
def reporting(events: EventWriter | None):
    """Write an ``error`` event when the job fails, so its status says why (and not just 'died')."""
    try:
        yield
    except KeyboardInterrupt:                 # Ctrl-C: what finished is saved, as on a stop request
        if events is not None:
            events({"event": "stop", "message": "interrupted; what finished is saved"})
        raise
    except BaseException as exc:
        if events is not None and not isinstance(exc, SystemExit):
            from pipelines.core.errors import disk_full
            exc = disk_full(exc) or exc if isinstance(exc, Exception) else exc
            problem, fix = getattr(exc, "problem", None), getattr(exc, "fix", None)
            events({"event": "error", "message": str(exc) or type(exc).__name__, "problem": problem, "fix": fix,
                    "code": getattr(exc, "code", None), "params": getattr(exc, "params", None),
                    "kind": type(exc).__name__, **getattr(exc, "event_fields", {})})
        raise


def stop_event(events: EventWriter | None) -> threading.Event:
    """Set when the job is asked to stop: a STOP file in its directory, or SIGTERM."""
    flag = threading.Event()
    if events is None:
        return flag
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: flag.set())

    def watch():
        while not flag.wait(0.5):
            if events.stop_requested():
                flag.set()
    threading.Thread(target=watch, daemon=True, name="stop-watch").start()
    return flag


def read_events(run_dir: str | os.PathLike, offset: int = 0) -> tuple[list[dict], int]:
    """Complete events after byte ``offset``, and the offset to read from next time."""
    path = Path(run_dir) / EVENTS
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1                   # a line still being written waits for the next read
    events = []
    for line in data[:end].splitlines():
        with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
            events.append(json.loads(line))
    return events, offset + end


def last_events(run_dir: str | os.PathLike, tail_bytes: int = 1 << 16) -> list[dict]:
    """The events in the file's tail (enough for the latest progress and the end), read again
    from further back while the tail holds no whole event (a long list of privacy findings)."""
    path = Path(run_dir) / EVENTS
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return []
    while True:
        events, _ = read_events(run_dir, max(0, size - tail_bytes))
        if size <= tail_bytes:
            return events
        if len(events) > 1:
            return events[1:]                 # the first may be cut in half
        tail_bytes *= 4


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


def _died_silently(st: dict) -> bool:
    return st.get("message") == DEAD or st.get("message_code") in ("job.dead", "job.dead_disk_full")


DISK_FULL_BYTES = 16 * 2 ** 20
DEAD_DISK_FULL = ("the process ended without reporting, and the disk holding {path} is full ({free} free): "
                  "free space (old runs, checkpoints, exports), then resume")


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
        if st["status"] in ACTIVE or _died_silently(st):
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
        if now["status"] == "stopped" or _died_silently(now):
            update_status(run_dir, status="stopped", **say("job.stopped", "stopped by the user"))
    return status(run_dir)
