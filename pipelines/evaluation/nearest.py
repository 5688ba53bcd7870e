"""Why did it answer that: the training records nearest each (wrongly) answered question.

    jmedlora nearest --train FILE.jsonl --eval OUT_DIR [--wrong-only] [--k 3] [--json]

Beside an answer card, the records of the run's training data most like the question: a record
that states another answer to a near-identical question explains a wrong answer better than any
metric. Records are ranked by BM25 (k1 = 1.2, b = 0.75, Lucene's idf) over character bigrams of the
normalised text (Japanese has no spaces; bigrams are the usual unit for Japanese search without a
tokenizer) of the whole record, instruction, input and output.

BM25 rather than MinHash Jaccard of character 3-grams, by measurement on 100,000 records
(``bench/bench_contamination.py``): the record that rewrites a question ranks first for 20 of 20
questions either way; a record quoting 60 characters of a question ranks at a median 12th by BM25
and 72nd by MinHash (worst 318th and 579th); on an earlier draft of the bench, whose cases shared
more template text, BM25 ranked the rewrite first for 16 of 20 and MinHash for 11. BM25's index
builds in 1.2 s against 11 s; a query takes 14 ms against 7 ms. The index is built once per
training file and cached beside its contamination index (``pipelines.tasks.train_index``), as .npy
arrays.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from pipelines.core import cli
from pipelines.core.errors import UserError, cli_guard
from pipelines.core.workspace import Workspace
from pipelines.evaluation.contamination import exam_rows, questions_of
from pipelines.tasks import train_index
from pipelines.tasks.train_index import TrainIndex

K1, B = 1.2, 0.75
_PAIR = np.int64(0x110000)            # one past the last code point: a bigram as one int64
_SLICE_CODES = 2_000_000              # characters indexed at once


def _bigrams(codes: np.ndarray) -> np.ndarray:
    c = codes.astype(np.int64)
    return c[:-1] * _PAIR + c[1:]


def _record_bigrams(index: TrainIndex, first: int, end: int, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bigrams of records [first, end) and the record of each (none across two records)."""
    lo = index.offsets[first]
    grams = _bigrams(index.codes[lo:index.offsets[end]])
    keep = np.ones(len(grams), dtype=bool)
    across = index.offsets[first + 1:end] - lo - 1
    keep[across[(across >= 0) & (across < len(grams))]] = False
    return grams[keep], np.repeat(np.arange(first, end, dtype=np.int64), lengths[first:end])


def build_bm25(index: TrainIndex) -> dict[str, np.ndarray]:
    """Postings of every character bigram: ``vocab`` (sorted bigrams), ``indptr`` (term t's postings
    are [indptr[t], indptr[t + 1])), ``docs`` (record) and ``tf`` (times in it), ``lengths`` (bigrams
    per record). Built a slice of records at a time: 100,000 records stay near 300 MB."""
    n = len(index)
    lengths = np.maximum(np.diff(index.offsets) - 1, 0)
    slices = index.chunks(_SLICE_CODES)
    vocab = np.unique(np.concatenate([np.unique(_record_bigrams(index, a, b, lengths)[0]) for a, b in slices]
                                     or [np.zeros(0, dtype=np.int64)]))
    keys, counts = [], []
    for a, b in slices:             # a record is in one slice only: its (term, record) counts are whole
        grams, docs = _record_bigrams(index, a, b, lengths)
        key, tf = np.unique(np.searchsorted(vocab, grams).astype(np.int64) * n + docs, return_counts=True)
        keys.append(key)
        counts.append(tf.astype(np.int32))
    # Postings laid out by term, each slice's written after the earlier ones' (so by record within
    # a term) instead of sorting all of them at once, which took three times the memory.
    per_term = sum((np.bincount(k // n, minlength=len(vocab)) for k in keys), np.zeros(len(vocab), dtype=np.int64))
    indptr = np.concatenate([[0], np.cumsum(per_term)]).astype(np.int64)
    docs_out, tf_out = np.empty(indptr[-1], dtype=np.int32), np.empty(indptr[-1], dtype=np.int32)
    filled = indptr[:-1].copy()
    for key, tf in zip(keys, counts):
        terms = key // n                                  # sorted: np.unique sorted the keys
        at = filled[terms] + np.arange(len(terms)) - np.searchsorted(terms, terms, side="left")
        docs_out[at], tf_out[at] = key % n, tf
        filled += np.bincount(terms, minlength=len(vocab))
    return {"vocab": vocab, "indptr": indptr, "docs": docs_out, "tf": tf_out, "lengths": lengths.astype(np.int32)}


@dataclass
class Bm25:
    index: TrainIndex
    arrays: dict = field(init=False)

    def __post_init__(self):
        a = self.index.arrays("bm25", lambda: build_bm25(self.index))
        consistent = (set(a) == {"vocab", "indptr", "docs", "tf", "lengths"} and len(a["lengths"]) == len(self.index)
                      and len(a["indptr"]) == len(a["vocab"]) + 1 and a["indptr"][-1] == len(a["docs"]) == len(a["tf"]))
        self.arrays = a if consistent else build_bm25(self.index)     # a cache someone edited: not trusted

    def scores(self, text: str) -> np.ndarray:
        """BM25 of every record for the query ``text`` (normalised), each distinct bigram counted once."""
        a = self.arrays
        lengths = a["lengths"].astype(np.float64)
        n, avg = len(lengths), max(lengths.mean(), 1.0) if len(lengths) else 1.0
        query = np.unique(_bigrams(np.frombuffer(text.encode("utf-32-le"), dtype="<u4")))
        at = np.searchsorted(a["vocab"], query).clip(max=max(len(a["vocab"]) - 1, 0))
        terms = at[a["vocab"][at] == query] if len(a["vocab"]) else at[:0]
        out = np.zeros(n)
        for t in terms.tolist():
            lo, hi = a["indptr"][t], a["indptr"][t + 1]
            docs, tf = a["docs"][lo:hi], a["tf"][lo:hi].astype(np.float64)
            idf = math.log(1 + (n - (hi - lo) + 0.5) / (hi - lo + 0.5))
            out[docs] += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * lengths[docs] / avg))
        return out

    def top(self, text: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` best records (index, score) with a score above 0; ties: the earlier record."""
        s = self.scores(text)
        if not len(s):
            return []
        best = np.argpartition(-s, min(k, len(s) - 1))[:k] if k < len(s) else np.arange(len(s))
        ranked = sorted(best.tolist(), key=lambda r: (-s[r], r))
        return [(r, round(float(s[r]), 3)) for r in ranked if s[r] > 0]


def _shared_run(a: str, b: str) -> str:
    m = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return a[m.a:m.a + m.size]


def nearest_records(bm25: Bm25, texts: dict[str, str], k: int = 3) -> dict[str, list[dict]]:
    """For each question id → normalised text: its ``k`` nearest records, as the file holds them,
    with their line, BM25 score and the longest run of characters they share with the question."""
    tops = {pid: bm25.top(text, k) for pid, text in texts.items()}
    records = bm25.index.records({r for top in tops.values() for r, _ in top})
    return {pid: [{**records[r], "score": score, "shared": _shared_run(texts[pid], bm25.index.text(r))}
                  for r, score in top] for pid, top in tops.items()}


def nearest_for_evaluation(train_file: str, out: str | Path, *, data: str | None = None, wrong_only: bool = False,
                           k: int = 3, workspace: Workspace | None = None) -> list[dict]:
    """One entry per answer row (question, shots): whether it was right, what was picked, and the
    ``k`` nearest training records of its question (``wrong_only``: wrong answers only)."""
    out = Path(out)
    rows = exam_rows(out)
    texts = questions_of(out, data)
    rows = [r for r in rows if not wrong_only or (r.get("accuracy") is not None and r["accuracy"] < 1)]
    wanted = {r["problem_id"]: texts[r["problem_id"]] for r in rows if r["problem_id"] in texts}
    near = nearest_records(Bm25(train_index.load(train_file, workspace)), wanted, k)
    return [{"problem_id": r["problem_id"], "shots": r["shots"],
             "correct": None if r.get("accuracy") is None else r["accuracy"] >= 1,
             "predicted": r.get("predicted"), "answer": r.get("answer"), "nearest": near.get(r["problem_id"], [])}
            for r in rows]


@dataclass
class NearestConfig:
    train: str = field(default="", metadata=cli.required())   # the run's training data (Alpaca JSONL)
    eval: str = field(default="", metadata=cli.meta(cli.required(), cli.metavar("OUT_DIR")))  # an evaluation folder
    data: str | None = None          # its question file (default: the one named in OUT_DIR/config.json)
    wrong_only: bool = False         # only the questions answered wrongly
    k: int = 3                       # records shown per question
    workspace: str | None = None


def _print(entries: list[dict]) -> None:
    for e in entries:
        mark = "?" if e["correct"] is None else "ok" if e["correct"] else "wrong"
        print(f"{e['problem_id']} (shots {e['shots']}): {mark}, picked {','.join(e['predicted'] or []) or '-'}, "
              f"answer {','.join(e['answer'] or [])}")
        for n in e["nearest"]:
            text = " / ".join(x for x in (n["instruction"], n["input"], n["output"]) if x).replace("\n", " ")
            print(f"    line {n['line']:>7}  BM25 {n['score']:7.2f}  {text[:100]}")


@cli_guard
def main(argv: list[str] | None = None) -> None:
    parser = cli.config_parser("nearest", NearestConfig, __doc__)
    cli.add_common(parser, "json")
    ns = parser.parse_args(argv)
    c = cli.config_from_args(NearestConfig, ns)
    if c.k < 1:
        raise UserError(f"--k {c.k}: at least one record must be shown.", "Pass --k 1 or more.",
                        code="contamination.k_too_small", params={"k": c.k, "field": "k"})
    entries = nearest_for_evaluation(c.train, c.eval, data=c.data, wrong_only=c.wrong_only, k=c.k,
                                     workspace=Workspace.resolve(c.workspace))
    if ns.json:
        print(json.dumps(entries, ensure_ascii=False, indent=2))
    else:
        _print(entries)


if __name__ == "__main__":
    main()
