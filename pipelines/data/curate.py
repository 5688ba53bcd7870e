"""Curation of generated instruction data: filters, review, statistics and export.

    jmedlora curate filter --dataset NAME [--keyword WORD ...] [--only near_duplicate,...]
    jmedlora curate list   --dataset NAME [--status pending] [--flag any|clean|FILTER] [--search TEXT]
    jmedlora curate review ID [ID ...] --status accepted|rejected|pending [--who NAME]
    jmedlora curate review --dataset NAME --flag near_duplicate --status rejected   # in bulk
    jmedlora curate edit ID [--instruction TEXT] [--input TEXT] [--output TEXT] [--revert]
    jmedlora curate stats  [--dataset NAME]
    jmedlora curate import --dataset NAME --jsonl FILE          # existing Alpaca records
    jmedlora curate export --dataset NAME --format alpaca|hf|text --out PATH [--eval-fraction 0.05]

Filters flag records, they never delete them (``pipelines.data.filters``). A flagged record is
left out of exports unless a reviewer accepted it; a rejected record is always left out
(``pipelines.data.dataset_export``). Here: importing Alpaca records, review in bulk, a
dataset's statistics, and the command (its subcommands' configs: ``pipelines.data.curate_cli``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pipelines.core import audit, cli
from pipelines.core.errors import UserError, cli_guard
from pipelines.core.jsonl import read_jsonl
from pipelines.core.workspace import Workspace
from pipelines.data import curate_cli
from pipelines.data import store as datastore
from pipelines.data.dataset_export import ExportConfig, export
from pipelines.data.filters import CurateConfig, filter_counts, run
from pipelines.data.store import count_records, list_records


# -- what the UI and CLI share: import, review, statistics ---------------------------

def import_alpaca_jsonl(ws: Workspace, dataset: str, path: str, *, user: str | None = None) -> int:
    """Add the Alpaca records of a JSONL file to ``dataset``; returns how many were added. Audited here,
    as export is, so the command line and the page leave the same entry (``user``: who, from the page)."""
    records = []
    for lineno, rec in read_jsonl(path):
        if not isinstance(rec.get("instruction"), str) or not isinstance(rec.get("output"), str):
            raise UserError(f"{path}:{lineno}: expected {{\"instruction\": ..., \"output\": ...}}.",
                            "Each line must be an Alpaca record (instruction, optional input, output).",
                            code="alpaca.not_a_record", params={"path": str(path), "line": lineno})
        records.append({"instruction": rec["instruction"], "input": rec.get("input") or "",
                        "output": rec["output"], "source_doc": Path(path).name})
    n = datastore.add_records(ws, dataset, records, source=f"import:{Path(path).name}")
    audit.record(ws.root, user or audit.current_user(), "import", f"dataset:{dataset}",
                 path=str(Path(path).resolve()), records=n)
    return n


def review_where(ws: Workspace, dataset: str, new_status: str, *, who: str | None = None, **where) -> int:
    """Set the status of every record matching a listing filter (e.g. reject all near-duplicates).

    ``where`` takes ``list_records``' filters: status, flag, search, source_doc."""
    ids = [r["id"] for r in list_records(ws, dataset, limit=-1, **where)]
    return datastore.set_status(ws, ids, new_status, who=who)


def dataset_stats(ws: Workspace, dataset: str) -> dict:
    """Counts, lengths, provenance and cost of one generated dataset."""
    total = count_records(ws, dataset)
    if not total:
        raise UserError(f"Dataset {dataset!r} has no records.",
                        "jmedlora curate stats (without --dataset) lists the datasets.",
                        code="curate.empty_dataset", params={"dataset": dataset})
    q = lambda sql: ws.query(sql, (dataset,))  # noqa: E731
    lengths = q("SELECT AVG(LENGTH(instruction)) AS q_mean, MAX(LENGTH(instruction)) AS q_max,"
                " AVG(LENGTH(output)) AS a_mean, MAX(LENGTH(output)) AS a_max, SUM(edited) AS edited"
                " FROM dg_records WHERE dataset = ?")[0]
    raw = q("SELECT COUNT(*) AS responses, COALESCE(SUM(n_leftovers), 0) AS lines,"
            " COALESCE(SUM(n_pairs = 0), 0) AS no_pairs FROM dg_raw WHERE dataset = ?")[0]
    # Requests are cached across datasets; count those whose response fed this one.
    tokens = q("SELECT COUNT(*) AS requests, COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,"
               " COALESCE(SUM(completion_tokens), 0) AS completion_tokens, COALESCE(SUM(total_tokens), 0) AS total_tokens"
               " FROM dg_requests WHERE key IN (SELECT request_key FROM dg_records WHERE dataset = ?1"
               " UNION SELECT request_key FROM dg_raw WHERE dataset = ?1)")[0]
    group = lambda col: {r["k"]: r["n"] for r in q(  # noqa: E731
        f"SELECT COALESCE({col}, '') AS k, COUNT(*) AS n FROM dg_records WHERE dataset = ? GROUP BY k ORDER BY n DESC")}
    return {
        "dataset": dataset, "records": total,
        "by_status": {s: count_records(ws, dataset, status=s) for s in datastore.STATUSES},
        "filters": filter_counts(ws, dataset),
        "by_source_doc": group("source_doc"), "by_model": group("model"), "by_prompt_version": group("prompt_version"),
        "lengths": {"question_mean": round(lengths["q_mean"] or 0, 1), "question_max": lengths["q_max"],
                    "answer_mean": round(lengths["a_mean"] or 0, 1), "answer_max": lengths["a_max"]},
        "edited": lengths["edited"] or 0,
        "unparseable": {"responses": raw["responses"], "lines": raw["lines"], "responses_without_pairs": raw["no_pairs"]},
        "usage": tokens,
    }


# -- CLI (the subcommands' configs: pipelines/data/curate_cli.py) --------------------------

COMMANDS = {
    "filter": (CurateConfig, "flag records (nothing is deleted) and count each filter's effect"),
    "list": (curate_cli.ListConfig, "show records"),
    "review": (curate_cli.ReviewConfig, "accept, reject or reset records, by id or by filter"),
    "edit": (curate_cli.EditConfig, "edit one record (the original is kept)"),
    "stats": (curate_cli.StatsConfig, "dataset statistics (all datasets without --dataset)"),
    "import": (curate_cli.ImportConfig, "add Alpaca JSONL records to a dataset for curation"),
    "export": (ExportConfig, "export the curated records and register the version"),
}


@cli_guard
def main(argv: list[str] | None = None) -> None:
    args = cli.subcommands_parser("curate", __doc__, COMMANDS).parse_args(argv)
    command = args.command
    a = cli.config_from_args(COMMANDS[command][0], args)
    ws = Workspace.resolve(a.workspace)
    if getattr(a, "dataset", None) and command != "import":
        curate_cli.known_dataset(ws, a.dataset)

    if command == "filter":
        print(json.dumps(run(a, workspace=ws), indent=2))
    elif command == "list":
        where = dict(status=a.status, flag=a.flag, search=a.search, source_doc=a.source_doc)
        curate_cli.print_records(list_records(ws, a.dataset, limit=a.limit, offset=a.offset, **where), a.json)
        print(f"{count_records(ws, a.dataset, **where)} matching record(s)", file=sys.stderr)
    elif command == "review":
        if a.ids:
            n = datastore.set_status(ws, a.ids, a.status, who=a.who)
        elif a.dataset:
            n = review_where(ws, a.dataset, a.status, who=a.who, status=a.where_status, flag=a.flag,
                             search=a.search, source_doc=a.source_doc)
        else:
            raise UserError("review needs record ids, or --dataset with a filter.",
                            "e.g. review 12 13 --status accepted, or review --dataset D --flag near_duplicate --status rejected")
        print(f"{n} record(s) set to {a.status}")
    elif command == "edit":
        if a.revert:
            rec = datastore.revert_record(ws, a.id, who=a.who)
        else:
            changes = {k: getattr(a, k) for k in datastore.FIELDS if getattr(a, k) is not None}
            if not changes:
                raise UserError("Nothing to edit.", "Pass --instruction, --input or --output (or --revert).")
            rec = datastore.edit_record(ws, a.id, who=a.who, **changes)
        curate_cli.print_records([rec], False)
    elif command == "stats":
        if a.dataset:
            print(json.dumps(dataset_stats(ws, a.dataset), ensure_ascii=False, indent=2))
        else:
            for row in datastore.list_datasets(ws):
                print(json.dumps(row, ensure_ascii=False))
    elif command == "import":
        print(f"{import_alpaca_jsonl(ws, a.dataset, a.jsonl)} record(s) added to {a.dataset}")
    elif command == "export":
        print(json.dumps(export(a, workspace=ws), ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
