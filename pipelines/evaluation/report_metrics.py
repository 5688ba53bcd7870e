"""Scores for generated Japanese radiology reports: BLEU-1…4, METEOR, ROUGE-L and finding F1.

JRadiEvo scored generated Japanese findings with BLEU-1…4, METEOR and ROUGE-L on MeCab
(``-Owakati``) tokens, each with a 95% bootstrap interval over 10,000 resamples; this module
computes the same figures offline, on the same tokens sacrebleu's ``ja-mecab`` tokenizer gives.

* **Tokens** (``tokenize_ja``): MeCab with the IPA dictionary (``mecab-python3`` + ``ipadic``,
  ``ipadic.MECAB_ARGS + " -Owakati"``), split on whitespace, so a full-width space MeCab keeps as
  a token is dropped, as sacrebleu's whitespace split drops it. No other normalisation (sacrebleu
  applies none either): 「ＣＴＲ」 and 「CTR」 are different tokens.
* **BLEU-n** (n = 1…4): cumulative BLEU, uniform weights over orders 1…n, clipped n-gram matches,
  brevity penalty, all at **corpus** level from the reports' summed statistics (matches and
  totals per order, generated and reference lengths), no smoothing: sacrebleu's
  ``BLEU(tokenize="none", max_ngram_order=n, smooth_method="none")`` corpus score / 100. The
  bootstrap resamples reports and recomputes corpus BLEU from the resampled sums. Per report
  (the answer card, the CSV) ``bleuN`` is sentence BLEU as ``sacrebleu.sentence_bleu`` computes
  it: 'exp' smoothing (mteval's, Chen & Cherry method 3) with effective order.
* **ROUGE-L**: F-measure of the longest common subsequence of tokens with beta = 1 (F1, as
  ``rouge_score`` and JRadiEvo report it), per report, then the mean. An empty side scores 0.
* **METEOR**, exact stage only: nltk's ``meteor_score`` (alpha 0.9, beta 3, gamma 0.5, tokens
  lower-cased, nltk's greedy right-to-left alignment, fragmentation penalty over chunks) with
  its stemming and WordNet stages left out: a Porter stemmer and English WordNet have nothing to
  say about Japanese tokens, and WordNet is a download. On all-Japanese text this equals nltk's
  score; Latin tokens (「CTR」) lose the stem/synonym credit nltk would give. Per report, then mean.
* **Finding F1**: micro/macro F1 of CheXpert findings labelled by ``pipelines/evaluation/findings.py``
  on the generated and the reference report (uncertain counts as positive by default).

Thread safety: one MeCab Tagger is shared (built on first use) and a Tagger is not safe to call
from two threads at once, so ``tokenize_ja`` holds a lock around it.
"""
from __future__ import annotations

import math
import threading
from collections import Counter
from functools import lru_cache

import numpy as np

from pipelines.core.errors import UserError
from pipelines.evaluation import findings, metrics, significance

MAX_ORDER = 4
RESAMPLES = 10_000
METEOR_ALPHA, METEOR_BETA, METEOR_GAMMA = 0.9, 3.0, 0.5
_TAGGER_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _tagger():
    import ipadic
    import MeCab

    return MeCab.Tagger(ipadic.MECAB_ARGS + " -Owakati")


@lru_cache(maxsize=2 ** 14)
def _tokens(text: str) -> tuple[str, ...]:
    tagger = _tagger()
    with _TAGGER_LOCK:
        parsed = tagger.parse(text)
    return tuple(parsed.split())


def tokenize_ja(text: str) -> list[str]:
    """MeCab (IPA dictionary) tokens of ``text``, as ``-Owakati`` splits it."""
    return list(_tokens(text))


# -- BLEU ------------------------------------------------------------------------------------

def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu_stats(hyp: list[str], ref: list[str]) -> list[int]:
    """One report's sufficient statistics: [hyp length, ref length, matches 1…4, totals 1…4]."""
    matches, totals = [], []
    for n in range(1, MAX_ORDER + 1):
        h, r = _ngrams(hyp, n), _ngrams(ref, n)
        matches.append(sum(min(c, r[g]) for g, c in h.items()))
        totals.append(max(len(hyp) - n + 1, 0))
    return [len(hyp), len(ref), *matches, *totals]


def _brevity_penalty(hyp_len, ref_len):
    hyp_len, ref_len = np.asarray(hyp_len, dtype=float), np.asarray(ref_len, dtype=float)
    with np.errstate(divide="ignore", over="ignore"):
        short = np.where(hyp_len > 0, np.exp(1 - ref_len / np.maximum(hyp_len, 1e-300)), 0.0)
    return np.where(hyp_len >= ref_len, 1.0, short)


def corpus_bleu(summed_stats, order: int) -> np.ndarray:
    """Corpus BLEU-``order`` from summed statistics, shape (..., 10) -> (...); no smoothing, so
    an order without a match makes it 0."""
    s = np.asarray(summed_stats, dtype=float)
    m, t = s[..., 2:2 + order], s[..., 2 + MAX_ORDER:2 + MAX_ORDER + order]
    matched = (m > 0).all(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.where(m > 0, np.log(np.where(m > 0, m, 1) / np.where(t > 0, t, 1)), 0.0)
    return np.where(matched, _brevity_penalty(s[..., 0], s[..., 1]) * np.exp(log_p.mean(axis=-1)), 0.0)


def sentence_bleu(stats: list[int], order: int) -> float:
    """One report's BLEU-``order`` as ``sacrebleu.sentence_bleu`` computes it: 'exp' smoothing
    (an order with no match counts 1 / (2^k · total), k the count of such orders so far) and
    effective order (orders the report is too short to have are left out)."""
    m, t = stats[2:2 + order], stats[2 + MAX_ORDER:2 + MAX_ORDER + order]
    if not any(m):
        return 0.0
    logs, smooth = [], 1.0
    for n in range(order):
        if t[n] == 0:
            break
        if m[n] == 0:
            smooth *= 2
            logs.append(math.log(1 / (smooth * t[n])))
        else:
            logs.append(math.log(m[n] / t[n]))
    return float(_brevity_penalty(stats[0], stats[1]) * math.exp(sum(logs) / len(logs)))


# -- ROUGE-L and METEOR ----------------------------------------------------------------------

def lcs_length(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(hyp: list[str], ref: list[str]) -> float:
    """ROUGE-L F1 (beta = 1): 2PR / (P + R) with P = LCS/|hyp|, R = LCS/|ref|."""
    if not hyp or not ref:
        return 0.0
    lcs = lcs_length(hyp, ref)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(hyp), lcs / len(ref)
    return 2 * p * r / (p + r)


def exact_alignment(hyp: list[str], ref: list[str]) -> list[tuple[int, int]]:
    """nltk's exact-stage alignment: hypothesis tokens from the last, each matched to the last
    still-unmatched equal reference token; (hyp index, ref index) pairs sorted by hyp index."""
    unmatched = list(enumerate(ref))
    pairs = []
    for i in range(len(hyp) - 1, -1, -1):
        for j in range(len(unmatched) - 1, -1, -1):
            if unmatched[j][1] == hyp[i]:
                pairs.append((i, unmatched.pop(j)[0]))
                break
    return sorted(pairs)


def count_chunks(pairs: list[tuple[int, int]]) -> int:
    """Runs of matches adjacent in both the hypothesis and the reference."""
    return sum(1 for k, (i, j) in enumerate(pairs) if k == 0 or pairs[k - 1] != (i - 1, j - 1))


def meteor_exact(hyp: list[str], ref: list[str]) -> float:
    """METEOR with exact matches only (nltk's formula; see the module docstring)."""
    hyp, ref = [t.lower() for t in hyp], [t.lower() for t in ref]
    pairs = exact_alignment(hyp, ref)
    if not pairs:
        return 0.0
    p, r = len(pairs) / len(hyp), len(pairs) / len(ref)
    fmean = p * r / (METEOR_ALPHA * p + (1 - METEOR_ALPHA) * r)
    penalty = METEOR_GAMMA * (count_chunks(pairs) / len(pairs)) ** METEOR_BETA
    return (1 - penalty) * fmean


# -- per report ------------------------------------------------------------------------------

def score_report(generated: str, reference: str) -> dict:
    """One report's row: ``bleu1``…``bleu4`` (sentence BLEU), ``meteor``, ``rouge_l``, the BLEU
    statistics the corpus score sums (``bleu_stats``) and both reports' finding labels."""
    hyp, ref = tokenize_ja(generated), tokenize_ja(reference)
    stats = bleu_stats(hyp, ref)
    return {**{f"bleu{n}": sentence_bleu(stats, n) for n in range(1, MAX_ORDER + 1)},
            "meteor": meteor_exact(hyp, ref), "rouge_l": rouge_l(hyp, ref), "bleu_stats": stats,
            "findings_generated": findings.label_report(generated),
            "findings_reference": findings.label_report(reference)}


# -- over reports: every report metric is a function of per-report sums ----------------------

_FINDING_COLUMNS = 12          # after bleu_stats (10), meteor, rouge_l


def _report_statistics(rows: list[dict], uncertain: str) -> np.ndarray:
    """(reports × k): BLEU statistics, METEOR, ROUGE-L, then (TP, FP, FN) per finding."""
    names = findings.load_catalog().findings
    out = np.zeros((len(rows), _FINDING_COLUMNS + 3 * len(names)))
    for i, row in enumerate(rows):
        missing = [k for k in ("bleu_stats", "meteor", "rouge_l", "findings_generated", "findings_reference")
                   if row.get(k) is None]
        if missing:
            raise UserError(f"Report row {i + 1} has no {', '.join(missing)}.",
                            "Score each report with score_report (or re-run the report evaluation) "
                            "before summarising.", code="report_scores.missing_scores",
                            params={"row": i + 1, "fields": ", ".join(missing)})
        out[i, :10] = row["bleu_stats"]
        out[i, 10:12] = row["meteor"], row["rouge_l"]
        out[i, _FINDING_COLUMNS:] = findings.finding_counts(
            row["findings_generated"], row["findings_reference"], names, uncertain=uncertain).ravel()
    return out


def _finding_f1(kind: str):
    return lambda sums, n: findings.f1_from_counts(sums[..., _FINDING_COLUMNS:].reshape(
        *sums.shape[:-1], -1, 3))[kind]


# metric key -> statistic from summed columns (..., k) and the number of reports
STATISTICS = {
    **{f"bleu{n}": (lambda sums, _n, order=n: corpus_bleu(sums[..., :10], order)) for n in range(1, MAX_ORDER + 1)},
    "meteor": lambda sums, n: sums[..., 10] / n,
    "rouge_l": lambda sums, n: sums[..., 11] / n,
    "finding_micro_f1": _finding_f1("micro_f1"),
    "finding_macro_f1": _finding_f1("macro_f1"),
}


def _point(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def summarize_reports(rows: list[dict], *, seed: int = 0, resamples: int = RESAMPLES,
                      uncertain: str = "positive") -> dict[str, dict]:
    """metric key -> ``{"mean", "ci_low", "ci_high"}`` for every report metric in the registry:
    "mean" is the figure on all reports (corpus BLEU, mean ROUGE-L/METEOR, pooled finding F1) and
    the interval is the percentile bootstrap over ``resamples`` resamples of the reports."""
    keys = [m.key for m in metrics.for_task("report")]
    if not rows:
        return {k: significance.percentile_interval(None, []) for k in keys}
    stats = _report_statistics(rows, uncertain)
    sums = significance.resampled_sums(stats, seed=seed, n_boot=resamples)
    total, n = stats.sum(axis=0), len(rows)
    return {k: significance.percentile_interval(_point(STATISTICS[k](total, n)), STATISTICS[k](sums, n))
            for k in keys}


def _by_id(rows: list[dict], id_key: str, side: str) -> dict:
    out = {}
    for i, row in enumerate(rows):
        rid = row.get(id_key)
        if rid is None:
            raise UserError(f"Report row {i + 1} of system {side} has no {id_key!r}.",
                            f"Give every report row an {id_key!r} so the two systems' reports can be paired.",
                            code="report_scores.missing_id", params={"row": i + 1, "side": side, "key": id_key})
        if rid in out:
            raise UserError(f"System {side} has two reports with {id_key} {rid!r}.",
                            "Keep one row per report (the same ids in both systems).",
                            code="report_scores.duplicate_id", params={"side": side, "key": id_key, "id": str(rid)})
        out[rid] = row
    return out


def compare_reports(rows_a: list[dict], rows_b: list[dict], *, id_key: str = "id", seed: int = 0,
                    resamples: int = RESAMPLES, uncertain: str = "positive") -> dict[str, dict]:
    """Is system B better than A on the reports both generated (paired by ``id_key``)? Per metric:
    ``{"n", "mean_a", "mean_b", "diff", "ci_low", "ci_high", "p_bootstrap"}`` with diff = B − A,
    its interval from a paired bootstrap (the same resampled reports for both systems, each
    corpus figure recomputed) and the two-sided p of ``significance.paired_comparison``."""
    a, b = _by_id(rows_a, id_key, "A"), _by_id(rows_b, id_key, "B")
    common = sorted(set(a) & set(b), key=str)
    if not common:
        raise UserError("The two systems share no report.",
                        "Compare report evaluations run on the same studies (the same report ids).",
                        code="report_scores.no_shared")
    stats_a = _report_statistics([a[k] for k in common], uncertain)
    stats_b = _report_statistics([b[k] for k in common], uncertain)
    sums = significance.resampled_sums(np.hstack([stats_a, stats_b]), seed=seed, n_boot=resamples)
    width, n = stats_a.shape[1], len(common)
    out = {}
    for m in metrics.for_task("report"):
        statistic = STATISTICS[m.key]
        mean_a, mean_b = _point(statistic(stats_a.sum(axis=0), n)), _point(statistic(stats_b.sum(axis=0), n))
        boots = statistic(sums[:, width:], n) - statistic(sums[:, :width], n)
        boots = boots[~np.isnan(boots)]
        diff = None if mean_a is None or mean_b is None else mean_b - mean_a
        interval = significance.percentile_interval(diff, boots)
        out[m.key] = {"n": n, "mean_a": mean_a, "mean_b": mean_b, "diff": diff,
                      "ci_low": interval["ci_low"], "ci_high": interval["ci_high"],
                      "p_bootstrap": significance.bootstrap_p_value(boots) if boots.size else None}
    return out
