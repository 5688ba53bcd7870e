"""Verifying the access log: ``verify`` walks the chain and checks the head, and its ``Verdict``
tells tampering from an interrupted write and from what is only worth a note; ``entries`` reads
the lines as written, for pages and ``jmedlora audit show``.

Apart from appending (``audit_append``) because an auditor's check must never change what it
checks: nothing here writes, creates a key or a file, or repairs anything; it holds the append
lock shared, and only while it reads the log and the head. Both sides follow the format in
``audit_format``, where the log and its threat model are described.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core.audit_format import (DELETED, FIELDS, GENESIS, SYSTEM, Head, authentic, head_bytes, head_problem,
                                         last_entry, load_key, parse_head, parse_line)
from pipelines.core.errors import UserError

TORN = "torn write at the end (a write interrupted, e.g. disk full): repaired on the next append"


# -- reading, unverified -----------------------------------------------------------------------------


def entries(root: str | os.PathLike) -> list[dict]:
    """The log's entries as written (verified or not), skipping lines that are no entry at all."""
    try:
        data = (Path(root) / "audit" / "audit.jsonl").read_bytes()
    except FileNotFoundError:
        return []
    return [e for e in map(parse_line, data.split(b"\n")) if isinstance(e, dict) and all(k in e for k in FIELDS)]


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
    if not authentic(key, e):
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
        raw_head = head_bytes(d)
    try:
        key = load_key(d)
    except UserError as exc:
        return Verdict(False, 0, [str(exc)])
    if key is None:
        if not data and raw_head is None:
            return Verdict(True, 0)                  # a fresh workspace: nothing recorded yet
        return Verdict(False, 0, ["audit/key is missing (deleted?): the log cannot be verified without it.\n"
                                  "  Fix: restore it from a backup."])
    *lines, torn = data.split(b"\n")                 # torn: the bytes after the last newline
    broken, hashes, alarms = _walk(key, lines)
    head = parse_head(raw_head, key)
    bad_head = head_problem(head, last_entry(key, lines[-1] if lines else None), bool(lines))
    problems, interrupted, notes = broken + alarms, [], []
    if bad_head:
        problems.append(bad_head)
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
