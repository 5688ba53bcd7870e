"""Which files on the server a page may make the workbench read.

A command-line user reads what their own OS account can read. A page user is anyone with a login,
and the server reads as the workbench's account: a path typed into a form (a document folder to
scan, a file to import, a question or training file) could otherwise open another workspace's
exports or any folder of patient documents the account can see (reproduced in the round-two audit:
the import took another workspace's export, the scan showed the names in an outside folder). So a
path a page passes on must lie, after following links, inside

- this workspace,
- the project's sample assets (``assets/``: documents, questions, presets), or
- a folder the administrator lists in ``JMEDLORA_READ_DIRS`` (os.pathsep-separated), e.g. the
  hospital's share of de-identified articles.

    JMEDLORA_READ_DIRS=/data/articles:/data/exams python launch.py

Writing is ruled by ``pipelines/core/exports.py``; model directories are references, resolved by
``pipelines/models/references.py``.
"""
from __future__ import annotations

import os
from pathlib import Path

from pipelines.core.errors import UserError
from pipelines.core.repo import ASSETS

ENV_VAR = "JMEDLORA_READ_DIRS"


def env_dirs(var: str) -> list[Path]:
    """The folders an administrator listed in ``$var`` (os.pathsep-separated), links resolved."""
    return [Path(os.path.realpath(Path(p.strip()).expanduser())) for p in os.environ.get(var, "").split(os.pathsep)
            if p.strip()]


def readable_dirs(workspace_root: str | os.PathLike) -> list[Path]:
    return [Path(os.path.realpath(workspace_root)), Path(os.path.realpath(ASSETS)), *env_dirs(ENV_VAR)]


def readable(path: str | os.PathLike, workspace_root: str | os.PathLike, what: str) -> str:
    """``path`` as typed (relative to the server's folder), refused unless it lies inside a readable
    folder once every link is followed (a link inside the workspace to elsewhere does not open it)."""
    raw = str(path or "").strip()
    if not raw:
        return raw                               # empty: the form's own check names the missing field
    real = Path(os.path.realpath(Path(raw).expanduser()))
    allowed = readable_dirs(workspace_root)
    if not any(real == d or d in real.parents for d in allowed):
        raise UserError(f"{raw} ({what}) is outside the folders this page may read: the workspace "
                        f"{allowed[0]}, the samples in {allowed[1]}" +
                        (f", and {', '.join(map(str, allowed[2:]))}" if allowed[2:] else "") + ".",
                        f"Copy the files into the workspace, or ask the administrator to add their folder to ${ENV_VAR}.",
                        code="paths.outside", params={"path": raw, "what": what, "workspace": str(allowed[0]),
                                                      "env": ENV_VAR})
    return raw


def readable_reference(spec: str | None, workspace_root: str | os.PathLike, what: str) -> str | None:
    """Like :func:`readable` for a field that takes a path *or* a name the workspace resolves (a
    dataset ``demo@v2``): only what is written as a path (a separator, ``~``, a file suffix) is checked."""
    raw = str(spec or "").strip()
    looks_like_a_path = os.sep in raw or raw.startswith(("~", ".")) or Path(raw).suffix in (".jsonl", ".json")
    return readable(raw, workspace_root, what) if raw and looks_like_a_path else spec

