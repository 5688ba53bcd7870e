"""Exam questions found in training data: the contamination check, before training and after.

A question (its text and choices) is flagged when a training record (``pipelines.tasks.train_index``)
matches it by either rule, both over normalised text (``pipelines.core.shingles.normalize``:
NFKC, lower case, no spaces or punctuation, so typesetting does not hide a copy):

* ``ngram``, a long shared run: the question and a record (instruction, input or output) share
  at least ``NGRAM_CHARS`` = 50 consecutive characters. Japanese has no spaces, so the run is
  counted in characters, not words. GPT-4's report used the same unit (50-character substrings of
  text with spaces and symbols removed); GPT-3's 13 words are about 23 characters of Japanese
  (1.8 characters per MeCab word on the exam questions), but two *different* questions of the
  sample exam already share a 41-character run (the calculation questions' rounding instruction),
  so a rule near 23 would flag every record that quotes an exam instruction. A question shorter
  than 50 characters is flagged when the whole of it appears in a record.
* ``near-dup``, a rewritten question: the Jaccard similarity of the character 3-grams of the
  question and of a record's instruction + input is at least ``NEAR_DUP_THRESHOLD`` = 0.5.
  Candidates come from banding the index's cached MinHash signatures (``band_rows``: a pair at the
  threshold is missed less than once in 100) and are confirmed with the exact Jaccard.
  Different questions of the sample exam are at most 0.17 apart (0.33 for the two calculation
  questions); a question rewritten with synonyms, another temperature and its choices reordered
  is 0.61–0.78 from the original (``bench/bench_contamination.py``).

``check_before_training`` is the pre-flight form for the Train tab and ``jmedlora train``; the
score with and without the flagged questions is ``pipelines.evaluation.contamination``'s.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from pipelines.core.repo import ASSETS
from pipelines.core.shingles import SHINGLE_CHARS, char_ngrams, minhash, normalize
from pipelines.tasks import train_index
from pipelines.tasks.igakuqa import Question, load_questions
from pipelines.tasks.train_index import SIGNATURE_PERM, TrainIndex

NGRAM_CHARS = 50
NEAR_DUP_THRESHOLD = 0.5
KINDS = ("ngram", "near-dup")
_BASE = np.uint64(0x9E3779B97F4A7C15)          # odd, so invertible modulo 2**64
_BASE_INV = np.uint64(pow(int(_BASE), -1, 2 ** 64))
_CHUNK_CODES = 1_000_000                         # characters hashed at once: bounds memory (~50 MB)
_TABLE_SIZE = 1 << 24                            # low bits of the wanted hashes: 16 MB
_ROW_WEIGHTS = np.array([pow(int(_BASE), k, 2 ** 64) for k in range(1, SIGNATURE_PERM + 1)], dtype=np.uint64)


@dataclass
class Finding:
    problem_id: str
    kind: str                 # "ngram" or "near-dup"
    record_index: int         # the record's place in the training file, from 0
    record_line: int          # its line in the training JSONL file
    overlap: str              # the longest run of (normalised) characters question and record share
    similarity: float         # exact Jaccard of the character 3-grams: question vs instruction + input
    records: int = 1          # training records this rule matched the question with; the closest is shown

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ContaminationCheck:
    train_file: str
    questions_file: str
    n_records: int
    n_questions: int
    findings: list[Finding] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    @property
    def flagged_ids(self) -> list[str]:
        """The flagged questions' ids, in the order of the question file."""
        return list(dict.fromkeys(f.problem_id for f in self.findings))

    def to_dict(self) -> dict:
        return {"train_file": self.train_file, "questions_file": self.questions_file, "n_records": self.n_records,
                "n_questions": self.n_questions, "settings": self.settings, "flagged": self.flagged_ids,
                "findings": [f.to_dict() for f in self.findings]}


def question_text(q: Question) -> str:
    """What is compared with the training data: the question and its choices, normalised."""
    return normalize(q.problem_text + "".join(q.choices))


def jaccard(a: str, b: str) -> float:
    x, y = char_ngrams(a, SHINGLE_CHARS), char_ngrams(b, SHINGLE_CHARS)
    return len(x & y) / len(x | y)


def _longest_run(a: str, b: str) -> str:
    m = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return a[m.a:m.a + m.size]


# -- long shared runs ---------------------------------------------------------------------

def window_hashes(codes: np.ndarray, n: int) -> np.ndarray:
    """Σ_j codes[i + j]·B^j (mod 2**64) for every window of ``n`` codes, from one prefix sum:
    S[k] = Σ_{m<k} codes[m]·B^m, window i = (S[i + n] − S[i])·B^−i (uint64 arithmetic wraps)."""
    m = len(codes) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        powers = np.empty(len(codes), dtype=np.uint64)
        powers[0] = 1
        powers[1:] = _BASE
        np.cumprod(powers, out=powers)
        prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
        np.cumsum(codes.astype(np.uint64) * powers, out=prefix[1:])
        inverse = np.empty(m, dtype=np.uint64)
        inverse[0] = 1
        inverse[1:] = _BASE_INV
        np.cumprod(inverse, out=inverse)
        return (prefix[n:] - prefix[:m]) * inverse


def _hits(index: TrainIndex, wanted: np.ndarray, n: int):
    """(position, hash) of every n-character window of the training text whose hash is in ``wanted`` (sorted)."""
    # A table of the wanted hashes' low bits rules out nearly every window at one lookup each
    # (binary search over all 15 million windows of 100,000 records took seconds).
    table = np.zeros(_TABLE_SIZE, dtype=bool)
    table[wanted & np.uint64(_TABLE_SIZE - 1)] = True
    for first, end in index.chunks(_CHUNK_CODES):
        lo, hi = int(index.offsets[first]), int(index.offsets[end])
        h = window_hashes(index.codes[lo:hi], n)
        maybe = np.flatnonzero(table[h & np.uint64(_TABLE_SIZE - 1)])
        at = np.searchsorted(wanted, h[maybe]).clip(max=len(wanted) - 1)
        found = maybe[wanted[at] == h[maybe]]
        yield from zip((found + lo).tolist(), h[found].tolist())


def ngram_overlaps(index: TrainIndex, texts: list[tuple[str, str]], n: int = NGRAM_CHARS) -> list[Finding]:
    """Questions (id, normalised text) sharing a run of ≥ ``n`` characters with a record (whole, if shorter)."""
    where: dict[int, list[tuple[int, int]]] = {}          # window hash → (question, position)
    short = []
    for qi, (_, text) in enumerate(texts):
        if len(text) < n:
            short.append(qi)
            continue
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        for pos, h in enumerate(window_hashes(codes, n).tolist()):
            where.setdefault(h, []).append((qi, pos))
    best: dict[tuple[int, int], str] = {}                  # (question, record) → longest shared run
    measured: dict[tuple[int, int, int], int] = {}        # (question, record, diagonal) → end of its last run
    record_text: dict[int, str] = {}
    wanted = np.array(sorted(where), dtype=np.uint64)
    for p, h in (_hits(index, wanted, n) if len(wanted) else ()):
        r = int(np.searchsorted(index.offsets, p, side="right")) - 1
        j = p - int(index.offsets[r])
        for qi, pos in where[h]:
            if pos < measured.get((qi, r, j - pos), 0):     # inside a run already measured
                continue
            a, b = texts[qi][1], record_text.setdefault(r, index.text(r))
            lo, hi = pos, pos
            while lo > 0 and lo - pos + j > 0 and a[lo - 1] == b[lo - 1 - pos + j]:
                lo -= 1
            while hi < len(a) and hi - pos + j < len(b) and a[hi] == b[hi - pos + j]:
                hi += 1
            if hi - lo < n:                              # a hash collision, not a shared run
                continue
            measured[(qi, r, j - pos)] = hi
            if hi - lo > len(best.get((qi, r), "")):
                best[(qi, r)] = a[lo:hi]
    if short:
        whole = train_index._decode(index.codes)
        for qi in short:
            text, at = texts[qi][1], 0
            while text and (at := whole.find(text, at)) != -1:
                r = int(np.searchsorted(index.offsets, at, side="right")) - 1
                if at + len(text) <= index.offsets[r + 1]:
                    best[(qi, r)] = text
                at += 1
    return _findings(index, texts, best, "ngram")


def _findings(index: TrainIndex, texts, matches: dict[tuple[int, int], str], kind: str) -> list[Finding]:
    """One finding per question: its closest record (longest run, then highest similarity, then first)."""
    by_question: dict[int, list[int]] = {}
    for qi, r in matches:
        by_question.setdefault(qi, []).append(r)
    out = []
    for qi in sorted(by_question):
        scored = []
        for r in by_question[qi]:
            run, sim = len(matches[(qi, r)]), jaccard(texts[qi][1], index.prompt_text(r))
            scored.append(((run, sim) if kind == "ngram" else (sim, run), -r, sim))
        _, minus_r, sim = max(scored)                     # ties: the earlier record
        r = -minus_r
        out.append(Finding(texts[qi][0], kind, r, int(index.lines[r]), matches[(qi, r)], round(sim, 4),
                           len(by_question[qi])))
    return out


# -- rewritten questions ----------------------------------------------------------------------

def band_rows(threshold: float, num_perm: int = SIGNATURE_PERM, recall: float = 0.99) -> int:
    """Rows per band: the most (the fewest candidates) with which a pair at ``threshold`` still becomes
    a candidate with probability ≥ ``recall``, 1 − (1 − t^r)^(num_perm // r). At 0.5 and 128
    permutations: 3 rows, 42 bands, 0.996; a pair at 0.1 is a candidate with probability 0.04."""
    return next((r for r in range(num_perm, 0, -1) if 1 - (1 - threshold ** r) ** (num_perm // r) >= recall), 1)


def _band_keys(signatures: np.ndarray, band: int, rows: int) -> np.ndarray:
    cols = signatures[:, band * rows:(band + 1) * rows].astype(np.uint64)
    with np.errstate(over="ignore"):
        return (cols * _ROW_WEIGHTS[:rows]).sum(axis=1)


def candidates(qsig: np.ndarray, tsig: np.ndarray, rows: int) -> np.ndarray:
    """(question, record) pairs whose signatures agree on every row of at least one band."""
    n, keys = len(tsig), []
    for band in range(qsig.shape[1] // rows):
        qkeys = _band_keys(qsig, band, rows)
        order = np.argsort(qkeys)
        qkeys = qkeys[order]
        tkeys = _band_keys(tsig, band, rows)
        lo, hi = np.searchsorted(qkeys, tkeys, "left"), np.searchsorted(qkeys, tkeys, "right")
        counts = hi - lo
        if counts.any():          # each record, paired with every question its key matched
            records = np.repeat(np.arange(n, dtype=np.int64), counts)
            within = np.arange(len(records)) - np.repeat(np.cumsum(counts) - counts, counts)
            keys.append(np.unique(order[np.repeat(lo, counts) + within].astype(np.int64) * n + records))
    found = np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)
    return np.stack([found // n, found % n], axis=1)


def near_duplicates(index: TrainIndex, texts: list[tuple[str, str]],
                    threshold: float = NEAR_DUP_THRESHOLD) -> list[Finding]:
    """Questions whose 3-gram Jaccard with a record's instruction + input is ≥ ``threshold``."""
    qsig = np.stack([minhash(t, SIGNATURE_PERM).hashvalues for _, t in texts])
    pairs = candidates(qsig, index.signatures, band_rows(threshold))
    # MinHash's estimate has a standard error up to 0.044 at 128 permutations: a margin of over three of
    # them, then the exact Jaccard. In slices of 50,000 pairs (about 50 MB of signatures each).
    close = [part[(qsig[part[:, 0]] == index.signatures[part[:, 1]]).mean(axis=1) >= threshold - 0.15]
             for part in np.array_split(pairs, max(1, len(pairs) // 50_000))]
    matches = {}
    for qi, r in np.concatenate(close).tolist():
        prompt = index.prompt_text(r)
        if jaccard(texts[qi][1], prompt) >= threshold:
            matches[(qi, r)] = _longest_run(texts[qi][1], prompt)
    return _findings(index, texts, matches, "near-dup")


# -- the check ------------------------------------------------------------------------------------

def check(index: TrainIndex, questions: list[Question], *, questions_file: str = "", ngram_chars: int = NGRAM_CHARS,
          threshold: float = NEAR_DUP_THRESHOLD) -> ContaminationCheck:
    """Both rules over one question set; findings in question order, ``ngram`` before ``near-dup``."""
    texts = [(q.problem_id, question_text(q)) for q in questions]
    found = [] if not texts else ngram_overlaps(index, texts, ngram_chars) + near_duplicates(index, texts, threshold)
    order = {pid: i for i, (pid, _) in enumerate(texts)}
    found.sort(key=lambda f: (order[f.problem_id], KINDS.index(f.kind)))
    return ContaminationCheck(str(index.path), questions_file, len(index), len(questions), found,
                              {"ngram_chars": ngram_chars, "near_dup_threshold": threshold})


def exam_files(workspace=None, also: list[str | os.PathLike] | None = None) -> list[Path]:
    """The question files a new run is likely to be evaluated on: ``also`` (e.g. its ``--eval-data``),
    the files of the workspace's exam evaluations, or else the sample exam that evaluation defaults to."""
    found = [Path(p) for p in also or [] if p]
    if workspace is not None:
        found += [Path(e["data"]) for e in workspace.evaluations("exam") if e.get("data")]
    found = [p for p in dict.fromkeys(p.resolve() for p in found) if p.is_file()]
    return found or [ASSETS / "questions" / "sample_ja.jsonl"]


def check_before_training(train_file: str | os.PathLike, question_files: list[str | os.PathLike], *,
                          workspace=None) -> list[ContaminationCheck]:
    """The pre-flight check: one ``ContaminationCheck`` per question file (its ``findings``, its
    ``flagged_ids``), image questions included. ``workspace`` caches the training file's index."""
    index = train_index.load(train_file, workspace)
    checks = []
    for path in question_files:
        qs = load_questions(Path(path), on_error="skip", include_images=True).questions
        checks.append(check(index, qs, questions_file=str(path)))
    return checks
