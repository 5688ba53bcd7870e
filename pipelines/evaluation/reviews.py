"""Blind review: a clinician rates answers without knowing which checkpoint wrote them.

Ratings live in the workspace database (tables defined in ``pipelines/core/schema.py``): the
current rating per answer and reviewer in ``workbench_reviews`` and every rating ever given in
``review_history``, so a changed rating keeps what it replaced. The reviewer is the logged-in
user, never a typed name (one person cannot rate as another). The per-checkpoint summary is
for after a batch: ``batch_done`` says when a reviewer has rated every answer of it.

A rating may also flag harm (``harm``), apart from how right the answer is: a generated
radiology report that reads well but misses a pneumothorax is "partly correct" and harmful.
Report ratings use ``REPORT_RATINGS`` with the flag; exam answers keep "harmful" as a rating.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

import pandas as pd

from pipelines.core.workspace import Workspace

RATINGS = ("correct", "partly", "wrong", "harmful")
# A generated report: how right it is, with harm a separate flag (``ReviewStore.rate(harm=...)``).
REPORT_RATINGS = ("correct", "partly", "wrong")


@dataclass(frozen=True)
class Candidate:
    """One answer that can be rated."""
    eval_dir: str
    checkpoint: str
    problem_id: str
    shots: int
    response: str
    accuracy: float | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.eval_dir, self.problem_id, self.shots)


class ReviewStore:
    def __init__(self, workspace: Workspace):
        self.ws = workspace

    def rate(self, c: Candidate, rating: str, reviewer: str, note: str = "", harm: bool = False) -> None:
        """Set ``reviewer``'s rating of ``c`` (replacing an earlier one) and append it to the history;
        ``harm`` flags the answer as one that could hurt a patient, whatever the rating."""
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
        if not (reviewer or "").strip():
            raise ValueError("a rating needs the reviewer (the logged-in user)")
        row = (c.eval_dir, c.checkpoint, c.problem_id, c.shots, rating, reviewer.strip(), (note or "").strip(),
               int(bool(harm)), time.time())
        with self.ws.transaction() as conn:
            conn.execute(
                "INSERT INTO workbench_reviews (eval_dir, checkpoint, problem_id, shots, rating, reviewer, note,"
                " harm, created_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (eval_dir, problem_id, shots, reviewer)"
                " DO UPDATE SET rating=excluded.rating, note=excluded.note, harm=excluded.harm,"
                " created_at=excluded.created_at", row)
            conn.execute("INSERT INTO review_history (eval_dir, checkpoint, problem_id, shots, rating, reviewer,"
                         " note, harm, created_at) VALUES (?,?,?,?,?,?,?,?,?)", row)

    def ratings(self, reviewer: str | None = None, eval_dirs: list[str] | None = None) -> list[dict]:
        """Current ratings, oldest first; of one reviewer and/or of some evaluations only."""
        rows = self.ws.query("SELECT * FROM workbench_reviews ORDER BY created_at, id")
        if reviewer is not None:
            rows = [r for r in rows if r["reviewer"] == reviewer.strip()]
        if eval_dirs is not None:
            rows = [r for r in rows if r["eval_dir"] in set(eval_dirs)]
        return rows

    def rating_of(self, c: Candidate, reviewer: str) -> str | None:
        current = self.current(c, reviewer)
        return current["rating"] if current else None

    def current(self, c: Candidate, reviewer: str) -> dict | None:
        """``reviewer``'s current rating of ``c``: ``{"rating", "harm" (bool), "note"}``, or None."""
        rows = self.ws.query("SELECT rating, harm, note FROM workbench_reviews WHERE eval_dir=? AND problem_id=?"
                             " AND shots=? AND reviewer=?", (c.eval_dir, c.problem_id, c.shots, reviewer.strip()))
        return {**rows[0], "harm": bool(rows[0]["harm"])} if rows else None

    def history(self, c: Candidate, reviewer: str) -> list[dict]:
        """Every rating ``reviewer`` gave ``c``, oldest first."""
        return self.ws.query("SELECT rating, harm, note, created_at FROM review_history WHERE eval_dir=?"
                             " AND problem_id=? AND shots=? AND reviewer=? ORDER BY created_at, id",
                             (c.eval_dir, c.problem_id, c.shots, reviewer.strip()))

    def rated_keys(self, reviewer: str = "") -> set[tuple[str, str, int]]:
        return {(r["eval_dir"], r["problem_id"], r["shots"]) for r in self.ratings(reviewer)}


def queue(candidates: list[Candidate], rated: set, seed: int = 0) -> list[Candidate]:
    """Unrated answers in a shuffled order, so neighbours do not reveal the checkpoint."""
    todo = [c for c in ratable(candidates) if c.key not in rated]
    random.Random(seed).shuffle(todo)
    return todo


def ratable(candidates: list[Candidate]) -> list[Candidate]:
    return [c for c in candidates if (c.response or "").strip()]


def batch_done(candidates: list[Candidate], rated: set) -> bool:
    """True once every ratable answer of the batch has a rating: only then may the reviewer see
    the per-checkpoint summary (earlier, a summary that moves after each rating names the
    checkpoint of the answer just rated)."""
    todo = ratable(candidates)
    return bool(todo) and all(c.key in rated for c in todo)


def summarize(ratings: list[dict], shown: tuple[str, ...] = RATINGS, *, harm: bool = False) -> pd.DataFrame:
    """Per checkpoint: number rated and share of each rating in ``shown`` (harmful is what matters
    most); with ``harm``, also the share flagged as harmful (``harm %``)."""
    cols = ["checkpoint", "n", *[f"{r} %" for r in shown], *(["harm %"] if harm else [])]
    if not ratings:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(ratings)
    out = []
    for name, g in df.groupby("checkpoint", sort=True):
        counts = g["rating"].value_counts()
        rec = {"checkpoint": name, "n": len(g)}
        for r in shown:
            rec[f"{r} %"] = round(100 * counts.get(r, 0) / len(g), 1)
        if harm:
            rec["harm %"] = round(100 * sum(bool(h) for h in g.get("harm", [])) / len(g), 1)
        out.append(rec)
    return pd.DataFrame(out, columns=cols)
