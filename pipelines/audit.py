"""The access log: append-only, hash-chained, verifiable (MHLW guideline 6.0: who, when, what).

Every login attempt and every action on data (view, generate, edit, export, train, evaluate,
rate, merge) is one JSON line in ``WORKSPACE/audit/audit.jsonl``::

    {"seq": 17, "time": "2026-11-25T21:03:11.204Z", "user": "dr_sato", "action": "export",
     "object": "dataset:demo", "detail": {...}, "prev": "<hash of entry 16>", "hash": "<this entry>"}

``hash`` = HMAC-SHA256 over the entry without its hash, keyed by ``audit/key`` (0600, made on
first use). Each entry names its predecessor's hash, so editing, deleting or reordering a line
breaks the chain at that line, and without the key nobody can forge a consistent replacement.
``audit/head`` remembers the newest seq and hash: cutting off the tail is detected too.
Writers in several processes (the UI, a training run, a CLI) append under an exclusive file
lock, so the chain never forks.

    python -m pipelines.audit verify [--workspace DIR]      # exit 1 and name the first bad entry
    python -m pipelines.audit show [--user U] [--action A] [--limit N] [--workspace DIR]
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pipelines import cli, run_lock
from pipelines.errors import UserError, cli_guard

ACTIONS = ("login", "login_failed", "login_locked", "logout", "view", "generate", "edit", "review", "export",
           "import", "train", "evaluate", "rate", "merge", "serve", "admin")
GENESIS = "0" * 64


def _dir(root: Path) -> Path:
    d = Path(root) / "audit"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def _key(d: Path) -> bytes:
    path = d / "key"
    if not path.exists():
        # Written aside, then published with link(), which fails if another process got there
        # first: two processes starting at once never use different keys, and none reads a key
        # file still being written (O_EXCL alone let one sign with an empty key).
        tmp = d / f"key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


def _digest(key: bytes, entry: dict) -> str:
    body = json.dumps({k: v for k, v in entry.items() if k != "hash"}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"))
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def _read_head(d: Path) -> dict:
    try:
        return json.loads((d / "head").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"seq": 0, "hash": GENESIS}


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


def record(root: str | os.PathLike, user: str, action: str, obj: str = "", **detail) -> dict:
    """Append one entry (durably: fsync before returning) and return it."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; use one of {ACTIONS}")
    d = _dir(Path(root))
    key = _key(d)
    with run_lock.waiting(d / "lock"):
        head = _read_head(d)
        entry = {"seq": head["seq"] + 1,
                 "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                 "user": user or "?", "action": action, "object": obj, "detail": detail, "prev": head["hash"]}
        entry["hash"] = _digest(key, entry)
        fd = os.open(d / "audit.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp = d / f".head.{os.getpid()}"
        tmp.write_text(json.dumps({"seq": entry["seq"], "hash": entry["hash"]}))
        os.chmod(tmp, 0o600)
        os.replace(tmp, d / "head")
    return entry


def entries(root: str | os.PathLike) -> list[dict]:
    path = _dir(Path(root)) / "audit.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


@dataclass
class Verdict:
    ok: bool
    checked: int
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.ok:
            return f"audit log intact: {self.checked} entries, chain and head agree"
        return "audit log TAMPERED:\n" + "\n".join(f"  {p}" for p in self.problems)


def verify(root: str | os.PathLike) -> Verdict:
    """Walk the chain; name the first entry that was edited, deleted, inserted or reordered."""
    d = _dir(Path(root))
    path = d / "audit.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    if not lines and not (d / "head").exists():
        return Verdict(True, 0)
    key = _key(d)
    problems: list[str] = []
    prev, expected_seq = GENESIS, 1
    for n, line in enumerate(lines, 1):
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"line {n}: not a JSON entry (edited or cut)")
            break
        seq = e.get("seq")
        if e.get("hash") != _digest(key, e):
            problems.append(f"line {n} (seq {seq}): contents changed after it was written")
            break
        if seq != expected_seq:
            later = f'"seq": {expected_seq},' in "".join(lines[n:])
            what = "out of order (moved)" if later or not isinstance(seq, int) or seq < expected_seq \
                else "missing (deleted)"
            problems.append(f"line {n}: expected seq {expected_seq}, found {seq}: entries {what}")
            break
        if e.get("prev") != prev:
            problems.append(f"line {n} (seq {seq}): does not follow the entry before it (reordered or replaced)")
            break
        prev, expected_seq = e["hash"], expected_seq + 1
    head = _read_head(d)
    if not problems and (head["seq"] != expected_seq - 1 or head["hash"] != prev):
        problems.append(f"the log ends at seq {expected_seq - 1} but {head['seq']} entries were written: "
                        "the newest entries were deleted")
    return Verdict(not problems, len(lines), problems)


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
    from pipelines.workspace import Workspace
    parser = cli.config_parser("audit", AuditConfig, __doc__)
    cli.add_common(parser, "json")
    ns = parser.parse_args(argv)
    a = cli.config_from_args(AuditConfig, ns)
    root = Workspace.resolve(a.workspace).root
    if a.command == "verify":
        verdict = verify(root)
        print(json.dumps(verdict.__dict__, indent=2) if ns.json else verdict)
        raise SystemExit(0 if verdict.ok else 1)
    if a.limit < 1:
        raise UserError(f"--limit must be at least 1 (got {a.limit}).", "e.g. --limit 50")
    rows = [e for e in entries(root) if (a.user is None or e.get("user") == a.user)
            and (a.action is None or e.get("action") == a.action)]
    for e in rows[-a.limit:]:
        if ns.json:
            print(json.dumps(e, ensure_ascii=False))
            continue
        print(f"{e['seq']:>6}  {e['time']}  {e['user']:<16} {e['action']:<13} {e['object']}  "
              f"{json.dumps(e.get('detail') or {}, ensure_ascii=False)}")


if __name__ == "__main__":
    main()
