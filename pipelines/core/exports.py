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
