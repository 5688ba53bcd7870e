"""What a job writes about itself while it runs, and how its events are read back.

The job's side of a job directory (``pipelines.core.jobs`` holds the launcher's side and is the
name callers use: it re-exports all of this). ``events.jsonl`` gets one
``{"event": NAME, "time": t, ...}`` per line from :class:`EventWriter`; ``STOP`` asks the job to
save and exit (:func:`stop_event` watches for it); :func:`reporting` turns a failure into an
``error`` event, so the status says why. Readers take only complete lines (:func:`read_events`),
or the file's tail (:func:`last_events`).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

JOB_DIR_ENV = "JMEDLORA_JOB_DIR"
STOP_FILE = "STOP"
EVENTS = "events.jsonl"
END_EVENTS = {"finish": "finished", "stop": "stopped", "error": "failed"}


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
