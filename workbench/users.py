"""Who is acting: the logged-in user of a request, their role, and the audit entries the UI
writes for what they do. Every edit, review, export, generation and training run started
from the page names this user (``"local"`` under ``--no-auth``), never a typed name or the
account the server runs under."""
from __future__ import annotations

import traceback
from pathlib import Path

from pipelines.core import audit, auth

LOCAL = "local"
USER_ENV = "JMEDLORA_USER"         # jobs started from the UI read their user from it


def current_user(request) -> str:
    return (getattr(request, "username", None) or LOCAL) if request is not None else LOCAL


def is_admin(root, user: str) -> bool:
    return (auth.load_users(root).get(user) or {}).get("role") == "admin"


def job_env(user: str) -> dict[str, str]:
    return {USER_ENV: user}


def record(root, user: str, action: str, obj: str = "", **detail) -> None:
    """An audit entry; a failure to write one is logged on the server, never shown as a crash."""
    try:
        audit.record(root, user, action, obj, **detail)
    except OSError:
        traceback.print_exc()


# A job's kind (status.json) -> the audit action its stop belongs to.
_STOP_ACTIONS = {"datagen": "generate", "train": "train", "eval-batch": "evaluate", "evaluate": "evaluate",
                 "merge": "merge"}


def record_stop(root, user: str, run_dir) -> None:
    """A stop asked for from the page, naming who asked and who had started the job (they may differ)."""
    from pipelines.core import jobs
    st = jobs.read_json(Path(run_dir) / "status.json")
    record(root, user, _STOP_ACTIONS.get(st.get("kind"), "admin"), f"job:{Path(run_dir).resolve()}",
           phase="stop requested", started_by=st.get("started_by") or "?")


class LiveSessions(dict):
    """Gradio's table of sessions (login token -> user name), checked against the current user list at
    every look-up: a user removed with ``jmedlora auth remove`` loses every open session at
    their next request, instead of keeping it until the workbench restarts. Installed by launch.py
    in place of the plain dict Gradio keeps (``App.tokens``), which every request resolves its user
    through."""

    def __init__(self, still_allowed):
        super().__init__()
        self.still_allowed = still_allowed

    def get(self, token, default=None):
        user = super().get(token)
        if user is None:
            return default
        if not self.still_allowed(user):
            self.pop(token, None)            # revoked for good: signing in again is refused too
            return default
        return user

    def __getitem__(self, token):
        user = self.get(token)
        if user is None:
            raise KeyError(token)
        return user

    def __contains__(self, token):
        return self.get(token) is not None

