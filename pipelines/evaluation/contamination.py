"""Contamination check: exam questions found in the training data, and the score without them.

    jmedlora contamination --train FILE.jsonl --data EXAM.jsonl [--json]
    jmedlora contamination --train FILE.jsonl --eval OUT_DIR [--data EXAM.jsonl] [--json]

Lists each flagged question: its id, the rule that flagged it (``ngram``: a run of 50 or more
characters shared with a training record; ``near-dup``: a record's instruction rewrites it), the
record's line in the training file and the text they share (normalised: no spaces or punctuation).
With ``--eval``, the evaluation's metrics again over all its questions and over those not flagged,
each with its bootstrap interval, from the same code that wrote its summary.json
(``results.summarize``): a score that drops without the flagged questions was partly recall.
The rules and their thresholds are ``pipelines.tasks.overlap``'s; the training file is indexed
once and cached in the workspace (``pipelines.tasks.train_index``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core import cli, safe_load
from pipelines.core.errors import UserError, cli_guard
from pipelines.core.workspace import Workspace
from pipelines.evaluation import results
from pipelines.tasks import overlap, train_index
from pipelines.tasks.igakuqa import load_questions
from pipelines.tasks.overlap import NEAR_DUP_THRESHOLD, NGRAM_CHARS, ContaminationCheck, question_text

# The metrics shown side by side (every metric is in the summaries; these are the headline ones).
HEADLINE = ("accuracy", "gestalt", "ll_accuracy")


# -- an evaluation folder: its answers and its question file ---------------------------------

def eval_config(out: Path) -> dict:
    """An evaluation folder's config.json ({} for a folder without one); refused if it holds no results."""
    path = out / "config.json"
    if not (out / "results.jsonl").exists():
        raise UserError(f"{out} holds no evaluation results (results.jsonl).",
                        "Pass the --out folder of an evaluation (jmedlora evaluate).",
                        code="contamination.not_an_eval", params={"path": str(out)})
    return safe_load.json_file(path, "evaluation settings") if path.exists() else {}


def exam_rows(out: Path) -> list[dict]:
    """The evaluation's answer rows (one per question and shot setting)."""
    rows = [r for r in results.read_results(out) if "problem_id" in r]
    if not rows:
        raise UserError(f"{out} holds no exam answers.", "Pass the folder of an exam evaluation, not a report one.",
                        code="contamination.no_exam_rows", params={"path": str(out)})
    return rows


def question_file(out: Path, data: str | None = None) -> str:
    """``data``, or the question file the evaluation in ``out`` was run on."""
    data = data or eval_config(out).get("data")
    if not data:
        raise UserError(f"{out}/config.json does not name its question file.", "Pass it with --data.",
                        code="contamination.eval_without_data", params={"path": str(out)})
    return str(data)


def questions_of(out: Path, data: str | None = None) -> dict[str, str]:
    """Question id → normalised text (``overlap.question_text``) of an evaluation's question file."""
    qs = load_questions(question_file(out, data), on_error="skip", include_images=True).questions
    return {q.problem_id: question_text(q) for q in qs}


# -- the check and the score ----------------------------------------------------------------------

@dataclass
class ContaminationConfig:
    train: str = field(default="", metadata=cli.required())   # the run's training data (Alpaca JSONL)
    data: str | None = None          # IgakuQA-format question file (default: the one --eval was run on)
    eval: str | None = field(default=None, metadata=cli.metavar("OUT_DIR"))
    """an evaluation folder: its score with and without the flagged questions"""
    ngram_chars: int = NGRAM_CHARS   # shared run of normalised characters that flags a question
    near_dup_threshold: float = NEAR_DUP_THRESHOLD   # character 3-gram Jaccard that flags a rewritten question
    workspace: str | None = None


def score_with_and_without(out: str | Path, flagged: list[str] | set[str]) -> dict:
    """Per shot setting, the evaluation's summary over all its questions and without ``flagged``
    (``ShotSummary.to_dict``: n, each metric's mean and interval, the exam totals)."""
    out = Path(out)
    rows = exam_rows(out)
    seed = eval_config(out).get("seed") or 0       # the summary's own bootstrap seed: "all" matches summary.json
    flagged = set(flagged)
    clean = [r for r in rows if r["problem_id"] not in flagged]
    every, without = results.summarize(rows, seed), results.summarize(clean, seed)
    return {"flagged_answered": len({r["problem_id"] for r in rows} & flagged),
            "by_shots": {shots: {"all": every[shots].to_dict(),
                                 "without_flagged": without[shots].to_dict() if shots in without else None}
                         for shots in every}}


def run(config: ContaminationConfig, *, workspace: Workspace | None = None) -> dict:
    """The check (``ContaminationCheck.to_dict``) and, with ``config.eval``, ``score``."""
    _validate(config)
    ws = workspace or Workspace.resolve(config.workspace)
    if config.eval:
        data = question_file(Path(config.eval), config.data)
    elif config.data:
        data = config.data
    else:
        raise UserError("No question file to check.", "Pass --data EXAM.jsonl (or --eval OUT_DIR of an evaluation).",
                        code="contamination.no_data", params={})
    questions = load_questions(data, on_error="skip", include_images=True).questions
    result: ContaminationCheck = overlap.check(train_index.load(config.train, ws), questions,
                                               questions_file=str(data), ngram_chars=config.ngram_chars,
                                               threshold=config.near_dup_threshold)
    report = result.to_dict()
    if config.eval:
        report["score"] = score_with_and_without(config.eval, result.flagged_ids)
    return report


def _validate(c: ContaminationConfig) -> None:
    if c.ngram_chars < 8:
        raise UserError(f"--ngram-chars {c.ngram_chars} is too short: runs that short are shared by chance.",
                        "Pass 8 or more (the default, 50, is GPT-4's rule in characters).",
                        code="contamination.ngram_too_short", params={"value": c.ngram_chars, "field": "ngram_chars"})
    if not 0 < c.near_dup_threshold <= 1:
        raise UserError(f"--near-dup-threshold {c.near_dup_threshold} is not a Jaccard similarity.",
                        "Pass a number above 0 and at most 1 (default 0.5).", code="contamination.bad_threshold",
                        params={"value": c.near_dup_threshold, "field": "near_dup_threshold"})


def _metric_line(label: str, s: dict | None) -> str:
    if not s:
        return f"{label}: no question left"
    shown = [f"{m} {s[m]['mean']:.3f} [{s[m]['ci_low']:.3f}, {s[m]['ci_high']:.3f}]" for m in HEADLINE
             if isinstance(s.get(m), dict) and s[m].get("mean") is not None]
    rate = (s.get("exam") or {}).get("score_rate")
    return f"{label}: n={s['n']}  " + "  ".join(shown + ([f"score_rate {rate:.3f}"] if rate is not None else []))


def print_report(report: dict) -> None:
    s = report["settings"]
    print(f"{report['n_records']:,} training records × {report['n_questions']:,} questions: "
          f"{len(report['flagged'])} flagged (ngram: a run of ≥ {s['ngram_chars']} characters; "
          f"near-dup: 3-gram Jaccard ≥ {s['near_dup_threshold']})")
    for f in report["findings"]:
        more = f" (+{f['records'] - 1} more records)" if f["records"] > 1 else ""
        print(f"  {f['problem_id']:<14} {f['kind']:<8} line {f['record_line']:>7}  J={f['similarity']:.2f}{more}  "
              f"「{f['overlap'][:80]}{'…' if len(f['overlap']) > 80 else ''}」")
    for shots, both in (report.get("score") or {}).get("by_shots", {}).items():
        print(f"score, {shots}-shot:")
        print("  " + _metric_line("all questions      ", both["all"]))
        print("  " + _metric_line("without the flagged", both["without_flagged"]))


@cli_guard
def main(argv: list[str] | None = None) -> None:
    parser = cli.config_parser("contamination", ContaminationConfig, __doc__)
    cli.add_common(parser, "json")
    ns = parser.parse_args(argv)
    report = run(cli.config_from_args(ContaminationConfig, ns))
    if ns.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
