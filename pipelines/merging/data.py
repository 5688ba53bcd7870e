"""The merge's dev and test questions: split, kept apart, and scored by the evaluation engine.

The dev set chooses the merge; the test set only reports on it. They never share a question:
not by ``problem_id`` and not by text (NFKC, case and whitespace folded), since the same exam
question often travels under two ids.
"""
from __future__ import annotations

import hashlib
import random
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.errors import UserError
from pipelines.evaluation import metrics, scoring
from pipelines.evaluation.prompting import build_prompt
from pipelines.models.generation import GenerationSettings, Prompt
from pipelines.tasks.igakuqa import Question, load_questions
from pipelines.tasks.prompts import load_template


@dataclass
class MergeData:
    dev: list[Question]
    test: list[Question]
    dev_prompts: list[Prompt]
    test_prompts: list[Prompt]
    hashes: dict
    dropped_numeric: int = 0

    def summary(self) -> dict:
        return {"dev": len(self.dev), "test": len(self.test), "dropped_numeric": self.dropped_numeric,
                **self.hashes}


def normalized_text(q: Question) -> str:
    """The question's words alone: width, case, spaces and punctuation (。、？「」 -,.) do not make a
    test question different from a dev question (a copy with its punctuation changed passed the check)."""
    text = unicodedata.normalize("NFKC", q.problem_text).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def check_disjoint(dev: list[Question], test: list[Question]) -> None:
    ids = {q.problem_id for q in dev} & {q.problem_id for q in test}
    dev_texts = {normalized_text(q): q.problem_id for q in dev}
    same_text = [(dev_texts[normalized_text(q)], q.problem_id) for q in test if normalized_text(q) in dev_texts]
    if ids or same_text:
        shown = [f"id {i}" for i in sorted(ids)[:5]] + [f"text of {a} = {b}" for a, b in same_text[:5]]
        raise UserError(f"The dev and test sets overlap ({len(ids)} shared id(s), {len(same_text)} shared "
                        f"question text(s): {', '.join(shown)}).",
                        "Use a test file with other questions, or let --test-fraction split --dev.",
                        code="merge.overlap", params={
                            "ids": len(ids), "texts": len(same_text), "field": "test",
                            "shown": ", ".join([*sorted(ids)[:5], *(f"{a} = {b}" for a, b in same_text[:5])])})


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _ids_hash(questions: list[Question]) -> str:
    return hashlib.sha256("\n".join(q.problem_id for q in questions).encode()).hexdigest()[:16]


def load_merge_data(config) -> MergeData:
    """Dev and test questions per ``MergeConfig`` (held-out split of --dev when no --test)."""
    dev = load_questions(config.dev).questions
    if config.test:
        test = load_questions(config.test).questions
    else:
        order = list(dev)
        random.Random(f"merge-split:{config.seed}").shuffle(order)
        n_test = max(1, round(len(order) * config.test_fraction))
        if len(order) - n_test < 1:
            raise UserError(f"{config.dev} has too few questions to hold {config.test_fraction:.0%} out.",
                            "Pass a separate --test file or a smaller --test-fraction.", code="merge.too_few",
                            params={"path": str(config.dev), "share": f"{config.test_fraction:.0%}",
                                    "field": "test_fraction", "test_field": "test"})
        test_ids = {q.problem_id for q in order[:n_test]}
        test = [q for q in dev if q.problem_id in test_ids]
        dev = [q for q in dev if q.problem_id not in test_ids]
    dropped = 0
    if metrics.get(config.metric).method == "loglik":
        # A calculation question has no choices whose likelihood could be compared.
        dropped = sum(q.is_numeric for q in dev + test)
        dev, test = [q for q in dev if not q.is_numeric], [q for q in test if not q.is_numeric]
    if not dev or not test:
        raise UserError("No scorable question left in the dev or the test set.",
                        "Log-likelihood metrics need multiple-choice questions; check the files.",
                        code="merge.nothing_scorable")
    check_disjoint(dev, test)
    template = load_template(config.template)
    hashes = {"dev_file": config.dev, "dev_sha256": _sha256(config.dev), "dev_ids": _ids_hash(dev),
              "test_file": config.test or config.dev, "test_sha256": _sha256(config.test or config.dev),
              "test_ids": _ids_hash(test)}
    return MergeData(dev, test, [build_prompt(q, template, None) for q in dev],
                     [build_prompt(q, template, None) for q in test], hashes, dropped)


def score_questions_with(backend, questions: list[Question], prompts: list[Prompt], config) -> dict[str, float]:
    """problem_id → the metric's value, through the backend (log-likelihoods or generation)."""
    if metrics.get(config.metric).method == "loglik":
        results = backend.score_choices(questions, prompts)
        return {q.problem_id: scoring.score_choice_logprobs(q, *r)[config.metric] for q, r in zip(questions, results)}
    settings = GenerationSettings(max_new_tokens=config.max_new_tokens, seed=config.seed)
    out = {}
    for i, completion in backend.generate(prompts, settings):
        q = questions[i]
        out[q.problem_id] = float(scoring.score_response(q, completion.text, config.scoring)[config.metric])
    return out
