"""The access log against an auditor: every way to cut, forge, delete or tear it is named by
``jmedlora audit verify`` (exit 1, no traceback), and one huge login name cannot bloat the log.
What an interrupted write leaves (a full disk, a crash) is in ``test_audit_interrupted.py``."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path

import pytest

from pipelines.core import audit
from pipelines.core.errors import UserError
from tests.pipelines.audit_logs import make_log, verify_cli


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _sign(key: bytes, entry: dict) -> str:
    body = json.dumps({k: v for k, v in entry.items() if k != "hash"}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"))
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def _rewrite_head_to_match(root, last_line: bytes, mac: str | None = None) -> None:
    """What someone without the key can do: make the head name the new last line."""
    last = json.loads(last_line)
    head = {"seq": last["seq"], "hash": last["hash"]} | ({"mac": mac} if mac else {})
    (root / "audit" / "head").write_text(json.dumps(head))


# -- each way of tampering, named by the command line --------------------------------------------


def _edit(root, path):
    lines = _lines(path)
    e = json.loads(lines[2])
    e["user"] = "someone_else"
    lines[2] = json.dumps(e).encode()
    _write(path, lines)


def _delete(root, path):
    lines = _lines(path)
    _write(path, lines[:1] + lines[2:])


def _reorder(root, path):
    lines = _lines(path)
    _write(path, [lines[0], lines[2], lines[1], *lines[3:]])


def _forge_entry_with_a_wrong_key(root, path):
    lines = _lines(path)
    e = json.loads(lines[4])
    e["action"] = "export"
    e["hash"] = _sign(secrets.token_bytes(32), e)
    lines[4] = json.dumps(e, ensure_ascii=False).encode()
    _write(path, lines)


def _truncate_and_rewrite_head(root, path):
    lines = _lines(path)[:3]
    _write(path, lines)
    _rewrite_head_to_match(root, lines[-1])


def _truncate_and_sign_head_with_a_wrong_key(root, path):
    lines = _lines(path)[:3]
    _write(path, lines)
    last = json.loads(lines[-1])
    body = json.dumps({"hash": last["hash"], "seq": last["seq"]}, sort_keys=True, separators=(",", ":"))
    _rewrite_head_to_match(root, lines[-1], mac=hmac.new(secrets.token_bytes(32), body.encode(),
                                                        hashlib.sha256).hexdigest())


def _truncate_leaving_the_head(root, path):
    _write(path, _lines(path)[:3])


def _delete_log_and_head(root, path):
    path.unlink()
    (root / "audit" / "head").unlink()


def _delete_log(root, path):
    path.unlink()


def _complete_garbage_last_line(root, path):
    with open(path, "ab") as fh:
        fh.write(b'{"seq": 6, "time": "2026\n')


def _torn_line_in_the_middle(root, path):
    lines = _lines(path)
    lines[2] = lines[2][: len(lines[2]) // 2]
    _write(path, lines)


@pytest.mark.parametrize("tamper,named", [
    (_edit, "line 3 (seq 3): contents changed"),
    (_delete, "expected seq 2, found 3: entries missing (deleted)"),
    (_reorder, "entries out of order (moved)"),
    (_forge_entry_with_a_wrong_key, "line 5 (seq 5): contents changed"),
    (_truncate_and_rewrite_head, "audit/head is not signed"),
    (_truncate_and_sign_head_with_a_wrong_key, "audit/head is forged"),
    (_truncate_leaving_the_head, "the newest entries were deleted"),
    (_delete_log_and_head, "the log was deleted (key present, no entries)"),
    (_delete_log, "the log was deleted (key present, no entries)"),
    (_complete_garbage_last_line, "line 6: not a JSON entry"),
    (_torn_line_in_the_middle, "line 3: not a JSON entry"),
], ids=lambda x: getattr(x, "__name__", "")[1:] if callable(x) else "")
def test_cli_names_each_kind_of_tampering(tmp_path, tamper, named):
    path = make_log(tmp_path)
    tamper(tmp_path, path)
    out = verify_cli(tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "TAMPERED" in out.stdout and named in out.stdout, out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_a_cut_tail_with_a_rewritten_head_is_not_laundered_by_later_appends(tmp_path):
    path = make_log(tmp_path)
    _truncate_and_rewrite_head(tmp_path, path)
    assert "audit/head is not signed" in str(audit.verify(tmp_path))
    audit.record(tmp_path, "dr_sato", "login")                   # the next login signs a fresh head...
    v = audit.verify(tmp_path)
    assert not v.ok and "audit/head is not signed" in str(v), str(v)    # ...but the log keeps the alarm
    assert audit.entries(tmp_path)[-1]["user"] == "dr_sato"


def test_a_deleted_log_stays_visible_after_the_next_append(tmp_path):
    path = make_log(tmp_path)
    _delete_log_and_head(tmp_path, path)
    audit.record(tmp_path, "dr_sato", "login")
    v = audit.verify(tmp_path)
    assert not v.ok and "the log was deleted (key present, no entries)" in str(v), str(v)


def test_verifying_a_fresh_workspace_creates_nothing(tmp_path):
    v = audit.verify(tmp_path)
    assert v.ok and v.checked == 0
    assert not (tmp_path / "audit" / "key").exists() and audit.entries(tmp_path) == []


# -- malformed files give a verdict, never a traceback ---------------------------------------------


@pytest.mark.parametrize("line", [b"[1,2]", b'"x"', b"42", b"null", b'{"seq": 3}', b"{}", b"\xff\xfe{}"])
def test_a_line_that_is_no_entry_is_named_not_a_traceback(tmp_path, line):
    path = make_log(tmp_path, 4)
    lines = _lines(path)
    lines.insert(2, line)
    _write(path, lines)
    v = audit.verify(tmp_path)
    assert not v.ok and "line 3" in str(v), str(v)
    assert all(isinstance(e, dict) and "action" in e for e in audit.entries(tmp_path))
    assert len(audit.entries(tmp_path)) == 4


@pytest.mark.parametrize("key", [b"", b"not hex at all", b"abcd", b"\xff" * 64, b"00" * 33])
def test_a_malformed_key_is_a_clear_error(tmp_path, key):
    make_log(tmp_path, 2)
    (tmp_path / "audit" / "key").write_bytes(key)
    v = audit.verify(tmp_path)
    assert not v.ok and "audit/key is malformed" in str(v) and "restore it from a backup" in str(v)
    with pytest.raises(UserError) as exc:
        audit.record(tmp_path, "dr_sato", "login")
    assert exc.value.code == "audit.bad_key"
    out = verify_cli(tmp_path)
    assert out.returncode == 1 and "audit/key is malformed" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize("head", [b"", b"{not json", b"[1, 2]", b'{"seq": "3", "hash": 1}', b"\xff\xfe",
                                  b'{"seq": 2, "hash": "00", "mac": 7}'])
def test_a_malformed_head_is_tampering_not_a_traceback(tmp_path, head):
    make_log(tmp_path, 2)
    (tmp_path / "audit" / "head").write_bytes(head)
    v = audit.verify(tmp_path)
    assert not v.ok and "audit/head" in str(v) and "TAMPERED" in str(v), str(v)
    out = verify_cli(tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr


def test_a_non_utf8_byte_in_the_log_is_named(tmp_path):
    path = make_log(tmp_path, 3)
    data = bytearray(path.read_bytes())
    data[data.index(b"user1")] = 0xFF
    path.write_bytes(bytes(data))
    out = verify_cli(tmp_path)
    assert out.returncode == 1 and "line 2" in out.stdout and "Traceback" not in out.stdout + out.stderr


def test_the_key_missing_under_a_log_is_named_and_not_replaced(tmp_path):
    path = make_log(tmp_path, 2)
    before = path.read_bytes()
    (tmp_path / "audit" / "key").unlink()
    v = audit.verify(tmp_path)
    assert not v.ok and "audit/key is missing" in str(v)
    with pytest.raises(UserError) as exc:              # a new key would orphan the old entries for good
        audit.record(tmp_path, "dr_sato", "login")
    assert exc.value.code == "audit.no_key" and "restore audit/key from a backup" in str(exc.value)
    assert not (tmp_path / "audit" / "key").exists() and path.read_bytes() == before


# -- a log written by the previous version -------------------------------------------------------


def _legacy_log(root, n=3) -> Path:
    """Entries and head as the version before the signed head wrote them."""
    d = root / "audit"
    d.mkdir(mode=0o700)
    key = secrets.token_hex(32)
    (d / "key").write_text(key)
    prev, lines = "0" * 64, []
    for seq in range(1, n + 1):
        e = {"seq": seq, "time": "2026-11-25T21:03:11.204Z", "user": "dr_sato", "action": "view",
             "object": f"eval:{seq}", "detail": {}, "prev": prev}
        e["hash"] = prev = _sign(bytes.fromhex(key), e)
        lines.append(json.dumps(e, ensure_ascii=False).encode())
    _write(d / "audit.jsonl", lines)
    (d / "head").write_text(json.dumps({"seq": n, "hash": prev}))
    return d / "audit.jsonl"


def test_a_log_from_the_previous_version_verifies_with_a_note_and_is_upgraded(tmp_path):
    _legacy_log(tmp_path)
    v = audit.verify(tmp_path)
    assert v.ok and v.checked == 3 and "head unsigned (written by an older version)" in str(v), str(v)
    audit.record(tmp_path, "dr_sato", "login")
    v = audit.verify(tmp_path)
    assert v.ok and v.checked == 5 and "unsigned" not in str(v), str(v)
    assert "mac" in json.loads((tmp_path / "audit" / "head").read_text())
    assert audit.entries(tmp_path)[3]["detail"] == {"upgraded": "signed head"}


def test_an_unsigned_head_on_a_previous_version_log_that_disagrees_is_still_tampering(tmp_path):
    path = _legacy_log(tmp_path)
    _write(path, _lines(path)[:2])
    assert "the newest entries were deleted" in str(audit.verify(tmp_path))


# -- what one entry may weigh ------------------------------------------------------------------------


def test_a_900_kb_login_name_is_cut_and_the_entry_still_verifies(tmp_path):
    name = "A" * 900_123
    audit.record(tmp_path, name, "login_failed", "workbench", known_user=False)
    line = (tmp_path / "audit" / "audit.jsonl").read_bytes()
    assert len(line) < 8000
    e = audit.entries(tmp_path)[0]
    assert e["user"] == "A" * 1000 + "…[cut: 899123 chars]" and e["detail"] == {"known_user": False}
    assert audit.verify(tmp_path).ok


def test_many_long_detail_values_keep_the_line_under_8_kb_cutting_the_largest_first(tmp_path):
    detail = {f"k{i}": "é" * (2000 + i) for i in range(12)} | {"small": "kept whole", "n": 3}
    audit.record(tmp_path, "\x00" * 5000, "export", "ＤＢ" * 5000, **detail)
    line = (tmp_path / "audit" / "audit.jsonl").read_bytes()
    assert len(line) < 8000
    e = audit.entries(tmp_path)[0]
    assert e["detail"]["small"] == "kept whole" and e["detail"]["n"] == 3
    assert all("…[cut: " in e["detail"][f"k{i}"] for i in range(12))
    assert len(e["user"]) > audit.CUT_FLOOR * 2           # the detail strings gave way first
    assert audit.verify(tmp_path).ok


def test_thousands_of_small_detail_values_are_folded_into_one_string(tmp_path):
    audit.record(tmp_path, "u", "export", "x", folded="a caller's own key", **{f"k{i}": i for i in range(3000)})
    assert len((tmp_path / "audit" / "audit.jsonl").read_bytes()) < 8000
    (e,) = audit.entries(tmp_path)
    assert list(e["detail"]) == ["folded"] and e["detail"]["folded"].startswith('{"folded": "a caller')
    assert audit.verify(tmp_path).ok


def test_odd_characters_in_a_name_do_not_break_the_chain(tmp_path):
    audit.record(tmp_path, "a\u2028b\x85c\rd", "login_failed", "workbench")    # line separators json leaves raw
    audit.record(tmp_path, "lone \udc80 surrogate", "login_failed", "workbench")
    audit.record(tmp_path, "dr_sato", "login", "workbench")
    v = audit.verify(tmp_path)
    assert v.ok and v.checked == 3, str(v)
    assert [e["user"] for e in audit.entries(tmp_path)][::2] == ["a\u2028b\x85c\rd", "dr_sato"]
