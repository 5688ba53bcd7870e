"""Reading JSONL files users bring: every bad line named by file, line and what is wrong.

One reader for question files, instruction records and imports, so a malformed line,
a non-UTF-8 byte or a non-object line gets the same clear message everywhere.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

from pipelines.core import safe_load
from pipelines.core.errors import UserError


@dataclass(frozen=True)
class DataProblem:
    file: str
    line: int
    field: str
    message: str
    code: str = ""                  # with params: the message for a catalog in another language
    params: dict | None = dc_field(default=None, hash=False, compare=False)

    def as_params(self) -> dict:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message,
                "code": self.code, "params": dict(self.params or {})}

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


# A question or an instruction record is a few kilobytes; a line of megabytes is a wrong file
# (a model dump, a base64 image) that would cost minutes and gigabytes before failing later.
MAX_LINE_BYTES = 1_000_000
MAX_FILE_BYTES = 500_000_000


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _lines(fh, max_line: int):
    """(line number, bytes or None when over ``max_line``), reading one bounded line at a time."""
    n = 0
    while True:
        line = fh.readline(max_line + 1)
        if not line:
            return
        n += 1
        if len(line) > max_line and not line.endswith(b"\n"):
            size = len(line)
            while True:                      # skip the rest of the oversized line
                rest = fh.readline(1 << 20)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield n, None, size
        else:
            yield n, line, len(line)


def read_jsonl(path: str | Path, problems: list[DataProblem] | None = None, *,
               max_line_bytes: int = MAX_LINE_BYTES, max_file_bytes: int = MAX_FILE_BYTES) -> list[tuple[int, dict]]:
    """(line number, object) for each non-empty line.

    With a ``problems`` list, bad lines are recorded there and skipped (the caller decides
    whether to stop); without one, the first bad line raises a UserError. A file over
    ``max_file_bytes`` is refused before it is read; a line over ``max_line_bytes`` is a bad line.
    """
    path = safe_load.regular_file(path, "JSONL file")
    try:
        size = path.stat().st_size
        if size > max_file_bytes:
            raise UserError(f"{path} is {_mb(size)}, over the {_mb(max_file_bytes)} this reader accepts.",
                            "Check that it is the right file; split a real data set into parts, or use --limit.",
                            code="jsonl.too_big", params={"path": str(path), "size": _mb(size),
                                                          "limit": _mb(max_file_bytes)})
        fh = open(path, "rb")
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror}.", "Check the path and its permissions.",
                        code="jsonl.unreadable", params={"path": str(path), "errno": exc.errno}) from exc
    rows = []
    with fh:
        for n, line, nbytes in _lines(fh, max_line_bytes):
            problem = None
            if line is None:
                problem = (f"line is {_mb(nbytes)}, over the {_mb(max_line_bytes)} limit for one record",
                           "line.too_long", {"size": _mb(nbytes), "limit": _mb(max_line_bytes)})
            elif not line.strip():
                continue
            _parse(path, n, line, problem, rows, problems)
    return rows


def _parse(path: Path, n: int, line: bytes | None, problem: tuple | None, rows: list, problems) -> None:
    """``problem``: (English text, code, params) of what is wrong with line ``n``, or None."""
    if problem is None:
        try:
            obj = json.loads(line.decode("utf-8-sig" if n == 1 else "utf-8"))
            if not isinstance(obj, dict):
                got = type(obj).__name__
                problem = (f"expected a JSON object, got {got}", "line.not_object", {"got": got})
        except UnicodeDecodeError as exc:
            problem = (f"not valid UTF-8 (byte {exc.start}); save the file as UTF-8", "line.not_utf8",
                       {"byte": exc.start})
        except json.JSONDecodeError as exc:
            problem = (f"malformed JSON: {exc.msg} at column {exc.colno}", "line.malformed", {"column": exc.colno})
    if problem is None:
        rows.append((n, obj))
        return
    text, code, params = problem
    bad = DataProblem(str(path), n, "(line)", text, code, params)
    if problems is not None:
        problems.append(bad)
    else:
        raise UserError(f"{path}:{n}: {text}.", "Fix or delete that line; each line must be one JSON object.",
                        code="jsonl.bad_line", params=bad.as_params())
