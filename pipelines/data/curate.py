"""Curation of generated instruction data: filters, review, statistics and export.

    jmedlora curate filter --dataset NAME [--keyword WORD ...] [--only near_duplicate,...]
    jmedlora curate list   --dataset NAME [--status pending] [--flag any|clean|FILTER] [--search TEXT]
    jmedlora curate review ID [ID ...] --status accepted|rejected|pending [--who NAME]
    jmedlora curate review --dataset NAME --flag near_duplicate --status rejected   # in bulk
    jmedlora curate edit ID [--instruction TEXT] [--input TEXT] [--output TEXT] [--revert]
    jmedlora curate stats  [--dataset NAME]
    jmedlora curate import --dataset NAME --jsonl FILE          # existing Alpaca records
    jmedlora curate export --dataset NAME --format alpaca|hf|text --out PATH [--eval-fraction 0.05]

Filters flag records, they never delete them (``run`` recomputes the flags and counts what
each filter flagged). A flagged record is left out of exports unless a reviewer accepted it;
a rejected record is always left out. Near-duplicates are found with MinHash LSH over
character 3-grams (``datasketch``), which works for Japanese, which has no spaces; of each
group of duplicates the accepted or else the oldest record is kept.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import sys
import tempfile
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipelines.core import audit, cli
from pipelines.core.errors import UserError, cli_guard, disk_full
from pipelines.core.exports import export_path
from pipelines.core.jsonl import read_jsonl
from pipelines.core.workspace import Workspace
from pipelines.data import curate_cli
from pipelines.data import store as datastore
from pipelines.data.store import count_records, list_records

FILTERS = ("empty", "too_short", "too_long", "copies_question", "not_japanese",
           "exact_duplicate", "near_duplicate", "keyword")
FORMATS = ("alpaca", "hf", "text")


@dataclass
class CurateConfig:
    dataset: str                               # the generated dataset to filter
    min_question_chars: int = 5                # shorter questions are flagged too_short
    min_answer_chars: int = 2                  # shorter answers are flagged too_short
    max_chars: int = 2000                      # question + answer
    copy_threshold: float = 0.8                # answer/question character-bigram overlap that counts as a copy
    min_japanese_share: float = 0.3            # of letters; 0 turns the language check off (English data)
    near_duplicate_threshold: float = 0.8      # estimated Jaccard similarity of character 3-grams
    num_perm: int = 64                         # MinHash permutations: more is more exact and slower
    keywords: list[str] = field(default_factory=list, metadata=cli.aliases("--keyword"))  # flag records with any
    filters: list[str] | None = field(default=None, metadata=cli.meta(cli.choices(*FILTERS), cli.aliases("--only")))
    """which filters to run (default: all)"""
    workspace: str | None = None


# -- text measures ----------------------------------------------------------------

_JA = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々〆ヶ]")
_LETTER = re.compile(r"[^\W\d_]")
_NOT_CONTENT = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """For comparisons: NFKC, lower case, no spaces or punctuation."""
    return _NOT_CONTENT.sub("", unicodedata.normalize("NFKC", text).lower())


def japanese_share(text: str) -> float:
    letters = len(_LETTER.findall(text))
    return len(_JA.findall(text)) / letters if letters else 0.0


def _ngrams(text: str, n: int) -> set[str]:
    return {text[i:i + n] for i in range(max(1, len(text) - n + 1))}


def copies_question(question: str, answer: str, threshold: float) -> bool:
    q, a = normalize(question), normalize(answer)
    if not a or a == q or (len(a) >= 4 and a in q):
        return True
    qa, aa = _ngrams(q, 2), _ngrams(a, 2)
    return len(qa & aa) / len(aa | qa) >= threshold


# -- filters ------------------------------------------------------------------------

def _simple_flags(rec: dict, c: CurateConfig, keywords: list[str]) -> dict[str, str]:
    q, inp, a = rec["instruction"], rec["input"], rec["output"]
    flags = {}
    if not q.strip() or not a.strip():
        flags["empty"] = "question" if not q.strip() else "answer"
    if len(q.strip()) < c.min_question_chars or len(a.strip()) < c.min_answer_chars:
        flags["too_short"] = f"{len(q.strip())}/{len(a.strip())} chars"
    if len(q) + len(inp) + len(a) > c.max_chars:
        flags["too_long"] = f"{len(q) + len(inp) + len(a)} chars"
    if a.strip() and copies_question(q + inp, a, c.copy_threshold):
        flags["copies_question"] = ""
    if c.min_japanese_share > 0:
        share = japanese_share(q + a)
        if share < c.min_japanese_share:
            flags["not_japanese"] = f"{share:.2f}"
    hits = [k for k in keywords if k in q or k in inp or k in a]
    if hits:
        flags["keyword"] = ", ".join(hits)
    return flags


def _minhash_index(texts: list[tuple[int, str]], c: CurateConfig) -> dict[int, int]:
    """record id → id of the earlier near-duplicate it repeats (records in priority order)."""
    from datasketch import LeanMinHash, MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=c.near_duplicate_threshold, num_perm=c.num_perm)
    kept: dict[int, LeanMinHash] = {}
    dup_of: dict[int, int] = {}
    # crc32 instead of datasketch's default sha1: deterministic too, and several times faster;
    # the permutations are drawn once and shared (drawing them per record dominated the time).
    template = MinHash(num_perm=c.num_perm, seed=1, hashfunc=zlib.crc32)
    for rid, text in texts:
        m = MinHash(num_perm=c.num_perm, hashfunc=zlib.crc32, permutations=template.permutations,
                    scheme=template.scheme)
        m.update_batch([g.encode("utf-8") for g in _ngrams(text, 3)])
        m = LeanMinHash(m)
        best = None
        for other in lsh.query(m):
            sim = m.jaccard(kept[other])
            if sim >= c.near_duplicate_threshold and (best is None or other < best):
                best = other
        if best is None:
            lsh.insert(rid, m)
            kept[rid] = m
        else:
            dup_of[rid] = best
    return dup_of


def run(config: CurateConfig, on_event: Callable[[dict], None] | None = None, *,
        workspace: Workspace | None = None) -> dict[str, int]:
    """Recompute the flags of a dataset; returns {filter: records flagged} (plus total and clean)."""
    ws = workspace or Workspace.resolve(config.workspace)
    chosen = list(config.filters or FILTERS)
    unknown = set(chosen) - set(FILTERS)
    if unknown:
        raise UserError(f"Unknown filter(s): {', '.join(sorted(unknown))}.", f"Filters: {', '.join(FILTERS)}.",
                        code="curate.unknown_filter",
                        params={"names": ", ".join(sorted(unknown)), "known": ", ".join(FILTERS)})
    # Accepted records first: a reviewer's choice is the one kept among duplicates.
    rows = ws.query("SELECT id, instruction, input, output, status FROM dg_records WHERE dataset = ? "
                    "AND status != 'rejected' ORDER BY status = 'accepted' DESC, id", (config.dataset,))
    if not rows and not count_records(ws, config.dataset):
        raise UserError(f"Dataset {config.dataset!r} has no records.",
                        "Generate some with jmedlora datagen, or import a JSONL file.",
                        code="curate.empty_dataset", params={"dataset": config.dataset})
    keywords = [k for k in config.keywords if k.strip()]
    flags: list[tuple[int, str, str]] = []
    for rec in rows:
        for name, detail in _simple_flags(rec, config, keywords).items():
            if name in chosen:
                flags.append((rec["id"], name, detail))
    if on_event:
        on_event({"event": "filter", "stage": "simple", "records": len(rows)})

    if "exact_duplicate" in chosen:
        first: dict[str, int] = {}
        for rec in rows:
            key = normalize(rec["instruction"]) + "\t" + normalize(rec["input"]) + "\t" + normalize(rec["output"])
            if key in first:
                flags.append((rec["id"], "exact_duplicate", str(first[key])))
            else:
                first[key] = rec["id"]
    if "near_duplicate" in chosen:
        exact = {f[0] for f in flags if f[1] == "exact_duplicate"}
        texts = [(r["id"], normalize(r["instruction"] + r["input"] + r["output"])) for r in rows if r["id"] not in exact]
        flags += [(rid, "near_duplicate", str(of)) for rid, of in _minhash_index(texts, config).items()]
        if on_event:
            on_event({"event": "filter", "stage": "near_duplicate", "records": len(texts)})

    with ws.transaction() as conn:
        conn.execute(f"DELETE FROM dg_flags WHERE filter IN ({','.join('?' * len(chosen))}) AND record_id IN "
                     "(SELECT id FROM dg_records WHERE dataset = ?)", (*chosen, config.dataset))
        conn.executemany("INSERT OR REPLACE INTO dg_flags (record_id, filter, detail) VALUES (?,?,?)", flags)
    counts = filter_counts(ws, config.dataset)
    if on_event:
        on_event({"event": "finished", **counts})
    return counts


def filter_counts(ws: Workspace, dataset: str) -> dict[str, int]:
    """Records flagged per filter (a record can be flagged by several), and totals."""
    rows = ws.query("SELECT f.filter, COUNT(*) AS n FROM dg_flags f JOIN dg_records r ON r.id = f.record_id "
                    "WHERE r.dataset = ? GROUP BY f.filter", (dataset,))
    counts = {name: 0 for name in FILTERS}
    counts.update({r["filter"]: r["n"] for r in rows})
    counts["total"] = count_records(ws, dataset)
    counts["flagged"] = count_records(ws, dataset, flag="any")
    counts["clean"] = counts["total"] - counts["flagged"]
    counts["exportable"] = len(_exportable_ids(ws, dataset, only_accepted=False))
    return counts


# -- review helpers the UI and CLI share ----------------------------------------------

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


# -- export -------------------------------------------------------------------------

@dataclass
class ExportConfig:
    dataset: str                     # the generated dataset to export
    format: str = field(metadata=cli.choices(*FORMATS))  # alpaca (JSONL) | hf (datasets save_to_disk) | text
    out: str                         # file (alpaca, text) or directory (hf) to write
    eval_fraction: float = 0.05      # hf only: share held out as the 'eval' split
    seed: int = 0                    # hf only: the split is reproducible from it
    only_accepted: bool = False      # False: every record not rejected and not flagged (unless accepted)
    name: str | None = None          # registry name (default: the dataset name)
    overwrite: bool = False          # replace an existing export of the same name
    workspace: str | None = None


def _exportable_ids(ws: Workspace, dataset: str, only_accepted: bool) -> list[int]:
    if only_accepted:
        sql = "SELECT id FROM dg_records WHERE dataset = ? AND status = 'accepted' ORDER BY id"
    else:
        sql = ("SELECT r.id FROM dg_records r WHERE r.dataset = ? AND r.status != 'rejected' AND (r.status = 'accepted'"
               " OR NOT EXISTS (SELECT 1 FROM dg_flags f WHERE f.record_id = r.id)) ORDER BY r.id")
    return [r["id"] for r in ws.query(sql, (dataset,))]


def _atomic_write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name made with O_EXCL: a predictable NAME.tmp could be a planted link that the write follows
    # out of exports/ (reproduced: it overwrote a file elsewhere).
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(lines)
        os.replace(tmp, path)
    except OSError as exc:            # a full disk: the earlier export stays whole, no partial file left
        tmp.unlink(missing_ok=True)
        raise disk_full(exc, str(path)) or exc


def export(config: ExportConfig, *, workspace: Workspace | None = None, user: str | None = None) -> dict:
    """Write the exportable records and register them; returns path, version and counts.

    ``user``: who asked, for the audit log (a page passes its logged-in user; a CLI leaves it to
    ``audit.current_user()``)."""
    if config.format not in FORMATS:
        raise UserError(f"Unknown export format {config.format!r}.", f"Use one of {', '.join(FORMATS)}.",
                        code="export.unknown_format", params={"format": config.format, "known": ", ".join(FORMATS)})
    if not 0 <= config.eval_fraction < 1:
        raise UserError(f"eval_fraction {config.eval_fraction} must be in [0, 1).", "Use e.g. 0.05.",
                        code="export.eval_fraction", params={"field": "eval_fraction", "value": config.eval_fraction})
    ws = workspace or Workspace.resolve(config.workspace)
    ids = set(_exportable_ids(ws, config.dataset, config.only_accepted))
    if not ids:
        raise UserError(f"Dataset {config.dataset!r} has no records to export "
                        f"({'none accepted' if config.only_accepted else 'all rejected or flagged, or none at all'}).",
                        "Review some records, or re-run the filters with looser settings.",
                        code="export.none_accepted" if config.only_accepted else "export.nothing",
                        params={"dataset": config.dataset})
    rows = [r for r in list_records(ws, config.dataset, limit=-1) if r["id"] in ids]
    records = [{"instruction": r["instruction"], "input": r["input"], "output": r["output"]} for r in rows]
    suffix = {"alpaca": ".jsonl", "text": ".txt", "hf": ""}[config.format]
    out = export_path(ws.root, config.out, f"{config.dataset}{suffix}", overwrite=config.overwrite,
                      folder_output=config.format == "hf")
    meta = {"source_dataset": config.dataset, "only_accepted": config.only_accepted,
            "filters": filter_counts(ws, config.dataset), "prompt_versions": sorted({r["prompt_version"] or "" for r in rows}),
            "models": sorted({r["model"] or "" for r in rows})}
    if config.format == "alpaca":
        _atomic_write(out, [json.dumps(r, ensure_ascii=False) + "\n" for r in records])
    elif config.format == "text":
        texts = [f"{r['instruction']}\n{(r['input'] + chr(10)) if r['input'] else ''}{r['output']}" for r in records]
        if out.suffix == ".jsonl":
            _atomic_write(out, [json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts])
        else:
            _atomic_write(out, [t + "\n\n" for t in texts])
    else:
        meta.update(_save_hf(rows, out, config))
    # The version is a hash of what was exported, so a training run can name exactly its data.
    h = hashlib.sha256(json.dumps([config.format, records, meta.get("split")], ensure_ascii=False).encode())
    version = h.hexdigest()[:16]
    ws.register_dataset(config.name or config.dataset, version, config.format, str(out.resolve()),
                        n_records=len(records), meta=meta)
    audit.record(ws.root, user or audit.current_user(), "export", f"dataset:{config.dataset}", path=str(out.resolve()),
                 format=config.format, n_records=len(records), version=version)
    return {"name": config.name or config.dataset, "version": version, "format": config.format,
            "path": str(out.resolve()), "n_records": len(records), **({"split": meta["split"]} if "split" in meta else {})}


def _save_hf(rows: list[dict], out: Path, config: ExportConfig) -> dict:
    from datasets import Dataset, DatasetDict

    cols = ("id", "instruction", "input", "output", "source_doc", "chunk_id", "model", "prompt_version")
    order = list(range(len(rows)))
    random.Random(config.seed).shuffle(order)
    n_eval = round(len(rows) * config.eval_fraction)
    if config.eval_fraction > 0 and len(rows) >= 2:
        n_eval = max(1, n_eval)
    eval_idx = set(order[:n_eval])
    split = {"train": [rows[i] for i in range(len(rows)) if i not in eval_idx],
             "eval": [rows[i] for i in range(len(rows)) if i in eval_idx]}
    dd = DatasetDict({k: Dataset.from_dict({c: [r[c] if r[c] is not None else "" for r in v] for c in cols})
                      for k, v in split.items() if v or k == "train"})
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))     # fresh, owner-only: no planted link
    try:
        dd.save_to_disk(str(work / "dataset"))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(work / "dataset", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"split": {"train": len(split["train"]), "eval": len(split["eval"]), "seed": config.seed,
                      "eval_fraction": config.eval_fraction}}


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
