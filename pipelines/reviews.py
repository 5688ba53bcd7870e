"""Blind review: a clinician rates answers without knowing which checkpoint wrote them.

Ratings live in the workspace database (table ``workbench_reviews``, defined in
``pipelines/schema.py``): one rating per answer and reviewer; rating again replaces it.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

import pandas as pd

from pipelines.workspace import Workspace

RATINGS = ("correct", "partly", "wrong", "harmful")


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

    def rate(self, c: Candidate, rating: str, reviewer: str = "", note: str = "") -> None:
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
        with self.ws.transaction() as conn:
            conn.execute(
                "INSERT INTO workbench_reviews (eval_dir, checkpoint, problem_id, shots, rating, reviewer, note,"
                " created_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (eval_dir, problem_id, shots, reviewer)"
                " DO UPDATE SET rating=excluded.rating, note=excluded.note, created_at=excluded.created_at",
                (c.eval_dir, c.checkpoint, c.problem_id, c.shots, rating, reviewer.strip(), note, time.time()))

    def ratings(self, reviewer: str | None = None) -> list[dict]:
        if reviewer is None:
            return self.ws.query("SELECT * FROM workbench_reviews ORDER BY created_at")
        return self.ws.query("SELECT * FROM workbench_reviews WHERE reviewer = ? ORDER BY created_at",
                             (reviewer.strip(),))

    def rated_keys(self, reviewer: str = "") -> set[tuple[str, str, int]]:
        return {(r["eval_dir"], r["problem_id"], r["shots"]) for r in self.ratings(reviewer)}


def queue(candidates: list[Candidate], rated: set, seed: int = 0) -> list[Candidate]:
    """Unrated answers in a shuffled order, so neighbours do not reveal the checkpoint."""
    todo = [c for c in candidates if c.key not in rated and (c.response or "").strip()]
    random.Random(seed).shuffle(todo)
    return todo


def summarize(ratings: list[dict]) -> pd.DataFrame:
    """Per checkpoint: number rated and share of each rating (harmful is what matters most)."""
    cols = ["checkpoint", "n", *[f"{r} %" for r in RATINGS]]
    if not ratings:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(ratings)
    out = []
    for name, g in df.groupby("checkpoint", sort=True):
        counts = g["rating"].value_counts()
        rec = {"checkpoint": name, "n": len(g)}
        for r in RATINGS:
            rec[f"{r} %"] = round(100 * counts.get(r, 0) / len(g), 1)
        out.append(rec)
    return pd.DataFrame(out, columns=cols)
