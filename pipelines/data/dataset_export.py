"""Export of the curated records (Alpaca JSONL, a Hugging Face dataset with a train/eval
split, or plain text), registered in the workspace under a version that hashes what was
written, so a training run can name exactly its data.

What is exported: every record that is not rejected and not flagged (a flagged one only if a
reviewer accepted it), or, with ``only_accepted``, the accepted ones. Files are written whole
or not at all (a fresh temporary name, then a rename), inside the exports folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core import audit, cli
from pipelines.core.errors import UserError, disk_full
from pipelines.core.exports import export_path
from pipelines.core.workspace import Workspace
from pipelines.data.filters import filter_counts
from pipelines.data.store import exportable_ids, list_records

FORMATS = ("alpaca", "hf", "text")


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
    ids = set(exportable_ids(ws, config.dataset, config.only_accepted))
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


