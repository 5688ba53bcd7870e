"""The access log: append-only, hash-chained, verifiable (MHLW guideline 6.0: who, when, what).

Every login attempt and every action on data (view, generate, edit, export, train, evaluate,
rate, merge) is one JSON line in ``WORKSPACE/audit/audit.jsonl``::

    {"v": 2, "seq": 17, "time": "2026-11-25T21:03:11.204Z", "user": "dr_sato", "action": "export",
     "object": "dataset:demo", "detail": {...}, "prev": "<hash of entry 16>", "hash": "<this entry>"}

``hash`` = HMAC-SHA256 over the entry without its hash, keyed by ``audit/key`` (32 random bytes
as hex, 0600, made by the first ``record`` together with a signed head at seq 0). Each entry
names its predecessor's hash, so editing, deleting, inserting or reordering a line breaks the
chain at that line, and without the key nobody can forge a consistent replacement.
``audit/head`` holds the newest seq and hash and an HMAC over them (``mac``, same key), so a cut
tail is detected whether the head was left alone or rewritten to match, and a key without a
head, or a head past an empty log, means the log was deleted. Writers in several processes (the
UI, a training run, a CLI) append under an exclusive file lock, so the chain never forks;
``verify`` holds the same lock shared while it reads. A line is at most ~8 KB: strings over 1,000
characters are cut and marked ``…[cut: N chars]`` (a login name is typed before any password).

Threat model: someone who can change the files but does not hold the key. Detected (``verify``
exits 1 and says TAMPERED): an edited, deleted, inserted, reordered or re-signed entry; a cut
tail; a forged, malformed or deleted head; a deleted log (key left); a line that is not an
entry. What an append finds wrong with the head it writes into the log (an ``admin`` entry by
``system`` with an ``alarm``), so the fresh head it signs cannot launder a cut. Not tampering
(exit 1, said apart, repaired by the next append): a torn last line (a write interrupted by a
crash; a write that fails, e.g. on a full disk, is rolled back at once; the repair is logged)
and a head left behind by a crash. NOT detectable from inside this folder: deleting the log,
head and key together (a fresh workspace); an old head put back with the log cut to match it;
anything done by someone who can read the key (the workbench's own OS user). The defence there
is the folder's OS permissions and a copy of the log kept elsewhere. A head written by the
version before the signed head has no mac: the log verifies with a note and is upgraded on the
next append (an ``admin`` entry ``{"upgraded": "signed head"}``). A log cut back to before that
upgrade, with an unsigned head, looks the same: on a workspace this version has written to,
treat the note as tampering.

    jmedlora audit verify [--workspace DIR]      # exit 1 and name the first bad entry
    jmedlora audit show [--user U] [--action A] [--limit N] [--workspace DIR]
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pipelines.core import cli, run_lock
from pipelines.core.errors import UserError, cli_guard

ACTIONS = ("login", "login_failed", "login_locked", "logout", "view", "generate", "edit", "review", "export",
           "import", "train", "evaluate", "rate", "merge", "serve", "admin")
GENESIS = "0" * 64
VERSION = 2                   # entries carry it: an unsigned head on a log this version wrote is forged
FIELDS = ("seq", "time", "user", "action", "object")
FIELD_MAX = 1000              # characters of one user, object or detail value
LINE_MAX = 8000               # bytes of one line (a login name is typed by anyone, before any password)
CUT_FLOOR = 64                # a string shortened to fit the line keeps at least this much
SYSTEM = "system"             # who writes the log's own entries (repairs, alarms, the upgrade)

TORN = "torn write at the end (a write interrupted, e.g. disk full): repaired on the next append"
DELETED = "the log was deleted (key present, no entries)"


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


# -- the key and the MACs --------------------------------------------------------------------------


def _load_key(d: Path) -> bytes | None:
    """The key, None when there is none yet; a UserError (never a traceback) when it is damaged."""
    try:
        raw = (d / "key").read_bytes()
    except FileNotFoundError:
        return None
    try:
        key = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != 32:
        raise UserError(f"audit/key is malformed (not 64 hexadecimal digits: {len(raw)} bytes): the log cannot be "
                        "verified or extended.", "restore it from a backup; the log cannot be verified without it.",
                        code="audit.bad_key", params={"path": str(d / "key")})
    return key


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
        key = _load_key(d)
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


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _digest(key: bytes, entry: dict) -> str:
    return hmac.new(key, _canonical({k: v for k, v in entry.items() if k != "hash"}), hashlib.sha256).hexdigest()


def _head_mac(key: bytes, head: dict) -> str:
    # Its own prefix: a head's MAC can never pass for an entry's hash, nor the reverse.
    body = b"audit head\n" + _canonical({k: v for k, v in head.items() if k != "mac"})
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _authentic(key: bytes, e) -> bool:
    return isinstance(e, dict) and isinstance(e.get("hash"), str) and hmac.compare_digest(e["hash"], _digest(key, e))


# -- the head ------------------------------------------------------------------------------------------


@dataclass
class Head:
    seq: int = 0
    hash: str = GENESIS
    state: Literal["signed", "unsigned", "missing", "malformed", "forged"] = "missing"


def _head_bytes(d: Path) -> bytes | None:
    try:
        return (d / "head").read_bytes()
    except FileNotFoundError:
        return None


def _read_head(d: Path, key: bytes) -> Head:
    return _parse_head(_head_bytes(d), key)


def _parse_head(raw: bytes | None, key: bytes) -> Head:
    if raw is None:
        return Head()
    try:
        h = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Head(state="malformed")
    if not (isinstance(h, dict) and type(h.get("seq")) is int and h["seq"] >= 0 and isinstance(h.get("hash"), str)):
        return Head(state="malformed")
    if "mac" not in h:
        return Head(h["seq"], h["hash"], "unsigned")
    ok = isinstance(h["mac"], str) and hmac.compare_digest(h["mac"], _head_mac(key, h))
    return Head(h["seq"], h["hash"], "signed" if ok else "forged")


def _write_head(d: Path, key: bytes, seq: int, digest: str) -> None:
    head = {"seq": seq, "hash": digest}
    head["mac"] = _head_mac(key, head)
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


def _head_problem(head: Head, last: dict | None, any_lines: bool) -> str | None:
    """What is wrong with the head itself (not how it matches the log), None when it can be
    trusted. ``last``: the log's last line if it is an authentic entry; ``any_lines``: whether
    the log has a complete line. Called only once a key exists."""
    if head.state == "missing":
        # The first append writes a signed head at seq 0 with the key: a key without a head
        # means the head (and with no lines, the log) was deleted.
        return "audit/head is missing (deleted)" if any_lines else DELETED
    if head.state == "malformed":
        return "audit/head is malformed (not what the log writes): edited or corrupted"
    if head.state == "forged":
        return "audit/head is forged: its signature does not match the key (rewritten without the key)"
    if head.state == "unsigned" and (not any_lines or (last is not None and last.get("v") == VERSION)):
        # The version before the signed head never wrote an empty log, nor entries with "v".
        return "audit/head is not signed, but this version wrote the log: rewritten without the key (forged)"
    return None


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


def _parse(line: bytes | None):
    """The JSON in a line; None for anything that is not (undecodable, cut, nested too deep)."""
    try:
        return json.loads(line.decode("utf-8")) if line else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _last_entry(key: bytes, line: bytes | None) -> dict | None:
    e = _parse(line)
    return e if _authentic(key, e) and type(e.get("seq")) is int else None


def _plan(key: bytes, head: Head, last_line: bytes | None, torn: bytes) -> tuple[int, str, list[dict], bool]:
    """Where the next entry goes: the (seq, hash) it follows, the log's own entries to write
    before it (their details), and whether the torn bytes at the end are an interrupted write to
    cut (True) or bytes to keep as evidence, sealed into a line of their own (False)."""
    last = _last_entry(key, last_line)
    problem = _head_problem(head, last, last_line is not None)
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
        key = _load_key(d) or _first_key(d)
        last_line, torn = _tail(d / "audit.jsonl")
        seq, prev, system, cut = _plan(key, _read_head(d, key), last_line, torn)
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        new = []
        for who, act, what, det in [*((SYSTEM, "admin", "audit", s) for s in system),
                                    (str(user or "?"), action, str(obj), detail)]:
            e = _bounded({"v": VERSION, "seq": seq + 1, "time": now, "user": who, "action": act, "object": what,
                          "detail": det, "prev": prev})
            e["hash"] = prev = _digest(key, e)
            seq = e["seq"]
            new.append(e)
        blob = (b"\n" if torn and not cut else b"") + b"".join(_line(e) for e in new)
        _append(d, key, blob, torn if cut else b"", new[-1])
    return new[-1]


def entries(root: str | os.PathLike) -> list[dict]:
    """The log's entries as written (verified or not), skipping lines that are no entry at all."""
    try:
        data = (Path(root) / "audit" / "audit.jsonl").read_bytes()
    except FileNotFoundError:
        return []
    return [e for e in map(_parse, data.split(b"\n")) if isinstance(e, dict) and all(k in e for k in FIELDS)]


# -- verifying ---------------------------------------------------------------------------------------


@dataclass
class Verdict:
    ok: bool
    checked: int
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)         # worth knowing, not wrong (ok stays True)
    interrupted: bool = False     # every problem is an interrupted write (repaired on the next append)

    def __str__(self) -> str:
        if self.ok:
            text = f"audit log intact: {self.checked} entries, chain and head agree"
        elif self.interrupted:
            text = "audit log NOT INTACT (an interrupted write, not tampering):\n" + \
                "\n".join(f"  {p}" for p in self.problems)
        else:
            text = "audit log TAMPERED:\n" + "\n".join(f"  {p}" for p in self.problems)
        return text + "".join(f"\n  note: {n}" for n in self.notes)


JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false",
              type(None): "null"}


def _check_line(key: bytes, n: int, line: bytes, expected_seq: int, prev: str, rest: list[bytes]):
    """Line ``n`` as an entry that continues the chain, or a string saying why it does not."""
    try:
        e = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return f"line {n}: not UTF-8 text (edited or corrupted)"
    except (ValueError, RecursionError):
        return f"line {n}: not a JSON entry (edited or cut)"
    if not isinstance(e, dict):
        return f"line {n}: {JSON_TYPES.get(type(e), 'JSON')} instead of an entry (edited)"
    seq = e.get("seq")
    if not _authentic(key, e):
        return f"line {n} (seq {seq}): contents changed after it was written"
    if any(k not in e for k in (*FIELDS, "prev")):
        return f"line {n} (seq {seq}): an entry without its fields (written by the key's holder, not this log)"
    if type(seq) is not int or seq != expected_seq:
        later = f'"seq": {expected_seq},'.encode() in b"\n".join(rest)
        what = "out of order (moved)" if later or type(seq) is not int or seq < expected_seq else "missing (deleted)"
        return f"line {n}: expected seq {expected_seq}, found {seq}: entries {what}"
    if e["prev"] != prev:
        return f"line {n} (seq {seq}): does not follow the entry before it (reordered or replaced)"
    return e


def _walk(key: bytes, lines: list[bytes]) -> tuple[list[str], list[str], list[str]]:
    """(the first break in the chain, if any; the hash of each entry before it, in seq order;
    the alarms the log recorded about itself)."""
    hashes, alarms = [], []
    for n, line in enumerate(lines, 1):
        e = _check_line(key, n, line, len(hashes) + 1, hashes[-1] if hashes else GENESIS, lines[n:])
        if isinstance(e, str):
            return [e], hashes, alarms
        hashes.append(e["hash"])
        if (e["user"], e["action"], e["object"]) == (SYSTEM, "admin", "audit") and \
                isinstance(e.get("detail"), dict) and "alarm" in e["detail"]:
            alarms.append(f"seq {e['seq']}: {e['detail']['alarm']} (found by the append at {e['time']})")
    return [], hashes, alarms


def _head_vs_log(head: Head, hashes: list[str]) -> tuple[str | None, str | None]:
    """(tampering, interrupted write): how the head's seq and hash match the walked chain."""
    end = len(hashes)
    chain = [GENESIS, *hashes]                   # chain[s]: the hash of entry s
    if head.seq == end and head.hash == chain[end]:
        return None, None
    if head.seq < end and head.hash == chain[head.seq]:
        k = end - head.seq
        return None, (f"the head is {k} entr{'y' if k == 1 else 'ies'} behind the log (a write interrupted "
                      "before the head was updated): repaired on the next append")
    if head.seq > end == 0:
        return f"{DELETED}: the head says {head.seq} entries were written", None
    if head.seq > end:
        return (f"the log ends at seq {end} but {head.seq} entries were written: the newest entries were deleted",
                None)
    return f"the head names seq {head.seq}, but the log's entry {head.seq} is another: the log or the head was replaced", None


@contextlib.contextmanager
def _appends_held_off(d: Path):
    """A shared hold on the append lock while verify reads the log and then the head: an append
    between the two reads would look like a cut tail. Best effort: a read-only copy being audited
    may have no lock file, and verify creates nothing."""
    fd = None
    with contextlib.suppress(OSError):
        fd = os.open(d / "lock", os.O_RDONLY)
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def verify(root: str | os.PathLike) -> Verdict:
    """Walk the chain; name the first entry that was edited, deleted, inserted or reordered, and
    whatever is wrong with the head. Reads only: never creates a key or a file."""
    d = Path(root) / "audit"
    with _appends_held_off(d):
        try:
            data = (d / "audit.jsonl").read_bytes()
        except FileNotFoundError:
            data = b""
        raw_head = _head_bytes(d)
    try:
        key = _load_key(d)
    except UserError as exc:
        return Verdict(False, 0, [str(exc)])
    if key is None:
        if not data and raw_head is None:
            return Verdict(True, 0)                  # a fresh workspace: nothing recorded yet
        return Verdict(False, 0, ["audit/key is missing (deleted?): the log cannot be verified without it.\n"
                                  "  Fix: restore it from a backup."])
    *lines, torn = data.split(b"\n")                 # torn: the bytes after the last newline
    broken, hashes, alarms = _walk(key, lines)
    head = _parse_head(raw_head, key)
    head_problem = _head_problem(head, _last_entry(key, lines[-1] if lines else None), bool(lines))
    problems, interrupted, notes = broken + alarms, [], []
    if head_problem:
        problems.append(head_problem)
    elif not broken:
        tampered, behind = _head_vs_log(head, hashes)
        problems += [tampered] if tampered else []
        interrupted += [behind] if behind else []
        if head.state == "unsigned":
            notes.append("head unsigned (written by an older version): signed on the next append")
    if torn and not broken:
        # Appends write whole lines: bytes after the last newline are a write that never finished,
        # unless something else is wrong, when they are one more thing to explain.
        if not problems:
            interrupted.append(TORN)
        else:
            problems.append(f"line {len(lines) + 1}: unfinished, no newline at its end (edited or cut)")
    ok = not problems and not interrupted
    return Verdict(ok, len(lines), problems + interrupted, notes, interrupted=bool(interrupted) and not problems)


# -- CLI ---------------------------------------------------------------------------------------


@dataclass
class AuditConfig:
    command: Literal["verify", "show"] = field(default="verify", metadata=cli.positional())  # check or print
    user: str | None = None        # show: only this user's entries
    action: str | None = None      # show: only this action (login, export, rate, ...)
    limit: int = 50                # show: the newest N entries
    workspace: str | None = None


@cli_guard
def main(argv: list[str] | None = None) -> None:
    from pipelines.core.workspace import Workspace
    parser = cli.config_parser("audit", AuditConfig, __doc__)
    cli.add_common(parser, "json")
    ns = parser.parse_args(argv)
    a = cli.config_from_args(AuditConfig, ns)
    root = Workspace.resolve(a.workspace).root
    if a.command == "verify":
        verdict = verify(root)
        print(json.dumps(verdict.__dict__, indent=2, ensure_ascii=False) if ns.json else verdict)
        raise SystemExit(0 if verdict.ok else 1)
    if a.limit < 1:
        raise UserError(f"--limit must be at least 1 (got {a.limit}).", "e.g. --limit 50")
    rows = [e for e in entries(root) if (a.user is None or e.get("user") == a.user)
            and (a.action is None or e.get("action") == a.action)]
    for e in rows[-a.limit:]:
        if ns.json:
            print(json.dumps(e, ensure_ascii=False))
            continue
        print(f"{e['seq']!s:>6}  {e['time']!s}  {e['user']!s:<16} {e['action']!s:<13} {e['object']!s}  "
              f"{json.dumps(e.get('detail') or {}, ensure_ascii=False)}")


if __name__ == "__main__":
    main()
