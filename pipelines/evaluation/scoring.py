"""Scoring a model's free-text answer to a multiple-choice question.

Two named modes; this docstring is the one place their normalisation is defined.

``paper`` (JMedLoRA, as published)
    * both strings: Unicode NFKC, then surrounding whitespace stripped;
    * similarity(x, y) = ``difflib.SequenceMatcher(None, response, text).ratio()``, response first;
    * **Accuracy**: rank the choices by similarity to the response; with k correct answers the
      k most similar choices (ties broken by choice order) must be exactly the correct set;
    * **Exact match**: every correct answer text occurs in the response;
    * **Gestalt score**: similarity(response, correct answer text), the correct texts joined by 「、」.

``harness`` (the authors' later public harness)
    * the response is cut to its first non-empty line; both strings stripped (no NFKC);
    * similarity = mean of ``ratio()`` in both argument orders (Ratcliff/Obershelp is asymmetric);
    * Accuracy as above with this similarity; **Exact match**: response == answer text.

Questions without choices (calculations) in either mode: the first number in the response
is the prediction; Accuracy and Exact match = it equals the answer; Gestalt as above.

Exam-style figures beside those: ``points_earned`` (points × correct set) and ``kinki_picked``
(contraindicated choices among the predicted ones: what fails a Japanese clinician).

A new field returned here becomes a metric everywhere with one entry in ``pipelines/evaluation/metrics.py``.
"""
from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher

from pipelines.tasks.igakuqa import Question

MODES = ("paper", "harness")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def normalize(text: str, mode: str) -> str:
    if mode == "paper":
        return unicodedata.normalize("NFKC", text).strip()
    if mode == "harness":
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        return lines[0] if lines else ""
    raise ValueError(f"unknown scoring mode {mode!r}; use one of {MODES}")


def similarity(response: str, text: str, mode: str) -> float:
    """Gestalt (Ratcliff/Obershelp) similarity of already-normalised strings."""
    forward = SequenceMatcher(None, response, text).ratio()
    if mode == "paper":
        return forward
    return (forward + SequenceMatcher(None, text, response).ratio()) / 2


def _clean_choice(text: str, mode: str) -> str:
    return unicodedata.normalize("NFKC", text).strip() if mode == "paper" else text.strip()


def _first_number(text: str) -> str | None:
    m = _NUMBER.search(unicodedata.normalize("NFKC", text).replace(",", ""))
    return m.group(0) if m else None


def _same_number(a: str | None, b: str) -> bool:
    if a is None:
        return False
    try:
        return abs(float(a) - float(b.replace(",", ""))) < 1e-9
    except ValueError:
        return False


def score_response(q: Question, response: str, mode: str = "paper") -> dict:
    """Per-question record: predicted letters, the three paper metrics, exam figures."""
    resp = normalize(response, mode)
    answer_text = _clean_choice(q.answer_text, mode)
    gestalt = similarity(resp, answer_text, mode) if (resp or answer_text) else 0.0
    if q.is_numeric:
        guess = _first_number(resp)
        correct = any(_same_number(guess, alt[0]) for alt in q.accepted)
        return {"predicted": [guess] if guess is not None else [], "accuracy": float(correct),
                "exact_match": float(correct), "gestalt": gestalt, "similarities": {},
                "points_earned": q.points * correct, "kinki_picked": 0}
    sims = {letter: similarity(resp, _clean_choice(text, mode), mode)
            for letter, text in zip(q.letters, q.choices)}
    predicted = top_k(sims, len(q.answer))
    correct = predicted in q.accepted
    if mode == "paper":
        exact = all(_clean_choice(t, mode) in resp for t in q.answer_texts)
    else:
        exact = resp == answer_text
    return {"predicted": predicted, "accuracy": float(correct), "exact_match": float(exact),
            "gestalt": gestalt, "similarities": {k: round(v, 4) for k, v in sims.items()},
            "points_earned": q.points * correct,
            "kinki_picked": len(set(predicted) & set(q.kinki))}


def top_k(scores: dict[str, float], k: int) -> list[str]:
    """The k best letters (ties broken by letter order), returned sorted."""
    ranked = sorted(scores, key=lambda letter: (-scores[letter], letter))
    return sorted(ranked[:k])


def score_choice_logprobs(q: Question, logprobs: dict[str, float], char_norm: dict[str, float]) -> dict:
    """lm-eval-harness-style scoring from the log-likelihood of each choice's text."""
    k = len(q.answer)
    pred = top_k(logprobs, k)
    pred_norm = top_k(char_norm, k)
    return {"ll_predicted": pred, "ll_accuracy": float(pred in q.accepted),
            "ll_predicted_norm": pred_norm, "ll_accuracy_norm": float(pred_norm in q.accepted),
            "ll_logprobs": {k_: round(v, 4) for k_, v in logprobs.items()}}
