"""How an exam question is put to a model: its choices permuted (``shuffled``; its letters read back
in the file's order by ``original_letters``), the solved example
of a 1-shot prompt (``pick_example``), the prompt itself (``build_prompt``) and the seed its
answer is sampled with (``question_seed``).

Each is a function of the question and the run's seed alone, never of the batch or the run
that asks it: a resumed evaluation puts every question as an uninterrupted one would, and a
merge candidate (``pipelines/merging``) is asked what an evaluation asks.
"""
from __future__ import annotations

import hashlib
import random

from pipelines.core.errors import UserError
from pipelines.models.generation import Prompt
from pipelines.tasks.igakuqa import LETTERS, Question, format_choices
from pipelines.tasks.prompts import PromptTemplate


def shuffled(q: Question, seed: int) -> tuple[Question, list[str]]:
    """The question with its choices permuted (deterministic per question and seed)."""
    if q.is_numeric:
        return q, []
    perm = list(range(len(q.choices)))
    random.Random(f"shuffle:{seed}:{q.problem_id}").shuffle(perm)
    new_letter = {LETTERS[old]: LETTERS[new] for new, old in enumerate(perm)}
    copy = Question(**{**q.__dict__})
    copy.choices = [q.choices[old] for old in perm]
    copy.answer = sorted(new_letter[a] for a in q.answer)
    copy.alternatives = [sorted(new_letter[a] for a in alt) for alt in q.alternatives]
    copy.kinki = sorted(new_letter[k] for k in q.kinki)
    return copy, [LETTERS[old] for old in perm]


def original_letters(letters: list[str], order: list[str] | None) -> list[str]:
    """Letters of a shuffled question (a row's ``predicted``, ``accepted``) back in the exam file's
    order, sorted: ``order[i]`` is the file's letter shown at position i (``shuffled``'s second value).
    Anything that is not a shown letter (a number, "c, e") is kept as it is."""
    if not order:
        return letters
    return sorted(order[LETTERS.index(p)] if p in LETTERS[: len(order)] else p for p in letters)


def pick_example(q: Question, pool: list[Question], seed: int) -> Question:
    """One solved example for a 1-shot prompt: never the question itself."""
    candidates = [e for e in pool if e.problem_id != q.problem_id and e.problem_text != q.problem_text]
    if not candidates:
        raise UserError("The 1-shot example pool has no question other than the one asked.",
                        "Use a separate --shots-file of solved examples.",
                        code="eval.shot_pool", params={"field": "shots_file"})
    return random.Random(f"shot:{seed}:{q.problem_id}").choice(candidates)


def build_prompt(q: Question, template: PromptTemplate, example: Question | None) -> Prompt:
    body = template.render(q.problem_text, format_choices(q))
    if template.uses_chat_template:
        messages = []
        if example is not None:
            messages += [{"role": "user", "content": template.render(example.problem_text, format_choices(example))},
                         {"role": "assistant", "content": example.answer_text}]
        return Prompt(messages=messages + [{"role": "user", "content": body}])
    if example is not None:
        shot = template.render(example.problem_text, format_choices(example)) + example.answer_text
        body = shot + "\n\n" + body
    return Prompt(text=body)


def question_seed(seed: int, problem_id: str, shots: int) -> int:
    """The sampling seed of one question: the same whichever batch or run answers it."""
    digest = hashlib.sha256(f"{seed}:{problem_id}:{shots}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
