"""IgakuQA-format question files: load, validate, merge metadata and translations.

One JSON object per line: ``problem_id``, ``problem_text``, ``choices`` (a list, or an
``{"a": ..}`` mapping), ``answer`` (lowercase letters; a number as a string when there are
no choices), ``text_only``, optional ``points``. Real files have quirks this loader takes
in its stride: ``points`` as "1" or 1.0, 6 or 8 choices, calculation questions without
choices, 「2つ選べ」 questions with several letters, extra fields (``choices_orig``), and
``NAME_metadata.jsonl`` (category, ``kinki`` = contraindicated choices, the examinees' figures) and
``NAME_translate.jsonl`` (English text) beside ``NAME.jsonl``.

Examinees' figures, percent strings as IgakuQA publishes them: ``human_accuracy`` ("87.8" = 87.8%
right; "" when absent), ``breakdown`` (a share per choice in letter order, [] when absent; for a
「2つ選べ」 question each choice's share alone, so they add up to about 200). Kept in percent.

    jmedlora igakuqa FILE.jsonl [--on-error skip|stop]     # validate and summarise
"""
from __future__ import annotations

import itertools
import json
import math
import re
import string
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipelines.core import cli
from pipelines.core.errors import UserError, cli_guard
from pipelines.core.jsonl import DataProblem, read_jsonl

LETTERS = string.ascii_lowercase
# Five years of the national exam are ~2,000 questions, a few MB: a far larger file is not a question file.
MAX_QUESTION_FILE_BYTES = 50_000_000


@dataclass
class Question:
    problem_id: str
    problem_text: str
    choices: list[str]              # in letter order a, b, c, ...
    answer: list[str]               # letters, or one numeric string when there are no choices
    text_only: bool = True
    points: float = 1.0
    category: str | None = None
    kinki: list[str] = field(default_factory=list)
    human_accuracy: float | None = None     # percent of examinees right (IgakuQA metadata), 0–100
    breakdown: list[float] | None = None    # percent of examinees picking each choice, in letter order
    translation: dict | None = None  # {"problem_text": .., "choices": [..]} from *_translate.jsonl
    # Official corrections accept either of two answers ("a or d"): every accepted set, sorted;
    # ``answer`` is the first of them (what answer_text and the Gestalt score compare with).
    alternatives: list[list[str]] = field(default_factory=list)
    source: str = ""
    line: int = 0

    @property
    def accepted(self) -> list[list[str]]:
        """Every answer set counted as correct (one, unless an official correction allows more)."""
        return self.alternatives or [sorted(self.answer)]

    @property
    def letters(self) -> list[str]:
        return list(LETTERS[: len(self.choices)])

    @property
    def is_numeric(self) -> bool:
        return not self.choices

    def choice_text(self, letter: str) -> str:
        return self.choices[LETTERS.index(letter)]

    @property
    def answer_texts(self) -> list[str]:
        return list(self.answer) if self.is_numeric else [self.choice_text(a) for a in self.answer]

    @property
    def answer_text(self) -> str:
        """What a response is compared with: the correct choice text(s), joined by 「、」."""
        return "、".join(self.answer_texts)

    def in_language(self, lang: str) -> "Question":
        """The English version (from the translation file) when asked for and present."""
        if lang != "en" or not self.translation:
            return self
        t = self.translation
        choices = t.get("choices") or self.choices
        if isinstance(choices, dict):
            choices = [choices[k] for k in sorted(choices)]
        copy = Question(**{**self.__dict__})
        copy.problem_text = t.get("problem_text") or self.problem_text
        copy.choices = list(choices) if len(choices) == len(self.choices) else self.choices
        return copy

    def to_dict(self) -> dict:
        d = {"problem_id": self.problem_id, "problem_text": self.problem_text, "choices": self.choices,
             "text_only": self.text_only, "answer": self.answer, "points": self.points}
        if self.category:
            d["category"] = self.category
        if self.kinki:
            d["kinki"] = self.kinki
        return d


@dataclass
class QuestionSet:
    questions: list[Question]
    problems: list[DataProblem]
    skipped_not_text_only: int
    source: str


_CHOOSE_N = re.compile(r"([1-9１-９一二三四五])\s*つ\s*選べ")
_KANJI_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5}


def _how_many_to_choose(text: str) -> int | None:
    """N of 「Nつ選べ」 in a question's text (Arabic, full-width or kanji digit), or None."""
    m = _CHOOSE_N.search(text)
    if m is None:
        return None
    d = m.group(1)
    return _KANJI_DIGITS.get(d) or int(unicodedata.normalize("NFKC", d))


def _parse_points(value) -> float:
    if value is None or value == "":
        return 1.0
    return float(value)


def parse_question(obj: dict, file: str, line: int) -> tuple[Question | None, list[DataProblem]]:
    errs: list[DataProblem] = []

    def err(fieldname: str, msg: str, code: str, **params):
        errs.append(DataProblem(file, line, fieldname, msg, f"question.{code}", params))

    for key in ("problem_id", "problem_text", "answer"):
        if key not in obj:
            err(key, "missing required field", "missing")
    if errs:
        return None, errs
    pid = str(obj["problem_id"] if obj["problem_id"] is not None else "").strip()
    if not pid:
        err("problem_id", "must not be blank (results, resumes and comparisons are keyed by it)", "blank_id")
    text = obj["problem_text"]
    if not isinstance(text, str) or not text.strip():
        err("problem_text", "must be a non-empty string", "empty_text")
    raw_choices = obj.get("choices", [])
    if raw_choices is None:
        raw_choices = []
    if isinstance(raw_choices, dict):
        keys = sorted(str(k).lower() for k in raw_choices)
        if keys != list(LETTERS[: len(keys)]):
            err("choices", f"mapping keys must be consecutive letters a, b, c…; got {sorted(raw_choices)}", "choice_keys",
                got=", ".join(str(k) for k in sorted(raw_choices)))
            choices = []
        else:
            lowered = {str(k).lower(): v for k, v in raw_choices.items()}
            choices = [lowered[k] for k in keys]
    elif isinstance(raw_choices, list):
        choices = raw_choices
    else:
        err("choices", "must be a list or an {'a': ..} mapping", "choices_type")
        choices = []
    if not all(isinstance(c, str) for c in choices):
        err("choices", "every choice must be a string", "choice_not_text")
    if len(choices) > len(LETTERS):
        err("choices", "too many choices", "too_many_choices", limit=len(LETTERS))
    answer = obj["answer"]
    if isinstance(answer, str):
        answer = [answer]
    if not isinstance(answer, list) or not answer:
        err("answer", "must be a non-empty list of letters", "answer_empty")
        answer = []
    answer = [str(a).strip() for a in answer]
    # "a or d" (an official correction): each listed option is accepted.
    options = [[o.strip() for o in re.split(r"\s+or\s+|\s*または\s*", a) if o.strip()] or [a] for a in answer]
    answer = [o[0] for o in options]
    if choices:
        answer = [a.lower() for a in answer]
        options = [[o.lower() for o in opts] for opts in options]
        answer_all = sorted({o for opts in options for o in opts})
        unknown = [a for a in answer_all if a not in LETTERS[: len(choices)]]
        if unknown:
            err("answer", f"unknown answer letter(s) {unknown} for {len(choices)} choices "
                          f"(valid: {', '.join(LETTERS[: len(choices)])})", "answer_unknown",
                got=", ".join(unknown), n=len(choices), valid=", ".join(LETTERS[: len(choices)]))
        if len(set(answer)) != len(answer):
            err("answer", "repeated answer letter", "answer_repeated")
    else:
        for a in (o for opts in options for o in opts):
            try:
                float(a.replace(",", ""))
            except ValueError:
                err("answer", f"a question without choices needs a numeric answer; got {a!r}", "answer_not_numeric", got=a)
    try:
        points = _parse_points(obj.get("points"))
    except (TypeError, ValueError):
        err("points", f"not a number: {obj.get('points')!r}", "points_not_number", got=str(obj.get("points")))
        points = 1.0
    if not (math.isfinite(points) and points >= 0):      # NaN, inf and -5 would poison every exam score
        shown = json.dumps(obj.get("points"))               # as the file wrote it: NaN, Infinity, -5
        err("points", f"must be a finite number of 0 or more; got {shown}", "points_range", got=shown)
    # 「2つ選べ」: the key must hold that many letters (a file with one would score every answer wrong).
    asked = _how_many_to_choose(text) if isinstance(text, str) and choices else None
    if asked is not None and len(answer) != asked:
        err("answer", f"the question asks for {asked} choices (「{asked}つ選べ」) but the answer has {len(answer)}",
            "answer_count", asked=asked, got=len(answer))
    text_only = obj.get("text_only", True)
    if not isinstance(text_only, bool):
        text_only = str(text_only).lower() in {"true", "1", "yes"}
    if errs:
        return None, errs
    alternatives = []
    if any(len(o) > 1 for o in options):
        alternatives = sorted({tuple(sorted(combo)) for combo in itertools.product(*options)
                               if len(set(combo)) == len(combo)})
        alternatives = [list(a) for a in alternatives]
    return Question(problem_id=pid, problem_text=text.strip(), choices=[c.strip() for c in choices],
                    answer=sorted(answer) if choices else answer, text_only=text_only, points=points,
                    alternatives=alternatives, source=file, line=line), []


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(f"{path.stem}_{suffix}.jsonl")


def load_questions(path: str | Path, *, on_error: str = "stop", include_images: bool = False,
                   limit: int | None = None) -> QuestionSet:
    """Load and validate a question file (plus its metadata/translate sidecars).

    ``on_error="stop"`` raises a UserError listing the bad lines; ``"skip"`` keeps going and
    returns the problems. Questions with ``text_only: false`` are skipped and counted.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"Question file {path} does not exist.",
                        "Pass an IgakuQA-format .jsonl file, e.g. assets/questions/sample_ja.jsonl.",
                        code="questions.missing", params={"path": str(path)})
    problems: list[DataProblem] = []
    rows = read_jsonl(path, problems, max_file_bytes=MAX_QUESTION_FILE_BYTES)
    questions: list[Question] = []
    seen: set[str] = set()
    for line, obj in rows:
        q, errs = parse_question(obj, str(path), line)
        problems.extend(errs)
        if q is None:
            continue
        if q.problem_id in seen:
            problems.append(DataProblem(str(path), line, "problem_id", f"duplicate id {q.problem_id!r}",
                                        "question.duplicate_id", {"got": q.problem_id}))
            continue
        seen.add(q.problem_id)
        questions.append(q)
    if problems and on_error == "stop":
        shown = "\n  ".join(str(p) for p in problems[:10])
        more = f"\n  … and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise UserError(f"{len(problems)} bad line(s) in {path}:\n  {shown}{more}",
                        "Fix those lines, or continue without them (--on-error skip).",
                        code="questions.bad_lines", params={"path": str(path), "n": len(problems),
                                                            "problems": [p.as_params() for p in problems[:10]]})
    if not questions:
        raise UserError(f"{path} holds no usable question.",
                        "Check that it is IgakuQA-format JSONL (one question object per line).",
                        code="questions.none_usable", params={"path": str(path)})
    _merge_sidecars(path, questions, problems)
    skipped = 0
    if not include_images:
        kept = [q for q in questions if q.text_only]
        skipped = len(questions) - len(kept)
        questions = kept
    if limit is not None:
        questions = questions[:limit]
    return QuestionSet(questions, problems, skipped, str(path))


def _merge_sidecars(path: Path, questions: list[Question], problems: list[DataProblem]) -> None:
    by_id = {q.problem_id: q for q in questions}
    meta = _sidecar(path, "metadata")
    if meta.exists():
        for line, obj in read_jsonl(meta, problems):
            q = by_id.get(str(obj.get("problem_id")))
            if q is None:
                continue
            category, kinki = obj.get("category") or None, obj.get("kinki") or []
            if category is not None and not isinstance(category, str):
                problems.append(DataProblem(str(meta), line, "category", "not a text; ignored",
                                            "question.sidecar_type_ignored", {"expected": "str"}))
                category = None
            if not isinstance(kinki, list):     # "abc" would count as three letters, 7 would crash
                problems.append(DataProblem(str(meta), line, "kinki", "not a list of letters; ignored",
                                            "question.sidecar_type_ignored", {"expected": "list"}))
                kinki = []
            q.category = category
            q.kinki = [k.lower() for k in kinki if isinstance(k, str) and k.lower() in q.letters]
            _merge_examinees(q, obj, str(meta), line, problems)
    trans = _sidecar(path, "translate")
    if trans.exists():
        for line, obj in read_jsonl(trans, problems):
            q = by_id.get(str(obj.get("problem_id")))
            if q is None:
                continue
            text, choices = obj.get("problem_text"), obj.get("choices")
            bad_text = not isinstance(text, (str, type(None)))
            listed = list(choices.values()) if isinstance(choices, dict) else choices     # a list or an a-e mapping
            if bad_text or not (choices is None or isinstance(listed, list) and all(isinstance(c, str) for c in listed)):
                problems.append(DataProblem(str(trans), line, "problem_text" if bad_text else "choices",
                                            "not text; ignored", "question.sidecar_type_ignored", {"expected": "str"}))
                continue
            q.translation = {"problem_text": text, "choices": choices}


def _percent(value) -> float | None:
    """A number as IgakuQA writes it ("87.8", 87.8); None when absent (""); TypeError/ValueError when not one."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise TypeError(value)
    return float(value)


def _is_share(number: float | None) -> bool:
    return number is None or (math.isfinite(number) and 0 <= number <= 100)


def _merge_examinees(q: Question, obj: dict, file: str, line: int, problems: list[DataProblem]) -> None:
    """The examinees' figures of one metadata line (percent): a bad value is ignored and reported,
    never guessed (a band or a 'popular wrong answer' built on it would mislead)."""
    try:
        accuracy = _percent(obj.get("human_accuracy"))
    except (TypeError, ValueError):
        problems.append(DataProblem(file, line, "human_accuracy", "not a number; ignored",
                                    "question.accuracy_ignored", {}))
    else:
        if _is_share(accuracy):
            q.human_accuracy = accuracy
        else:
            shown = json.dumps(obj.get("human_accuracy"))
            problems.append(DataProblem(file, line, "human_accuracy", f"a percent from 0 to 100 expected; got {shown}; "
                                        "ignored", "question.accuracy_range", {"got": shown}))
    raw = obj.get("breakdown")
    if raw in (None, "", []):
        return
    try:
        if not isinstance(raw, list):
            raise TypeError(raw)
        shares = [_percent(v) for v in raw]
        if not all(v is not None and _is_share(v) for v in shares):
            raise ValueError(raw)
    except (TypeError, ValueError):
        problems.append(DataProblem(file, line, "breakdown", "not a list of percents from 0 to 100; ignored",
                                    "question.breakdown_ignored", {}))
        return
    if len(shares) != len(q.choices):      # a share for a choice the question lacks would name the wrong option
        problems.append(DataProblem(file, line, "breakdown", f"{len(shares)} shares for {len(q.choices)} choices; "
                                    "ignored", "question.breakdown_count", {"got": len(shares), "n": len(q.choices)}))
        return
    q.breakdown = shares


def format_choices(q: Question) -> str:
    """The ``{input}`` of the prompt: one choice per line, ``a. text``."""
    return "\n".join(f"{letter}. {text}" for letter, text in zip(q.letters, q.choices))


@dataclass
class ValidateConfig:
    file: str = field(metadata=cli.meta(cli.required(), cli.positional()))  # IgakuQA-format .jsonl file
    on_error: Literal["stop", "skip"] = "skip"  # stop at the first bad line, or report them all


@cli_guard
def main(argv: list[str] | None = None) -> None:
    """Exit 0 when every line is good, 1 when some are bad (so scripts and CI can rely on it)."""
    parser = cli.config_parser("igakuqa", ValidateConfig, __doc__)
    cli.add_common(parser, "json")
    ns = parser.parse_args(argv)
    args = cli.config_from_args(ValidateConfig, ns)
    qs = load_questions(args.file, on_error=args.on_error)
    multi = sum(1 for q in qs.questions if len(q.answer) > 1 and not q.is_numeric)
    numeric = sum(1 for q in qs.questions if q.is_numeric)
    if ns.json:
        import json
        print(json.dumps({"questions": len(qs.questions), "multi_answer": multi, "numeric": numeric,
                          "skipped_images": qs.skipped_not_text_only,
                          "problems": [p.__dict__ for p in qs.problems]}, ensure_ascii=False, indent=2))
    else:
        print(f"{len(qs.questions)} questions ({multi} multi-answer, {numeric} numeric); "
              f"{qs.skipped_not_text_only} skipped (images); {len(qs.problems)} problem(s)")
        for p in qs.problems:
            print(f"  {p}")
    if qs.problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
