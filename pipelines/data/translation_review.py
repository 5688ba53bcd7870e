"""Reviewing machine-translated report findings: list them, and save a person's correction.

What ``jmedlora reports translate`` wrote (``pipelines/data/translate.py``) is a draft: a radiologist
reads each line's English source beside its Japanese, sees the glossary terms it was flagged for and
who translated it, and corrects it. A correction is saved into the report file itself (rewritten whole,
then renamed over it); ``metadata.translation`` keeps the machine's text (``machine_findings_ja``, from
the first edit on), ``edited_by``, ``edited_at``, and ``glossary_missing`` checked again against the
corrected text. These are the plain functions a review page calls.

Two reviewers may have the same file open: a save holds a lock on the file for its read-modify-write,
and, given the text the reviewer started from (``expected``), refuses to overwrite a line someone
else changed in between instead of silently dropping their correction.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import replace
from pathlib import Path

from pipelines.core import run_lock
from pipelines.core.errors import UserError
from pipelines.data import translate
from pipelines.data.store import default_reviewer
from pipelines.tasks import reports

MAX_LISTED_FILES = 200                      # report files offered by find_files (newest first)


def find_files(folders: list[Path], *, limit: int = MAX_LISTED_FILES) -> list[Path]:
    """The report JSONL files under ``folders`` (three levels deep; no link followed), newest first."""
    found = []
    for folder in folders:
        if not folder.is_dir() or folder.is_symlink():
            continue
        for top, dirs, files in os.walk(folder):            # os.walk does not descend into linked folders
            if len(Path(top).relative_to(folder).parts) >= 2:
                dirs.clear()
            found += [Path(top) / f for f in files if f.endswith(".jsonl") and not (Path(top) / f).is_symlink()]
    found = sorted(set(found), key=lambda p: p.stat().st_mtime, reverse=True)
    return found[:limit]


def glossary_hints(missing: list[str], glossary: str | Path = translate.DEFAULT_GLOSSARY) -> list[tuple[str, str]]:
    """Each missing term with the Japanese the glossary accepts for it (``cardiomegaly`` → ``心拡大``)."""
    terms = {t.en[0]: t for t in translate.load_glossary(glossary).terms}
    return [(en, " / ".join(terms[en].ja) if en in terms else "?") for en in missing]


def list_translations(path: str | Path, *, only_flagged: bool = False) -> list[dict]:
    """The machine-translated lines of a report file, in file order: id, source, translation,
    glossary terms missing, provenance (model, endpoint, time, edited_by, edited_at)."""
    rows = []
    for s in reports.load_reports(path, check_images=False, require_ja=False):
        prov = s.metadata.get("translation")
        if not isinstance(prov, dict):
            continue
        missing = list(prov.get("glossary_missing") or [])
        if only_flagged and not missing:
            continue
        rows.append({"id": s.id, "findings_en": s.findings_en or "", "findings_ja": s.findings_ja,
                     "glossary_missing": missing, "model": prov.get("model"), "endpoint": prov.get("endpoint"),
                     "time": prov.get("time"), "edited_by": prov.get("edited_by"), "edited_at": prov.get("edited_at"),
                     "machine_findings_ja": prov.get("machine_findings_ja", s.findings_ja)})
    return rows


def save_translation(path: str | Path, sample_id: str, findings_ja: str, *, who: str | None = None,
                     expected: str | None = None, glossary: str | Path = translate.DEFAULT_GLOSSARY) -> dict:
    """Write a corrected ``findings_ja`` for one line; returns the line's review row (as listed).
    ``expected``: the Japanese the reviewer started from; if the file now holds another, nothing is written."""
    path = Path(path)
    text = (findings_ja or "").strip()
    if not text:
        raise UserError(f"The Japanese findings of {sample_id} cannot be empty.",
                        "Write the corrected translation (to drop a line, edit the report file).",
                        code="translation.empty", params={"id": str(sample_id)})
    with run_lock.waiting(reports.lock_path(path)):
        return _save_locked(path, str(sample_id), text, who, expected, glossary)


def _save_locked(path: Path, sample_id: str, text: str, who: str | None, expected: str | None,
                 glossary: str | Path) -> dict:
    samples = reports.load_reports(path, check_images=False, require_ja=False)
    index = next((i for i, s in enumerate(samples) if s.id == sample_id), None)
    if index is None:
        raise UserError(f"{path} has no line with id {sample_id}.", "List the file's translations to find the ids.",
                        code="translation.no_id", params={"path": str(path), "id": str(sample_id)})
    s = samples[index]
    if expected is not None and s.findings_ja != expected:
        raise UserError(f"The Japanese findings of {sample_id} were changed by someone else since you opened them.",
                        "Reload the list, read their version, and edit again.",
                        code="translation.changed", params={"id": sample_id})
    prov = dict(s.metadata.get("translation") or {})
    prov.setdefault("machine_findings_ja", s.findings_ja)      # the model's text, kept from the first edit on
    prov.update(edited_by=who or default_reviewer(),
                edited_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                glossary_missing=translate.missing_terms(s.findings_en or "", text, translate.load_glossary(glossary)))
    samples[index] = replace(s, findings_ja=text, metadata={**s.metadata, "translation": prov})
    reports.write_reports(path, path, samples)
    return next(r for r in list_translations(path) if r["id"] == s.id)
