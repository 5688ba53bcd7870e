"""Generated instruction data in the workspace database: records, raw outputs, cache, audit.

Tables (all in ``registry.sqlite``, defined in ``pipelines/core/schema.py``):

* ``dg_requests``  the request cache: one row per (chunk id, prompt hash, model), holding the
  model's raw response and its token usage. A re-run finds its work here and sends nothing.
* ``dg_records``   one row per parsed question/answer pair, with provenance (source document,
  chunk id, generator model, prompt version, time), review status and the original text; an
  edit changes the current text only.
* ``dg_raw``       what the parser could not use, per response, kept verbatim and counted.
* ``dg_flags``     which curation filter flagged which record (recomputed by each filter run).
* ``dg_audit``     every review decision and edit: who, when, field, before, after.

The listing functions here are what the Data tab calls: one ``where`` builder serves
listing, counting and export, so a count shown next to a filter is the number it lists.
"""
from __future__ import annotations

import getpass
import json
import sqlite3
import time
from typing import Any

from pipelines.core.errors import UserError
from pipelines.core.workspace import Workspace

STATUSES = ("pending", "accepted", "rejected")
FIELDS = ("instruction", "input", "output")

def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


# -- writing generated data -------------------------------------------------------

def cached_response(ws: Workspace, key: str) -> dict | None:
    rows = ws.query("SELECT * FROM dg_requests WHERE key = ?", (key,))
    return rows[0] if rows else None


def cached_keys(ws: Workspace, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(keys), 500):
        part = keys[i:i + 500]
        rows = ws.query(f"SELECT key FROM dg_requests WHERE key IN ({','.join('?' * len(part))})", tuple(part))
        found.update(r["key"] for r in rows)
    return found


def _save_response(conn: sqlite3.Connection, key: str, chunk_id: str, prompt_hash: str, model: str, response: str,
                   usage: dict, seconds: float, attempts: int) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO dg_requests (key, chunk_id, prompt_hash, model, response, prompt_tokens,"
        " completion_tokens, total_tokens, seconds, attempts, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (key, chunk_id, prompt_hash, model, response, usage.get("prompt_tokens"),
         usage.get("completion_tokens"), usage.get("total_tokens"), seconds, attempts, time.time()))


def save_response(ws: Workspace, *, key: str, chunk_id: str, prompt_hash: str, model: str, response: str,
                  usage: dict, seconds: float, attempts: int) -> None:
    """Cache one response (without adding records: see ``ingest``)."""
    with ws.transaction(durable=False) as conn:
        _save_response(conn, key, chunk_id, prompt_hash, model, response, usage, seconds, attempts)


def ingest(ws: Workspace, *, dataset: str, key: str, provenance: dict, pairs: list[dict],
           response: str, leftovers: list[str], cache: dict | None = None) -> int:
    """Add one response's pairs (and its leftovers) to a dataset; idempotent. Returns rows added.

    ``cache``: the request row (chunk_id, prompt_hash, model, usage, seconds, attempts) to store
    with the records in the same transaction, so a response is never cached without its records."""
    now = time.time()
    prov = (provenance.get("source_doc"), provenance.get("chunk_id"), provenance.get("model"),
            provenance.get("prompt_version"))
    with ws.transaction(durable=False) as conn:
        if cache is not None:
            _save_response(conn, key, response=response, **cache)
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO dg_records (dataset, instruction, input, output, orig_instruction, orig_input,"
            " orig_output, source_doc, chunk_id, model, prompt_version, request_key, pair_index, created_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(dataset, p["instruction"], p.get("input", ""), p["output"], p["instruction"], p.get("input", ""),
              p["output"], *prov, key, i, now) for i, p in enumerate(pairs)])
        added = conn.total_changes - before
        if leftovers or not pairs:
            conn.execute(
                "INSERT OR IGNORE INTO dg_raw (dataset, request_key, source_doc, chunk_id, model, prompt_version,"
                " response, leftovers, n_leftovers, n_pairs, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (dataset, key, *prov, response, json.dumps(leftovers, ensure_ascii=False),
                 len(leftovers), len(pairs), now))
    return added


def add_records(ws: Workspace, dataset: str, records: list[dict], *, source: str = "import") -> int:
    """Bulk-add ready-made records (an imported JSONL, a benchmark); each gets its own key."""
    now = time.time()
    with ws.transaction() as conn:
        start = conn.execute("SELECT COALESCE(MAX(id), 0) FROM dg_records").fetchone()[0]
        conn.executemany(
            "INSERT INTO dg_records (dataset, instruction, input, output, orig_instruction, orig_input,"
            " orig_output, source_doc, chunk_id, model, prompt_version, request_key, pair_index, created_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(dataset, r["instruction"], r.get("input", ""), r["output"], r["instruction"], r.get("input", ""),
              r["output"], r.get("source_doc", source), r.get("chunk_id"), r.get("model"),
              r.get("prompt_version"), f"{source}:{start + i}", 0, now) for i, r in enumerate(records)])
    return len(records)


# -- listing (what the Data tab shows) --------------------------------------------

def _where(dataset: str, status: str | None, flag: str | None, search: str | None,
           source_doc: str | None) -> tuple[str, list]:
    """``flag``: a filter name, ``'any'`` (flagged by some filter) or ``'clean'`` (by none)."""
    clauses, params = ["r.dataset = ?"], [dataset]
    if status:
        if status not in STATUSES:
            raise UserError(f"Unknown review status {status!r}.", f"Use one of {', '.join(STATUSES)}.",
                            code="records.bad_status", params={"status": str(status), "known": ", ".join(STATUSES)})
        clauses.append("r.status = ?")
        params.append(status)
    if flag == "any":
        clauses.append("EXISTS (SELECT 1 FROM dg_flags f WHERE f.record_id = r.id)")
    elif flag == "clean":
        clauses.append("NOT EXISTS (SELECT 1 FROM dg_flags f WHERE f.record_id = r.id)")
    elif flag:
        clauses.append("EXISTS (SELECT 1 FROM dg_flags f WHERE f.record_id = r.id AND f.filter = ?)")
        params.append(flag)
    if search:
        # Search is literal: '%' and '_' (common in medical text: 50%, HbA1c_target) match themselves.
        clauses.append("(r.instruction LIKE ? ESCAPE '\\' OR r.output LIKE ? ESCAPE '\\' OR r.input LIKE ? ESCAPE '\\')")
        literal = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params += [f"%{literal}%"] * 3
    if source_doc:
        clauses.append("r.source_doc = ?")
        params.append(source_doc)
    return " AND ".join(clauses), params


def list_records(ws: Workspace, dataset: str, *, status: str | None = None, flag: str | None = None,
                 search: str | None = None, source_doc: str | None = None,
                 limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Records of a dataset, oldest first, each with ``flags``: {filter: detail}."""
    where, params = _where(dataset, status, flag, search, source_doc)
    rows = ws.query(f"SELECT r.* FROM dg_records r WHERE {where} ORDER BY r.id LIMIT ? OFFSET ?",
                    tuple(params + [limit, offset]))
    if rows:
        ids = [r["id"] for r in rows]
        if len(ids) <= 500:
            flags = ws.query(f"SELECT * FROM dg_flags WHERE record_id IN ({','.join('?' * len(ids))})", tuple(ids))
        else:  # too many ids for one IN list: take the dataset's flags
            flags = ws.query("SELECT f.* FROM dg_flags f JOIN dg_records r ON r.id = f.record_id WHERE r.dataset = ?",
                             (dataset,))
        by_id: dict[int, dict] = {}
        for f in flags:
            by_id.setdefault(f["record_id"], {})[f["filter"]] = f["detail"]
        for r in rows:
            r["flags"] = by_id.get(r["id"], {})
    return rows


def count_records(ws: Workspace, dataset: str, *, status: str | None = None, flag: str | None = None,
                  search: str | None = None, source_doc: str | None = None) -> int:
    where, params = _where(dataset, status, flag, search, source_doc)
    return ws.query(f"SELECT COUNT(*) AS n FROM dg_records r WHERE {where}", tuple(params))[0]["n"]


def exportable_ids(ws: Workspace, dataset: str, only_accepted: bool) -> list[int]:
    """The records an export takes: the accepted ones, or (``only_accepted=False``) every record
    not rejected and not flagged, a flagged one only if a reviewer accepted it."""
    if only_accepted:
        sql = "SELECT id FROM dg_records WHERE dataset = ? AND status = 'accepted' ORDER BY id"
    else:
        sql = ("SELECT r.id FROM dg_records r WHERE r.dataset = ? AND r.status != 'rejected' AND (r.status = 'accepted'"
               " OR NOT EXISTS (SELECT 1 FROM dg_flags f WHERE f.record_id = r.id)) ORDER BY r.id")
    return [r["id"] for r in ws.query(sql, (dataset,))]


def get_record(ws: Workspace, record_id: int) -> dict[str, Any]:
    rows = ws.query("SELECT * FROM dg_records WHERE id = ?", (record_id,))
    if not rows:
        raise UserError(f"No record with id {record_id}.", "List the dataset's records to find valid ids.",
                        code="records.no_id", params={"id": record_id})
    rec = rows[0]
    rec["flags"] = {f["filter"]: f["detail"] for f in ws.query("SELECT * FROM dg_flags WHERE record_id = ?", (record_id,))}
    return rec


def list_datasets(ws: Workspace) -> list[dict[str, Any]]:
    """Generated datasets with their record counts, by name."""
    return ws.query("SELECT dataset AS name, COUNT(*) AS n_records, SUM(status = 'accepted') AS accepted,"
                    " SUM(status = 'rejected') AS rejected, MIN(created_at) AS created_at"
                    " FROM dg_records GROUP BY dataset ORDER BY dataset")


def list_raw(ws: Workspace, dataset: str, *, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    rows = ws.query("SELECT * FROM dg_raw WHERE dataset = ? ORDER BY id LIMIT ? OFFSET ?", (dataset, limit, offset))
    for r in rows:
        r["leftovers"] = json.loads(r["leftovers"])
    return rows


def history(ws: Workspace, record_id: int) -> list[dict[str, Any]]:
    """The record's audit trail, oldest first."""
    return ws.query("SELECT * FROM dg_audit WHERE record_id = ? ORDER BY id", (record_id,))


# -- review -----------------------------------------------------------------------

def set_status(ws: Workspace, record_ids: list[int], status: str, *, who: str | None = None) -> int:
    """Accept, reject or reset (``pending``) records; each change is audited. Returns changes."""
    if status not in STATUSES:
        raise UserError(f"Unknown review status {status!r}.", f"Use one of {', '.join(STATUSES)}.",
                        code="records.bad_status", params={"status": str(status), "known": ", ".join(STATUSES)})
    who = who or default_reviewer()
    changed = 0
    with ws.transaction() as conn:
        for rid in record_ids:
            row = conn.execute("SELECT status FROM dg_records WHERE id = ?", (rid,)).fetchone()
            if row is None:
                raise UserError(f"No record with id {rid}.", "List the dataset's records to find valid ids.",
                                code="records.no_id", params={"id": rid})
            if row["status"] != status:
                conn.execute("UPDATE dg_records SET status = ? WHERE id = ?", (status, rid))
                conn.execute("INSERT INTO dg_audit (record_id, who, at, field, before, after) VALUES (?,?,?,?,?,?)",
                             (rid, who, time.time(), "status", row["status"], status))
                changed += 1
    return changed


def edit_record(ws: Workspace, record_id: int, *, who: str | None = None, **changes: str) -> dict[str, Any]:
    """Change instruction/input/output; the original stays in ``orig_*`` and the audit trail."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise UserError(f"Cannot edit field(s) {', '.join(sorted(unknown))}.", f"Editable fields: {', '.join(FIELDS)}.",
                        code="records.bad_fields",
                        params={"names": ", ".join(sorted(unknown)), "known": ", ".join(FIELDS)})
    for name in ("instruction", "output"):
        if name in changes and not (changes[name] or "").strip():
            raise UserError(f"The {name} cannot be empty.", "Reject the record instead of emptying it.",
                            code="records.empty_field", params={"field": name})
    who = who or default_reviewer()
    with ws.transaction() as conn:
        row = conn.execute("SELECT * FROM dg_records WHERE id = ?", (record_id,)).fetchone()
        if row is None:
            raise UserError(f"No record with id {record_id}.", "List the dataset's records to find valid ids.",
                        code="records.no_id", params={"id": record_id})
        for name, value in changes.items():
            if value is None or value == row[name]:
                continue
            conn.execute(f"UPDATE dg_records SET {name} = ?, edited = 1 WHERE id = ?", (value, record_id))
            conn.execute("INSERT INTO dg_audit (record_id, who, at, field, before, after) VALUES (?,?,?,?,?,?)",
                         (record_id, who, time.time(), name, row[name], value))
    return get_record(ws, record_id)


def revert_record(ws: Workspace, record_id: int, *, who: str | None = None) -> dict[str, Any]:
    """Restore the generated text (itself an audited edit)."""
    rec = get_record(ws, record_id)
    return edit_record(ws, record_id, who=who, **{f: rec[f"orig_{f}"] for f in FIELDS})
