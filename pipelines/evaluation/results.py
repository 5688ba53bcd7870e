"""An evaluation's results on disk: what ``OUT`` holds and how a run reads it back to resume.

    OUT/config.json     the settings that give a result line its meaning (``IDENTITY``) and the model
    OUT/results.jsonl   one line per question and shot setting (``answer_row``), appended as each finishes
    OUT/summary.json    per shot setting: n and every metric with its interval (``summarize``)

A run resumes only over results of the same evaluation (``prepare`` refuses another), drops a
last line cut short by a kill or a full disk (``drop_torn_tail``) and redoes that question; a
saved answer counts only for the question as it is now (``question_hash``). The run loop that
asks the questions is ``pipelines/evaluation/evaluator.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from pipelines.core import jobs
from pipelines.core.errors import UserError
from pipelines.evaluation import scoring
from pipelines.evaluation.summary import ShotSummary
from pipelines.models.generation import Prompt
from pipelines.tasks.igakuqa import Question

# Settings that change what a result line means: a resumed run must match them.
IDENTITY = ("model", "adapter", "data", "template", "scoring", "method", "question_lang",
            "shuffle_choices", "max_new_tokens", "temperature", "top_p", "repetition_penalty",
            "seed", "shots_file", "stop")


# -- resuming -----------------------------------------------------------------------

def identity(config) -> dict:
    """The ``IDENTITY`` settings of an ``EvalConfig``, as config.json holds them (tuples as lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items() if k in IDENTITY}


def check_resume(out: Path, identity: dict) -> None:
    cfg = out / "config.json"
    if cfg.exists():
        old = json.loads(cfg.read_text())
        diff = {k: (old.get(k), v) for k, v in identity.items() if old.get(k) != v}
        if diff:
            raise UserError(f"{out} holds results of a different evaluation (differs in {sorted(diff)}).",
                            "Use another --out directory, or delete that one to start over.",
                            code="eval.out_differs", params={"path": str(out), "diff": ", ".join(sorted(diff))})


def prepare(out: Path, identity: dict, details: dict) -> int:
    """``OUT`` ready for this run: refused if it holds another evaluation, config.json written
    (``identity`` and ``details``), a torn last line dropped; returns the bytes dropped."""
    check_resume(out, identity)
    jobs.write_json(out / "config.json", {**identity, **details})
    return drop_torn_tail(out / "results.jsonl")


def question_hash(q) -> str:
    """What a saved answer was given for: the question as asked and scored (text, choices, answer, points)."""
    return hashlib.sha256(json.dumps(q.to_dict(), ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]


def read_results(out: Path) -> list[dict]:
    """The complete rows, one per (question, shots), or per ``id`` for a report evaluation's rows
    (one per image, no shots): a later row for the same key wins."""
    path = out / "results.jsonl"
    if not path.exists():
        return []
    rows: dict[tuple, dict] = {}
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            key = (row["problem_id"], row["shots"]) if "problem_id" in row else ("report", str(row["id"]))
            rows[key] = row
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by a kill: that question is simply redone
    return list(rows.values())


def drop_torn_tail(path: Path) -> int:
    """Cut an incomplete last line (a kill or a full disk mid-write) so the next append starts
    on a line of its own; returns the bytes dropped."""
    if not path.exists():
        return 0
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        fh.seek(max(0, size - 1))
        if fh.read(1) == b"\n":
            return 0
        keep, pos = 0, size
        while pos > 0:                        # the last newline, read backwards in blocks
            start = max(0, pos - 65536)
            fh.seek(start)
            i = fh.read(pos - start).rfind(b"\n")
            if i != -1:
                keep = start + i + 1
                break
            pos = start
        fh.truncate(keep)
        return size - keep


# -- writing -------------------------------------------------------------------------

def answer_row(q: Question, shots: int, *, order: list[str], example: Question | None, prompt: Prompt, mode: str,
               response: str | None, n_tokens: int, seconds: float, info: dict | None = None,
               loglik: tuple | None = None) -> dict:
    """One line of results.jsonl: the question as asked, the answer (``response``; None for loglik
    alone) and its scores in ``mode``, and ``loglik`` (the choices' log-likelihoods) where scored."""
    rec = {"problem_id": q.problem_id, "question_hash": question_hash(q), "shots": shots,
           "response": response,
           "answer": q.answer, "accepted": q.accepted, "answer_text": q.answer_text, "points": q.points,
           "kinki": q.kinki,
           "category": q.category, "example_id": example.problem_id if example else None,
           "choice_order": order or None, "scoring": mode,
           "prompt": prompt.text if prompt.text is not None else prompt.messages,
           "n_tokens": n_tokens, "seconds": round(seconds, 3),
           "raw_response": (info or {}).get("raw")}     # before stop strings cut it: for audit
    cut_at_tokens = (info or {}).get("cut_at_tokens")
    if cut_at_tokens:       # stopped by the token limit, not by the model: the card says so
        rec["cut_at_tokens"] = cut_at_tokens
    overflow = (info or {}).get("context_overflow")
    if overflow:
        rec["context_overflow"] = overflow
    if response is not None:
        rec.update(scoring.score_response(q, response, mode))
    if overflow:      # not answered: never the paper's tie-break letter for an empty response
        rec.update(predicted=[], accuracy=0.0, points_earned=0.0, kinki_picked=0)
    if loglik is not None:
        rec.update(scoring.score_choice_logprobs(q, *loglik))
        if response is None:  # loglik only: the likelihood choice is the answer
            rec.update(predicted=rec["ll_predicted"], accuracy=rec["ll_accuracy"],
                       points_earned=q.points * rec["ll_accuracy"],
                       kinki_picked=len(set(rec["ll_predicted"]) & set(q.kinki)))
    return rec


class ResultsWriter:
    """``OUT/results.jsonl`` open for appending: each row a whole line, flushed at once, so a kill
    loses at most the line being written (dropped on resume)."""

    def __init__(self, out: Path):
        self.path = out / "results.jsonl"

    def __enter__(self) -> ResultsWriter:
        self._fh = open(self.path, "a", encoding="utf-8")
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()

    def append(self, row: dict) -> None:
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()


def summarize(rows: list[dict], seed: int = 0) -> dict[int, ShotSummary]:
    """Per shot setting, every metric of ``pipelines/evaluation/metrics.py`` aggregated as it says."""
    return {shots: ShotSummary.from_rows([r for r in rows if r["shots"] == shots], seed)
            for shots in sorted({r["shots"] for r in rows})}
