"""Curation filters: each flags records, none deletes one.

``run`` recomputes the flags of a dataset (only the filters asked for) and counts what each
flagged; ``filter_counts`` reads the counts back. The simple filters look at one record (empty,
too short or long, an answer that copies its question, too little Japanese, a keyword); the
duplicate filters compare records: exact after normalisation, near by MinHash LSH over
character 3-grams (``datasketch``), which works for Japanese, which has no spaces. Of each
group of duplicates the accepted or else the oldest record is kept. The normalisation, n-grams
and MinHash are ``pipelines.core.shingles``, shared with the contamination check.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from pipelines.core import cli
from pipelines.core.errors import UserError
from pipelines.core.shingles import char_ngrams, minhash, normalize
from pipelines.core.workspace import Workspace
from pipelines.data.store import count_records, exportable_ids

FILTERS = ("empty", "too_short", "too_long", "copies_question", "not_japanese",
           "exact_duplicate", "near_duplicate", "keyword")


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


def japanese_share(text: str) -> float:
    letters = len(_LETTER.findall(text))
    return len(_JA.findall(text)) / letters if letters else 0.0


def copies_question(question: str, answer: str, threshold: float) -> bool:
    q, a = normalize(question), normalize(answer)
    if not a or a == q or (len(a) >= 4 and a in q):
        return True
    qa, aa = char_ngrams(q, 2), char_ngrams(a, 2)
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
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=c.near_duplicate_threshold, num_perm=c.num_perm)
    kept: dict = {}
    dup_of: dict[int, int] = {}
    for rid, text in texts:
        m = minhash(text, c.num_perm)
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
    counts["exportable"] = len(exportable_ids(ws, dataset, only_accepted=False))
    return counts
