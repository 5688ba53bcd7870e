"""The ``python -m pipelines.curate`` command line: one small config per subcommand.

The curation itself (filters, review helpers, export) is in ``pipelines/curate.py``; this module
only maps each subcommand's flags (generated from its config by ``pipelines.cli``) onto it, and
checks a named dataset exists first, so a typo is an error rather than "0 matching record(s)".
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from pipelines import cli, curate, datastore
from pipelines.datastore import count_records, list_records
from pipelines.errors import UserError
from pipelines.workspace import Workspace


@dataclass
class ListConfig:
    dataset: str                        # the generated dataset to show
    status: str | None = field(default=None, metadata=cli.choices(*datastore.STATUSES))  # only this review status
    flag: str | None = None             # any | clean | a filter name
    search: str | None = None           # text in the question or answer
    source_doc: str | None = None       # only records generated from this document
    limit: int = 20                     # records shown
    offset: int = 0                     # records skipped first
    json: bool = False
    workspace: str | None = None


@dataclass
class ReviewConfig:
    status: str = field(metadata=cli.meta(cli.required(), cli.choices(*datastore.STATUSES)))  # the new status
    ids: list[int] = field(default_factory=list, metadata=cli.positional())  # record ids (or --dataset + filters)
    dataset: str | None = None          # review every record of this dataset that matches the filters
    flag: str | None = None             # with --dataset: any | clean | a filter name
    search: str | None = None           # with --dataset: text in the question or answer
    source_doc: str | None = None       # with --dataset: only records from this document
    where_status: str | None = field(default=None, metadata=cli.choices(*datastore.STATUSES))
    """with --dataset: only records in this status"""
    who: str | None = None              # reviewer name for the audit trail
    workspace: str | None = None


@dataclass
class EditConfig:
    id: int = field(metadata=cli.meta(cli.required(), cli.positional()))  # the record to edit
    instruction: str | None = None      # new question text
    input: str | None = None            # new input text
    output: str | None = None           # new answer text
    revert: bool = False                # restore the generated text
    who: str | None = None              # editor name for the audit trail
    workspace: str | None = None


@dataclass
class StatsConfig:
    dataset: str | None = None          # one dataset in detail (default: every dataset, one line each)
    workspace: str | None = None


@dataclass
class ImportConfig:
    dataset: str                        # records are added to this dataset (created if new)
    jsonl: str                          # Alpaca JSONL file (instruction, optional input, output)
    workspace: str | None = None


COMMANDS = {
    "filter": (curate.CurateConfig, "flag records (nothing is deleted) and count each filter's effect"),
    "list": (ListConfig, "show records"),
    "review": (ReviewConfig, "accept, reject or reset records, by id or by filter"),
    "edit": (EditConfig, "edit one record (the original is kept)"),
    "stats": (StatsConfig, "dataset statistics (all datasets without --dataset)"),
    "import": (ImportConfig, "add Alpaca JSONL records to a dataset for curation"),
    "export": (curate.ExportConfig, "export the curated records and register the version"),
}


def known_dataset(ws: Workspace, name: str) -> str:
    names = [r["name"] for r in datastore.list_datasets(ws)]
    if name not in names:
        raise UserError(f"No dataset named {name!r} in {ws.root}.",
                        f"Use one of: {', '.join(names)}." if names else
                        "Generate (python -m pipelines.datagen) or import (curate import) records first.")
    return name


def print_records(rows: list[dict], as_json: bool) -> None:
    for r in rows:
        if as_json:
            print(json.dumps(r, ensure_ascii=False))
        else:
            flags = ",".join(r.get("flags", {})) or "-"
            print(f"#{r['id']} [{r['status']}{' edited' if r['edited'] else ''}] flags={flags}  {r['source_doc']}\n"
                  f"  Q: {r['instruction']}\n  A: {r['output']}")


def main(argv: list[str] | None = None) -> None:
    args = cli.subcommands_parser("curate", curate.__doc__, COMMANDS).parse_args(argv)
    command = args.command
    a = cli.config_from_args(COMMANDS[command][0], args)
    ws = Workspace.resolve(a.workspace)
    if getattr(a, "dataset", None) and command != "import":
        known_dataset(ws, a.dataset)

    if command == "filter":
        print(json.dumps(curate.run(a, workspace=ws), indent=2))
    elif command == "list":
        where = dict(status=a.status, flag=a.flag, search=a.search, source_doc=a.source_doc)
        print_records(list_records(ws, a.dataset, limit=a.limit, offset=a.offset, **where), a.json)
        print(f"{count_records(ws, a.dataset, **where)} matching record(s)", file=sys.stderr)
    elif command == "review":
        if a.ids:
            n = datastore.set_status(ws, a.ids, a.status, who=a.who)
        elif a.dataset:
            n = curate.review_where(ws, a.dataset, a.status, who=a.who, status=a.where_status, flag=a.flag,
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
        print_records([rec], False)
    elif command == "stats":
        if a.dataset:
            print(json.dumps(curate.dataset_stats(ws, a.dataset), ensure_ascii=False, indent=2))
        else:
            for row in datastore.list_datasets(ws):
                print(json.dumps(row, ensure_ascii=False))
    elif command == "import":
        print(f"{curate.import_alpaca_jsonl(ws, a.dataset, a.jsonl)} record(s) added to {a.dataset}")
    elif command == "export":
        print(json.dumps(curate.export(a, workspace=ws), ensure_ascii=False, indent=2))
