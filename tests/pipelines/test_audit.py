"""The access log detects an edited, deleted, inserted or reordered entry, and a cut tail."""
from __future__ import annotations

import json
import stat
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from pipelines.core import audit

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _log(tmp_path, n=5):
    for i in range(n):
        audit.record(tmp_path, f"user{i % 2}", "view", f"eval:{i}", page=i)
    return tmp_path / "audit" / "audit.jsonl"


def _rewrite(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_intact_log_verifies_and_files_are_private(tmp_path):
    path = _log(tmp_path)
    v = audit.verify(tmp_path)
    assert v.ok and v.checked == 5
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "audit" / "key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "audit").stat().st_mode) == 0o700
    e = audit.entries(tmp_path)[2]
    assert (e["user"], e["action"], e["object"], e["detail"]) == ("user0", "view", "eval:2", {"page": 2})
    assert e["time"].endswith("Z")


def test_edited_entry_is_named(tmp_path):
    path = _log(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    e = json.loads(lines[2])
    e["user"] = "someone_else"
    lines[2] = json.dumps(e)
    _rewrite(path, lines)
    v = audit.verify(tmp_path)
    assert not v.ok and "line 3 (seq 3): contents changed" in str(v)


@pytest.mark.parametrize("mutate,expected", [
    (lambda ls: ls[:1] + ls[2:], "expected seq 2, found 3: entries missing (deleted)"),
    (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], "found 3: entries out of order (moved)"),
    (lambda ls: ls[:-1], "newest entries were deleted"),                        # tail cut
    (lambda ls: ls[:2] + ["{not json"] + ls[2:], "line 3: not a JSON entry"),   # inserted garbage
])
def test_deleted_reordered_and_cut_entries_are_found(tmp_path, mutate, expected):
    path = _log(tmp_path)
    _rewrite(path, mutate(path.read_text(encoding="utf-8").splitlines()))
    v = audit.verify(tmp_path)
    assert not v.ok and expected in str(v), str(v)


def test_an_entry_forged_without_the_key_is_caught(tmp_path):
    path = _log(tmp_path, 2)
    lines = path.read_text(encoding="utf-8").splitlines()
    e = json.loads(lines[1])
    e["action"] = "export"
    import hashlib
    body = json.dumps({k: v for k, v in e.items() if k != "hash"}, sort_keys=True, separators=(",", ":"))
    e["hash"] = hashlib.sha256(body.encode()).hexdigest()     # a plain hash: no key
    lines[1] = json.dumps(e)
    _rewrite(path, lines)
    assert "contents changed" in str(audit.verify(tmp_path))


def _append(root):
    for _ in range(10):
        audit.record(root, "p", "view", "x")


def test_writers_in_several_processes_keep_one_chain(tmp_path):
    with ProcessPoolExecutor(3) as pool:
        list(pool.map(_append, [tmp_path] * 3))
    v = audit.verify(tmp_path)
    assert v.ok and v.checked == 30


def test_cli_verify_exit_codes(tmp_path):
    path = _log(tmp_path, 3)
    run = lambda: subprocess.run([sys.executable, "-m", "pipelines.core.audit", "verify", "--workspace", str(tmp_path)],
                                 cwd=REPO, capture_output=True, text=True)
    ok = run()
    assert ok.returncode == 0 and "intact: 3 entries" in ok.stdout
    _rewrite(path, path.read_text().splitlines()[1:])
    bad = run()
    assert bad.returncode == 1 and "TAMPERED" in bad.stdout and "Traceback" not in bad.stderr


def test_unknown_action_is_a_bug_not_a_silent_entry(tmp_path):
    with pytest.raises(ValueError):
        audit.record(tmp_path, "u", "frobnicate")
