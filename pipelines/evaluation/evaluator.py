"""Evaluate a model on IgakuQA-format questions the JMedLoRA way (and a little beyond).

    jmedlora evaluate --model default --data assets/questions/sample_ja.jsonl \\
        --shots 0 1 --template ja --out workspace/evals/default-ja

Writes ``OUT/results.jsonl`` (one line per question and shot setting, appended as each
finishes, so an interrupted run resumes where it stopped: a line cut short by a kill or a full
disk is dropped and its question redone; one process at a time per OUT, see
``pipelines/core/run_lock.py``; each question sampled with its own seed, so a resumed run answers
as an uninterrupted one), ``OUT/summary.json`` (per shot
setting: n and every metric with a bootstrap 95% interval) and ``OUT/config.json``, and
prints a Table-1-style table. Scoring modes are defined in ``pipelines/evaluation/scoring.py``, the
metrics and how each is summarised in ``pipelines/evaluation/metrics.py``.

``--by category`` also prints accuracy per category (specialty) with its interval and n
(``pipelines/evaluation/insights.py``; ``jmedlora insights`` for more views).

``--predictions FILE`` scores answers given elsewhere instead of a model (IgakuQA's published GPT-4,
ChatGPT and examinees' predictions, or a results.jsonl): ``pipelines/evaluation/imported.py``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from pipelines.core import audit, cli, jobs, run_lock
from pipelines.core.errors import Interrupted, UserError, cli_guard, disk_full, same_command
from pipelines.core.repo import ASSETS
from pipelines.core.workspace import Workspace
from pipelines.evaluation import imported, insights, insights_cli, metrics, report_run, results, scoring
from pipelines.evaluation.progress import TokenMeter
from pipelines.evaluation.prompting import build_prompt, pick_example, question_seed, shuffled
from pipelines.evaluation.summary import EvalSummary
from pipelines.models.backends import BackendSettings, check_loglik, check_text_model, open_backend
from pipelines.models.generation import GenerationSettings
from pipelines.models.references import ModelRef, resolve_model
from pipelines.tasks.igakuqa import Question, load_questions
from pipelines.tasks.prompts import PromptTemplate, load_template

# How each question is asked: pipelines/evaluation/prompting.py; what OUT holds and how a run
# resumes over it: pipelines/evaluation/results.py. This file plans the run and drives the backend.

SHOTS_POOL = ASSETS / "questions" / "shots_ja.jsonl"


@dataclass
class EvalConfig:
    model: str = "default"              # default | model dir | adapter dir | registered name | openai[-completions]:MODEL[@URL]
    data: str = str(ASSETS / "questions" / "sample_ja.jsonl")  # IgakuQA-format JSONL (report: a report JSONL)
    task: Literal["exam", "report"] = "exam"  # exam questions | image → report (pipelines/evaluation/report_run.py)
    out: str = field(default="", metadata=cli.required())  # output directory (resumes a run of the same config)
    adapter: str | None = None          # PEFT adapter directory applied on top of --model
    shots: tuple[int, ...] = field(default=(0,), metadata=cli.choices(0, 1))  # 0 and/or 1 solved examples
    template: str = "ja"                # ja | en | chat | ja_exam | path to a .txt template
    method: Literal["generate", "loglik", "both"] = "generate"  # generate (the paper) | loglik | both
    scoring: str = field(default="paper", metadata=cli.choices(*scoring.MODES))  # see pipelines/evaluation/scoring.py
    question_lang: Literal["ja", "en"] = "ja"  # en = use the *_translate.jsonl text where present
    shuffle_choices: bool = False       # permute choices per question to expose position bias
    max_new_tokens: int = GenerationSettings.max_new_tokens
    temperature: float = GenerationSettings.temperature  # 0 = greedy
    top_p: float = GenerationSettings.top_p  # nucleus sampling mass
    repetition_penalty: float = GenerationSettings.repetition_penalty  # 1.0 = none
    stop: tuple[str, ...] = GenerationSettings.stop  # stop strings (none: --stop with no value)
    seed: int = 0
    limit: int | None = None            # at most this many questions (a quick look)
    batch_size: int = BackendSettings.batch_size  # questions per forward pass (local models)
    max_batch_tokens: int = BackendSettings.max_batch_tokens  # rows × (prompt + new tokens) per batch
    concurrency: int = BackendSettings.concurrency            # requests in flight for API endpoints
    allow_remote_pii: bool = False      # send prompts that look like they hold personal data to a remote endpoint
    shots_file: str = str(SHOTS_POOL)   # pool of solved examples for 1-shot prompts
    on_error: Literal["stop", "skip"] = "stop"  # bad lines in the question file: stop or skip them
    image_size: int = 512               # report: images resized to this square, as JRadiEvo did
    trust_remote_code: bool = False     # report: let a model run Python shipped in its folder (logged)
    predictions: str | None = None      # score this predictions file instead of a model (pipelines/evaluation/imported.py)
    label: str | None = None            # --predictions: the column's name (default: from the file, e.g. GPT-4)
    workspace: str | None = None

    def validate(self) -> None:
        if not self.out:
            raise UserError("No output directory given.", "Pass --out DIR.",
                            code="out.missing", params={"field": "out"})
        if not set(self.shots) <= {0, 1}:
            raise UserError(f"Unsupported shot setting(s) {self.shots}.", "Use --shots 0, --shots 1 or --shots 0 1.",
                            code="eval.shots", params={"value": ", ".join(map(str, self.shots))})
        if self.method not in ("generate", "loglik", "both"):
            raise UserError(f"Unknown method {self.method!r}.", "Use generate, loglik or both.",
                            code="eval.method", params={"value": str(self.method)})
        if self.scoring not in scoring.MODES:
            raise UserError(f"Unknown scoring mode {self.scoring!r}.", f"Use one of {', '.join(scoring.MODES)}.",
                            code="eval.scoring", params={"value": str(self.scoring), "known": ", ".join(scoring.MODES)})
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise UserError("--max-new-tokens and --batch-size must be at least 1.",
                            f"Leave them out for the defaults ({GenerationSettings.max_new_tokens} and "
                            f"{BackendSettings.batch_size}).",
                            code="eval.at_least_one",
                            params={"fields": ["max_new_tokens", "batch_size"],
                                    "tokens": GenerationSettings.max_new_tokens, "batch": BackendSettings.batch_size})
        if self.task == "report" and self.method != "generate":
            raise UserError("Reports are scored on generated text: --method loglik does not apply to --task report.",
                            "Leave --method out (generate).", code="eval.report_method", params={"value": self.method})
        if not 0 <= self.temperature <= 5 or not 0 < self.top_p <= 1:
            raise UserError("temperature must be in [0, 5] and top_p in (0, 1].",
                            "The paper used temperature 0.1 and top_p 0.9.",
                            code="eval.sampling", params={"field": "temperature", "p_field": "top_p"})

    @property
    def settings(self) -> GenerationSettings:
        return GenerationSettings(temperature=self.temperature, top_p=self.top_p,
                                  repetition_penalty=self.repetition_penalty,
                                  max_new_tokens=self.max_new_tokens, seed=self.seed, stop=tuple(self.stop))


# -- run --------------------------------------------------------------------------

def run(config: EvalConfig, on_event: Callable[[dict], None] | None = None, *,
        workspace: Workspace | None = None, stop: threading.Event | None = None) -> dict:
    """Evaluate and summarise; ``stop`` ends early with the answers so far saved (a rerun resumes)."""
    config.validate()
    ws = workspace or Workspace.resolve(config.workspace)
    if config.predictions:      # answers given elsewhere: scored, no model loaded
        return imported.run(config, on_event or (lambda e: None), ws)
    if config.task == "report":
        if config.data == EvalConfig.data:
            config = dataclasses.replace(config, data=str(ASSETS / "reports" / "sample_ja.jsonl"))
        return report_run.run(config, on_event or (lambda e: None), ws, stop or threading.Event())
    # Everything that can be refused is checked before the first file is written.
    qset = load_questions(config.data, on_error=config.on_error, limit=config.limit)
    template = load_template(config.template)
    pool = load_questions(config.shots_file).questions if 1 in config.shots else []
    ref = resolve_model(config.model, config.adapter, ws)
    check_text_model(ref)
    if config.method != "generate":
        check_loglik(ref)
    out = Path(config.out)
    try:
        run_lock.output_folder(out, "evaluation")
        with run_lock.exclusive(out, "evaluation"):
            audit.record(ws.root, audit.current_user(), "evaluate", f"evaluation:{out.resolve()}", phase="start",
                         model=config.model, adapter=config.adapter, data=config.data)
            result = _run(config, on_event or (lambda e: None), ws, out, stop or threading.Event(),
                          qset, template, pool, ref)
            audit.record(ws.root, audit.current_user(), "evaluate", f"evaluation:{out.resolve()}",
                         phase="stopped" if result.get("stopped") else "finish",
                         incomplete=bool(result.get("incomplete")))
            return result
    except OSError as exc:
        raise disk_full(exc) or exc


def _run(config: EvalConfig, emit: Callable[[dict], None], ws: Workspace, out: Path, stop: threading.Event,
         qset, template: PromptTemplate, pool: list[Question], ref: ModelRef) -> dict:
    identity = results.identity(config)
    torn = results.prepare(out, identity, {"shots": list(config.shots), "model_ref": ref.to_dict(),
                                           "label": ref.label, "chat_template": template.uses_chat_template})
    if torn:
        emit({"event": "warning", "message": f"dropped an incomplete last line ({torn} bytes) of "
                                             f"{out / 'results.jsonl'}; that question is answered again"})
    ws.record_evaluation(str(out.resolve()), model=config.model, adapter=config.adapter, data=config.data,
                         config=identity, status="running")

    previous = {(r["problem_id"], r["shots"]): r.get("question_hash") for r in results.read_results(out)}
    questions = []
    for q in qset.questions:
        q = q.in_language(config.question_lang)
        order: list[str] = []
        if config.shuffle_choices:
            q, order = shuffled(q, config.seed)
        questions.append((q, order))
    pool = [e.in_language(config.question_lang) for e in pool]
    # loglik alone cannot answer a numeric question: those are not part of the plan
    planned = [(q, order, s) for s in config.shots for q, order in questions
               if config.method != "loglik" or not q.is_numeric]
    # A saved answer counts only for the question as it is now: one whose text, choices, answer or points
    # changed since is answered and scored again (its old row and score were kept before). Rows written
    # before question_hash existed (None) are kept as they are.
    stale = [(q.problem_id, s) for q, _, s in planned
             if previous.get((q.problem_id, s), "") not in ("", None, results.question_hash(q))]
    todo = [(q, order, s) for q, order, s in planned
            if (q.problem_id, s) not in previous or (q.problem_id, s) in stale]
    total = len(planned)
    if stale:
        emit({"event": "warning", "stale": len(stale),
              "message": f"{len(stale)} saved answer(s) were for an earlier version of their question "
                         f"(e.g. {stale[0][0]}): answered again"})
    emit({"event": "start", "total": total, "done": total - len(todo), "label": ref.label,
          "skipped_not_text_only": qset.skipped_not_text_only, "data_problems": [str(p) for p in qset.problems]})
    t0 = time.perf_counter()
    if todo:
        try:
            answered = _evaluate(todo, config, ref, template, pool, out, emit, done=total - len(todo), total=total,
                                 stop=stop)
        except BaseException:
            ws.record_evaluation(str(out.resolve()), model=config.model, adapter=config.adapter, data=config.data,
                                 config=identity, status="failed")
            raise
        if stop.is_set() and answered < total:
            ws.record_evaluation(str(out.resolve()), model=config.model, adapter=config.adapter, data=config.data,
                                 config=identity, status="stopped")
            message = f"stopped after {answered} of {total} answers; run it again to resume"
            emit({"event": "stop", "done": answered, "total": total, "message": message})
            return {"label": ref.label, "stopped": True, "done": answered, "total": total, "message": message}
    elapsed = time.perf_counter() - t0
    keys = {(q.problem_id, s) for q, _, s in planned}
    rows = [r for r in results.read_results(out) if (r["problem_id"], r["shots"]) in keys]
    summary = EvalSummary(label=ref.label, model=config.model, adapter=config.adapter, data=config.data,
                          template=template.name, chat_template=template.uses_chat_template, scoring=config.scoring,
                          method=config.method, by_shots=results.summarize(rows, config.seed),
                          skipped_not_text_only=qset.skipped_not_text_only, data_problems=len(qset.problems),
                          seconds=round(elapsed, 2),
                          questions_per_s=round(len(todo) / elapsed, 3) if todo and elapsed > 0 else None).to_dict()
    if len(rows) < total:
        # Never 'finished' with fewer answers than planned: the summary says so, and a rerun completes it.
        summary.update(incomplete=True, planned=total, answered=len(rows))
    jobs.write_json(out / "summary.json", summary)
    ws.record_evaluation(str(out.resolve()), model=config.model, adapter=config.adapter, data=config.data,
                         config=identity, status="stopped" if len(rows) < total else "finished", summary=summary)
    if summary.get("incomplete"):
        emit({"event": "stop", "done": len(rows), "total": total,
              "message": f"only {len(rows)} of {total} answers; run it again to complete"})
    else:
        emit({"event": "finish", "summary": summary})
    return summary


def _evaluate(todo, config: EvalConfig, ref: ModelRef, template: PromptTemplate, pool: list[Question],
              out: Path, emit, *, done: int, total: int, stop: threading.Event) -> int:
    """Answers ``todo`` into ``results.jsonl`` (rows as ``results.answer_row`` makes them); returns how many
    of ``total`` are done."""
    backend = open_backend(ref, batch_size=config.batch_size, max_batch_tokens=config.max_batch_tokens,
                           concurrency=config.concurrency, allow_remote_pii=config.allow_remote_pii)
    items = []
    for q, order, shots in todo:
        example = pick_example(q, pool, config.seed) if shots == 1 else None
        prompt = build_prompt(q, template, example)
        prompt.seed = question_seed(config.seed, q.problem_id, shots)
        items.append((q, order, shots, example, prompt))
    ll_scores: dict[int, tuple] = {}
    mc = [i for i, it in enumerate(items) if not it[0].is_numeric] if config.method in ("loglik", "both") else []

    with results.ResultsWriter(out) as writer:
        def write(i: int, response: str | None, n_tokens: int, seconds: float, info: dict | None = None):
            nonlocal done
            q, order, shots, example, prompt = items[i]
            overflow = (info or {}).get("context_overflow")
            if overflow:
                emit({"event": "warning", "problem_id": q.problem_id, "shots": shots, "context_overflow": overflow,
                      "message": f"{q.problem_id} ({shots}-shot): the prompt is {overflow['prompt_tokens']} tokens; "
                                 f"with {overflow['max_new_tokens']} new tokens it exceeds the model's context of "
                                 f"{overflow['context']}: not answered (scored as wrong)"})
            rec = results.answer_row(q, shots, order=order, example=example, prompt=prompt, mode=config.scoring,
                                     response=response, n_tokens=n_tokens, seconds=seconds, info=info,
                                     loglik=ll_scores.get(i))
            writer.append(rec)
            done += 1
            emit({"event": "progress", "done": done, "total": total, "problem_id": q.problem_id, "shots": shots,
                  "accuracy": rec.get("accuracy")})

        # Scored in chunks, the first one small: progress (and, for loglik alone, saved answers)
        # within seconds instead of after the whole exam; a stop takes effect between chunks.
        t0, scored = time.perf_counter(), 0
        for chunk in _chunks(mc, first=2, size=max(8, config.batch_size)):
            if stop.is_set():
                return done
            for i, res in zip(chunk, backend.score_choices([items[i][0] for i in chunk], [items[i][4] for i in chunk])):
                ll_scores[i] = res
                if config.method == "loglik":
                    write(i, None, 0, 0.0, None)
            scored += len(chunk)
            if config.method == "both":     # answers are written once generated; this is the first phase
                rate = scored / max(time.perf_counter() - t0, 1e-9)
                emit({"event": "progress", "done": done, "total": total, "phase": "loglik", "scored": scored,
                      "to_score": len(mc), "eta_s": round((len(mc) - scored) / rate, 1)})
        if config.method == "loglik":
            return done
        # Stop where the answer ends: the template's next block, besides the configured stops.
        settings = dataclasses.replace(config.settings,
                                       stop=tuple(dict.fromkeys(config.settings.stop + template.stop_strings())))
        meter = TokenMeter(emit, todo=len(items), total=total, max_new_tokens=settings.max_new_tokens)
        for i, comp in backend.generate([it[4] for it in items], settings, on_tokens=meter.tokens):
            meter.answered(comp.n_tokens)
            write(i, comp.text, comp.n_tokens, comp.seconds, comp.info)
            if stop.is_set():
                break
    return done


def _chunks(seq: list[int], *, first: int, size: int):
    if seq[:first]:
        yield seq[:first]
    for start in range(first, len(seq), size):
        yield seq[start:start + size]


# -- CLI ---------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = cli.config_parser("evaluate", EvalConfig, __doc__)
    cli.add_common(p, "json")
    # How the result is shown, not what is evaluated: a flag here, not an EvalConfig field.
    p.add_argument("--by", choices=["category"], default=None,
                   help="also print accuracy per category (specialty) after the summary: jmedlora insights")
    return p


def format_table(summary: EvalSummary, label: str) -> str:
    """Rows: metric × shots, as in the paper's Table 1; one column for this model."""
    rows: list[tuple[str, str]] = []
    for shots, s in summary.by_shots.items():
        for m in metrics.mean_metrics():
            if m.key in s.means:
                v = s.means[m.key]
                rows.append((f"{m.label['en']} ({shots}-shot)",
                             f"{v.mean:.3f}  [{v.ci_low:.3f}, {v.ci_high:.3f}]"))
        ex = s.exam
        if ex.score_rate is not None:
            names = metrics.labels("en", only=metrics.sum_metrics())
            parts = [f"{ex.sums.get('points_earned', 0):g}/{ex.points_total:g} points"]
            parts += [f"{names.get(k, k)}: {v:g}" for k, v in ex.sums.items() if k != "points_earned"]
            rows.append((f"Exam score ({shots}-shot)", f"{ex.score_rate:.3f}  ({', '.join(parts)})"))
        rows.append((f"n ({shots}-shot)", str(s.n)))
    width = max([24] + [len(name) for name, _ in rows])
    return "\n".join([f"{'':{width}s} {label}"] + [f"{name:{width}s} {value}" for name, value in rows])


def _categories(config: EvalConfig, summary: dict) -> list[dict]:
    """``--by category``: the run's accuracy per category, each shot setting (insights.by_category)."""
    ev = insights.load_evaluation(config.out, data=config.data, label=summary.get("label"))
    return insights.by_category([ev], seed=config.seed)


@cli_guard
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    config = cli.config_from_args(EvalConfig, args)
    from tqdm.auto import tqdm

    bar = None

    def on_event(e: dict) -> None:
        nonlocal bar
        if e["event"] == "start":
            for p in e["data_problems"]:
                print(f"warning: skipped {p}", file=sys.stderr)
            if e["skipped_not_text_only"]:
                print(f"note: {e['skipped_not_text_only']} question(s) need images (text_only: false) and were skipped",
                      file=sys.stderr)
            bar = tqdm(total=e["total"], initial=e["done"], desc=f"evaluating {e['label']}", unit="q")
        elif e["event"] == "progress" and bar is not None:
            if "tokens" in e:            # between answers: tokens flowing, rate, ETA
                eta = f", ETA {e['eta_s']:.0f}s" if e.get("eta_s") is not None else ""
                bar.set_postfix_str(f"{e['tokens']} tok, {e['tokens_per_s']} tok/s{eta}")
            else:
                bar.update(1)
        elif e["event"] in ("finish", "stop") and bar is not None:
            bar.close()

    events = jobs.EventWriter.from_env()          # started as a job: events.jsonl in its directory
    try:
        with jobs.reporting(events):
            summary = run(config, jobs.tee(on_event, events), stop=jobs.stop_event(events))
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        raise Interrupted(same_command("evaluate", argv) + "   (answered questions are kept)") from None
    if summary.get("stopped"):
        print(summary["message"], file=sys.stderr)
        return
    by_category = args.by == "category" and summary.get("task") != "report"
    if args.json:
        extra = {"by_category": _categories(config, summary)} if by_category else {}
        print(json.dumps({**summary, **extra}, ensure_ascii=False, indent=2))
    elif summary.get("task") == "report":
        print(report_run.format_table(summary))
    else:
        print(format_table(EvalSummary.from_dict(summary), summary["label"]))
        if by_category:       # after the summary: a question file without categories still shows it first
            print("\n" + insights_cli.format_categories(_categories(config, summary)))
    if summary.get("incomplete"):
        print(f"warning: only {summary['answered']} of {summary['planned']} answers; run it again to complete",
              file=sys.stderr)


if __name__ == "__main__":
    main()
