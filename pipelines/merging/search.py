"""The search over merge parameters: CMA-ES (the ``cmaes`` package), seeded and bounded.

Parameters per layer group: one weight per input in [0, 1], and for TIES/DARE one density per
input in [0.1, 1]. ``jradievo`` (JRadiEvo's space) adds, once for the whole model, DARE's drop rate
in [0, 0.95] (at 1 every update would be dropped and the rest rescaled by 1/0) and the global
scale λ in [0, 2]; its trim densities span [0, 1], as JRadiEvo's trim rates do. Before the search, each input alone (weight 1 for it, 0 for the others,
density 1) is scored as an ``anchor`` candidate: the search starts knowing what each input is
worth on the dev set, the report compares against the best of them, and the best candidate
can never be worse on the dev set than the best input.

Every scored candidate is one line of ``DIR/candidates.jsonl`` (appended, flushed, fsynced),
written as it finishes. Resuming replays the same seeded CMA-ES: each asked point that is
already in the file takes its recorded score instead of being scored again; a line cut short
by a kill is dropped.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.core.errors import Interrupted, UserError

WEIGHT_BOUNDS = (0.0, 1.0)
DENSITY_BOUNDS = (0.1, 1.0)
TRIM_BOUNDS = (0.0, 1.0)           # jradievo's densities (JRadiEvo searches trim rates over [0, 1])
DROP_BOUNDS = (0.0, 0.95)
SCALE_BOUNDS = (0.0, 2.0)


@dataclass(frozen=True)
class SearchSpace:
    n_inputs: int
    groups: int = 1
    with_density: bool = False
    scaled: bool = False            # jradievo: one drop rate and a global λ after the groups

    @property
    def per_group(self) -> int:
        return self.n_inputs * (2 if self.with_density else 1)

    @property
    def dim(self) -> int:
        return self.groups * self.per_group + (2 if self.scaled else 0)

    def bounds(self) -> np.ndarray:
        density = TRIM_BOUNDS if self.scaled else DENSITY_BOUNDS
        one = [WEIGHT_BOUNDS] * self.n_inputs + ([density] * self.n_inputs if self.with_density else [])
        return np.array(one * self.groups + ([DROP_BOUNDS, SCALE_BOUNDS] if self.scaled else []), dtype=float)

    def start(self) -> np.ndarray:
        """Equal weights, mid density (no drop, λ = 1 in between): the search starts from the plain average."""
        one = [0.5] * self.n_inputs + ([0.55] * self.n_inputs if self.with_density else [])
        return np.array(one * self.groups + ([0.3, 1.0] if self.scaled else []), dtype=float)

    def decode(self, x) -> dict:
        x = [float(v) for v in x]
        weights, densities = [], []
        for g in range(self.groups):
            chunk = x[g * self.per_group:(g + 1) * self.per_group]
            weights.append([round(v, 6) for v in chunk[:self.n_inputs]])
            densities.append([round(v, 6) for v in chunk[self.n_inputs:]] if self.with_density
                             else [1.0] * self.n_inputs)
        params = {"weights": weights, "densities": densities}
        if self.scaled:
            params.update(drop=round(x[-2], 6), scale=round(x[-1], 6))
        return params

    def anchor(self, i: int) -> dict:
        """Input ``i`` alone. With jradievo the others' updates still vote on signs and count in the
        divisor at weight 0, so they are trimmed away entirely (density 0) instead."""
        w = [1.0 if j == i else 0.0 for j in range(self.n_inputs)]
        if self.scaled:
            return {"weights": [w] * self.groups, "densities": [w] * self.groups, "drop": 0.0, "scale": 1.0}
        return {"weights": [w] * self.groups, "densities": [[1.0] * self.n_inputs] * self.groups}


# -- candidates.jsonl ----------------------------------------------------------------------------

def read_candidates(path: str | Path, *, repair: bool = False) -> list[dict]:
    """The complete lines of ``candidates.jsonl``; with ``repair``, a torn tail is cut off the file
    (so the next append starts on a clean line)."""
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    out, good = [], 0
    for line in raw.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
        good += len(line)
    if repair and good < len(raw):
        with open(path, "r+b") as fh:
            fh.truncate(good)
    return out


def append_candidate(path: str | Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def best_so_far(candidates: list[dict]) -> list[float]:
    """The best dev score after each candidate, in the order they were scored (for the curve)."""
    best, out = -float("inf"), []
    for c in candidates:
        best = max(best, c["score"])
        out.append(best)
    return out


def best_candidate(candidates: list[dict]) -> dict:
    """Highest dev score; the earliest wins a tie (an input before a merge that only matches it)."""
    return max(candidates, key=lambda c: (c["score"], -c["i"]))


# -- the loop ------------------------------------------------------------------------------------

def search(space: SearchSpace, score: Callable[[dict], dict], *, budget: int, path: str | Path, seed: int = 0,
           sigma: float = 0.2, population: int | None = None, emit: Callable[[dict], None] = lambda e: None,
           should_stop: Callable[[], bool] = lambda: False, resume_hint: str | None = None,
           anchors: list[int] | None = None) -> list[dict]:
    """Score the anchors (every input alone, or those listed), then ``budget`` CMA-ES candidates;
    returns every candidate record.

    ``score(params)`` returns at least ``{"score": float}`` (higher is better).
    """
    from cmaes import CMA

    path = Path(path)
    recorded = {c["i"]: c for c in read_candidates(path, repair=True)}
    done: list[dict] = []
    state = {"i": 0, "best": -float("inf")}

    def one(params: dict, kind: str, generation: int, x=None) -> dict:
        i = state["i"]
        rec = recorded.get(i)
        if rec is not None:
            if rec["kind"] != kind or (x is not None and not np.allclose(rec["x"], x, atol=1e-9)):
                raise UserError(f"{path} does not match this search at candidate {i} (seed, method or inputs changed).",
                                "Resume with the settings it was started with, or use a new --out directory.",
                                code="merge.candidates_differ", params={"path": str(path), "i": i})
            resumed = True
        else:
            if should_stop():
                raise Interrupted(resume_hint)
            t0 = time.perf_counter()
            result = score(params)
            rec = {"i": i, "generation": generation, "kind": kind, "params": params,
                   "x": None if x is None else [float(v) for v in x], **result,
                   "seconds": round(time.perf_counter() - t0, 3)}
            append_candidate(path, rec)
            resumed = False
        state["i"] += 1
        state["best"] = max(state["best"], rec["score"])
        done.append(rec)
        emit({"event": "candidate", "i": i, "generation": generation, "kind": kind, "params": rec["params"],
              "score": rec["score"], "best": state["best"], "seconds": rec["seconds"], "resumed": resumed})
        return rec

    for k in (range(space.n_inputs) if anchors is None else anchors):
        one(space.anchor(k), "input", 0)
    emit({"event": "generation", "generation": 0, "best": state["best"],
          "scores": [c["score"] for c in done]})

    opt = CMA(mean=space.start(), sigma=sigma, bounds=space.bounds(), seed=seed, population_size=population)
    remaining, generation = budget, 1
    while remaining > 0:
        xs = [opt.ask() for _ in range(opt.population_size)]
        take = min(len(xs), remaining)
        recs = [one(space.decode(x), "search", generation, x) for x in xs[:take]]
        if take == len(xs):         # CMA-ES learns from full generations only
            opt.tell([(x, -r["score"]) for x, r in zip(xs, recs)])
        emit({"event": "generation", "generation": generation, "best": state["best"],
              "scores": [r["score"] for r in recs]})
        remaining -= take
        generation += 1
    return done
