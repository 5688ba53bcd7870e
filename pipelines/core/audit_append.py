"""Appending to the access log: ``record`` one entry, and ``current_user``, whom a pipeline acts for.

This is the only code that writes into ``audit/``, and ``record`` does all of it under the
exclusive append lock: the key on first use (with a signed head at seq 0), the repair of a torn
last line, catching up a head left behind by a crash, an alarm entry for a head that cannot be
trusted, one entry cut to fit its line, and the line and the head written all or nothing (a full
disk rolls back and raises ``DiskFull``). Apart from verifying (``audit_verify``), which only
reads; both follow the format in ``audit_format``, where the log and its threat model are described.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path

from pipelines.core import run_lock
from pipelines.core.audit_format import (ACTIONS, CUT_FLOOR, FIELD_MAX, GENESIS, LINE_MAX, SYSTEM, VERSION, Head,
                                         entry_hash, head_bytes, head_mac, head_problem, last_entry, load_key,
                                         parse_head)
from pipelines.core.errors import UserError


class DiskFull(UserError, OSError):
    """The disk filled during an append. Also an OSError: callers that log a failed audit write and
    go on (the UI's ``users.record``) keep doing so."""

    def __init__(self, path: Path, errno_: int = errno.ENOSPC):
        try:
            free_mb = shutil.disk_usage(path.parent).free / 1e6
        except OSError:
            free_mb = None
        free = "free space unknown" if free_mb is None else f"{free_mb:,.0f} MB free there"
        super().__init__(f"The disk is full: the access log entry could not be written to {path} ({free}). The log "
                         "was left as it was before this entry.",
                         "Free space on that disk (old runs, checkpoints, exports), then repeat the action: it is "
                         "logged once there is room.", code="audit.disk_full",
                         params={"path": str(path), "free_mb": free_mb})
        self.errno = errno_


def _dir(root: Path) -> Path:
    d = Path(root) / "audit"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


# -- the key ------------------------------------------------------------------------------------------


def _new_key(d: Path) -> bytes:
    """Make the key (under the append lock). Written aside, then published with link(), which
    fails if another process got there first: none reads a key file still being written. A signed
    head at seq 0 goes with it, so that "a key but no head" means "deleted", and a first append
    that fails (a full disk) still leaves a log that verifies."""
    path, tmp, created = d / "key", d / f"key.{os.getpid()}.{secrets.token_hex(4)}", False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
            created = True
        key = load_key(d)
        if created and not (d / "head").exists() and not _size(d / "audit.jsonl"):
            _write_head(d, key, 0, GENESIS)
    except OSError as exc:
        if created:                           # nobody signed anything with it yet
            path.unlink(missing_ok=True)
        full = _disk_full(exc, path)
        if full is not None:
            raise full from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return key


def _first_key(d: Path) -> bytes:
    """A new key, unless entries exist: signing on with another key would leave the old entries
    unverifiable even once the lost key is found."""
    if _size(d / "audit.jsonl") or (d / "head").exists():
        raise UserError(f"audit/key is missing in {d}, but the log is there: its entries cannot be verified "
                        "or extended without it.",
                        "restore audit/key from a backup. To start a new log instead, move the audit folder "
                        "aside (keep it for the auditor).", code="audit.no_key", params={"path": str(d / "key")})
    return _new_key(d)


# -- the head ------------------------------------------------------------------------------------------


def _read_head(d: Path, key: bytes) -> Head:
    return parse_head(head_bytes(d), key)


def _write_head(d: Path, key: bytes, seq: int, digest: str) -> None:
    head = {"seq": seq, "hash": digest}
    head["mac"] = head_mac(key, head)
    tmp = d / f".head.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(head).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, d / "head")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- one line and its size -------------------------------------------------------------------------


def _cut(text: str, keep: int) -> str:
    return text if len(text) <= keep else text[:keep] + f"…[cut: {len(text) - keep} chars]"


def _clean(value):
    """JSON-safe: lone surrogates (a browser can send them) would make the line unencodable."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _encoded(value) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def _bounded(entry: dict) -> dict:
    """``entry`` with every string at most FIELD_MAX characters and the line under LINE_MAX bytes:
    the largest detail strings are cut first, then the user and object, then the detail is folded
    into one string."""
    detail = {}
    for k, v in _clean(entry["detail"]).items():
        if not isinstance(v, str) and _encoded(v) > FIELD_MAX:
            v = json.dumps(v, ensure_ascii=False)            # a long list or dict: cut as its text
        detail[k] = v
    full = {("user",): _clean(entry["user"]), ("object",): _clean(entry["object"]),
            **{("detail", k): v for k, v in detail.items() if isinstance(v, str)}}
    keep = {path: FIELD_MAX for path in full}
    folded = False
    while True:
        out = {**entry, "detail": dict(detail), "hash": GENESIS}
        for path, text in full.items():
            (out["detail"] if path[0] == "detail" else out)[path[-1]] = _cut(text, keep[path])
        if _encoded(out) < LINE_MAX - 1:
            del out["hash"]
            return out
        # Shrink the largest detail string still long; then user and object.
        longest = max((p for p in full if keep[p] > CUT_FLOOR and len(full[p]) > CUT_FLOOR),
                      key=lambda p: (p[0] == "detail", _encoded(_cut(full[p], keep[p]))), default=None)
        if longest is not None:
            keep[longest] = max(CUT_FLOOR, min(keep[longest], len(full[longest])) // 2)
        elif not folded:                                    # too many small values: one string
            folded, text = True, json.dumps(detail, ensure_ascii=False)
            detail = {"folded": text}
            full = {p: t for p, t in full.items() if p[0] != "detail"} | {("detail", "folded"): text}
            keep[("detail", "folded")] = FIELD_MAX
        else:
            raise AssertionError("an audit line could not be cut to size")   # unreachable: floors are small


def _line(entry: dict) -> bytes:
    return (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")


# -- appending -------------------------------------------------------------------------------------------


USER_ENV = "JMEDLORA_USER"


def current_user() -> str:
    """Who a pipeline acts for: the logged-in user the UI passes in ``$JMEDLORA_USER`` when it
    starts a job, else ``cli:<OS user>`` (a command typed in a terminal)."""
    user = os.environ.get(USER_ENV, "").strip()
    if user:
        return user
    import getpass
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):           # no passwd entry (a container's arbitrary uid)
        return f"cli:uid{os.getuid()}"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _tail(path: Path) -> tuple[bytes | None, bytes]:
    """(the last complete line without its newline, None if there is none; the bytes after the
    last newline): read from the end, so an append costs the same however long the log is."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return None, b""
    with fh:
        pos, buf = fh.seek(0, os.SEEK_END), b""
        while pos > 0 and buf.count(b"\n") < 2:
            step = min(65536, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
    end = buf.rfind(b"\n") + 1
    return (buf[:end - 1].rsplit(b"\n", 1)[-1] if end else None), buf[end:]


def _plan(key: bytes, head: Head, last_line: bytes | None, torn: bytes) -> tuple[int, str, list[dict], bool]:
    """Where the next entry goes: the (seq, hash) it follows, the log's own entries to write
    before it (their details), and whether the torn bytes at the end are an interrupted write to
    cut (True) or bytes to keep as evidence, sealed into a line of their own (False)."""
    last = last_entry(key, last_line)
    problem = head_problem(head, last, last_line is not None)
    if problem is not None:
        # An untrusted head: follow the log's last entry, and say so in the log, where it stays:
        # signing a fresh head over a cut log must not make the cut vanish.
        seq, prev = (last["seq"], last["hash"]) if last else (head.seq, head.hash)
        return seq, prev, [{"alarm": problem}], False
    system = [{"upgraded": "signed head"}] if head.state == "unsigned" else []
    if torn and _agrees(head, last, last_line is not None):
        system.insert(0, {"repaired": "torn tail", "bytes": len(torn)})
        torn_is_interrupted = True
    else:
        torn_is_interrupted = False
    # A signed head trails the log only when a writer died between its line and the head (the
    # line is authentic: nobody without the key made it): go on from the line.
    if last is not None and last["seq"] > head.seq:
        return last["seq"], last["hash"], system, torn_is_interrupted
    return head.seq, head.hash, system, torn_is_interrupted


def _agrees(head: Head, last: dict | None, any_lines: bool) -> bool:
    """Whether the log ends where the head says, or past it (a head left behind by a crash)."""
    if last is None:
        return not any_lines and head.seq == 0
    return (last["seq"], last["hash"]) == (head.seq, head.hash) or last["seq"] > head.seq


def _disk_full(exc: OSError, path: Path) -> DiskFull | None:
    return DiskFull(path, exc.errno) if exc.errno in (errno.ENOSPC, errno.EDQUOT) else None


def _append(d: Path, key: bytes, blob: bytes, cut: bytes, newest: dict) -> None:
    """Append ``blob`` (whole lines) and move the head to ``newest``, all or nothing: the line in
    one write, fsync, then the head; on any failure (a full disk) the log goes back to its size
    before. ``cut``: torn bytes at the end, removed first (and put back on failure)."""
    path = d / "audit.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        base = os.fstat(fd).st_size - len(cut)
        try:
            if cut:
                os.ftruncate(fd, base)
            if os.write(fd, blob) != len(blob):        # a short write: the disk filled part way
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
            _write_head(d, key, newest["seq"], newest["hash"])
        except BaseException as exc:
            with contextlib.suppress(OSError):       # if even this fails, verify sees a torn write
                os.ftruncate(fd, base)
                if cut:
                    os.write(fd, cut)
            full = _disk_full(exc, path) if isinstance(exc, OSError) else None
            if full is not None:
                raise full from exc
            raise
    finally:
        os.close(fd)


def record(root: str | os.PathLike, user: str, action: str, obj: str = "", **detail) -> dict:
    """Append one entry (durably: fsync before returning) and return it. First, under the same
    lock, repair a torn last line, catch up a head left behind by a crash, and note in the log a
    head that cannot be trusted."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; use one of {ACTIONS}")
    d = _dir(Path(root))
    with run_lock.waiting(d / "lock"):
        key = load_key(d) or _first_key(d)
        last_line, torn = _tail(d / "audit.jsonl")
        seq, prev, system, cut = _plan(key, _read_head(d, key), last_line, torn)
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        new = []
        for who, act, what, det in [*((SYSTEM, "admin", "audit", s) for s in system),
                                    (str(user or "?"), action, str(obj), detail)]:
            e = _bounded({"v": VERSION, "seq": seq + 1, "time": now, "user": who, "action": act, "object": what,
                          "detail": det, "prev": prev})
            e["hash"] = prev = entry_hash(key, e)
            seq = e["seq"]
            new.append(e)
        blob = (b"\n" if torn and not cut else b"") + b"".join(_line(e) for e in new)
        _append(d, key, blob, torn if cut else b"", new[-1])
    return new[-1]
