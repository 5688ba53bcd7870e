"""Compare tab: evaluate checkpoints (0/1-shot), read their answers side by side, send one
free-form prompt to all of them, and rate answers blind.

Evaluations run as ``python -m pipelines.evaluate`` jobs, one per checkpoint, in a batch that
outlives the page (pipelines.eval_jobs); a reopened page re-attaches to a running batch;
the side-by-side frame and answer cards live in ``components/``, the review store in
``pipelines/reviews.py``.
"""
from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from components import answer_card, side_by_side
from components.run_monitor import progress_html
from pipelines import eval_jobs, jobs, metrics, reviews
from pipelines.errors import UserError
from pipelines.eval_summary import EvalSummary
from pipelines.evaluate import EvalConfig, read_results
from pipelines.freeform import FORMATS as FREE_FORMATS
from pipelines.freeform import answer as freeform_answer
from pipelines.igakuqa import load_questions
from pipelines.prompts import available_templates
from workbench.i18n import Labels
from workbench.state import AppState, evals_root

L = {
    "intro": {"ja": "### チェックポイントの比較\nベースモデル（step 0）と学習済みアダプタを選び、0-shot / 1-shot で評価して回答を並べて確認します。",
              "en": "### Compare checkpoints\nChoose the base model (step 0) and trained adapters, evaluate them 0-shot / 1-shot, and read their answers side by side."},
    "checkpoints": {"ja": "チェックポイント", "en": "Checkpoints"},
    "refresh": {"ja": "↻ 一覧を更新", "en": "↻ Refresh lists"},
    "shots": {"ja": "ショット", "en": "Shots"},
    "template": {"ja": "プロンプト形式", "en": "Prompt template"},
    "data": {"ja": "問題ファイル（IgakuQA形式 JSONL）", "en": "Question file (IgakuQA JSONL)"},
    "limit": {"ja": "問題数の上限（0＝全問）", "en": "Question limit (0 = all)"},
    "max_new": {"ja": "最大生成トークン数", "en": "Max new tokens"},
    "run": {"ja": "▶ 評価を実行／読み込み", "en": "▶ Run / load evaluations"},
    "stop": {"ja": "■ 停止", "en": "■ Stop"},
    "command": {"ja": "実行されるコマンド", "en": "Commands run"},
    "shown": {"ja": "表示する評価結果", "en": "Evaluations shown"},
    "disagree": {"ja": "チェックポイント間で回答が分かれた問題のみ", "en": "Only questions where checkpoints disagree"},
    "wrong": {"ja": "誤答を含む問題のみ", "en": "Only questions answered wrongly"},
    "search": {"ja": "検索（問題文・選択肢・回答）", "en": "Search (question, choices, answers)"},
    "page": {"ja": "ページ", "en": "Page"},
    "summary": {"ja": "評価結果の概要（平均と95%信頼区間）", "en": "Summary (mean and 95% CI)"},
    "download": {"ja": "⬇ 並列表示をCSVで保存", "en": "⬇ Side-by-side as CSV"},
    "free_title": {"ja": "自由記述プロンプト（全チェックポイントに送信）", "en": "Free-form prompt (sent to every chosen checkpoint)"},
    "instruction": {"ja": "指示", "en": "Instruction"},
    "input": {"ja": "入力", "en": "Input"},
    "free_template": {"ja": "形式", "en": "Format"},
    "send": {"ja": "➤ 送信", "en": "➤ Send"},
    "blind_title": {"ja": "ブラインド評価（臨床医による回答評価）", "en": "Blind review (clinician rating)"},
    "reviewer": {"ja": "評価者名", "en": "Reviewer"},
    "start_review": {"ja": "評価を開始／再開", "en": "Start / resume review"},
    "correct": {"ja": "✓ 正しい", "en": "✓ Correct"},
    "partly": {"ja": "△ 一部正しい", "en": "△ Partly correct"},
    "wrong_btn": {"ja": "✗ 誤り", "en": "✗ Wrong"},
    "harmful": {"ja": "⚠ 有害", "en": "⚠ Harmful"},
    "skip": {"ja": "スキップ", "en": "Skip"},
    "review_summary": {"ja": "チェックポイント別の評価（評価後に開示）", "en": "Ratings per checkpoint (revealed after rating)"},
}
MSG = {
    "no_ckpt": {"ja": "チェックポイントを1つ以上選んでください。", "en": "Choose at least one checkpoint."},
    "no_shots": {"ja": "0-shot と 1-shot の少なくとも一方を選んでください。", "en": "Choose 0-shot, 1-shot or both."},
    "busy": {"ja": "評価を実行中です。終了を待つか停止してください。", "en": "An evaluation is running; wait for it or stop it."},
    "bad_limit": {"ja": "問題数の上限は0（全問）または正の整数にしてください。", "en": "The question limit must be 0 (all) or a positive whole number."},
    "bad_tokens": {"ja": "最大生成トークン数は1〜4096にしてください。", "en": "Max new tokens must be between 1 and 4096."},
    "none_shown": {"ja": "表示する評価結果がありません。上で評価を実行するか、既存の評価結果を選んでください。",
                   "en": "No evaluation shown yet. Run one above, or pick existing evaluations."},
    "no_match": {"ja": "条件に合う問題はありません。", "en": "No question matches these filters."},
    "count": {"ja": "{n} 問中 {k} 問を表示（{p}/{pages} ページ）", "en": "{k} of {n} questions ({p}/{pages})"},
    "empty_prompt": {"ja": "指示を入力してください。", "en": "Type an instruction first."},
    "loading": {"ja": "{name} を読み込み中…", "en": "Loading {name}…"},
    "no_reviewer": {"ja": "評価者名を入力してください（評価は名前ごとに保存されます）。",
                    "en": "Enter a reviewer name (ratings are stored per reviewer)."},
    "review_done": {"ja": "選択した評価結果の回答はすべて評価済みです。", "en": "Every answer in the chosen evaluations is rated."},
    "review_left": {"ja": "残り {n} 件", "en": "{n} left"},
    "answer": {"ja": "回答 #{k}", "en": "Answer #{k}"},
    "evaluating": {"ja": "評価", "en": "Evaluating"},
}
PER_PAGE = 10
FREE_DEFAULT = ("以下の疾患を持つ患者に行うべき治療について詳細に説明してください。", "深部静脈血栓症")


def notice(kind: str, text: str) -> str:
    colors = {"error": ("#ffebe9", "#cf222e"), "info": ("#ddf4ff", "#0969da"), "ok": ("#dafbe1", "#1a7f37")}
    bg, fg = colors.get(kind, colors["info"])
    import html
    return (f'<div class="notice {kind}" role="alert" style="background:{bg};border:1px solid {fg};'
            f'border-radius:8px;padding:8px 10px;white-space:pre-wrap;color:#1f2328">{html.escape(text)}</div>')


def user_error_text(exc: UserError) -> str:
    return exc.problem + (f"\n→ {exc.fix}" if exc.fix else "")


# -- data for the view (pure functions of the workspace) ------------------------------

def evaluation_choices(state: AppState) -> list[tuple[str, str]]:
    out = []
    for ev in reversed(state.workspace.evaluations()):
        cfg = ev.get("config") or {}
        summ = ev.get("summary") or {}
        n = max((s.get("n", 0) for s in (summ.get("by_shots") or {}).values()), default=0)
        shots = "/".join(f"{s}s" for s in (summ.get("by_shots") or {}))
        label = f"{ev['model']} · {cfg.get('template', '?')} · {Path(ev['data']).name} · n={n} {shots} ({ev['status']})"
        out.append((label, ev["out_dir"]))
    return out


def data_choices(state: AppState) -> list[tuple[str, str]]:
    sample = EvalConfig().data
    out = [(Path(sample).name + " (sample)", sample)]
    for d in state.workspace.datasets():
        if d["kind"] == "questions":
            out.append((f"{d['name']} ({d['version'][:8]})", d["path"]))
    return out


_QCACHE: dict[tuple[str, float], list[dict]] = {}


def questions_of(path: str) -> list[dict]:
    p = Path(path)
    if not p.exists():
        return []
    key = (str(p), p.stat().st_mtime)
    if key not in _QCACHE:
        try:
            qs = load_questions(p, on_error="skip").questions
        except UserError:
            qs = []
        _QCACHE[key] = [{**q.to_dict(), "kinki": q.kinki, "category": q.category} for q in qs]
    return _QCACHE[key]


def selected_runs(state: AppState, out_dirs: list[str]) -> tuple[dict[str, list[dict]], dict[str, str], list[dict]]:
    """(name -> result rows, name -> out_dir, questions) for the chosen evaluations."""
    evs = {e["out_dir"]: e for e in state.workspace.evaluations()}
    names: dict[str, str] = {}
    runs: dict[str, list[dict]] = {}
    questions: list[dict] = []
    seen_data = set()
    for d in out_dirs or []:
        ev = evs.get(d)
        if ev is None:
            continue
        name = ev["model"] + (f"+{Path(ev['adapter']).name}" if ev.get("adapter") else "")
        if name in names:
            name = f"{name} [{(ev.get('config') or {}).get('template', '?')}·{Path(ev['data']).stem}]"
        names[name] = d
        runs[name] = read_results(Path(d))
        if ev["data"] not in seen_data:
            seen_data.add(ev["data"])
            questions += questions_of(ev["data"])
    return runs, names, questions


def summary_headers(lang: str, shown: list[metrics.Metric] | None = None) -> list[str]:
    """Columns of the summary table; by default the metrics a generating evaluation has."""
    if shown is None:
        shown = [m for m in metrics.mean_metrics() if m.method == "generate"] + metrics.sum_metrics()
    return ["checkpoint", "shots", "n"] + [m.short[lang] for m in shown]


def summary_rows(state: AppState, names: dict[str, str], lang: str = "en") -> pd.DataFrame:
    """Per checkpoint and shot setting: n, each mean metric any of them has (mean [95% CI]),
    each exam total (registry order)."""
    evs = {e["out_dir"]: e for e in state.workspace.evaluations()}
    summaries = {name: EvalSummary.from_dict((evs.get(d) or {}).get("summary")) for name, d in names.items()}
    present = {k for summ in summaries.values() for s in summ.by_shots.values() for k in s.means}
    shown = [m for m in metrics.mean_metrics() if m.key in present] + metrics.sum_metrics()
    rows = []
    for name, summ in summaries.items():
        for shots, s in summ.by_shots.items():
            cells = []
            for m in shown:
                if m.aggregate == "sum":
                    total = s.exam.sums.get(m.key)
                    cells.append(f"{total:g}" if total is not None else "–")
                else:
                    v = s.means.get(m.key)
                    cells.append(f"{v.mean:.3f} [{v.ci_low:.2f}, {v.ci_high:.2f}]" if v else "–")
            rows.append([name, f"{shots}-shot", s.n, *cells])
    return pd.DataFrame(rows, columns=summary_headers(lang, shown))


def render_view(state: AppState, out_dirs, disagree, wrong, search, page_no, lang):
    runs, names, questions = selected_runs(state, out_dirs)
    if not runs:
        return notice("info", MSG["none_shown"][lang]), "", [], gr.update(value=None)
    items = side_by_side.build_items(questions, runs)
    shown = side_by_side.filter_items(items, disagreements=disagree, only_wrong=wrong, search=search or "")
    chunk, pages = side_by_side.page(shown, page_no or 1, PER_PAGE)
    present = {k for it in items for k in it.cells}
    cards = []
    for it in chunk:
        answers = [(f"{n} · {s}-shot", it.cells.get((n, s))) for n in runs for s in (0, 1) if (n, s) in present]
        cards.append(answer_card.question_card(it.question, answers, lang, metrics.badge_specs(lang)))
    count = MSG["count"][lang].format(n=len(items), k=len(shown), p=min(max(1, int(page_no or 1)), pages), pages=pages)
    html_out = "".join(cards) if cards else notice("info", MSG["no_match"][lang])
    export = state.workspace.subdir("exports") / "side_by_side.csv"
    side_by_side.items_frame(shown, list(runs), metrics=metrics.csv_keys()).to_csv(export, index=False)
    return html_out, count, summary_rows(state, names, lang), gr.update(value=str(export))


# -- the tab ------------------------------------------------------------------------------

def create_compare_tab(state: AppState, t: Labels, lang: gr.State) -> dict:
    d = EvalConfig()
    t.make(gr.Markdown, L["intro"])
    with gr.Row():
        with gr.Column(scale=3):
            ckpts = t.make(gr.CheckboxGroup, L["checkpoints"], choices=state.model_choices(), value=["default"],
                           elem_id="compare-checkpoints")
            refresh = t.make(gr.Button, L["refresh"], size="sm")
        with gr.Column(scale=2):
            shots = t.make(gr.CheckboxGroup, L["shots"], choices=[("0-shot", 0), ("1-shot", 1)], value=[0, 1],
                           elem_id="compare-shots")
            template = t.make(gr.Dropdown, L["template"], choices=available_templates(), value=d.template)
        with gr.Column(scale=3):
            data = t.make(gr.Dropdown, L["data"], choices=data_choices(state), value=d.data, allow_custom_value=True,
                          elem_id="compare-data")
            with gr.Row():
                limit = t.make(gr.Number, L["limit"], value=0, precision=0, minimum=0, elem_id="compare-limit")
                max_new = t.make(gr.Number, L["max_new"], value=d.max_new_tokens, precision=0,
                                 elem_id="compare-max-new")
    with gr.Row():
        run_btn = t.make(gr.Button, L["run"], variant="primary", elem_id="compare-run")
        stop_btn = t.make(gr.Button, L["stop"], variant="stop", elem_id="compare-stop")
    status = gr.HTML(elem_id="compare-status")
    with t.make(gr.Accordion, L["command"], open=False):
        command = gr.Code(language="shell", elem_id="compare-command")
    timer = gr.Timer(1.0, active=False)

    shown = t.make(gr.Dropdown, L["shown"], choices=evaluation_choices(state), multiselect=True,
                   elem_id="compare-shown")
    summary = t.make(gr.Dataframe, L["summary"], headers=summary_headers(t.lang), interactive=False,
                     elem_id="compare-summary")
    with gr.Row():
        disagree = t.make(gr.Checkbox, L["disagree"], value=False, elem_id="compare-disagree")
        wrong = t.make(gr.Checkbox, L["wrong"], value=False, elem_id="compare-wrong")
        search = t.make(gr.Textbox, L["search"], elem_id="compare-search")
        page_no = t.make(gr.Number, L["page"], value=1, precision=0, minimum=1, elem_id="compare-page")
    count = gr.Markdown(elem_id="compare-count")
    cards = gr.HTML(elem_id="compare-cards")
    download = t.make(gr.DownloadButton, L["download"], size="sm")

    with t.make(gr.Accordion, L["free_title"], open=False, elem_id="free-accordion"):
        with gr.Row():
            instruction = t.make(gr.Textbox, L["instruction"], value=FREE_DEFAULT[0], lines=2, scale=3,
                                 elem_id="free-instruction")
            free_input = t.make(gr.Textbox, L["input"], value=FREE_DEFAULT[1], lines=2, scale=2,
                                elem_id="free-input")
        with gr.Row():
            free_fmt = t.make(gr.Dropdown, L["free_template"], choices=FREE_FORMATS, value="ja", scale=1)
            free_tokens = t.make(gr.Number, L["max_new"], value=d.max_new_tokens, precision=0, scale=1,
                                 elem_id="free-tokens")
            send = t.make(gr.Button, L["send"], variant="primary", scale=1, elem_id="free-send")
        free_out = gr.HTML(elem_id="free-out")

    with t.make(gr.Accordion, L["blind_title"], open=False, elem_id="blind-accordion"):
        with gr.Row():
            reviewer = t.make(gr.Textbox, L["reviewer"], scale=2, elem_id="blind-reviewer")
            start_review = t.make(gr.Button, L["start_review"], scale=1, elem_id="blind-start")
        review_card = gr.HTML(elem_id="blind-card")
        with gr.Row():
            rate_btns = [t.make(gr.Button, L[k], elem_id=f"blind-{r}")
                         for k, r in (("correct", "correct"), ("partly", "partly"), ("wrong_btn", "wrong"),
                                      ("harmful", "harmful"))]
            skip_btn = t.make(gr.Button, L["skip"], elem_id="blind-skip")
        review_summary = t.make(gr.Dataframe, L["review_summary"], interactive=False, elem_id="blind-summary")
    review_queue = gr.State([])

    # -- wiring ------------------------------------------------------------------------
    view_inputs = [shown, disagree, wrong, search, page_no, lang]
    view_outputs = [cards, count, summary, download]

    def view(*args):
        return render_view(state, *args)

    def do_refresh(current):
        return (gr.update(choices=state.model_choices()), gr.update(choices=evaluation_choices(state)),
                gr.update(choices=data_choices(state)))

    refresh.click(do_refresh, [ckpts], [ckpts, shown, data])

    def start(models, shot_list, tmpl, data_path, lim, tokens, lang_):
        def fail(msg):
            return notice("error", msg), gr.update(), gr.Timer(active=False)
        if not models:
            return fail(MSG["no_ckpt"][lang_])
        if not shot_list:
            return fail(MSG["no_shots"][lang_])
        running = eval_jobs.latest_batch(state.workspace.subdir("jobs"))
        if running is not None and running["status"] in jobs.ACTIVE:
            return fail(MSG["busy"][lang_])
        lim = lim or None
        if lim is not None and (lim != int(lim) or lim < 1):
            return fail(MSG["bad_limit"][lang_])
        if tokens is None or not 1 <= tokens <= 4096:
            return fail(MSG["bad_tokens"][lang_])
        try:
            n = len(load_questions(data_path, on_error="stop", limit=int(lim) if lim else None).questions)
            from pipelines.models import resolve_model
            for m in models:
                resolve_model(m, None, state.workspace, prepare=False)
        except UserError as exc:
            return fail(user_error_text(exc))
        shot_t = tuple(sorted(int(s) for s in shot_list))
        tasks = []
        for m in models:
            out = eval_jobs.out_dir_for(evals_root(state.workspace), m, data_path, tmpl, int(tokens))
            cmd = eval_jobs.command_for(m, data_path, out, shots=shot_t, template=tmpl, limit=int(lim) if lim else None,
                                        max_new_tokens=int(tokens), workspace=state.workspace.root)
            tasks.append({"model": m, "out": str(out), "cmd": cmd, "total": n * len(shot_t)})
        job = eval_jobs.start_batch(state.workspace.subdir("jobs"), tasks)
        return batch_html(eval_jobs.batch_status(job.run_dir), lang_), job.cli, gr.Timer(active=True)

    def poll(lang_, current):
        found = eval_jobs.latest_batch(state.workspace.subdir("jobs"))
        if found is None:
            return "", gr.Timer(active=False), gr.update()
        b = eval_jobs.batch_status(found["run_dir"])
        if b["status"] in jobs.ACTIVE:
            return batch_html(b, lang_), gr.Timer(active=True), gr.update()
        outs = [str(Path(tk["out"]).resolve()) for tk in b["tasks"] if tk["status"] == "finished"]
        value = list(dict.fromkeys(outs + [c for c in (current or []) if c not in outs])) if outs else current
        return batch_html(b, lang_), gr.Timer(active=False), gr.update(choices=evaluation_choices(state), value=value)

    run_btn.click(start, [ckpts, shots, template, data, limit, max_new, lang], [status, command, timer])
    timer.tick(poll, [lang, shown], [status, timer, shown])

    def stop(lang_):
        found = eval_jobs.latest_batch(state.workspace.subdir("jobs"))
        if found is None:
            return ""
        if found["status"] in jobs.ACTIVE:   # the running evaluation saves its answers first: not in the request
            threading.Thread(target=jobs.stop, args=(found["run_dir"],), kwargs={"grace_s": 60}, daemon=True).start()
        return batch_html(eval_jobs.batch_status(found["run_dir"]), lang_)

    stop_btn.click(stop, [lang], [status])
    shown.change(view, view_inputs, view_outputs)
    for c in (disagree, wrong, page_no):
        c.change(view, view_inputs, view_outputs)
    search.submit(view, view_inputs, view_outputs)

    def ask(models, instr, inp, fmt, tokens, lang_):
        from components.answer_card import free_answer_card, free_answers
        if not models:
            yield notice("error", MSG["no_ckpt"][lang_])
            return
        if not (instr or "").strip():
            yield notice("error", MSG["empty_prompt"][lang_])
            return
        if tokens is None or not 1 <= tokens <= 4096:
            yield notice("error", MSG["bad_tokens"][lang_])
            return
        done_cards: list[str] = []
        for m in models:
            yield free_answers(done_cards + [free_answer_card(m, MSG["loading"][lang_].format(name=m))])
            done_cards.append(free_answer(state, m, instr, inp or "", fmt, int(tokens)))
        yield free_answers(done_cards)

    send.click(ask, [ckpts, instruction, free_input, free_fmt, free_tokens, lang], [free_out])

    # blind review
    def begin(out_dirs, who, lang_):
        if not (who or "").strip():
            return [], notice("error", MSG["no_reviewer"][lang_]), gr.update()
        runs, names, _ = selected_runs(state, out_dirs)
        if not runs:
            return [], notice("info", MSG["none_shown"][lang_]), gr.update()
        store = reviews.ReviewStore(state.workspace)
        cands = [reviews.Candidate(names[n], n, r["problem_id"], r["shots"], r.get("response") or "",
                                        r.get("accuracy")) for n, rows in runs.items() for r in rows]
        seed = int(hashlib.sha1(who.strip().encode()).hexdigest()[:8], 16)
        q = reviews.queue(cands, store.rated_keys(who), seed)
        return q, review_html(q, lang_), reviews.summarize(store.ratings())

    def review_html(q, lang_):
        if not q:
            return notice("ok", MSG["review_done"][lang_])
        c = q[0]
        evs = {e["out_dir"]: e for e in state.workspace.evaluations()}
        qs = {x["problem_id"]: x for x in questions_of((evs.get(c.eval_dir) or {}).get("data", ""))}
        question = qs.get(c.problem_id, {"problem_id": c.problem_id, "problem_text": "", "choices": []})
        k = int(hashlib.sha1(f"{c.eval_dir}{c.problem_id}{c.shots}".encode()).hexdigest()[:4], 16) % 1000
        head = f'<div style="color:#57606a">{MSG["review_left"][lang_].format(n=len(q))}</div>'
        return (head + answer_card.question_card({**question, "problem_id": question["problem_id"]}, [], lang_)
                + answer_card.free_answers([answer_card.free_answer_card(MSG["answer"][lang_].format(k=k),
                                                                         c.response, f"{c.shots}-shot")]))

    def rate(rating):
        def handler(q, who, lang_):
            if not q:
                return q, review_html(q, lang_), gr.update()
            store = reviews.ReviewStore(state.workspace)
            if rating:
                store.rate(q[0], rating, who or "")
            q = q[1:]
            return q, review_html(q, lang_), reviews.summarize(store.ratings())
        return handler

    start_review.click(begin, [shown, reviewer, lang], [review_queue, review_card, review_summary])
    for btn, r in zip(rate_btns, reviews.RATINGS):
        btn.click(rate(r), [review_queue, reviewer, lang], [review_queue, review_card, review_summary])
    skip_btn.click(rate(None), [review_queue, reviewer, lang], [review_queue, review_card, review_summary])

    return {"checkpoints": ckpts, "shown": shown, "view": (view, view_inputs, view_outputs), "status": status,
            "on_load": (lambda lang_: reattach(state, lang_), [lang], [status, command, timer])}


def batch_html(batch: dict, lang: str) -> str:
    """One progress bar per checkpoint of an evaluation batch (``eval_jobs.batch_status``)."""
    parts = []
    for tk in batch["tasks"]:
        elapsed = ((tk["ended_at"] or time.time()) - tk["started_at"]) if tk["started_at"] else None
        parts.append(progress_html(f"{MSG['evaluating'][lang]}: {tk['model']}", tk["done"], tk["total"],
                                   status=tk["status"], elapsed=elapsed, error=tk["error"]))
    return "".join(parts)


def reattach(state: AppState, lang: str):
    """A batch still running when the page (or the workbench) was reopened: show it, poll it."""
    found = eval_jobs.latest_batch(state.workspace.subdir("jobs"))
    if found is None or found["status"] not in jobs.ACTIVE:
        return gr.update(), gr.update(), gr.Timer(active=False)
    return batch_html(eval_jobs.batch_status(found["run_dir"]), lang), found.get("cli", ""), gr.Timer(active=True)


def free_answer(state: AppState, spec: str, instruction: str, inp: str, fmt: str, max_new_tokens: int) -> str:
    """One checkpoint's answer to a free-form prompt, as an answer card (errors shown in it)."""
    slot = state.backend(spec)
    if slot.status != "ready":
        return answer_card.free_answer_card(spec, slot.error or slot.status, "error")
    try:
        comp = freeform_answer(slot.backend, instruction, inp, fmt, max_new_tokens)
    except UserError as exc:
        return answer_card.free_answer_card(spec, user_error_text(exc), "error")
    info = f"{comp.n_tokens} tok · {comp.seconds:.1f}s · {slot.backend.describe().where}"
    return answer_card.free_answer_card(spec, comp.text, info)
