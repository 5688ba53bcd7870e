"""Files the workbench writes are its user's alone: owner-only permissions by default.

Registries, results, exports and runs hold medical data, so every process of the project
(the UI, each CLI, the runs they start, which inherit it) creates files 0600 and folders
0700 through the process umask. ``JMEDLORA_SHARED_FILES=1`` opts out, for a team that shares
a workspace through group permissions on purpose.
"""
from __future__ import annotations

import os

OPT_OUT = "JMEDLORA_SHARED_FILES"


def owner_only() -> None:
    if os.environ.get(OPT_OUT, "").strip().lower() in ("1", "true", "yes"):
        return
    os.umask(0o077)
