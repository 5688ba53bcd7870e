"""The workspace owns its schema: a fresh workspace and one migrated from the version 0 layout
end up with the same tables; the migration keeps every row; reading a workspace never writes."""
import json
import sqlite3
import time

import pytest

from pipelines.core import schema
from pipelines.core.errors import UserError
from pipelines.core.workspace import Workspace
from pipelines.data import curate, filters
from pipelines.data import store as datastore
from pipelines.evaluation import reviews
from pipelines.training import runs as train_runs

# Version 0, copied from the code before pipelines/core/schema.py existed (workspace.py, datastore.py,
# train_runs.py, components/blind_review.py): each module created its tables on first use.
V0_REGISTRY = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, path TEXT, base_model TEXT, step INTEGER, train_hours REAL,
    run_id TEXT, created_at REAL NOT NULL, meta TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT NOT NULL, version TEXT NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL, n_records INTEGER,
    created_at REAL NOT NULL, meta TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (name, version, kind)
);
CREATE TABLE IF NOT EXISTS evaluations (
    out_dir TEXT PRIMARY KEY, model TEXT NOT NULL, adapter TEXT, data TEXT NOT NULL, config TEXT NOT NULL,
    summary TEXT, status TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL
);
"""
V0_DATAGEN = """
CREATE TABLE IF NOT EXISTS dg_requests (
    key TEXT PRIMARY KEY, chunk_id TEXT NOT NULL, prompt_hash TEXT NOT NULL, model TEXT NOT NULL,
    response TEXT NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER, total_tokens INTEGER,
    seconds REAL, attempts INTEGER, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dg_records (
    id INTEGER PRIMARY KEY, dataset TEXT NOT NULL,
    instruction TEXT NOT NULL, input TEXT NOT NULL DEFAULT '', output TEXT NOT NULL,
    orig_instruction TEXT NOT NULL, orig_input TEXT NOT NULL DEFAULT '', orig_output TEXT NOT NULL,
    source_doc TEXT, chunk_id TEXT, model TEXT, prompt_version TEXT, request_key TEXT, pair_index INTEGER,
    status TEXT NOT NULL DEFAULT 'pending', edited INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    UNIQUE (dataset, request_key, pair_index)
);
CREATE INDEX IF NOT EXISTS dg_records_dataset ON dg_records (dataset, status);
CREATE TABLE IF NOT EXISTS dg_raw (
    id INTEGER PRIMARY KEY, dataset TEXT NOT NULL, request_key TEXT NOT NULL,
    source_doc TEXT, chunk_id TEXT, model TEXT, prompt_version TEXT, response TEXT NOT NULL,
    leftovers TEXT NOT NULL, n_leftovers INTEGER NOT NULL, n_pairs INTEGER NOT NULL, created_at REAL NOT NULL,
    UNIQUE (dataset, request_key)
);
CREATE TABLE IF NOT EXISTS dg_flags (
    record_id INTEGER NOT NULL REFERENCES dg_records(id) ON DELETE CASCADE, filter TEXT NOT NULL, detail TEXT,
    PRIMARY KEY (record_id, filter)
);
CREATE INDEX IF NOT EXISTS dg_flags_filter ON dg_flags (filter);
CREATE TABLE IF NOT EXISTS dg_audit (
    id INTEGER PRIMARY KEY, record_id INTEGER NOT NULL, who TEXT NOT NULL, at REAL NOT NULL,
    field TEXT NOT NULL, before TEXT, after TEXT
);
CREATE INDEX IF NOT EXISTS dg_audit_record ON dg_audit (record_id)
"""
V0_TRAIN_RUNS = """
CREATE TABLE IF NOT EXISTS train_runs (
    run_id TEXT PRIMARY KEY, run_name TEXT NOT NULL, run_dir TEXT NOT NULL, created_at REAL NOT NULL
)
"""
V0_REVIEWS = """
CREATE TABLE IF NOT EXISTS workbench_reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT, eval_dir TEXT NOT NULL, checkpoint TEXT NOT NULL,
    problem_id TEXT NOT NULL, shots INTEGER NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('correct', 'partly', 'wrong', 'harmful')),
    reviewer TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,
    UNIQUE (eval_dir, problem_id, shots, reviewer)
);
"""


def build_v0(root, *ddls: str) -> sqlite3.Connection:
    """A workspace database as the version 0 code left it (WAL, user_version 0)."""
    root.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(root / "registry.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for ddl in ddls:
        conn.executescript(ddl)
    return conn


def layout(ws: Workspace) -> dict[str, list[tuple]]:
    """Per table and index: its columns (name, type, not null, default, pk) or indexed columns."""
    out = {}
    for row in ws.query("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"):
        pragma = "table_info" if row["type"] == "table" else "index_info"
        out[row["name"]] = [tuple(r.values()) for r in ws.query(f"PRAGMA {pragma}({row['name']})")]
    return out


def test_a_version_0_workspace_is_migrated_with_its_rows_intact(tmp_path):
    root = tmp_path / "ws"
    run_dir = root / "runs" / "r1"
    run_dir.mkdir(parents=True)
    train_runs.write_json(run_dir / "config.json", {"config": {"run_name": "r1", "max_steps": 4}})
    train_runs.update_status(run_dir, status="finished", step=4, max_steps=4)
    now = time.time()
    conn = build_v0(root, V0_REGISTRY, V0_DATAGEN, V0_TRAIN_RUNS, V0_REVIEWS)
    conn.execute("INSERT INTO models (name, kind, path, step, created_at) VALUES ('r1@4', 'adapter', '/a', 4, ?)",
                 (now,))
    conn.execute("INSERT INTO datasets (name, version, kind, path, n_records, created_at)"
                 " VALUES ('demo', 'abc', 'alpaca', '/d.jsonl', 2, ?)", (now,))
    conn.execute("INSERT INTO evaluations (out_dir, model, data, config, summary, status, created_at, updated_at)"
                 " VALUES ('/e', 'r1@4', 'q.jsonl', '{\"shots\": [0]}', '{\"n\": 3}', 'finished', ?, ?)", (now, now))
    conn.execute("INSERT INTO dg_records (dataset, instruction, output, orig_instruction, orig_output, status,"
                 " created_at) VALUES ('demo', ?, ?, ?, ?, 'accepted', ?)",
                 ("DVTの治療は？", "抗凝固療法。", "DVTの治療は？", "抗凝固療法。", now))
    conn.execute("INSERT INTO dg_audit (record_id, who, at, field, before, after)"
                 " VALUES (1, 'dr-a', ?, 'status', 'pending', 'accepted')", (now,))
    conn.execute("INSERT INTO train_runs VALUES ('id1', 'r1', ?, ?)", (str(run_dir), now))
    conn.execute("INSERT INTO workbench_reviews (eval_dir, checkpoint, problem_id, shots, rating, reviewer,"
                 " created_at) VALUES ('/e', 'r1@4', 'q1', 0, 'harmful', 'dr-a', ?)", (now,))
    conn.close()

    ws = Workspace.resolve(root)

    assert ws.query("PRAGMA user_version")[0]["user_version"] == schema.VERSION > 0
    assert [m["name"] for m in ws.models()] == ["r1@4"]
    assert [(d["name"], d["n_records"]) for d in ws.datasets()] == [("demo", 2)]
    assert ws.evaluations()[0]["summary"] == {"n": 3}
    assert [(d["name"], d["accepted"]) for d in datastore.list_datasets(ws)] == [("demo", 1)]
    assert datastore.history(ws, 1)[0]["who"] == "dr-a"
    assert [(r["run_name"], r["status"], r["step"]) for r in train_runs.list_runs(ws)] == [("r1", "finished", 4)]
    store = reviews.ReviewStore(ws)
    assert [(r["problem_id"], r["rating"]) for r in store.ratings("dr-a")] == [("q1", "harmful")]
    # ...and the migrated workspace takes writes like a new one.
    store.rate(reviews.Candidate("/e", "r1@4", "q1", 0, "x"), "correct", "dr-a")
    assert [r["rating"] for r in store.ratings("dr-a")] == ["correct"]
    # Version 2 keeps the rating history: the version 0 rating is its first entry.
    assert [h["rating"] for h in store.history(reviews.Candidate("/e", "r1@4", "q1", 0, "x"), "dr-a")] == \
        ["harmful", "correct"]
    assert layout(ws) == layout(Workspace.resolve(tmp_path / "fresh"))


def test_a_version_0_workspace_with_only_the_registry_gets_the_other_tables(tmp_path):
    # A version 0 workspace that never generated data, trained or rated: those tables did not exist yet.
    conn = build_v0(tmp_path / "ws", V0_REGISTRY)
    conn.execute("INSERT INTO models (name, kind, created_at) VALUES ('default', 'base', 0)")
    conn.close()
    ws = Workspace.resolve(tmp_path / "ws")
    assert [m["name"] for m in ws.models()] == ["default"]
    assert train_runs.list_runs(ws) == [] and datastore.list_datasets(ws) == []
    assert layout(ws) == layout(Workspace.resolve(tmp_path / "fresh"))


def test_a_workspace_from_newer_code_is_refused_untouched(tmp_path):
    conn = build_v0(tmp_path / "ws", V0_REGISTRY)
    conn.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    conn.close()
    with pytest.raises(UserError, match="newer than this code"):
        Workspace.resolve(tmp_path / "ws")
    conn = sqlite3.connect(tmp_path / "ws" / "registry.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION + 1
    conn.close()


def test_opening_migrates_once_and_reading_never_writes(tmp_path, sql_writes):
    ws = Workspace.resolve(tmp_path / "ws")
    assert any(s.startswith("BEGIN") for s in sql_writes)           # the fresh database was created
    run_dir = ws.subdir("runs") / "r1"
    run_dir.mkdir()
    train_runs.write_json(run_dir / "config.json", {"config": {"run_name": "r1"}})
    train_runs.update_status(run_dir, status="running", step=1)
    train_runs.register_run(ws, "id1", "r1", run_dir)
    datastore.add_records(ws, "d", [{"instruction": "DVTの治療は？", "output": "抗凝固療法を行う。"}])
    reviews.ReviewStore(ws).rate(reviews.Candidate("/e", "base", "q1", 0, "x"), "partly", "dr-a")
    files = [ws.db_path, ws.db_path.with_name("registry.sqlite-wal")]   # the WAL goes when the last reader closes

    def file_state():
        return [(f.stat().st_mtime_ns, f.stat().st_size) if f.exists() else None for f in files]
    before = file_state()
    sql_writes.clear()

    for _ in range(3):
        ws = Workspace.resolve(tmp_path / "ws")
        train_runs.list_runs(ws)
        ws.models(), ws.datasets(), ws.evaluations()
        store = reviews.ReviewStore(ws)
        store.ratings(), store.rated_keys("dr-a")
        datastore.list_datasets(ws), datastore.list_records(ws, "d"), datastore.count_records(ws, "d")
        filters.filter_counts(ws, "d"), curate.dataset_stats(ws, "d")

    assert sql_writes == []
    assert file_state() == before
    assert json.loads(json.dumps(train_runs.list_runs(ws)))[0]["run_name"] == "r1"


def test_a_version_1_workspace_gets_the_rating_history_with_its_ratings(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    conn = sqlite3.connect(root / "registry.sqlite", isolation_level=None)
    for statement in schema.STEPS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO workbench_reviews (eval_dir, checkpoint, problem_id, shots, rating, reviewer,"
                 " created_at) VALUES ('/e', 'base', 'q1', 1, 'wrong', 'dr-b', 1.0)")
    conn.close()
    ws = Workspace.resolve(root)
    c = reviews.Candidate("/e", "base", "q1", 1, "x")
    assert [h["rating"] for h in reviews.ReviewStore(ws).history(c, "dr-b")] == ["wrong"]
    assert layout(ws) == layout(Workspace.resolve(tmp_path / "fresh"))


def test_a_version_2_workspace_gets_the_harm_flag_with_its_ratings_unflagged(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    conn = sqlite3.connect(root / "registry.sqlite", isolation_level=None)
    for step in schema.STEPS[:2]:
        for statement in step.split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO workbench_reviews (eval_dir, checkpoint, problem_id, shots, rating, reviewer,"
                 " created_at) VALUES ('/e', 'base', 'q1', 0, 'harmful', 'dr-b', 1.0)")
    conn.execute("INSERT INTO review_history (eval_dir, checkpoint, problem_id, shots, rating, reviewer,"
                 " created_at) VALUES ('/e', 'base', 'q1', 0, 'harmful', 'dr-b', 1.0)")
    conn.close()
    ws = Workspace.resolve(root)
    c = reviews.Candidate("/e", "base", "q1", 0, "x")
    store = reviews.ReviewStore(ws)
    assert store.current(c, "dr-b") == {"rating": "harmful", "harm": False, "note": ""}
    store.rate(c, "partly", "dr-b", harm=True)
    assert [(h["rating"], h["harm"]) for h in store.history(c, "dr-b")] == [("harmful", 0), ("partly", 1)]
    assert layout(ws) == layout(Workspace.resolve(tmp_path / "fresh"))
