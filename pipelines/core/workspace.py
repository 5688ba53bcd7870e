"""The workspace: one directory holding caches, results and the SQLite registry.

Resolution order: an explicit path (``--workspace DIR``), then the environment
variable ``JMEDLORA_WORKSPACE``, then ``./workspace``.

The registry is a single SQLite file (``registry.sqlite``) in WAL mode so that the
UI can read while a background run writes. Every write goes through
``Workspace.transaction()``. Every table is defined in ``pipelines/core/schema.py`` and created or
migrated once, when the workspace is opened: reading a workspace never writes to it.

Open a workspace once per process, at its entry point (a CLI ``main``, ``launch.py``), and pass
the ``Workspace`` object on; pipelines' ``run`` functions take it as ``workspace=``.

    jmedlora workspace [--workspace DIR] [--json]     # print what is registered
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pipelines.core import schema
from pipelines.core.errors import cli_guard, disk_full

ENV_VAR = "JMEDLORA_WORKSPACE"
DEFAULT_DIR = "workspace"

@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, path: str | os.PathLike | None = None) -> "Workspace":
        """Open the workspace: create the directory, bring its database to the current schema."""
        chosen = path or os.environ.get(ENV_VAR) or DEFAULT_DIR
        root = Path(chosen).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        ws = cls(root)
        conn = ws.connect()
        try:
            schema.apply(conn, where=f"The workspace {root}")
        finally:
            conn.close()
        return ws

    # -- layout ---------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.root / "registry.sqlite"

    def subdir(self, name: str) -> Path:
        """``models``, ``evals``, ``runs``, ``datasets``, ``cache`` … created on demand."""
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    # -- database -------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on any error.

        ``durable=False`` (``synchronous=NORMAL``) skips the fsync per commit: in WAL mode the
        database still cannot be corrupted, but a power cut may lose the last commits. For
        writes that are cheap to redo (cached API responses) when fsync is the bottleneck.
        """
        conn = self.connect()
        try:
            if not durable:
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            # SQLite has already rolled back after some errors (a full disk): a second ROLLBACK would
            # replace the real error with "cannot rollback - no transaction is active".
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            full = disk_full(exc, str(self.db_path)) if isinstance(exc, Exception) else None
            if full is not None:
                raise full from exc
            raise
        finally:
            conn.close()

    def query(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        conn = self.connect()
        try:
            return [dict(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    # -- registry -------------------------------------------------------------
    def register_model(self, name: str, kind: str, path: str | None = None, *,
                       base_model: str | None = None, step: int | None = None,
                       train_hours: float | None = None, run_id: str | None = None,
                       meta: dict | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO models (name, kind, path, base_model, step, train_hours,"
                " run_id, created_at, meta) VALUES (?,?,?,?,?,?,?,?,?)",
                (name, kind, path, base_model, step, train_hours, run_id, time.time(),
                 json.dumps(meta or {}, ensure_ascii=False)),
            )

    def model(self, name: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM models WHERE name = ?", (name,))
        return rows[0] if rows else None

    def models(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM models ORDER BY created_at")

    def register_dataset(self, name: str, version: str, kind: str, path: str, *,
                         n_records: int | None = None, meta: dict | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO datasets (name, version, kind, path, n_records,"
                " created_at, meta) VALUES (?,?,?,?,?,?,?)",
                (name, version, kind, path, n_records, time.time(),
                 json.dumps(meta or {}, ensure_ascii=False)),
            )

    def datasets(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM datasets ORDER BY created_at")

    def record_evaluation(self, out_dir: str, *, model: str, adapter: str | None, data: str,
                          config: dict, status: str, summary: dict | None = None) -> None:
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO evaluations (out_dir, model, adapter, data, config, summary, status,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(out_dir) DO UPDATE SET model=excluded.model, adapter=excluded.adapter,"
                " data=excluded.data, config=excluded.config, summary=excluded.summary,"
                " status=excluded.status, updated_at=excluded.updated_at",
                (out_dir, model, adapter, data, json.dumps(config, ensure_ascii=False),
                 json.dumps(summary, ensure_ascii=False) if summary is not None else None,
                 status, now, now),
            )

    def evaluations(self, task: str | None = "exam") -> list[dict[str, Any]]:
        """The evaluations of one task (``exam`` questions by default, ``report`` generation from
        images; None: all); a ``running`` one whose process is gone (killed, machine restarted)
        reads as ``failed`` with a ``message``: its folder's lock says so, nothing is written."""
        from pipelines.core import run_lock
        rows = self.query("SELECT * FROM evaluations ORDER BY created_at")
        for r in rows:
            r["config"] = json.loads(r["config"])
            r["summary"] = json.loads(r["summary"]) if r["summary"] else None
            if r["status"] == "running" and run_lock.held(r["out_dir"]) is False:
                r["status"] = "failed"
                r["message"] = ("the evaluation ended without reporting (killed, out of memory, or machine "
                                "restarted); run it again to resume")
        # Evaluations from before reports carry no task: they are exams.
        return [r for r in rows if task is None or r["config"].get("task", "exam") == task]


def add_workspace_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", default=None,
                        help=f"workspace directory (default: ${ENV_VAR} or ./{DEFAULT_DIR})")


@dataclass
class ShowConfig:
    workspace: str | None = None
    json: bool = False


@cli_guard
def main(argv: list[str] | None = None) -> None:
    from pipelines.core import cli
    args = cli.config_from_args(ShowConfig, cli.config_parser("workspace", ShowConfig, __doc__).parse_args(argv))
    ws = Workspace.resolve(args.workspace)
    tables = {t: [{k: v for k, v in r.items() if k != "config"} for r in ws.query(f"SELECT * FROM {t}")]
              for t in ("models", "datasets", "evaluations")}
    if args.json:
        print(json.dumps({"workspace": str(ws.root), **tables}, ensure_ascii=False, indent=2))
        return
    print(f"workspace: {ws.root}")
    for table, rows in tables.items():
        print(f"\n{table} ({len(rows)})")
        for r in rows:
            print("  " + json.dumps(r, ensure_ascii=False))


if __name__ == "__main__":
    main()
