"""Who may use the workbench: named users with hashed passwords, login throttling, and an
audit entry for every attempt.

Users live in ``WORKSPACE/users.json`` (0600), passwords as scrypt hashes with a per-user
salt. On the first start the workbench creates an ``admin`` user with a random password and
prints it once (as Jupyter prints its token); nothing else ever shows a password. After
``MAX_FAILURES`` wrong passwords within ``WINDOW_S`` a user is locked for ``LOCK_S``: every
attempt, right, wrong or refused while locked, goes to the audit log.

    jmedlora auth add NAME [--admin]       # asks for the password twice
    jmedlora auth passwd NAME
    jmedlora auth remove NAME
    jmedlora auth list
"""
from __future__ import annotations

import functools
import getpass
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipelines.core import audit, cli
from pipelines.core.errors import UserError, cli_guard

MAX_FAILURES = 5
WINDOW_S = 600.0
LOCK_S = 600.0
MIN_PASSWORD = 10
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def users_path(root: str | os.PathLike) -> Path:
    return Path(root) / "users.json"


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    return hmac.compare_digest(hash_password(password, bytes.fromhex(salt)).split("$")[2], digest)


def load_users(root: str | os.PathLike) -> dict[str, dict]:
    try:
        return json.loads(users_path(root).read_text(encoding="utf-8")).get("users", {})
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise UserError(f"{users_path(root)} is not valid JSON ({exc}).",
                        "Restore it from a backup, or delete it to create a new admin user on the next start.",
                        code="auth.users_json", params={"path": str(users_path(root)), "detail": str(exc)}) from None


def _save_users(root: str | os.PathLike, users: dict[str, dict]) -> None:
    path = users_path(root)
    tmp = path.with_name(f".users.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"users": users}, fh, ensure_ascii=False, indent=1)
    os.replace(tmp, path)


def set_user(root: str | os.PathLike, name: str, password: str, *, role: str | None = None,
             by: str = "admin") -> None:
    if not _NAME.match(name):
        raise UserError(f"User name {name!r} is not allowed.", "Use 1-64 letters, digits, '_', '.', '@' or '-'.",
                        code="auth.bad_name", params={"name": name})
    if len(password) < MIN_PASSWORD:
        raise UserError(f"The password is too short ({len(password)} characters).",
                        f"Use at least {MIN_PASSWORD} characters.",
                        code="auth.short_password", params={"n": len(password), "min": MIN_PASSWORD})
    users = load_users(root)
    old = users.get(name, {})
    users[name] = {"hash": hash_password(password), "role": role or old.get("role", "user"),
                   "created": old.get("created", time.time()), "changed": time.time()}
    _save_users(root, users)
    audit.record(root, by, "admin", f"user:{name}", change="password set" if old else "user added",
                 role=users[name]["role"])


def remove_user(root: str | os.PathLike, name: str, *, by: str = "admin") -> None:
    users = load_users(root)
    if name not in users:
        raise UserError(f"No user {name!r}.", f"Known users: {', '.join(sorted(users)) or 'none'}.",
                        code="auth.no_user", params={"name": name, "known": ", ".join(sorted(users)) or "—"})
    del users[name]
    _save_users(root, users)
    audit.record(root, by, "admin", f"user:{name}", change="user removed")


def ensure_first_user(root: str | os.PathLike) -> str | None:
    """Create ``admin`` with a random password when there is no user yet; return that password."""
    if load_users(root):
        return None
    password = secrets.token_urlsafe(12)
    set_user(root, "admin", password, role="admin", by="system")
    return password


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


@dataclass
class Gate:
    """The login check Gradio calls: password, throttle, audit. One per running workbench."""
    root: Path
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _locked_until: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _names: frozenset = frozenset()                # still_allowed's copy of the user names ...
    _names_stamp: tuple | None = None              # ... and the users.json it was read from

    def __call__(self, username: str, password: str) -> bool:
        now = time.time()
        name = (username or "").strip()
        with self._lock:
            if self._locked_until.get(name, 0) > now:
                audit.record(self.root, name or "?", "login_locked", "workbench",
                             until=round(self._locked_until[name]))
                return False
        stored = load_users(self.root).get(name)
        # An unknown name costs the same scrypt as a known one: the response time does not tell which
        # names exist (measured before: 0.8 ms for an unknown name against 42 ms for a known one).
        matches = password_matches(password, stored["hash"] if stored else _dummy_hash())
        ok = stored is not None and matches
        with self._lock:
            if ok:
                self._failures.pop(name, None)
            else:
                recent = [t for t in self._failures.get(name, []) if now - t < WINDOW_S] + [now]
                self._failures[name] = recent
                if len(recent) >= MAX_FAILURES:
                    self._locked_until[name] = now + LOCK_S
                    self._failures.pop(name, None)
        audit.record(self.root, name or "?", "login" if ok else "login_failed", "workbench",
                     **({} if ok else {"known_user": stored is not None}))
        return ok

    def still_allowed(self, username: str) -> bool:
        """Whether a logged-in name is still a user. Asked at every request (removal ends sessions), so
        users.json is re-read only when the file changed: a stat per request, not a JSON parse."""
        try:
            st = os.stat(users_path(self.root))
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp != self._names_stamp:
                self._names, self._names_stamp = frozenset(load_users(self.root)), stamp
            return username in self._names
        except (OSError, UserError):     # users.json gone or broken mid-session: nobody passes until fixed
            return False

    def locked(self, username: str) -> bool:
        return self._locked_until.get(username, 0) > time.time()


# -- CLI ---------------------------------------------------------------------------------------


@dataclass
class AuthConfig:
    command: Literal["add", "passwd", "remove", "list"] = field(default="list", metadata=cli.positional())  # what to do
    name: str | None = field(default=None, metadata=cli.positional())   # the user
    admin: bool = False                   # add: may read the audit log in the workbench
    password_stdin: bool = False          # read the password from standard input (scripts)
    workspace: str | None = None


def _ask_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("The two passwords differ.", "Run the command again.")
    return first


@cli_guard
def main(argv: list[str] | None = None) -> None:
    from pipelines.core.workspace import Workspace
    a = cli.config_from_args(AuthConfig, cli.config_parser("auth", AuthConfig, __doc__).parse_args(argv))
    root = Workspace.resolve(a.workspace).root
    by = f"cli:{getpass.getuser()}"
    if a.command == "list":
        for name, u in sorted(load_users(root).items()):
            print(f"{name}\t{u.get('role', 'user')}")
        return
    if not a.name:
        raise UserError(f"'{a.command}' needs a user name.", f"jmedlora auth {a.command} NAME")
    if a.command == "remove":
        remove_user(root, a.name, by=by)
    else:
        if a.command == "passwd" and a.name not in load_users(root):
            raise UserError(f"No user {a.name!r}.", f"Add it: jmedlora auth add {a.name}")
        set_user(root, a.name, _ask_password(a.password_stdin), by=by, role="admin" if a.admin else None)
    print(f"{a.command}: {a.name} ok")


if __name__ == "__main__":
    main()
