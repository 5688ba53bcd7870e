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

This module is the format itself, what appending (``audit_append``) and verifying
(``audit_verify``) must agree on: the constants, the key, the MACs, the head and when a head
cannot be trusted. It stands apart so that neither side imports the other; ``audit`` gathers the
names callers use and is the command, whose --help is this text without this paragraph.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipelines.core.errors import UserError

ACTIONS = ("login", "login_failed", "login_locked", "logout", "view", "generate", "edit", "review", "export",
           "import", "train", "evaluate", "rate", "merge", "serve", "admin")
GENESIS = "0" * 64
VERSION = 2                   # entries carry it: an unsigned head on a log this version wrote is forged
FIELDS = ("seq", "time", "user", "action", "object")
FIELD_MAX = 1000              # characters of one user, object or detail value
LINE_MAX = 8000               # bytes of one line (a login name is typed by anyone, before any password)
CUT_FLOOR = 64                # a string shortened to fit the line keeps at least this much
SYSTEM = "system"             # who writes the log's own entries (repairs, alarms, the upgrade)

DELETED = "the log was deleted (key present, no entries)"


# -- the key and the MACs --------------------------------------------------------------------------


def load_key(d: Path) -> bytes | None:
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


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def entry_hash(key: bytes, entry: dict) -> str:
    return hmac.new(key, _canonical({k: v for k, v in entry.items() if k != "hash"}), hashlib.sha256).hexdigest()


def head_mac(key: bytes, head: dict) -> str:
    # Its own prefix: a head's MAC can never pass for an entry's hash, nor the reverse.
    body = b"audit head\n" + _canonical({k: v for k, v in head.items() if k != "mac"})
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def authentic(key: bytes, e) -> bool:
    return isinstance(e, dict) and isinstance(e.get("hash"), str) and hmac.compare_digest(e["hash"], entry_hash(key, e))


def parse_line(line: bytes | None):
    """The JSON in a line; None for anything that is not (undecodable, cut, nested too deep)."""
    try:
        return json.loads(line.decode("utf-8")) if line else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def last_entry(key: bytes, line: bytes | None) -> dict | None:
    e = parse_line(line)
    return e if authentic(key, e) and type(e.get("seq")) is int else None


# -- the head ------------------------------------------------------------------------------------------


@dataclass
class Head:
    seq: int = 0
    hash: str = GENESIS
    state: Literal["signed", "unsigned", "missing", "malformed", "forged"] = "missing"


def head_bytes(d: Path) -> bytes | None:
    try:
        return (d / "head").read_bytes()
    except FileNotFoundError:
        return None


def parse_head(raw: bytes | None, key: bytes) -> Head:
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
    ok = isinstance(h["mac"], str) and hmac.compare_digest(h["mac"], head_mac(key, h))
    return Head(h["seq"], h["hash"], "signed" if ok else "forged")


def head_problem(head: Head, last: dict | None, any_lines: bool) -> str | None:
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
