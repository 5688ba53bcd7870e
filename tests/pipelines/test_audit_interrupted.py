"""The access log after an interrupted write: a full disk rolls the append back, a torn last line
or a head left behind by a crash is told apart from tampering and repaired by the next append, and
verify never mistakes another process's append for a cut. Tampering itself is in
``test_audit_tamper.py``."""
from __future__ import annotations

import errno
import json
import os
from concurrent.futures import ProcessPoolExecutor

import pytest

from pipelines.core import audit
from pipelines.core.errors import UserError
from tests.pipelines.audit_logs import make_log, verify_cli


# -- a full disk and a torn last line --------------------------------------------------------------


def _disk_fills_halfway(monkeypatch):
    real = os.write

    def write(fd, data):
        if b'"prev"' not in data:            # the head and anything else: written whole
            return real(fd, data)
        real(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "write", write)


def test_disk_full_during_an_append_leaves_the_log_as_it_was(tmp_path, monkeypatch):
    path = make_log(tmp_path, 3)
    before = path.read_bytes()
    _disk_fills_halfway(monkeypatch)
    with pytest.raises(UserError) as exc:
        audit.record(tmp_path, "dr_sato", "export", "dataset:demo")
    monkeypatch.undo()
    assert exc.value.code == "audit.disk_full" and exc.value.params["path"] == str(path)
    assert "disk is full" in str(exc.value) and "Fix:" in str(exc.value)
    assert isinstance(exc.value, OSError)        # callers that log a failed audit write and go on still do
    assert path.read_bytes() == before
    v = audit.verify(tmp_path)
    assert v.ok and v.checked == 3, str(v)
    audit.record(tmp_path, "dr_sato", "export", "dataset:demo")
    assert audit.verify(tmp_path).ok


def test_disk_full_on_the_very_first_append_leaves_a_verifiable_empty_log(tmp_path, monkeypatch):
    _disk_fills_halfway(monkeypatch)
    with pytest.raises(UserError):
        audit.record(tmp_path, "dr_sato", "login")
    monkeypatch.undo()
    v = audit.verify(tmp_path)
    assert v.ok and v.checked == 0, str(v)


def test_a_torn_tail_from_a_crash_is_reported_as_such_and_repaired_by_the_next_append(tmp_path):
    path = make_log(tmp_path, 3)
    torn = b'{"seq": 4, "time": "2026-11-25T21:03:11.204Z", "user": "dr_s'     # killed mid-write
    with open(path, "ab") as fh:
        fh.write(torn)
    v = audit.verify(tmp_path)
    assert not v.ok and "torn write at the end (a write interrupted, e.g. disk full): repaired on the next append" \
        in str(v), str(v)
    assert "TAMPERED" not in str(v) and "contents changed" not in str(v)
    out = verify_cli(tmp_path)
    assert out.returncode == 1 and "torn write" in out.stdout and "Traceback" not in out.stderr
    audit.record(tmp_path, "dr_sato", "view", "eval:9")
    v = audit.verify(tmp_path)
    assert v.ok and v.checked == 5, str(v)
    repair, last = audit.entries(tmp_path)[-2:]
    assert (repair["action"], repair["object"], repair["detail"]) == \
        ("admin", "audit", {"repaired": "torn tail", "bytes": len(torn)})
    assert (last["user"], last["object"]) == ("dr_sato", "eval:9")


def test_a_cut_that_leaves_half_a_line_is_not_repaired_away(tmp_path):
    path = make_log(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])           # the last entry cut mid-line, the head left alone
    v = audit.verify(tmp_path)
    assert not v.ok and "TAMPERED" in str(v) and "the newest entries were deleted" in str(v), str(v)
    audit.record(tmp_path, "dr_sato", "login")
    v = audit.verify(tmp_path)
    assert not v.ok and "line 5: not a JSON entry" in str(v), str(v)     # kept as evidence, not cut off
    assert "repaired" not in json.dumps(audit.entries(tmp_path))


def _append_many(root):
    for _ in range(15):
        audit.record(root, "p", "view", "x")


def test_verify_while_other_processes_append_never_sees_a_cut(tmp_path):
    audit.record(tmp_path, "p", "view", "x")
    verdicts = []
    with ProcessPoolExecutor(2) as pool:
        jobs = [pool.submit(_append_many, tmp_path) for _ in range(2)]
        while not all(j.done() for j in jobs):
            verdicts.append(audit.verify(tmp_path))
        [j.result() for j in jobs]
    bad = [str(v) for v in verdicts if not v.ok]
    assert not bad, bad[:3]
    assert audit.verify(tmp_path).checked == 31


def test_a_head_left_behind_by_a_crash_is_not_tampering_and_is_caught_up(tmp_path):
    make_log(tmp_path, 2)
    head = (tmp_path / "audit" / "head").read_bytes()
    audit.record(tmp_path, "dr_sato", "login")
    (tmp_path / "audit" / "head").write_bytes(head)       # killed after the line, before the head
    v = audit.verify(tmp_path)
    assert not v.ok and "the head is 1 entry behind the log" in str(v) and "TAMPERED" not in str(v), str(v)
    audit.record(tmp_path, "dr_sato", "logout")
    v = audit.verify(tmp_path)
    assert v.ok and v.checked == 4, str(v)

