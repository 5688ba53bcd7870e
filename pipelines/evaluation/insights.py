"""Evaluation that explains itself: where a model is right and wrong, beside the examinees.

One accuracy hides what a clinician asks first: in which specialty, on which questions most
examinees found easy, and whether the model falls for the examinees' favourite trap. Each view
here is plain rows (dicts) or a DataFrame, for the workbench to show and ``jmedlora insights``
(``pipelines/evaluation/insights_cli.py``) to print or write as JSON:

    by_category(evals)            accuracy with its 95% interval and n per ``category`` (呼吸器, …)
    category_matrix(rows)         the same as models × specialties, for a heat map
    by_difficulty(evals)          accuracy per band of the examinees' accuracy (< 50, 50–80, ≥ 80 %)
    popular_wrong_share(ev)       how often a wrong answer is the examinees' most popular wrong option
    embarrassing(evals)           questions ≥ 80 % of examinees got right that a model missed
    compare_order(evals)          question ids, those first (the Compare tab's order)

The question × checkpoint flip matrix and McNemar between two checkpoints are in
``pipelines/evaluation/flips.py``. An evaluation is an ``--out`` folder (``results.py``), read by
``load_evaluations``; one scored from imported predictions (``imported.py``: GPT-4, the
examinees' majority) is one like any other. Categories and the examinees' figures come from the
question file's IgakuQA metadata (``NAME_metadata.jsonl``, read by ``pipelines/tasks/igakuqa.py``,
percent there); here the examinees' accuracy is a fraction like the model's. Intervals are the
summary's percentile bootstrap over questions (``significance.bootstrap_ci``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from pipelines.core import jobs
from pipelines.core.errors import UserError
from pipelines.core.jsonl import DataProblem
from pipelines.evaluation import results
from pipelines.evaluation.prompting import original_letters
from pipelines.evaluation.significance import bootstrap_ci
from pipelines.tasks.igakuqa import Question, load_questions

UNCATEGORISED = "(none)"       # the category of a question its metadata gives none
METADATA_SOURCE = ("IgakuQA's data/YEAR/EXAM_metadata.jsonl (github.com/jungokasai/IgakuQA), saved beside "
                   "the question file as NAME_metadata.jsonl")


@dataclass
class Evaluation:
    """One evaluation's answers and the questions they were for (with their metadata)."""
    label: str
    rows: list[dict]                                            # results.jsonl rows of exam questions
    questions: dict[str, Question] = field(default_factory=dict)  # the question file's, by problem_id
    path: str = ""
    data: str | None = None          # the question file the metadata came from; None: not found
    imported: bool = False           # predictions made elsewhere (pipelines/evaluation/imported.py)
    data_problems: list[DataProblem] = field(default_factory=list)   # question/metadata lines ignored

    @property
    def shot_settings(self) -> list[int]:
        return sorted({r["shots"] for r in self.rows})

    def answered(self, shots: int) -> list[dict]:
        """The rows at ``shots`` that carry an accuracy, in file order."""
        return [r for r in self.rows if r["shots"] == shots and r.get("accuracy") is not None]


# -- loading ---------------------------------------------------------------------------

@lru_cache(maxsize=16)
def _questions_cached(path: str, stamp: tuple) -> tuple[dict[str, Question], tuple[DataProblem, ...]]:
    qset = load_questions(path, on_error="skip", include_images=True)    # imported predictions answer those too
    return {q.problem_id: q for q in qset.questions}, tuple(qset.problems)


def question_metadata(data: str | Path | None) -> tuple[dict[str, Question], list[DataProblem]]:
    """The question file's questions by id, with their metadata, and the lines it ignored (a bad
    ``breakdown``…); ({}, []) when there is no such file. Cached until it or its metadata changes."""
    if not data or not Path(data).is_file():
        return {}, []
    path = Path(data).resolve()
    meta = path.with_name(f"{path.stem}_metadata.jsonl")
    stamp = (path.stat().st_mtime_ns, meta.stat().st_mtime_ns if meta.exists() else None)
    questions, problems = _questions_cached(str(path), stamp)
    return questions, list(problems)


def _label(cfg: dict, out: Path) -> str:
    """As the Compare tab names a run: the model, '+adapter' for a checkpoint; an import's own label."""
    if cfg.get("imported") or not cfg.get("model"):
        return cfg.get("label") or cfg.get("model") or out.name
    return cfg["model"] + (f"+{Path(cfg['adapter']).name}" if cfg.get("adapter") else "")


def load_evaluation(out_dir: str | Path, *, data: str | Path | None = None, label: str | None = None) -> Evaluation:
    """An evaluation folder read for these views. ``data``: the question file whose metadata to use
    (default: the one config.json says the run was on)."""
    out = Path(out_dir)
    if not (out / "results.jsonl").is_file():
        raise UserError(f"No results.jsonl in {out_dir}.", "Pass the --out directory of an evaluation run.",
                        code="compare.no_results", params={"path": str(out_dir)})
    rows = results.read_results(out)
    exam = [r for r in rows if "problem_id" in r and isinstance(r.get("shots"), int)]
    if rows and not exam:
        raise UserError(f"{out_dir} is a report evaluation (one row per image); these views are for exam questions.",
                        "Pass evaluations run on an IgakuQA-format question file.",
                        code="insights.not_exam", params={"path": str(out_dir)})
    if not exam:
        raise UserError(f"{out / 'results.jsonl'} holds no answer yet.",
                        "Run the evaluation (or let it finish), then look again.",
                        code="insights.no_answers", params={"path": str(out / "results.jsonl")})
    cfg = jobs.read_json(out / "config.json")
    if data and not Path(data).is_file():
        load_questions(data)                    # a file asked for by name that is not there: its own error
    data = str(data) if data else cfg.get("data")
    questions, problems = question_metadata(data)
    return Evaluation(label=label or _label(cfg, out), rows=exam, questions=questions, path=str(out),
                      data=data if questions else None, data_problems=problems,
                      imported=bool(cfg.get("imported")) or any(r.get("imported") for r in exam))


def load_evaluations(out_dirs, *, data: str | Path | None = None) -> list[Evaluation]:
    """Several evaluations, each under a label of its own (a repeated one gets its folder's name)."""
    evals = [load_evaluation(d, data=data) for d in out_dirs]
    counts = {}
    for ev in evals:
        counts[ev.label] = counts.get(ev.label, 0) + 1
    for ev in evals:
        if counts[ev.label] > 1:
            ev.label = f"{ev.label} [{Path(ev.path).name}]"
    return evals


# -- shared helpers --------------------------------------------------------------------

def shots_of(ev: Evaluation, shots: int | None) -> list[int]:
    """The shot settings a view covers: ``shots`` (refused when the run lacks it), or all it has."""
    if shots is None:
        return ev.shot_settings
    if shots not in ev.shot_settings:
        has = ", ".join(f"{s}-shot" for s in ev.shot_settings) or "no answers"
        raise UserError(f"{ev.path or ev.label} has no {shots}-shot results (it has {has}).",
                        "Pass --shots with a setting every evaluation has.",
                        code="insights.no_shots", params={"path": ev.path or ev.label, "shots": shots, "has": has})
    return [shots]


def examinee_accuracy(q: Question | None) -> float | None:
    """The share of examinees who got the question right, as a fraction (the metadata has percent)."""
    return None if q is None or q.human_accuracy is None else q.human_accuracy / 100


def _sources(evals: list[Evaluation]) -> str:
    return ", ".join(sorted({ev.data or f"(no question file found for {ev.path or ev.label})" for ev in evals}))


def _no_metadata(evals: list[Evaluation], examinees: bool) -> UserError:
    """What a question file without IgakuQA metadata lacks for a view, and where to get it."""
    where = _sources(evals)
    what = ("no examinee data: the examinees' accuracy (human_accuracy) and choices (breakdown)" if examinees
            else "no categories: the specialties (呼吸器, 循環器, …)")
    return UserError(f"The question file ({where}) has {what} come from the exam's metadata file.",
                     f"Save {METADATA_SOURCE}, or pass --data with a question file that has one.",
                     code="insights.no_examinee_data" if examinees else "insights.no_categories",
                     params={"path": where})


def _interval(values: list[float], seed: int) -> dict:
    ci = bootstrap_ci(values, seed=seed)
    return {"n": len(values), "accuracy": ci["mean"], "low": ci["ci_low"], "high": ci["ci_high"]}


def question_order(evals: list[Evaluation]) -> dict[str, int]:
    """problem_id -> its place: the question file's order, then any id only the results have."""
    ids = [pid for ev in evals for pid in ev.questions] + [r["problem_id"] for ev in evals for r in ev.rows]
    return {pid: i for i, pid in enumerate(dict.fromkeys(ids))}


def column_name(label: str, shots: int) -> str:
    """One model at one shot setting, as a column or row heading: 'label · 0-shot'."""
    return f"{label} · {shots}-shot"


# -- per specialty -----------------------------------------------------------------------

def category_of(ev: Evaluation, row: dict) -> str | None:
    """The question's category: its metadata's, else the one the row was saved with."""
    q = ev.questions.get(row["problem_id"])
    return (q.category if q is not None and q.category else None) or row.get("category") or None


def by_category(evals: list[Evaluation], shots: int | None = None, *, seed: int = 0) -> list[dict]:
    """Accuracy per category, per model and shot setting: rows ``{model, shots, category, n, accuracy,
    low, high}`` (95% bootstrap interval), categories with the most questions first. A question
    without one is counted under ``UNCATEGORISED``."""
    groups: dict[tuple[int, str, int, str], list[float]] = {}
    sizes: dict[str, int] = {}
    named = False
    for m, ev in enumerate(evals):
        for s in shots_of(ev, shots):
            for r in ev.answered(s):
                category = category_of(ev, r)
                named |= category is not None
                category = category or UNCATEGORISED
                groups.setdefault((m, ev.label, s, category), []).append(float(r["accuracy"]))
                sizes[category] = sizes.get(category, 0) + 1
    if not named:
        raise _no_metadata(evals, examinees=False)
    rank = {c: i for i, c in enumerate(sorted(sizes, key=lambda c: (c == UNCATEGORISED, -sizes[c], c)))}
    ordered = sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2], rank[kv[0][3]]))
    return [{"model": model, "shots": s, "category": c, **_interval(values, seed)}
            for (_, model, s, c), values in ordered]


def category_matrix(rows: list[dict]) -> pd.DataFrame:
    """``by_category`` rows as a models × specialties grid of accuracies (a heat map's data):
    index 'model · N-shot', columns the categories in the rows' order; NaN where a model has none."""
    columns = list(dict.fromkeys(r["category"] for r in rows))
    index = list(dict.fromkeys(column_name(r["model"], r["shots"]) for r in rows))
    frame = pd.DataFrame(index=index, columns=columns, dtype=float)
    for r in rows:
        frame.loc[column_name(r["model"], r["shots"]), r["category"]] = r["accuracy"]
    return frame


# -- model vs examinees --------------------------------------------------------------------

def band_label(low: float, high: float, *, first: bool, last: bool) -> str:
    """'< 50%', '50–80%', '≥ 80%' (a band holds low ≤ x < high; the last one holds 100%)."""
    if first:
        return f"< {high:.0%}"
    if last:
        return f"≥ {low:.0%}"
    return f"{low:.0%}–{high:.0%}"


def _check_bands(bands) -> list[float]:
    edges = [float(b) for b in bands]
    if not edges or any(not 0 < b < 1 for b in edges) or edges != sorted(set(edges)):
        shown = ", ".join(map(str, bands))
        raise UserError("Difficulty bands need increasing edges between 0 and 1 (shares of examinees right); "
                        f"got {shown}.",
                        "Use e.g. --bands 0.5 0.8 (below 50%, 50–80%, 80% and above).",
                        code="insights.bands", params={"value": shown})
    return edges


def by_difficulty(evals: list[Evaluation], bands=(0.5, 0.8), shots: int | None = None, *,
                  seed: int = 0) -> list[dict]:
    """Accuracy per band of the examinees' accuracy: rows ``{model, shots, band, from, to, n, accuracy,
    low, high, examinees}`` (``examinees``: their mean accuracy in the band). Bands are
    ``from ≤ examinees < to`` on [0, *bands, 1], the last including 1; every band is listed, an
    empty one with n 0. Questions without the examinees' figure are left out (``without_examinee_data``)."""
    edges = [0.0, *_check_bands(bands), 1.0]
    if not any(examinee_accuracy(q) is not None for ev in evals for q in ev.questions.values()):
        raise _no_metadata(evals, examinees=True)
    out = []
    for ev in evals:
        for s in shots_of(ev, shots):
            for i in range(len(edges) - 1):
                low, high, last = edges[i], edges[i + 1], i == len(edges) - 2
                picked = [(r, x) for r in ev.answered(s)
                          if (x := examinee_accuracy(ev.questions.get(r["problem_id"]))) is not None
                          and low <= x and (x < high or last)]
                figures = _interval([float(r["accuracy"]) for r, _ in picked], seed)
                out.append({"model": ev.label, "shots": s, "band": band_label(low, high, first=i == 0, last=last),
                            "from": low, "to": high, **figures,
                            "examinees": sum(x for _, x in picked) / len(picked) if picked else None})
    return out


def without_examinee_data(ev: Evaluation, shots: int) -> int:
    """Questions answered at ``shots`` that no band holds (their metadata has no examinees' accuracy)."""
    return sum(1 for r in ev.answered(shots) if examinee_accuracy(ev.questions.get(r["problem_id"])) is None)


def _letters(row: dict, key: str = "predicted") -> list[str]:
    """A row's letters in the question file's order (a shuffled-choices run saved them as shown)."""
    return original_letters([str(x) for x in row.get(key) or []], row.get("choice_order"))


def popular_wrong_options(q: Question) -> set[str]:
    """The wrong option(s) most examinees picked: the highest ``breakdown`` share among the choices no
    accepted answer holds (every one tied for it); none when no examinee picked a wrong option."""
    key = {letter for accepted in q.accepted for letter in accepted}
    shares = {letter: share for letter, share in zip(q.letters, q.breakdown or []) if letter not in key}
    top = max(shares.values(), default=0.0)
    return {letter for letter, share in shares.items() if share == top} if top > 0 else set()


def popular_wrong_share(ev: Evaluation, shots: int = 0, *, seed: int = 0) -> dict:
    """How often the model's wrong answer is the examinees' most popular wrong answer.

    Over the questions the model got wrong whose metadata has a ``breakdown`` (the share of
    examinees picking each choice): the model's wrong letters are its predicted letters that no
    accepted answer holds, and it counts as the examinees' answer when they include a most popular
    wrong option (``popular_wrong_options``). For a one-answer question that is: the model picked
    the wrong choice most examinees picked. For a 「2つ選べ」 question the breakdown gives each
    choice's share alone (not pairs), so it is: one of the model's wrong letters is the wrong choice
    most examinees included. A wrong answer with no wrong letter (nothing picked, too few letters,
    a number) has nothing to compare and is counted apart.

    ``{model, shots, wrong, comparable, same, share, low, high, questions, no_breakdown,
    no_wrong_letter}``: ``share`` = same / comparable with its 95% bootstrap interval, ``questions``
    the ids where they agree.
    """
    (s,) = shots_of(ev, shots)
    wrong = [r for r in ev.answered(s) if float(r["accuracy"]) == 0.0]
    agree: list[float] = []
    same_ids, no_breakdown, no_letter = [], 0, 0
    for r in wrong:
        q = ev.questions.get(r["problem_id"])
        if q is None or not q.breakdown:
            no_breakdown += 1
            continue
        key = {letter for accepted in q.accepted for letter in accepted}
        wrong_letters = {p for p in _letters(r) if p in q.letters and p not in key}
        if not wrong_letters:
            no_letter += 1
            continue
        same = bool(wrong_letters & popular_wrong_options(q))
        agree.append(float(same))
        if same:
            same_ids.append(r["problem_id"])
    if not any(q.breakdown for q in ev.questions.values()):
        raise _no_metadata([ev], examinees=True)
    ci = bootstrap_ci(agree, seed=seed)
    return {"model": ev.label, "shots": s, "wrong": len(wrong), "comparable": len(agree), "same": len(same_ids),
            "share": ci["mean"], "low": ci["ci_low"], "high": ci["ci_high"], "questions": same_ids,
            "no_breakdown": no_breakdown, "no_wrong_letter": no_letter}


def embarrassing(evals: list[Evaluation], threshold: float = 0.8, shots: int = 0) -> list[dict]:
    """Questions at least ``threshold`` of examinees got right that a model got wrong, the easiest
    for examinees first (then question order, then the models' order): rows ``{problem_id, model,
    shots, examinees, category, answer, predicted, examinees_on_predicted, problem_text}``;
    ``examinees_on_predicted`` is the share of examinees who picked each of the model's letters."""
    if not any(examinee_accuracy(q) is not None for ev in evals for q in ev.questions.values()):
        raise _no_metadata(evals, examinees=True)
    found = []
    position = question_order(evals)
    for m, ev in enumerate(evals):
        (s,) = shots_of(ev, shots)
        for r in ev.answered(s):
            q = ev.questions.get(r["problem_id"])
            x = examinee_accuracy(q)
            if x is None or x < threshold or float(r["accuracy"]) != 0.0:
                continue
            predicted = _letters(r)
            shares = dict(zip(q.letters, q.breakdown or []))
            found.append(((-x, position[r["problem_id"]], m), {
                "problem_id": q.problem_id, "model": ev.label, "shots": s, "examinees": x,
                "category": category_of(ev, r), "answer": q.answer, "predicted": predicted,
                "examinees_on_predicted": {p: shares[p] / 100 for p in predicted if p in shares},
                "problem_text": q.problem_text}))
    return [row for _, row in sorted(found, key=lambda item: item[0])]


def compare_order(evals: list[Evaluation], threshold: float = 0.8, shots: int = 0) -> list[str]:
    """Every question id the evaluations answered at ``shots``: the embarrassing ones first (as
    ``embarrassing`` orders them), then the rest in question order. No examinee data: question order."""
    having = [ev for ev in evals if shots in ev.shot_settings]
    answered = {r["problem_id"] for ev in having for r in ev.answered(shots)}
    try:
        first = list(dict.fromkeys(r["problem_id"] for r in embarrassing(having, threshold, shots)))
    except UserError:        # no examinee data: nothing is known to be embarrassing
        first = []
    listed = set(first)
    return first + [pid for pid in question_order(having) if pid in answered and pid not in listed]
