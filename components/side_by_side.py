"""Side-by-side answers of several checkpoints, per question and shot setting, with filters.

Input is plain data: questions as dicts (problem_id, problem_text, choices, answer, …) and,
per checkpoint name, the rows of its ``results.jsonl``. Output is a list of ``Item``s (what
the answer cards show) or a flat frame (what the CSV download holds).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Item:
    question: dict
    cells: dict[tuple[str, int], dict] = field(default_factory=dict)   # (checkpoint, shots) -> result row

    @property
    def problem_id(self) -> str:
        return self.question["problem_id"]

    @property
    def disagree(self) -> bool:
        """True when checkpoints evaluated with the same shot setting predict different choices
        (a 0-shot vs 1-shot difference of one checkpoint is not a disagreement between checkpoints)."""
        by_shots: dict[int, set] = {}
        for (_, shots), r in self.cells.items():
            by_shots.setdefault(shots, set()).add(tuple(sorted(r.get("predicted") or [])))
        return any(len(preds) > 1 for preds in by_shots.values())

    @property
    def any_wrong(self) -> bool:
        return any(r.get("accuracy") == 0 for r in self.cells.values())

    def matches(self, needle: str) -> bool:
        needle = needle.casefold()
        hay = [self.problem_id, self.question.get("problem_text", ""), *self.question.get("choices", []),
               self.question.get("category") or ""]
        hay += [r.get("response") or "" for r in self.cells.values()]
        return any(needle in str(h).casefold() for h in hay)


def build_items(questions: list[dict], runs: dict[str, list[dict]], shots: tuple[int, ...] = (0, 1)) -> list[Item]:
    """One item per question that any run answered, in question-file order.

    Questions missing from the file (e.g. a run on another data set) still appear, built
    from what the result row knows, so no answer is silently dropped.
    """
    by_id = {q["problem_id"]: q for q in questions}
    order = [q["problem_id"] for q in questions]
    items: dict[str, Item] = {}
    for name, rows in runs.items():
        for r in rows:
            if r.get("shots") not in shots:
                continue
            pid = r["problem_id"]
            if pid not in items:
                q = by_id.get(pid) or {"problem_id": pid, "problem_text": "", "choices": [],
                                       "answer": r.get("answer") or [], "kinki": r.get("kinki") or []}
                items[pid] = Item(question=q)
                if pid not in by_id:
                    order.append(pid)
            items[pid].cells[(name, r["shots"])] = r
    return [items[pid] for pid in order if pid in items]


def filter_items(items: list[Item], *, disagreements: bool = False, only_wrong: bool = False,
                 search: str = "") -> list[Item]:
    out = items
    if disagreements:
        out = [i for i in out if i.disagree]
    if only_wrong:
        out = [i for i in out if i.any_wrong]
    if search and search.strip():
        out = [i for i in out if i.matches(search.strip())]
    return out


def page(items: list, number: int, size: int) -> tuple[list, int]:
    """Items of page ``number`` (1-based, clamped) and the number of pages."""
    pages = max(1, -(-len(items) // max(1, size)))
    number = min(max(1, int(number)), pages)
    return items[(number - 1) * size: number * size], pages


def items_frame(items: list[Item], names: list[str], shots: tuple[int, ...] = (0, 1),
                metrics: list[str] = ()) -> pd.DataFrame:
    """Flat table: one row per question; per checkpoint and shots its prediction, each of
    ``metrics`` (result fields, e.g. the registry's keys) the row has, and its response."""
    recs = []
    for it in items:
        rec = {"problem_id": it.problem_id, "answer": ",".join(it.question.get("answer") or []),
               "disagree": it.disagree}
        for n in names:
            for s in shots:
                r = it.cells.get((n, s))
                if r is None:
                    continue
                rec[f"{n} {s}s predicted"] = ",".join(r.get("predicted") or [])
                for m in metrics:
                    if m in r:
                        rec[f"{n} {s}s {m}"] = r[m]
                rec[f"{n} {s}s response"] = r.get("response")
        recs.append(rec)
    return pd.DataFrame(recs)
