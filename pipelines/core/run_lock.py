"""File locks: one writer per output folder (an exclusive ``flock`` on ``DIR/.lock``), and a
blocking lock around short critical sections shared by several processes (``waiting``).

Two evaluations appending to the same ``results.jsonl`` would duplicate rows and interleave
half lines, so the second is refused. The kernel drops a ``flock`` when its process ends,
however it ends (SIGKILL, out of memory), so a lock never outlives its holder and needs no
cleanup; the same fact tells a reader whether a run recorded as ``running`` still is.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from pipelines.core.errors import UserError

LOCK_FILE = ".lock"


def output_folder(folder: str | os.PathLike, what: str = "run", *, create: bool = True) -> Path:
    """Make (or reuse) a run's output folder, with a clear refusal instead of a traceback for a path
    that is an existing file, a name longer than the file system takes, or a folder it cannot create.
    Evaluation, training and merging open their folders this way; ``exclusive`` then locks it.
    ``create=False``: the checks alone (training checks before its slower ones, creates after them)."""
    path = Path(folder).expanduser()
    longest = max((len(part.encode()) for part in path.parts), default=0)
    try:
        name_max = os.pathconf(path.anchor or ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if longest > name_max:
        raise UserError(f"The output path {path} has a name of {longest} bytes; this file system takes {name_max}.",
                        "Choose a shorter --out name.", code="output.too_long",
                        params={"path": str(path)[:200], "n": longest, "max": name_max})
    if path.exists() and not path.is_dir():
        raise UserError(f"The output path {path} is an existing file, not a folder for the {what}'s results.",
                        "Choose another --out (a new or existing folder).", code="output.not_a_folder",
                        params={"path": str(path), "what": what})
    if not create:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"Cannot create the output folder {path}: {exc.strerror}.",
                        "Choose a folder you can write to (--out).", code="output.cannot_create",
                        params={"path": str(path), "errno": exc.errno}) from None
    return path


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, what: str = "run") -> Iterator[None]:
    """Hold the folder's lock for the block; a UserError naming the holder if it is taken."""
    path = Path(folder) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise UserError(f"Another {what} is writing to {folder} right now (process {holder}).",
                            "Wait for it to finish or stop it, or use another --out folder.",
                            code="lock.busy", params={"folder": str(folder), "pid": holder}) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)                      # closing the descriptor releases the lock


@contextlib.contextmanager
def waiting(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block, waiting for another process to release it
    (appending to the audit chain, converting the default model once)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)                      # closing the descriptor releases the lock


def held(folder: str | os.PathLike) -> bool | None:
    """Whether a live process holds the folder's lock (None: the folder never had one).

    Read-only: a shared probe on a read-only descriptor, released at once."""
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
