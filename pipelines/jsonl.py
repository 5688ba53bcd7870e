"""Reading JSONL files users bring: every bad line named by file, line and what is wrong.

One reader for question files, instruction records and imports, so a malformed line,
a non-UTF-8 byte or a non-object line gets the same clear message everywhere.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import UserError


@dataclass(frozen=True)
class DataProblem:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


def read_jsonl(path: str | Path, problems: list[DataProblem] | None = None) -> list[tuple[int, dict]]:
    """(line number, object) for each non-empty line.

    With a ``problems`` list, bad lines are recorded there and skipped (the caller decides
    whether to stop); without one, the first bad line raises a UserError.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror}.", "Check the path and its permissions.") from exc
    rows = []
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        problem = None
        try:
            obj = json.loads(line.decode("utf-8-sig" if n == 1 else "utf-8"))
            if not isinstance(obj, dict):
                problem = f"expected a JSON object, got {type(obj).__name__}"
        except UnicodeDecodeError as exc:
            problem = f"not valid UTF-8 (byte {exc.start}); save the file as UTF-8"
        except json.JSONDecodeError as exc:
            problem = f"malformed JSON: {exc.msg} at column {exc.colno}"
        if problem is None:
            rows.append((n, obj))
        elif problems is not None:
            problems.append(DataProblem(str(path), n, "(line)", problem))
        else:
            raise UserError(f"{path}:{n}: {problem}.", "Fix or delete that line; each line must be one JSON object.")
    return rows
