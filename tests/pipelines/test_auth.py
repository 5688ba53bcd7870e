"""Named users, hashed passwords, throttled logins, every attempt audited."""
from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.core import audit, auth
from pipelines.core.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def test_first_start_creates_admin_once_and_stores_no_password(tmp_path):
    pw = auth.ensure_first_user(tmp_path)
    assert pw and auth.ensure_first_user(tmp_path) is None
    text = auth.users_path(tmp_path).read_text()
    assert pw not in text and json.loads(text)["users"]["admin"]["role"] == "admin"
    assert stat.S_IMODE(auth.users_path(tmp_path).stat().st_mode) == 0o600
    gate = auth.Gate(tmp_path)
    assert gate("admin", pw) and not gate("admin", pw + "x")


def test_lockout_after_repeated_failures_and_every_attempt_audited(tmp_path, monkeypatch):
    auth.set_user(tmp_path, "dr_sato", "correct horse battery")
    gate = auth.Gate(tmp_path)
    for _ in range(auth.MAX_FAILURES):
        assert not gate("dr_sato", "guess")
    assert gate.locked("dr_sato")
    assert not gate("dr_sato", "correct horse battery")         # right password, but locked
    log = [(e["user"], e["action"]) for e in audit.entries(tmp_path) if e["action"].startswith("login")]
    assert log == [("dr_sato", "login_failed")] * auth.MAX_FAILURES + [("dr_sato", "login_locked")]
    monkeypatch.setattr(auth.time, "time", lambda: 10**12)       # the lock expires
    assert gate("dr_sato", "correct horse battery")
    assert audit.entries(tmp_path)[-1]["action"] == "login"
    assert audit.verify(tmp_path).ok


def test_unknown_user_fails_like_a_wrong_password(tmp_path):
    auth.set_user(tmp_path, "a", "0123456789")
    gate = auth.Gate(tmp_path)
    assert not gate("nobody", "0123456789")
    assert audit.entries(tmp_path)[-1]["detail"] == {"known_user": False}


def test_an_unknown_name_costs_the_same_password_hash_as_a_known_one(tmp_path, monkeypatch):
    """Response time must not tell which names exist: both paths run scrypt exactly once per attempt
    (counted, not timed: 0.8 ms against 42 ms before, on this machine)."""
    auth.set_user(tmp_path, "dr_sato", "0123456789")
    gate = auth.Gate(tmp_path)
    auth._dummy_hash()                              # made once per process, not per attempt
    calls = []
    real = auth.hashlib.scrypt
    monkeypatch.setattr(auth.hashlib, "scrypt", lambda *a, **k: calls.append(1) or real(*a, **k))
    for name in ("dr_sato", "nobody"):
        calls.clear()
        assert not gate(name, "wrong password")
        assert len(calls) == 1, name


@pytest.mark.parametrize("name,pw,msg", [("bad name", "0123456789", "not allowed"), ("ok", "short", "too short")])
def test_bad_users_refused(tmp_path, name, pw, msg):
    with pytest.raises(UserError, match=msg):
        auth.set_user(tmp_path, name, pw)


def test_cli_add_list_remove(tmp_path):
    def run(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "pipelines.core.auth", *args, "--workspace", str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True, input=stdin)
    assert run("add", "nurse1", "--password-stdin", stdin="long enough pw\n").returncode == 0
    assert "nurse1\tuser" in run("list").stdout
    assert auth.Gate(tmp_path)("nurse1", "long enough pw")
    bad = run("remove", "ghost")
    assert bad.returncode == 2 and "No user 'ghost'" in bad.stderr and "Traceback" not in bad.stderr
    assert run("remove", "nurse1").returncode == 0 and "nurse1" not in run("list").stdout


def test_still_allowed_follows_users_json_and_reads_it_only_when_it_changed(tmp_path, monkeypatch):
    auth.set_user(tmp_path, "dr_sato", "0123456789")
    gate = auth.Gate(tmp_path)
    reads = []
    real = auth.load_users
    monkeypatch.setattr(auth, "load_users", lambda root: reads.append(1) or real(root))
    assert all(gate.still_allowed("dr_sato") for _ in range(50)) and len(reads) == 1
    assert not gate.still_allowed("nobody")
    auth.remove_user(tmp_path, "dr_sato")
    assert not gate.still_allowed("dr_sato")
    auth.set_user(tmp_path, "dr_sato", "0123456789")
    assert gate.still_allowed("dr_sato")
    auth.users_path(tmp_path).write_text("{broken")
    assert not gate.still_allowed("dr_sato")
