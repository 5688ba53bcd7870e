"""The Compare tab's evaluation batches: start one ``jmedlora evaluate`` job per
checkpoint (``pipelines.evaluation.batches``), show their progress, stop them, and re-attach to a
batch still running when the page is reopened.

Handlers take the app state first (bound with ``workbench.wiring.bind``); after a start the
form folds away so the results sit right under the progress (a 1024×768 screen showed the
form and nothing else).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import gradio as gr

from components import notice
from components.run_monitor import progress_html
from pipelines.core import jobs, page_paths
from pipelines.core.errors import UserError
from pipelines.evaluation import batches as eval_jobs
from pipelines.models.backends import check_loglik
from pipelines.models.references import ENDPOINT_PREFIXES, resolve_model
from pipelines.tasks.igakuqa import load_questions
from workbench import users
from workbench.compare_view import evaluation_choices
from workbench.field_errors import error_html, job_message
from workbench.state import AppState, evals_root

MSG = {
    "no_ckpt": {"ja": "チェックポイントを1つ以上選んでください。", "en": "Choose at least one checkpoint."},
    "no_shots": {"ja": "0-shot と 1-shot の少なくとも一方を選んでください。", "en": "Choose 0-shot, 1-shot or both."},
    "busy": {"ja": "評価を実行中です。", "en": "An evaluation is running."},
    "busy_fix": {"ja": "終了を待つか「■ 停止」を押してください。", "en": "Wait for it, or press ■ Stop."},
    "bad_limit": {"ja": "「問題数の上限」は0（全問）または正の整数にしてください。",
                  "en": "The question limit must be 0 (all) or a positive whole number."},
    "bad_tokens": {"ja": "「最大生成トークン数」は1〜4096にしてください。", "en": "Max new tokens must be between 1 and 4096."},
    "evaluating": {"ja": "評価", "en": "Evaluating"},
    "nothing": {"ja": "実行中の評価はありません。", "en": "No evaluation is running."},
    "not_server": {"ja": "サーバーのモデルは openai:MODEL@URL（チャット）か openai-completions:MODEL@URL（対数尤度も）の形で書いてください。",
                   "en": "Write a server model as openai:MODEL@URL (chat) or openai-completions:MODEL@URL (log-likelihoods too)."},
    "added": {"ja": "{spec} をチェックポイントの一覧に加えました。", "en": "Added {spec} to the checkpoints."},
    "need_files": {"ja": "予測ファイルと問題ファイルの両方を指定してください。",
                   "en": "Give both the predictions file and the question file."},
    "imported": {"ja": "{label} を取り込みました：正答率 {accuracy:.3f}、得点 {score}/{total}（{n} 問、画像問題を含む）。",
                 "en": "Imported {label}: accuracy {accuracy:.3f}, score {score}/{total} ({n} questions, image questions included)."},
}
MAX_TOKENS = 4096


def batch_html(batch: dict, lang: str) -> str:
    """One progress bar per checkpoint of an evaluation batch (``eval_jobs.batch_status``)."""
    parts = []
    for tk in batch["tasks"]:
        elapsed = ((tk["ended_at"] or time.time()) - tk["started_at"]) if tk["started_at"] else None
        error = job_message({"end": tk.get("end"), "message": tk["error"]}, {}, lang) if tk["error"] else ""
        parts.append(progress_html(f"{MSG['evaluating'][lang]}: {tk['model']}", tk["done"], tk["total"],
                                   status=tk["status"], elapsed=elapsed, error=error, lang=lang))
    return "".join(parts)


def check_form(models, shot_list, lim, tokens, lang: str) -> str | None:
    """The first problem of the form, as a notice; None when it can run."""
    if not models:
        return notice.error(MSG["no_ckpt"][lang], lang=lang)
    if not shot_list:
        return notice.error(MSG["no_shots"][lang], lang=lang)
    if lim and (lim != int(lim) or lim < 1):
        return notice.error(MSG["bad_limit"][lang], lang=lang)
    if tokens is None or not 1 <= tokens <= MAX_TOKENS:
        return notice.error(MSG["bad_tokens"][lang], lang=lang)
    return None


def start(state: AppState, models, shot_list, tmpl, data_path, lim, tokens, lang: str, method: str = "generate",
          request: gr.Request = None):
    """(status html, command, timer, form accordion). ``method``: generate (the paper's), loglik or both."""
    def fail(html_):
        return html_, gr.update(), gr.Timer(active=False), gr.update()
    problem = check_form(models, shot_list, lim, tokens, lang)
    if problem:
        return fail(problem)
    running = eval_jobs.latest_batch(state.workspace.subdir("jobs"))
    if running is not None and running["status"] in jobs.ACTIVE:
        return fail(notice.error(MSG["busy"][lang], MSG["busy_fix"][lang], lang))
    limit = int(lim) if lim else None
    try:
        data_path = page_paths.readable(data_path, state.workspace.root, "question file")
        n = len(load_questions(data_path, on_error="stop", limit=limit).questions)
        for m in models:
            ref = resolve_model(m, None, state.workspace, prepare=False)
            if method != "generate":        # an endpoint that gives no log-probs: said now, not in a job's log
                check_loglik(ref)
    except UserError as exc:
        return fail(error_html(exc, lang=lang))
    shot_t = tuple(sorted(int(s) for s in shot_list))
    tasks = []
    for m in models:
        out = eval_jobs.out_dir_for(evals_root(state.workspace), m, data_path, tmpl, int(tokens), method)
        cmd = eval_jobs.command_for(m, data_path, out, shots=shot_t, template=tmpl, limit=limit,
                                    max_new_tokens=int(tokens), workspace=state.workspace.root, method=method)
        tasks.append({"model": m, "out": str(out), "cmd": cmd, "total": n * len(shot_t)})
    job = eval_jobs.start_batch(state.workspace.subdir("jobs"), tasks)
    users.record(state.workspace.root, users.current_user(request), "evaluate", "compare",
                 models=list(models), data=str(data_path), shots=list(shot_t), method=method)
    return (batch_html(eval_jobs.batch_status(job.run_dir), lang), job.cli, gr.Timer(active=True),
            gr.update(open=False))


def add_server_model(state: AppState, spec: str, chosen, lang: str, request: gr.Request = None):
    """(notice, checkpoints): a model behind an OpenAI-compatible server (vLLM on a GPU node …) joins the
    checkpoints, registered in the workspace under its reference; nothing is sent to it yet."""
    spec = (spec or "").strip()
    if not spec.startswith(tuple(ENDPOINT_PREFIXES)):
        return notice.error(MSG["not_server"][lang], lang=lang), gr.update()
    try:
        ref = resolve_model(spec, None, state.workspace, prepare=False)
    except UserError as exc:
        return error_html(exc, lang=lang), gr.update()
    state.workspace.register_model(spec, "endpoint", spec, meta={"base_url": ref.base_url, "api": ref.api or "chat"})
    users.record(state.workspace.root, users.current_user(request), "admin", f"model:{spec}", change="registered endpoint")
    value = list(dict.fromkeys([*(chosen or []), spec]))
    return (notice.notice("ok", MSG["added"][lang].format(spec=spec)),
            gr.update(choices=state.model_choices(), value=value))


def import_predictions(state: AppState, predictions: str, data_path: str, label: str, current, lang: str,
                       request: gr.Request = None):
    """(notice, evaluations shown): published predictions (IgakuQA's GPT-4, ChatGPT, examinees'
    majority) or our own results.jsonl scored on a question file as a model would be
    (``pipelines.evaluation.imported``: seconds, in the request), then shown beside the checkpoints."""
    from pipelines.evaluation import evaluator
    if not (predictions or "").strip() or not (data_path or "").strip():
        return notice.error(MSG["need_files"][lang], lang=lang), gr.update()
    try:
        pred = page_paths.readable(predictions, state.workspace.root, "predictions file")
        data_path = page_paths.readable(data_path, state.workspace.root, "question file")
        out = eval_jobs.out_dir_for(evals_root(state.workspace), "imported-" + Path(pred).stem, data_path, "imported", 0)
        summary = evaluator.run(evaluator.EvalConfig(predictions=pred, data=data_path, out=str(out),
                                                     label=(label or "").strip() or None,
                                                     workspace=str(state.workspace.root)), workspace=state.workspace)
    except UserError as exc:
        return error_html(exc, lang=lang), gr.update()
    users.record(state.workspace.root, users.current_user(request), "import", f"evaluation:{out.resolve()}",
                 predictions=pred, data=data_path)
    text = MSG["imported"][lang].format(label=summary.get("label", ""), accuracy=summary.get("accuracy", 0.0),
                                        score=summary.get("score", "?"), total=summary.get("total", "?"),
                                        n=summary.get("n", "?"))
    value = list(dict.fromkeys([str(out.resolve()), *(current or [])]))
    return notice.notice("ok", text), gr.update(choices=evaluation_choices(state, lang), value=value)


def poll(state: AppState, lang: str, current):
    """(status html, timer, evaluations shown): finished evaluations are added to those shown."""
    found = eval_jobs.latest_batch(state.workspace.subdir("jobs"))
    if found is None:
        return "", gr.Timer(active=False), gr.update()
    b = eval_jobs.batch_status(found["run_dir"])
    if b["status"] in jobs.ACTIVE:
        return batch_html(b, lang), gr.Timer(active=True), gr.update()
    outs = [str(Path(tk["out"]).resolve()) for tk in b["tasks"] if tk["status"] == "finished"]
    value = list(dict.fromkeys(outs + [c for c in (current or []) if c not in outs])) if outs else current
    return batch_html(b, lang), gr.Timer(active=False), gr.update(choices=evaluation_choices(state, lang), value=value)


def stop_button(state: AppState):
    """Stop is offered only while a batch runs (an enabled Stop suggests something is running)."""
    found = eval_jobs.latest_batch(state.workspace.subdir("jobs"))
    return gr.update(interactive=found is not None and found["status"] in jobs.ACTIVE)


def stop(state: AppState, lang: str, request: gr.Request = None):
    found = eval_jobs.latest_batch(state.workspace.subdir("jobs"))
    if found is None:
        return notice.notice("info", MSG["nothing"][lang])
    if found["status"] in jobs.ACTIVE:   # the running evaluation saves its answers first: not in the request
        users.record_stop(state.workspace.root, users.current_user(request), found["run_dir"])
        threading.Thread(target=jobs.stop, args=(found["run_dir"],), kwargs={"grace_s": 60}, daemon=True).start()
    return batch_html(eval_jobs.batch_status(found["run_dir"]), lang)


def status_now(state: AppState, lang: str):
    """The latest batch's progress in ``lang`` (a language switch re-renders it); '' when none."""
    found = eval_jobs.latest_batch(state.workspace.subdir("jobs"))
    return batch_html(eval_jobs.batch_status(found["run_dir"]), lang) if found is not None else ""


def reattach(state: AppState, lang: str):
    """(status, command, timer, form) when the page opens: a batch still running (the page or the
    workbench was reopened) is shown and polled; the form stays folded while there are results."""
    form = gr.update(open=not state.workspace.evaluations())
    found = eval_jobs.latest_batch(state.workspace.subdir("jobs"))
    if found is None or found["status"] not in jobs.ACTIVE:
        return gr.update(), gr.update(), gr.Timer(active=False), form
    return (batch_html(eval_jobs.batch_status(found["run_dir"]), lang), found.get("cli", ""), gr.Timer(active=True),
            form)
