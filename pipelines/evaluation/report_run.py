"""Evaluating report generation: images in, Japanese findings out, scored against the reference.

    jmedlora evaluate --task report --data assets/reports/sample_ja.jsonl --model demo-vlm --out workspace/evals/vlm

Reached through ``jmedlora evaluate --task report`` (``evaluator.run`` hands the run over here);
the exam evaluation's conventions hold: ``OUT/results.jsonl`` gets one row per image as each
report finishes (the generated report, the reference, the per-report scores of
``report_metrics.score_report`` and both reports' finding labels), an interrupted or stopped run
resumes with the images not yet reported, ``OUT/summary.json`` holds every report metric with
its 95% bootstrap interval, and the run is a job with progress, stop and an audit entry (which
records whether the model's own code was allowed to run, ``--trust-remote-code``).

The prompt is JRadiEvo's (``tasks/reports.REPORT_PROMPT_JA``), images are resized to 512×512 as
there (``--image-size``), and decoding takes the evaluation's settings (``--max-new-tokens``,
``--temperature`` …; JRadiEvo generated at most 256 new tokens).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from pipelines.core import audit, jobs, run_lock
from pipelines.core.errors import disk_full
from pipelines.core.workspace import Workspace
from pipelines.evaluation import report_metrics, results
from pipelines.models.backends import open_vision_backend
from pipelines.models.modality import VISION, text_model_refused
from pipelines.models.references import ModelRef, resolve_model
from pipelines.tasks.images import load_image, pixel_hash
from pipelines.tasks.reports import REPORT_PROMPT_EN, REPORT_PROMPT_JA, ReportSample, load_reports

PROMPTS = {"ja": REPORT_PROMPT_JA, "en": REPORT_PROMPT_EN}
# Settings that change what a report row means: a resumed run must match them (see results.check_resume).
IDENTITY = ("task", "model", "adapter", "data", "question_lang", "max_new_tokens", "temperature", "top_p",
            "repetition_penalty", "seed", "stop", "image_size", "trust_remote_code")
# Images decoded at a time: bounds memory on a large set and lets a stop take effect between groups.
GROUP = 32


def identity(config) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(config).items() if k in IDENTITY}


def run(config, emit: Callable[[dict], None], ws: Workspace, stop: threading.Event,
        samples: list[ReportSample] | None = None) -> dict:
    """``config`` is an ``EvalConfig`` with ``task == "report"`` (validated by the caller). ``samples``:
    reports already loaded from ``config.data`` (a merge's held-out part of it) instead of the whole file."""
    samples = load_reports(config.data) if samples is None else samples
    if config.limit is not None:
        samples = samples[:config.limit]
    ref = resolve_model(config.model, config.adapter, ws)
    if ref.kind != VISION:
        raise text_model_refused(ref.label)
    out = Path(config.out)
    try:
        run_lock.output_folder(out, "evaluation")
        with run_lock.exclusive(out, "evaluation"):
            audit.record(ws.root, audit.current_user(), "evaluate", f"evaluation:{out.resolve()}", phase="start",
                         task="report", model=config.model, adapter=config.adapter, data=config.data,
                         trust_remote_code=config.trust_remote_code)
            result = _run(config, emit, ws, out, stop, samples, ref)
            audit.record(ws.root, audit.current_user(), "evaluate", f"evaluation:{out.resolve()}",
                         phase="stopped" if result.get("stopped") else "finish")
            return result
    except OSError as exc:
        raise disk_full(exc) or exc


def _run(config, emit, ws: Workspace, out: Path, stop: threading.Event, samples: list[ReportSample],
         ref: ModelRef) -> dict:
    ident = identity(config)
    prompt = PROMPTS[config.question_lang]
    torn = results.prepare(out, ident, {"model_ref": ref.to_dict(), "label": ref.label, "prompt": prompt})
    if torn:
        emit({"event": "warning", "message": f"dropped an incomplete last line ({torn} bytes) of "
                                             f"{out / 'results.jsonl'}; that image is reported again"})
    record = dict(model=config.model, adapter=config.adapter, data=config.data, config=ident)
    ws.record_evaluation(str(out.resolve()), status="running", **record)
    done_ids = {r["id"] for r in results.read_results(out)}
    todo = [s for s in samples if s.id not in done_ids]
    total = len(samples)
    emit({"event": "start", "total": total, "done": total - len(todo), "label": ref.label,
          "skipped_not_text_only": 0, "data_problems": []})
    t0 = time.perf_counter()
    try:
        done = _generate(todo, config, ref, prompt, out, emit, done=total - len(todo), total=total, stop=stop)
    except BaseException:
        ws.record_evaluation(str(out.resolve()), status="failed", **record)
        raise
    if stop.is_set() and done < total:
        ws.record_evaluation(str(out.resolve()), status="stopped", **record)
        message = f"stopped after {done} of {total} reports; run it again to resume"
        emit({"event": "stop", "done": done, "total": total, "message": message})
        return {"label": ref.label, "stopped": True, "done": done, "total": total, "message": message}
    elapsed = time.perf_counter() - t0
    ids = {s.id for s in samples}
    rows = [r for r in results.read_results(out) if r["id"] in ids]
    summary = {"task": "report", "label": ref.label, "model": config.model, "adapter": config.adapter,
               "data": config.data, "prompt": prompt, "image_size": config.image_size,
               "trust_remote_code": config.trust_remote_code, "n": len(rows),
               "metrics": report_metrics.summarize_reports(rows, seed=config.seed) if rows else {},
               "seconds": round(elapsed, 2),
               "reports_per_s": round(len(todo) / elapsed, 3) if todo and elapsed > 0 else None}
    if len(rows) < total:
        summary.update(incomplete=True, planned=total, answered=len(rows))
    jobs.write_json(out / "summary.json", summary)
    ws.record_evaluation(str(out.resolve()), status="stopped" if len(rows) < total else "finished",
                         summary=summary, **record)
    emit({"event": "finish", "summary": summary} if len(rows) == total else
         {"event": "stop", "done": len(rows), "total": total,
          "message": f"only {len(rows)} of {total} reports; run it again to complete"})
    return summary


def _generate(todo: list[ReportSample], config, ref: ModelRef, prompt: str, out: Path, emit, *,
              done: int, total: int, stop: threading.Event) -> int:
    """Reports for ``todo`` into ``results.jsonl``, a group of images at a time; returns how many are done."""
    if not todo:
        return done
    backend = open_vision_backend(ref, batch_size=config.batch_size, max_batch_tokens=config.max_batch_tokens,
                                  trust_remote_code=config.trust_remote_code)
    settings = config.settings
    with results.ResultsWriter(out) as writer:
        for start in range(0, len(todo), GROUP):
            if stop.is_set():
                break
            group = todo[start:start + GROUP]
            images = [load_image(s.image_path, size=config.image_size) for s in group]
            hashes = [pixel_hash(im) for im in images]
            for i, comp in backend.generate_reports(images, prompt, settings):
                s = group[i]
                writer.append(report_row(s, comp.text, comp.n_tokens, comp.seconds, comp.info, image_hash=hashes[i]))
                done += 1
                emit({"event": "progress", "done": done, "total": total, "id": s.id})
    return done


def report_row(sample: ReportSample, generated: str, n_tokens: int, seconds: float, info: dict | None, *,
               image_hash: str) -> dict:
    """One ``results.jsonl`` row: what was generated for one image, the reference, and the scores.
    ``image_hash`` is the pixels as the model saw them (after resizing): how a merge's dev and test
    sets are kept apart by image."""
    info = info or {}
    row = {"id": sample.id, "image": sample.image, "image_hash": image_hash,
           "reference": sample.findings_ja, "generated": generated, "raw": info.get("raw", generated),
           "n_tokens": n_tokens, "seconds": round(seconds, 3)}
    if info.get("context_overflow"):
        row["context_overflow"] = info["context_overflow"]
    row.update(report_metrics.score_report(generated, sample.findings_ja))
    return row


def format_table(summary: dict) -> str:
    """Each report metric with its interval, as ``jmedlora evaluate --task report`` prints it."""
    from pipelines.evaluation import metrics
    names = metrics.labels("en", task="report")
    rows = [(names.get(k, k), f"{v['mean']:.3f}  [{v['ci_low']:.3f}, {v['ci_high']:.3f}]")
            for k, v in summary.get("metrics", {}).items()]
    rows.append(("n (reports)", str(summary.get("n", 0))))
    width = max([24] + [len(name) for name, _ in rows])
    return "\n".join([f"{'':{width}s} {summary.get('label', '')}"] + [f"{n:{width}s} {v}" for n, v in rows])
