"""Every table of the workspace database (``registry.sqlite``), and how a workspace gets there.

The schema is the list of ``STEPS``: step N turns a version N-1 database into version N, and
the database records its version in ``PRAGMA user_version``. ``apply`` runs the missing steps
once, when a workspace is opened (``Workspace.resolve``); an up-to-date workspace is only read.
Nothing else creates or alters tables, so reading the workspace (a UI timer, a listing) never
takes SQLite's write lock.

To add a table or a column: append a step (``CREATE TABLE …`` / ``ALTER TABLE … ADD COLUMN …``)
and the version follows. Never edit a step that has shipped: workspaces already past it would
not see the change. A test builds each older layout and checks the migration keeps its rows.

Version 0 is the layout before this module: the same tables, each created on first use by the
module that used it (so a version 0 workspace may hold any subset of them).
"""
from __future__ import annotations

import sqlite3

from pipelines.core.errors import UserError

# -- the registry: models, datasets, evaluations (pipelines.core.workspace) ---------------------
REGISTRY = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,          -- how users refer to it, e.g. 'default', 'run-3@1000'
    kind TEXT NOT NULL,             -- 'base' | 'adapter' | 'merged' | 'endpoint'
    path TEXT,                      -- model or adapter directory
    base_model TEXT,                -- for adapters: the base model reference
    step INTEGER,                   -- training step of a checkpoint (0 = base model)
    train_hours REAL,               -- elapsed training hours when saved
    run_id TEXT,
    created_at REAL NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT NOT NULL,
    version TEXT NOT NULL,          -- content hash of what was exported
    kind TEXT NOT NULL,             -- 'alpaca' | 'hf' | 'text' | 'questions'
    path TEXT NOT NULL,
    n_records INTEGER,
    created_at REAL NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (name, version, kind)
);
CREATE TABLE IF NOT EXISTS evaluations (
    out_dir TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    adapter TEXT,
    data TEXT NOT NULL,
    config TEXT NOT NULL,
    summary TEXT,
    status TEXT NOT NULL,           -- 'running' | 'finished' | 'failed'
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""

# -- generated instruction data (pipelines.data.store, pipelines.data.curate) ---------------------
DATAGEN = """
CREATE TABLE IF NOT EXISTS dg_requests (
    key TEXT PRIMARY KEY,            -- sha256(chunk id, prompt hash, model)
    chunk_id TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    prompt_tokens INTEGER, completion_tokens INTEGER, total_tokens INTEGER,
    seconds REAL, attempts INTEGER,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dg_records (
    id INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    instruction TEXT NOT NULL, input TEXT NOT NULL DEFAULT '', output TEXT NOT NULL,
    orig_instruction TEXT NOT NULL, orig_input TEXT NOT NULL DEFAULT '', orig_output TEXT NOT NULL,
    source_doc TEXT, chunk_id TEXT, model TEXT, prompt_version TEXT,
    request_key TEXT, pair_index INTEGER,
    status TEXT NOT NULL DEFAULT 'pending',
    edited INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    UNIQUE (dataset, request_key, pair_index)
);
CREATE INDEX IF NOT EXISTS dg_records_dataset ON dg_records (dataset, status);
CREATE TABLE IF NOT EXISTS dg_raw (
    id INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    request_key TEXT NOT NULL,
    source_doc TEXT, chunk_id TEXT, model TEXT, prompt_version TEXT,
    response TEXT NOT NULL,          -- the whole response, verbatim
    leftovers TEXT NOT NULL,         -- JSON list of the lines no pair was parsed from
    n_leftovers INTEGER NOT NULL,
    n_pairs INTEGER NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (dataset, request_key)
);
CREATE TABLE IF NOT EXISTS dg_flags (
    record_id INTEGER NOT NULL REFERENCES dg_records(id) ON DELETE CASCADE,
    filter TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (record_id, filter)
);
CREATE INDEX IF NOT EXISTS dg_flags_filter ON dg_flags (filter);
CREATE TABLE IF NOT EXISTS dg_audit (
    id INTEGER PRIMARY KEY,
    record_id INTEGER NOT NULL,
    who TEXT NOT NULL,
    at REAL NOT NULL,
    field TEXT NOT NULL,             -- 'instruction' | 'input' | 'output' | 'status'
    before TEXT, after TEXT
);
CREATE INDEX IF NOT EXISTS dg_audit_record ON dg_audit (record_id);
"""

# -- training runs launched from this workspace (pipelines.training.runs) ----------------------
TRAIN_RUNS = """
CREATE TABLE IF NOT EXISTS train_runs (
    run_id TEXT PRIMARY KEY,
    run_name TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

# -- blind-review ratings (pipelines.evaluation.reviews) -----------------------------------------------
# The table keeps its version 0 name: renaming it would buy nothing but a migration.
REVIEWS = """
CREATE TABLE IF NOT EXISTS workbench_reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    eval_dir TEXT NOT NULL,         -- the evaluation whose answer was rated
    checkpoint TEXT NOT NULL,       -- who wrote it (hidden from the reviewer while rating)
    problem_id TEXT NOT NULL,
    shots INTEGER NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('correct', 'partly', 'wrong', 'harmful')),
    reviewer TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    UNIQUE (eval_dir, problem_id, shots, reviewer)
);
"""

# Version 2: every rating ever given, so changing a rating keeps what it was (the reviewer's
# earlier judgement is evidence too); ``workbench_reviews`` stays the current rating per reviewer.
REVIEW_HISTORY = """
CREATE TABLE IF NOT EXISTS review_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    eval_dir TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    problem_id TEXT NOT NULL,
    shots INTEGER NOT NULL,
    rating TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS review_history_answer ON review_history (eval_dir, problem_id, shots, reviewer);
INSERT INTO review_history (eval_dir, checkpoint, problem_id, shots, rating, reviewer, note, created_at)
    SELECT eval_dir, checkpoint, problem_id, shots, rating, reviewer, note, created_at FROM workbench_reviews
    ORDER BY created_at;
"""

# Version 3: a rating can flag harm apart from how right the answer is (a report that reads well
# but misses a pneumothorax is "partly correct" *and* harmful); 0 for every earlier rating.
REVIEW_HARM = """
ALTER TABLE workbench_reviews ADD COLUMN harm INTEGER NOT NULL DEFAULT 0;
ALTER TABLE review_history ADD COLUMN harm INTEGER NOT NULL DEFAULT 0;
"""

# STEPS[i] brings a database from version i to version i + 1. Step 1 uses IF NOT EXISTS because
# a version 0 workspace holds whichever tables its modules had created, with these definitions.
STEPS: list[str] = [
    REGISTRY + DATAGEN + TRAIN_RUNS + REVIEWS,
    REVIEW_HISTORY,
    REVIEW_HARM,
]
VERSION = len(STEPS)


def version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def apply(conn: sqlite3.Connection, where: str = "this workspace") -> int:
    """Bring the database to ``VERSION``; returns the version it had. Reads only when current.

    ``conn`` must be in autocommit mode (``isolation_level=None``, as ``Workspace.connect``).
    """
    found = version(conn)
    if found < VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = version(conn)      # another process may have migrated while we waited for the lock
            for step in STEPS[found:]:
                for statement in step.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            if found < VERSION:
                conn.execute(f"PRAGMA user_version = {VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if found > VERSION:
        raise UserError(f"{where} has database schema version {found}, newer than this code knows ({VERSION}).",
                        "Update the workbench (git pull), or open another --workspace.",
                        code="workspace.newer_schema", params={"path": str(where), "found": found, "known": VERSION})
    return found
