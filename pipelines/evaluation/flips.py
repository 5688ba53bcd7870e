"""Which questions flip between checkpoints: the question × checkpoint grid and the test beside it.

Two checkpoints 0.02 apart in accuracy may agree on every question but a few, or trade dozens
of questions both ways; only the second is a real change of behaviour. ``flip_matrix`` is the grid
(1 right, 0 wrong, empty where a run did not answer), one column per evaluation and shot setting;
``flips`` lists the questions right in one of two checkpoints and wrong in the other, with
McNemar's test on them (``significance.mcnemar``: exact binomial under 25 flips, chi-square with
continuity correction from 25 on) beside the paired bootstrap of the accuracy difference
(``significance.paired_comparison``). Evaluations come from ``insights.load_evaluations``;
``jmedlora insights DIR... --by flips`` prints both.
"""
from __future__ import annotations

import pandas as pd

from pipelines.evaluation import significance
from pipelines.evaluation.insights import Evaluation, column_name, question_order, shots_of


def flip_matrix(evals: list[Evaluation], shots: int | None = None) -> pd.DataFrame:
    """``problem_id`` then one column per evaluation × shot setting (``column_name``), in the order
    given; a row per question answered anywhere, in question order; cells 1 (right), 0 (wrong) or
    <NA> (not answered there), as pandas' nullable integers."""
    columns: dict[str, dict[str, int]] = {}
    for ev in evals:
        for s in shots_of(ev, shots):
            columns[column_name(ev.label, s)] = {r["problem_id"]: int(float(r["accuracy"]) == 1.0)
                                                 for r in ev.answered(s)}
    answered = {pid for cells in columns.values() for pid in cells}
    ids = [pid for pid in question_order(evals) if pid in answered]
    frame = pd.DataFrame({"problem_id": ids})
    for name, cells in columns.items():
        frame[name] = pd.array([cells.get(pid) for pid in ids], dtype="Int64")
    return frame


def flipping(matrix: pd.DataFrame) -> list[str]:
    """The questions of a ``flip_matrix`` right in some column and wrong in another."""
    cells = matrix.drop(columns="problem_id")
    changed = (cells == 1).any(axis=1) & (cells == 0).any(axis=1)
    return matrix.loc[changed.fillna(False).astype(bool), "problem_id"].tolist()


def flips(a: Evaluation, b: Evaluation, shots: int = 0, *, seed: int = 0) -> dict:
    """The questions that flip from checkpoint A to B at ``shots`` (on those both answered), with
    McNemar and the paired bootstrap: ``{a, b, shots, n, accuracy_a, accuracy_b, right_in_a_only,
    right_in_b_only, both_right, both_wrong, mcnemar: {p, method, statistic, discordant},
    bootstrap: {diff, ci_low, ci_high, p}}`` (diff = B − A)."""
    (s,) = shots_of(a, shots)
    shots_of(b, shots)
    right_a = {r["problem_id"]: float(float(r["accuracy"]) == 1.0) for r in a.answered(s)}
    right_b = {r["problem_id"]: float(float(r["accuracy"]) == 1.0) for r in b.answered(s)}
    paired = significance.paired_comparison(right_a, right_b, seed=seed)    # refuses two runs with no question in common
    shared = [pid for pid in question_order([a, b]) if pid in right_a and pid in right_b]
    only_a = [pid for pid in shared if right_a[pid] > right_b[pid]]
    only_b = [pid for pid in shared if right_b[pid] > right_a[pid]]
    both_right = sum(1 for pid in shared if right_a[pid] == right_b[pid] == 1.0)
    return {"a": a.label, "b": b.label, "shots": s, "n": paired["n"],
            "accuracy_a": paired["mean_a"], "accuracy_b": paired["mean_b"],
            "right_in_a_only": only_a, "right_in_b_only": only_b,
            "both_right": both_right, "both_wrong": len(shared) - both_right - len(only_a) - len(only_b),
            "mcnemar": significance.mcnemar(len(only_a), len(only_b)),
            "bootstrap": {"diff": paired["diff"], "ci_low": paired["ci_low"], "ci_high": paired["ci_high"],
                          "p": paired["p_bootstrap"]}}
