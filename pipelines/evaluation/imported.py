"""Predictions made elsewhere, scored as an evaluation: GPT-4, ChatGPT and the examinees' majority
beside your checkpoints, with no model run and no API key.

    jmedlora evaluate --predictions baseline_results/2022/116-A_gpt4.jsonl --data data/2022/116-A.jsonl \\
        --out workspace/evals/gpt4-116A [--label NAME] [--json]

A predictions file is either IgakuQA's ``baseline_results/YEAR/EXAM_SYSTEM.jsonl`` (one line per
question: ``problem_id`` and ``prediction``, "a" or "a,c"; filed as 0-shot) or a ``results.jsonl``
of ours, re-scored on the given exam file (a response again by its own ``scoring`` mode, a
log-likelihood answer by its saved letters; each row keeps its shot setting).

Accuracy is IgakuQA's ``scripts/evaluate_main.py`` to the letter (``official_correct``): the
prediction split at "," with nothing stripped or lowercased, sorted, equal to the sorted answer
(so "c, e" is wrong there and here); its two hard-coded corrections (``ALL_ACCEPTED``,
``ACCEPTED_INSTEAD``); every question of the exam file counted, image questions included, and
points summed as the file gives them. A question the predictions do not answer scores nothing
(evaluate_main.py refuses such a pairing outright); a prediction for a question not in the file
counts nowhere. Both are listed in the summary; when nothing matches, the pairing is refused.
Exact match and the Gestalt score measure a free-text response: an IgakuQA letter has none, so
they stay empty for it (Table 1 shows "–"), and a re-scored ``results.jsonl`` keeps them.

OUT has the shape of a model's evaluation (``pipelines/evaluation/results.py``): Table 1, the
Compare tab and the charts read it unchanged. config.json and summary.json hold ``imported``
(source file, its sha256, format, unmatched ids) and no model or decoding settings; each row is
marked ``imported``. Importing again into the same OUT replaces the earlier import.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipelines.core import audit, jobs, run_lock
from pipelines.core.errors import UserError, disk_full
from pipelines.core.jsonl import DataProblem, read_jsonl
from pipelines.core.workspace import Workspace
from pipelines.evaluation import results, scoring
from pipelines.evaluation.prompting import original_letters
from pipelines.evaluation.summary import EvalSummary
from pipelines.tasks.igakuqa import Question, load_questions

# evaluate_main.py's two special cases, hard-coded there by problem_id as here.
ALL_ACCEPTED = {"116A71"}                                # 第116回 A71: any answer counts as correct, even ""
ACCEPTED_INSTEAD = {"112B30": (["a"], ["d"])}            # 第112回 B30: exactly "a" or exactly "d"
SCORING = "igakuqa_official"
# IgakuQA's system names (the file name's last part) -> the column label.
SYSTEMS = {"gpt4": "GPT-4", "chatgpt": "ChatGPT", "gpt3": "GPT-3",
           "student-majority": "受験者多数派 / examinees' majority", "chatgpt-en": "ChatGPT (English translation)"}
SHOWN_IDS = 20                                           # unmatched ids listed in the summary; the rest counted


@dataclass
class Prediction:
    problem_id: str
    shots: int
    predicted: list[str]            # the answer's letters (or number) as the official scorer reads them
    response: str | None = None     # what the card shows: the prediction as written, or our model's response
    row: dict = field(default_factory=dict)    # a results.jsonl row as saved (re-scored from it)


@dataclass
class PredictionFile:
    path: Path
    format: str                     # "igakuqa" | "results"
    sha256: str
    predictions: dict[tuple[str, int], Prediction]
    problems: list[DataProblem]
    saved_label: str | None = None  # a results.jsonl's label from its config.json


def official_letters(prediction: str) -> list[str]:
    """evaluate_main.py's reading of a prediction: ``sorted(prediction.split(','))``."""
    return sorted(prediction.split(","))


def official_correct(q: Question, predicted: list[str]) -> bool:
    """Correct as IgakuQA's evaluate_main.py decides (its special cases first)."""
    if q.problem_id in ALL_ACCEPTED:
        return True
    if q.problem_id in ACCEPTED_INSTEAD:
        return sorted(predicted) in ACCEPTED_INSTEAD[q.problem_id]
    return sorted(predicted) in q.accepted


def default_label(pf: PredictionFile) -> str:
    """``116-A_gpt4.jsonl`` -> 'GPT-4 (IgakuQA, imported)'; a results.jsonl -> its own label, imported."""
    if pf.format == "results":
        return f"{pf.saved_label or pf.path.parent.name} (imported)"
    system = pf.path.stem.rsplit("_", 1)[-1]
    return f"{SYSTEMS[system]} (IgakuQA, imported)" if system in SYSTEMS else f"{pf.path.stem} (imported)"


def _problem(path: Path, line: int, fieldname: str, message: str, code: str, **params) -> DataProblem:
    return DataProblem(str(path), line, fieldname, message, f"predictions.{code}", params)


def _igakuqa_prediction(path: Path, line: int, obj: dict) -> Prediction | DataProblem:
    value = obj.get("prediction")
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return Prediction(str(obj["problem_id"]), 0, sorted(value), ",".join(value))
    if not isinstance(value, str):
        return _problem(path, line, "prediction", "must be text such as \"a\" or \"a,c\"", "not_text")
    return Prediction(str(obj["problem_id"]), 0, official_letters(value), value)


def _results_prediction(path: Path, line: int, obj: dict) -> Prediction | DataProblem:
    if not isinstance(obj.get("shots"), int) or not isinstance(obj.get("predicted", []), list):
        return _problem(path, line, "shots", "a results.jsonl row needs an integer shots and a list predicted",
                        "bad_row")
    return Prediction(str(obj["problem_id"]), obj["shots"], [str(p) for p in obj.get("predicted") or []],
                      obj.get("response"), obj)


def read_predictions(path: str | Path) -> PredictionFile:
    """Every prediction of the file by (problem_id, shots), and the lines that are not one.

    The format is the first row's: ``prediction`` (IgakuQA) or ``shots`` (a results.jsonl). In a
    results.jsonl a later row for the same question and shots wins (a resumed run's); in an IgakuQA
    file a second prediction for a question is a bad line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Predictions file {path} does not exist.",
                        "Pass an IgakuQA predictions file (EXAM_gpt4.jsonl) or an evaluation's results.jsonl.",
                        code="predictions.missing", params={"path": str(path)})
    problems: list[DataProblem] = []
    rows = read_jsonl(path, problems)
    if not rows:
        raise UserError(f"{path} holds no prediction.", "Check that it is the predictions file you meant.",
                        code="predictions.empty", params={"path": str(path)})
    first_line, first = rows[0]
    fmt = "igakuqa" if "prediction" in first else "results" if "shots" in first else None
    if fmt is None:
        raise UserError(f"{path} is not a predictions file: line {first_line} has neither 'prediction' "
                        "(IgakuQA's baseline_results) nor 'shots' (an evaluation's results.jsonl).",
                        "Pass an IgakuQA predictions file (problem_id, prediction) or a results.jsonl.",
                        code="predictions.format", params={"path": str(path), "line": first_line})
    predictions: dict[tuple[str, int], Prediction] = {}
    for line, obj in rows:
        if obj.get("problem_id") in (None, ""):
            problems.append(_problem(path, line, "problem_id", "missing", "no_id"))
            continue
        if fmt == "igakuqa" and "prediction" not in obj:
            problems.append(_problem(path, line, "prediction", "missing", "no_prediction"))
            continue
        pred = (_igakuqa_prediction if fmt == "igakuqa" else _results_prediction)(path, line, obj)
        if isinstance(pred, DataProblem):
            problems.append(pred)
        elif fmt == "igakuqa" and (pred.problem_id, 0) in predictions:
            problems.append(_problem(path, line, "problem_id", f"a second prediction for {pred.problem_id} (the first is used)",
                                     "duplicate", got=pred.problem_id))
        else:
            predictions[(pred.problem_id, pred.shots)] = pred
    saved = jobs.read_json(path.parent / "config.json") if fmt == "results" else {}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return PredictionFile(path, fmt, digest, predictions, problems, saved.get("label"))


def score_row(q: Question, shots: int, pred: Prediction | None) -> dict:
    """One results.jsonl row for an imported answer (or for a question left unanswered)."""
    rec = {"problem_id": q.problem_id, "question_hash": results.question_hash(q), "shots": shots,
           "response": pred.response if pred else None, "answer": q.answer, "accepted": q.accepted,
           "answer_text": q.answer_text, "points": q.points, "kinki": q.kinki, "category": q.category,
           "text_only": q.text_only, "scoring": SCORING, "imported": True, "answered": pred is not None}
    predicted = list(pred.predicted) if pred else []
    mode = (pred.row.get("scoring") if pred else None) or None
    if pred and pred.row and mode in scoring.MODES and pred.response is not None \
            and not pred.row.get("context_overflow"):
        # Our own answer: the same engine as the run that gave it, on this exam file.
        rec.update(scoring.score_response(q, pred.response, mode), scoring=mode)
        predicted = rec["predicted"]
    elif pred and pred.row:
        predicted = original_letters(predicted, pred.row.get("choice_order"))
    correct = pred is not None and official_correct(q, predicted)
    rec.update(predicted=predicted, accuracy=float(correct), points_earned=q.points * correct,
               kinki_picked=len(set(predicted) & set(q.kinki)))
    if q.problem_id in ALL_ACCEPTED or q.problem_id in ACCEPTED_INSTEAD:
        rec["official_correction"] = ("every answer accepted" if q.problem_id in ALL_ACCEPTED
                                      else " or ".join(",".join(a) for a in ACCEPTED_INSTEAD[q.problem_id]))
    return rec


def _ids(ids: list[str]) -> dict:
    return {"n": len(ids), "ids": ids[:SHOWN_IDS]}


def score_file(pf: PredictionFile, questions: list[Question]) -> tuple[list[dict], dict]:
    """(results rows: every question × each shot setting the file answers, the unmatched ids)."""
    by_id = {q.problem_id: q for q in questions}
    shot_settings = sorted({s for _, s in pf.predictions}) or [0]
    rows = [score_row(q, s, pf.predictions.get((q.problem_id, s))) for s in shot_settings for q in questions]
    not_in_exam = sorted({pid for pid, _ in pf.predictions if pid not in by_id})
    unanswered = [r["problem_id"] for r in rows if not r["answered"]]
    unreadable = [r["problem_id"] for r in rows if r["answered"] and r["scoring"] == SCORING and not _readable(
        by_id[r["problem_id"]], r["predicted"])]
    return rows, {"predictions_not_in_exam": _ids(not_in_exam), "questions_without_prediction": _ids(unanswered),
                  "unreadable_predictions": _ids(unreadable)}


def _readable(q: Question, predicted: list[str]) -> bool:
    """A clean answer: letters of the question's choices (a number where it has none). Others ("c, e",
    a sentence) are scored as evaluate_main.py scores them, and counted here so a reader knows."""
    if q.is_numeric:
        return len(predicted) == 1 and predicted[0].replace(".", "", 1).isdigit()
    return bool(predicted) and all(p in q.letters for p in predicted)


def official_figures(rows: list[dict]) -> dict:
    """What evaluate_main.py prints for these rows: accuracy = correct / count, score, total."""
    n = len(rows)
    return {"n": n, "accuracy": sum(r["accuracy"] for r in rows) / n if n else None,
            "score": sum(r["points_earned"] for r in rows), "total": sum(r["points"] for r in rows)}


def run(config, emit: Callable[[dict], None], ws: Workspace) -> dict:
    """Score ``config.predictions`` on ``config.data`` into ``config.out`` (an ``EvalConfig``)."""
    if config.task != "exam":
        raise UserError("--predictions scores exam answers; it does not apply to --task report.",
                        "Leave --task out (exam).", code="predictions.report_task", params={"value": config.task})
    t0 = time.perf_counter()
    qset = load_questions(config.data, on_error=config.on_error, include_images=True)
    pf = read_predictions(config.predictions)
    if pf.problems and config.on_error == "stop":
        shown = "\n  ".join(str(p) for p in pf.problems[:10])
        raise UserError(f"{len(pf.problems)} bad line(s) in {pf.path}:\n  {shown}",
                        "Fix those lines, or continue without them (--on-error skip).",
                        code="predictions.bad_lines", params={"path": str(pf.path), "n": len(pf.problems),
                                                              "problems": [p.as_params() for p in pf.problems[:10]]})
    rows, unmatched = score_file(pf, qset.questions)
    if unmatched["questions_without_prediction"]["n"] == len(rows):
        raise UserError(f"No prediction in {pf.path} is for a question of {config.data} "
                        f"({len(pf.predictions)} predictions, {len(qset.questions)} questions, no problem_id in common).",
                        "Pair each predictions file with its own exam file (116-A_gpt4.jsonl with 116-A.jsonl).",
                        code="predictions.none_matched",
                        params={"predictions": str(pf.path), "data": str(config.data),
                                "n_predictions": len(pf.predictions), "n_questions": len(qset.questions)})
    label = config.label or default_label(pf)
    source = {"source": str(pf.path.resolve()), "sha256": pf.sha256, "format": pf.format, **unmatched,
              "prediction_problems": len(pf.problems)}
    identity = {"model": label, "adapter": None, "data": config.data, "predictions": source["source"]}
    out = Path(config.out)
    try:
        run_lock.output_folder(out, "evaluation")
        with run_lock.exclusive(out, "evaluation"):
            return _write(out, ws, config, label, identity, source, rows, qset, time.perf_counter() - t0, emit)
    except OSError as exc:
        raise disk_full(exc) or exc


def _write(out: Path, ws: Workspace, config, label: str, identity: dict, source: dict, rows: list[dict], qset,
           seconds: float, emit: Callable[[dict], None]) -> dict:
    results.check_resume(out, identity)
    target = f"evaluation:{out.resolve()}"
    audit.record(ws.root, audit.current_user(), "evaluate", target, phase="start", model=label, data=config.data,
                 predictions=source["source"], sha256=source["sha256"])
    shots = sorted({r["shots"] for r in rows})
    jobs.write_json(out / "config.json", {**identity, "task": "exam", "label": label, "shots": shots,
                                          "imported": source})
    tmp = out / f".results.jsonl.{os.getpid()}.tmp"        # replaced whole: readers never see half an import
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, out / "results.jsonl")
    official = official_figures([r for r in rows if r["shots"] == shots[0]])
    summary = EvalSummary(label=label, model=label, data=config.data, scoring=SCORING, method="imported",
                          by_shots=results.summarize(rows, config.seed), skipped_not_text_only=0,
                          data_problems=len(qset.problems), seconds=round(seconds, 2),
                          extra={**official, "imported": source}).to_dict()
    jobs.write_json(out / "summary.json", summary)
    ws.record_evaluation(str(out.resolve()), model=label, adapter=None, data=config.data,
                         config={**identity, "task": "exam", "imported": source}, status="finished", summary=summary)
    audit.record(ws.root, audit.current_user(), "evaluate", target, phase="finish", incomplete=False)
    for key, what in (("questions_without_prediction", "question(s) of the exam file have no prediction: scored 0"),
                      ("predictions_not_in_exam", "prediction(s) are for questions not in the exam file: not counted")):
        if source[key]["n"]:
            emit({"event": "warning", key: source[key],
                  "message": f"{source[key]['n']} {what} (e.g. {source[key]['ids'][0]})"})
    emit({"event": "finish", "summary": summary})
    return summary

