"""The ``jmedlora curate`` subcommands' configs (their flags are generated from them
by ``pipelines.core.cli``), record printing, and the dataset check that makes a typo an error rather
than "0 matching record(s)". ``pipelines/data/curate.py`` owns the command's ``main``
(``filter`` and ``export`` use CurateConfig and ExportConfig, from ``filters`` and ``dataset_export``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from pipelines.core import cli
from pipelines.core.errors import UserError
from pipelines.core.workspace import Workspace
from pipelines.data import store as datastore


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


def known_dataset(ws: Workspace, name: str) -> str:
    names = [r["name"] for r in datastore.list_datasets(ws)]
    if name not in names:
        raise UserError(f"No dataset named {name!r} in {ws.root}.",
                        f"Use one of: {', '.join(names)}." if names else
                        "Generate (jmedlora datagen) or import (curate import) records first.")
    return name


def print_records(rows: list[dict], as_json: bool) -> None:
    for r in rows:
        if as_json:
            print(json.dumps(r, ensure_ascii=False))
        else:
            flags = ",".join(r.get("flags", {})) or "-"
            print(f"#{r['id']} [{r['status']}{' edited' if r['edited'] else ''}] flags={flags}  {r['source_doc']}\n"
                  f"  Q: {r['instruction']}\n  A: {r['output']}")
