"""Who is acting: the logged-in user of a request, their role, and the audit entries the UI
writes for what they do. Every edit, review, export, generation and training run started
from the page names this user (``"local"`` under ``--no-auth``), never a typed name or the
account the server runs under."""
from __future__ import annotations

import traceback

from pipelines import audit, auth

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
