"""Where exports may be written: inside the workspace's ``exports/`` folder (or a folder the
administrator configured), never over an existing file unless asked, never through a link.

An export is the one place the workbench writes a file whose name a user typed; without this
check a path such as ``../other/registry.sqlite`` overwrote another workspace's registry.

    JMEDLORA_EXPORT_DIRS=/mnt/share/exports:/data/out    # extra allowed folders (os.pathsep-separated)
"""
from __future__ import annotations

import os
from pathlib import Path

from pipelines.core.errors import UserError
from pipelines.core.page_paths import env_dirs

ENV_VAR = "JMEDLORA_EXPORT_DIRS"


def allowed_dirs(workspace_root: str | os.PathLike) -> list[Path]:
    return [Path(workspace_root).resolve() / "exports", *env_dirs(ENV_VAR)]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def export_path(workspace_root: str | os.PathLike, requested: str | os.PathLike | None, default_name: str, *,
                overwrite: bool = False, folder_output: bool = False) -> Path:
    """The checked absolute path for an export.

    ``requested`` may be empty (→ ``exports/default_name``), a bare name or a relative path
    (→ under ``exports/``, unless it already points inside an allowed folder from here), or an
    absolute path inside an allowed folder. ``folder_output``: the export is a directory.
    """
    allowed = allowed_dirs(workspace_root)
    exports = allowed[0]
    raw = str(requested or "").strip() or default_name
    req = Path(raw).expanduser()
    if ".." in req.parts:
        raise UserError(f"The export path {raw!r} contains '..'.", f"Give a name inside {exports}.",
                        code="export.dotdot", params={"path": str(raw), "folder": str(exports)})
    candidates = [req] if req.is_absolute() else [Path.cwd() / req, exports / req]
    target = next((c for c in candidates if any(_inside(Path(os.path.abspath(c)), d) for d in allowed)), None)
    if target is None:
        raise UserError(f"Exports are written only inside {exports}" +
                        (f" or {', '.join(map(str, allowed[1:]))}" if allowed[1:] else "") + f"; {raw!r} is outside.",
                        f"Give a file name (it goes to {exports}), or ask the administrator to add the folder to "
                        f"${ENV_VAR}.", code="export.outside", params={"path": str(raw), "folder": str(exports),
                                                                       "env": ENV_VAR})
    target = Path(os.path.abspath(target))
    # A link anywhere on the way could point the write somewhere else entirely.
    if target.resolve() != target or any(p.is_symlink() for p in [target, *target.parents]):
        raise UserError(f"The export path {target} goes through a symbolic link.", "Choose a plain folder and name.",
                        code="export.symlink", params={"path": str(target)})
    if folder_output and target.suffix in (".jsonl", ".json", ".txt", ".csv"):
        raise UserError(f"This format writes a folder, but {target.name!r} looks like a file name.",
                        f"Drop the {target.suffix} suffix, e.g. {target.with_suffix('').name}.",
                        code="export.folder_format", params={"name": target.name, "suffix": target.suffix,
                                                             "example": target.with_suffix("").name})
    if target.exists() and not overwrite:
        raise UserError(f"{target} already exists.", "Choose another name, or confirm replacing it (--overwrite).",
                        code="export.exists", params={"path": str(target)})
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


# -- files a page rewrites in place ---------------------------------------------------------
# A reviewed translation is saved into its report file, beside the images the file names (a
# report file reads images only in its own folder and below), so it cannot move to exports/. The
# page may rewrite such a file only where the workspace keeps report data (``reports/``), in its
# exports, or in a folder the administrator listed; a file in the samples or in a read-only share
# (``JMEDLORA_READ_DIRS``) opens for reading and is refused for saving.
EDITABLE_SUBDIR = "reports"


def editable_dirs(workspace_root: str | os.PathLike) -> list[Path]:
    return [Path(workspace_root).resolve() / EDITABLE_SUBDIR, *allowed_dirs(workspace_root)]


def editable_file(path: str | os.PathLike, workspace_root: str | os.PathLike, what: str) -> Path:
    """``path`` (an existing file) if a page may rewrite it: a plain file, reached through no link,
    inside one of :func:`editable_dirs`. Otherwise a UserError naming where it may live instead."""
    raw = str(path or "").strip()
    target = Path(os.path.abspath(Path(raw).expanduser()))
    allowed = editable_dirs(workspace_root)
    if not any(_inside(target, d) for d in allowed):
        folders = ", ".join(map(str, allowed))
        raise UserError(f"{raw} ({what}) can be read here but not changed: the page saves only inside {folders}.",
                        f"Copy the file's folder (with its images) into {allowed[0]} and open it there.",
                        code="edit.outside", params={"path": raw, "what": what, "folder": str(allowed[0])})
    if target.resolve() != target or any(p.is_symlink() for p in [target, *target.parents]):
        raise UserError(f"{raw} ({what}) is reached through a symbolic link; the page does not write through links.",
                        f"Copy the file's folder into {allowed[0]} as plain files.",
                        code="edit.symlink", params={"path": raw, "what": what, "folder": str(allowed[0])})
    if not target.is_file():
        raise UserError(f"{raw} ({what}) is not a regular file.", "Choose the report JSONL file itself.",
                        code="edit.not_a_file", params={"path": raw, "what": what})
    return target
