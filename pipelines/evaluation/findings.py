"""Clinical findings in Japanese chest X-ray reports: a CheXpert-style rule labeller and finding F1.

BLEU and ROUGE reward wording; a report that says 「気胸を認めない」 where the reference says
「気胸を認める」 shares almost every token and is clinically opposite. The finding F1 compares what
the two reports *say* about the 14 CheXpert observations instead (as CheXpert/CheXbert F1 does for
English reports). The vocabulary is data, ``assets/findings/chexpert_ja.json``: per finding its
Japanese terms and the longer words that contain a term but are not the finding (``exclude``),
then cue lists.

Rules, per sentence (split on 。 ． and line breaks; text NFKC-normalised and lower-cased):

* **Mentions**: every term and exclude word is found; overlapping matches keep the longest (so
  「間質性肺炎」 is Lung Opacity, not Pneumonia, and 「レポート」 is no 「ポート」 device).
* **Scope**: from a mention's end, the text is read up to the sentence end; the first cue decides
  (at one position the longest cue wins, so 「認めない」 beats 「認め」 and 「可能性は低い」 beats
  「可能性」). Negation cue → negative; uncertainty cue → uncertain; an affirmation
  (「認め」「あり」「見られ」…, and pseudo-negations such as 「著変なし」「増悪なし」 that say the
  finding is still there) → positive; a hedge (「…を疑う所見」) makes a following affirmation or
  none uncertain and leaves a following negation negative. No cue before the sentence ends:
  positive (a bare 「心拡大。」 is a finding).
* **Coordination**: reading passes over another mention when the text between them ends with a
  link (a coordinator 「や」「、」「と」「および」… or a causal 「による」「に伴う」, then modifiers
  such as 「明らかな」「右」) and holds no は/を/が, so 「胸水や気胸は認めない」 negates both and
  「心不全による肺うっ血と考えられる」 hedges both; otherwise the first mention ends there, positive
  (「浸潤影は肺炎を疑う」: the opacity is seen, the pneumonia suspected).
* **Report label**: positive > uncertain > negative over a finding's mentions (CheXpert's
  aggregation); a finding never mentioned is ``unmentioned``. ``No Finding`` is positive when no
  finding other than Support Devices is positive or uncertain, else unmentioned (CheXpert's rule).

Known limits: no dependency parse, so 「心拡大、胸水なし」 negates both (read as a list); double
negatives other than the listed 「…がないとは言えない」 forms read as negations; a finding said
with numbers or plain words and no finding term (「心胸郭比は58%と拡大」「心陰影は正常大」) is missed.

``finding_f1``: per finding, a report counts as positive when its label is positive, and uncertain
counts as positive too unless ``uncertain="negative"`` (CheXpert's U-Ones / U-Zeros); negative
and unmentioned are both "not positive". Micro F1 pools TP/FP/FN over the findings; macro F1 is
the mean F1 of the findings where it is defined (some report, generated or reference, positive),
so a finding absent from the whole set neither helps nor hurts. Intervals resample reports.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipelines.evaluation import significance

CATALOG = Path(__file__).resolve().parents[2] / "assets" / "findings" / "chexpert_ja.json"
LABELS = ("positive", "uncertain", "negative", "unmentioned")
CUE_KINDS = ("negation", "uncertainty", "hedge", "affirmation")
_SENTENCE_END = re.compile(r"[。．\n]+")


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


@dataclass(frozen=True)
class Catalog:
    findings: tuple[str, ...]                  # the 14 names, No Finding first (CheXpert's order)
    no_finding: str
    no_finding_ignores: frozenset[str]
    japanese: dict[str, str]                   # name -> Japanese name
    words: dict[str, str | None]               # term -> finding; exclude word -> None
    cues: dict[str, str]                       # cue -> kind
    gap: re.Pattern                            # text between two mentions that coordinates them
    longest_cue: int


def _alternation(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


@lru_cache(maxsize=4)
def load_catalog(path: str | Path = CATALOG) -> Catalog:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    words: dict[str, str | None] = {}
    for f in data["findings"]:
        for term in f["terms"]:
            term = normalize(term)
            if words.get(term, f["name"]) != f["name"]:
                raise ValueError(f"{path}: term {term!r} is listed under two findings")
            words[term] = f["name"]
        for word in f["exclude"]:
            words.setdefault(normalize(word), None)
    cues: dict[str, str] = {}
    for kind in CUE_KINDS:
        for cue in data["cues"][kind]:
            cue = normalize(cue)
            if cues.setdefault(cue, kind) != kind:
                raise ValueError(f"{path}: cue {cue!r} is both {cues[cue]} and {kind}")
    nf = data["no_finding"]
    gap = re.compile(rf"[^はをが]*(?:{_alternation(map(normalize, data['links']))})"
                     rf"\s*(?:{_alternation(map(normalize, data['modifiers']))}|\s)*")
    return Catalog(findings=(nf["name"], *(f["name"] for f in data["findings"])), no_finding=nf["name"],
                   no_finding_ignores=frozenset(nf["ignores"]),
                   japanese={nf["name"]: nf["ja"], **{f["name"]: f["ja"] for f in data["findings"]}},
                   words=words, cues=cues, gap=gap, longest_cue=max(map(len, cues)))


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(normalize(text)) if s.strip()]


def find_mentions(sentence: str, catalog: Catalog) -> list[tuple[int, int, str]]:
    """(start, end, finding) of each mention in a normalised sentence, left to right; of
    overlapping matches the longest is kept (then the leftmost), exclude words mention nothing."""
    found = []
    for word, finding in catalog.words.items():
        start = sentence.find(word)
        while start >= 0:
            found.append((start, start + len(word), finding))
            start = sentence.find(word, start + 1)
    taken = np.zeros(len(sentence) + 1, dtype=bool)
    kept = []
    for start, end, finding in sorted(found, key=lambda m: (m[0] - m[1], m[0])):
        if not taken[start:end].any():
            taken[start:end] = True
            kept.append((start, end, finding))
    return sorted((m for m in kept if m[2] is not None), key=lambda m: m[0])


def _cue_at(sentence: str, pos: int, catalog: Catalog) -> tuple[str, str] | None:
    for size in range(min(catalog.longest_cue, len(sentence) - pos), 0, -1):
        kind = catalog.cues.get(sentence[pos:pos + size])
        if kind:
            return sentence[pos:pos + size], kind
    return None


def mention_label(sentence: str, mention_end: int, later_starts: dict[int, int], catalog: Catalog) -> str:
    """positive / negative / uncertain for the mention ending at ``mention_end`` (see the module
    docstring); ``later_starts`` maps the start of each later mention to its end."""
    hedged, anchor, pos = False, mention_end, mention_end
    while pos < len(sentence):
        cue = _cue_at(sentence, pos, catalog)
        if cue is not None:
            text, kind = cue
            if kind == "negation":
                return "negative"
            if kind == "uncertainty":
                return "uncertain"
            if kind == "affirmation":
                break
            hedged, pos = True, pos + len(text)
            continue
        if pos in later_starts:
            if not catalog.gap.fullmatch(sentence[anchor:pos]):
                break
            anchor = pos = later_starts[pos]
            continue
        pos += 1
    return "uncertain" if hedged else "positive"


def sentence_labels(sentence: str, catalog: Catalog | None = None) -> list[tuple[str, str, str]]:
    """(finding, matched text, label) for each mention in one sentence."""
    catalog = catalog or load_catalog()
    sentence = normalize(sentence)
    mentions = find_mentions(sentence, catalog)
    starts = {start: end for start, end, _ in mentions}
    return [(finding, sentence[start:end],
             mention_label(sentence, end, {s: e for s, e in starts.items() if s >= end}, catalog))
            for start, end, finding in mentions]


_RANK = {"positive": 3, "uncertain": 2, "negative": 1, "unmentioned": 0}


def label_report(text: str, catalog: Catalog | None = None) -> dict[str, str]:
    """finding -> positive | uncertain | negative | unmentioned, for all 14 findings."""
    catalog = catalog or load_catalog()
    labels = {name: "unmentioned" for name in catalog.findings}
    for sentence in split_sentences(text):
        for finding, _, label in sentence_labels(sentence, catalog):
            if _RANK[label] > _RANK[labels[finding]]:
                labels[finding] = label
    found = any(labels[name] in ("positive", "uncertain") for name in catalog.findings
                if name != catalog.no_finding and name not in catalog.no_finding_ignores)
    labels[catalog.no_finding] = "unmentioned" if found else "positive"
    return labels


# -- agreement with reference reports --------------------------------------------------------

UNCERTAIN_AS = ("positive", "negative")


def _is_positive(label: str, uncertain: str) -> bool:
    return label == "positive" or (label == "uncertain" and uncertain == "positive")


def finding_counts(pred: dict[str, str], ref: dict[str, str], findings: tuple[str, ...], *,
                   uncertain: str = "positive") -> np.ndarray:
    """One report's (TP, FP, FN) per finding, shape (findings, 3)."""
    if uncertain not in UNCERTAIN_AS:
        raise ValueError(f"uncertain must be one of {UNCERTAIN_AS}, not {uncertain!r}")
    out = np.zeros((len(findings), 3))
    for i, name in enumerate(findings):
        p = _is_positive(pred.get(name, "unmentioned"), uncertain)
        r = _is_positive(ref.get(name, "unmentioned"), uncertain)
        out[i] = (p and r, p and not r, r and not p)
    return out


def f1_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Micro and macro F1 from summed counts of shape (..., findings, 3); NaN where undefined."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        per = 2 * tp / (2 * tp + fp + fn)
        micro = 2 * tp.sum(-1) / (2 * tp.sum(-1) + fp.sum(-1) + fn.sum(-1))
    defined = ~np.isnan(per)
    with np.errstate(invalid="ignore"):
        macro = np.where(defined.any(-1), np.nansum(per, -1) / np.maximum(defined.sum(-1), 1), np.nan)
    return {"micro_f1": micro, "macro_f1": macro, "per_finding": per}


def _stacked_counts(pred_reports, ref_reports, findings, uncertain) -> np.ndarray:
    if len(pred_reports) != len(ref_reports):
        raise ValueError(f"{len(pred_reports)} generated and {len(ref_reports)} reference reports: "
                         "pass one label dict per report, in the same order")
    return np.array([finding_counts(p, r, findings, uncertain=uncertain)
                     for p, r in zip(pred_reports, ref_reports)]).reshape(len(pred_reports), len(findings), 3)


def _nan_to_none(x) -> float | None:
    return None if np.isnan(x) else float(x)


def finding_f1(pred_reports_labels: list[dict[str, str]], ref_reports_labels: list[dict[str, str]], *,
               uncertain: str = "positive", findings: tuple[str, ...] | None = None) -> dict:
    """``{"micro_f1", "macro_f1", "per_finding": {name: {tp, fp, fn, precision, recall, f1}}}``
    over reports paired by position; a value is None where it is undefined (nothing positive)."""
    findings = findings or load_catalog().findings
    counts = _stacked_counts(pred_reports_labels, ref_reports_labels, findings, uncertain).sum(axis=0)
    scores = f1_from_counts(counts)
    per = {}
    for i, name in enumerate(findings):
        tp, fp, fn = (int(v) for v in counts[i])
        per[name] = {"tp": tp, "fp": fp, "fn": fn,
                     "precision": tp / (tp + fp) if tp + fp else None,
                     "recall": tp / (tp + fn) if tp + fn else None,
                     "f1": _nan_to_none(scores["per_finding"][i])}
    return {"micro_f1": _nan_to_none(scores["micro_f1"]), "macro_f1": _nan_to_none(scores["macro_f1"]),
            "per_finding": per}


def finding_f1_intervals(pred_reports_labels: list[dict[str, str]], ref_reports_labels: list[dict[str, str]],
                         *, uncertain: str = "positive", findings: tuple[str, ...] | None = None,
                         seed: int = 0, resamples: int = 10_000) -> dict[str, dict]:
    """Micro and macro F1 with percentile bootstrap 95% intervals (reports resampled):
    ``{"micro_f1": {"mean", "ci_low", "ci_high"}, "macro_f1": {...}}``, "mean" being the F1 on all reports."""
    findings = findings or load_catalog().findings
    counts = _stacked_counts(pred_reports_labels, ref_reports_labels, findings, uncertain)
    if not len(counts):
        return {k: significance.percentile_interval(None, []) for k in ("micro_f1", "macro_f1")}
    n_findings = len(findings)
    point = f1_from_counts(counts.sum(axis=0))
    boots = f1_from_counts(significance.resampled_sums(counts.reshape(len(counts), -1), seed=seed,
                                                       n_boot=resamples).reshape(-1, n_findings, 3))
    return {k: significance.percentile_interval(_nan_to_none(point[k]), boots[k]) for k in ("micro_f1", "macro_f1")}
