"""Compare tab: evaluate checkpoints (0/1-shot), read their answers side by side, send one
free-form prompt to all of them, and rate answers blind.

Layout and wiring only, plus the free-form prompt's handler; the handlers live next door and
take the app state first (wired with ``workbench.wiring.bind``, tested without a browser):
evaluation batches in ``compare_eval`` (``jmedlora evaluate`` jobs that outlive the
page), what is shown of finished evaluations in ``compare_view``, the questions that flip
between two of them in ``compare_flips``, the blind review in ``compare_review`` (its store is
``pipelines/evaluation/reviews.py``).
"""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from components import answer_card
from components.notice import error as error_notice
from components.notice import notice  # noqa: F401  (tab_data and tab_train import it from here; use components.notice)
from pipelines.core.errors import UserError
from pipelines.evaluation import reviews
from pipelines.evaluation.evaluator import EvalConfig
from pipelines.evaluation.freeform import FORMATS as FREE_FORMATS
from pipelines.evaluation.freeform import answer as freeform_answer
from pipelines.tasks.prompts import available_templates
from workbench import compare_eval, compare_flips, compare_nearest, compare_review, compare_view, users
from workbench.compare_view import data_choices, evaluation_choices, summary_headers, summary_rows  # noqa: F401
from workbench.field_errors import message
from workbench.i18n import Labels
from workbench.state import AppState
from workbench.wiring import bind

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
    "download": {"ja": "⬇ 表示中の問題をCSVで保存", "en": "⬇ Shown questions as CSV"},
    "free_title": {"ja": "自由記述プロンプト（全チェックポイントに送信）", "en": "Free-form prompt (sent to every chosen checkpoint)"},
    "instruction": {"ja": "指示", "en": "Instruction"},
    "input": {"ja": "入力", "en": "Input"},
    "free_template": {"ja": "形式", "en": "Format"},
    "send": {"ja": "➤ 送信", "en": "➤ Send"},
    "blind_title": {"ja": "ブラインド評価（臨床医による回答評価）", "en": "Blind review (clinician rating)"},
    "start_review": {"ja": "評価を開始／再開", "en": "Start / resume review"},
    "correct": {"ja": "✓ 正しい", "en": "✓ Correct"},
    "partly": {"ja": "△ 一部正しい", "en": "△ Partly correct"},
    "wrong_btn": {"ja": "✗ 誤り", "en": "✗ Wrong"},
    "harmful": {"ja": "⚠ 有害", "en": "⚠ Harmful"},
    "skip": {"ja": "スキップ", "en": "Skip"},
    "review_summary": {"ja": "チェックポイント別の評価", "en": "Ratings per checkpoint"},
    "back": {"ja": "← 直前の評価を変更", "en": "← Change the previous rating"},
    "reveal": {"ja": "結果を開示（管理者）", "en": "Reveal results (administrator)"},
    "form": {"ja": "評価の設定", "en": "Evaluation settings"},
    "method": {"ja": "採点方法", "en": "Scoring method"},
    "method_generate": {"ja": "生成（論文の方法）", "en": "Generate (the paper's)"},
    "method_loglik": {"ja": "対数尤度", "en": "Log-likelihood"},
    "method_both": {"ja": "両方", "en": "Both"},
    "server_model": {"ja": "サーバーのモデルを追加（vLLM など）", "en": "Add a server model (vLLM …)"},
    "import_title": {"ja": "公表された予測を取り込む（GPT-4・ChatGPT・受験者多数派など、API キー不要）",
                     "en": "Import published predictions (GPT-4, ChatGPT, examinees' majority …; no API key)"},
    "import_pred": {"ja": "予測ファイル（IgakuQA の baseline_results/…jsonl、または results.jsonl）",
                    "en": "Predictions file (IgakuQA's baseline_results/…jsonl, or a results.jsonl)"},
    "import_data": {"ja": "その問題ファイル（IgakuQA形式 JSONL）", "en": "Its question file (IgakuQA JSONL)"},
    "import_label": {"ja": "表示名（空欄ならファイル名から）", "en": "Label (empty: from the file name)"},
    "import_btn": {"ja": "⬇ 取り込んで表示", "en": "⬇ Import and show"},
    "add_server": {"ja": "＋ 追加", "en": "+ Add"},
}
MSG = {
    "empty_prompt": {"ja": "「指示」を入力してください。", "en": "Type an instruction first."},
    "loading": {"ja": "{name} を読み込み中…", "en": "Loading {name}…"},
    "no_ckpt": compare_eval.MSG["no_ckpt"],
    "bad_tokens": compare_eval.MSG["bad_tokens"],
}


def method_choices(lang: str) -> list[tuple[str, str]]:
    return [(L[f"method_{m}"][lang], m) for m in ("generate", "loglik", "both")]


FREE_DEFAULT = ("以下の疾患を持つ患者に行うべき治療について詳細に説明してください。", "深部静脈血栓症")


def free_answer(state: AppState, spec: str, instruction: str, inp: str, fmt: str, max_new_tokens: int,
                lang: str = "ja") -> str:
    """One checkpoint's answer to a free-form prompt, as an answer card (a problem as a notice)."""
    slot = state.backend(spec)
    if slot.status == "failed" and slot.failure is not None:
        problem, fix = message(slot.failure, {}, lang)
        return error_notice(f"{spec}: {problem}", fix, lang)
    if slot.status != "ready":
        return error_notice(f"{spec}: {slot.error or slot.status}", lang=lang)
    try:
        comp = freeform_answer(slot.backend, instruction, inp, fmt, max_new_tokens)
    except UserError as exc:
        problem, fix = message(exc, {}, lang)
        return error_notice(f"{spec}: {problem}", fix, lang)
    info = f"{comp.n_tokens} tok · {comp.seconds:.1f}s · {slot.backend.describe().where}"
    return answer_card.free_answer_card(spec, comp.text, info, comp.info.get("cut_at_tokens"), lang)


def ask(state: AppState, models, instr, inp, fmt, tokens, lang: str, request: gr.Request = None):
    """The free-form prompt to every chosen checkpoint, one after another (cards stream in)."""
    if not models:
        yield error_notice(MSG["no_ckpt"][lang], lang=lang)
        return
    if not (instr or "").strip():
        yield error_notice(MSG["empty_prompt"][lang], lang=lang)
        return
    if tokens is None or not 1 <= tokens <= compare_eval.MAX_TOKENS:
        yield error_notice(MSG["bad_tokens"][lang], lang=lang)
        return
    users.record(state.workspace.root, users.current_user(request), "generate", "free-form", models=list(models))
    done: list[str] = []
    for m in models:
        yield answer_card.free_answers(done + [answer_card.free_answer_card(m, MSG["loading"][lang].format(name=m))])
        done.append(free_answer(state, m, instr, inp or "", fmt, int(tokens), lang))
    yield answer_card.free_answers(done)


# -- the tab: its sections, then the tab as their outline and wiring ------------------------
# Each section builds its part of the page in place and returns, by name, the components the
# wiring needs (the order of the calls is the order on the page).

def evaluation_form(state: AppState, t: Labels, d: EvalConfig) -> SimpleNamespace:
    """What to evaluate: checkpoints, shots, prompt template, question file and limits."""
    # Open only while there is nothing to look at: afterwards the results come first on the screen.
    with t.make(gr.Accordion, L["form"], open=not state.workspace.evaluations(), elem_id="compare-form") as form:
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
                data = t.make(gr.Dropdown, L["data"], choices=data_choices(state, t.lang), value=d.data,
                              allow_custom_value=True, elem_id="compare-data")
                with gr.Row():
                    limit = t.make(gr.Number, L["limit"], value=0, precision=0, minimum=0, elem_id="compare-limit")
                    max_new = t.make(gr.Number, L["max_new"], value=d.max_new_tokens, precision=0,
                                     elem_id="compare-max-new")
                method = t.make(gr.Radio, L["method"], choices=method_choices(t.lang), value="generate", elem_id="compare-method")
        with gr.Row():
            server = t.make(gr.Textbox, L["server_model"], placeholder="openai-completions:MODEL@http://gpu-node:8000/v1",
                            scale=4, elem_id="compare-server-model")
            add_server = t.make(gr.Button, L["add_server"], size="sm", scale=1, elem_id="compare-add-server")
        server_msg = gr.HTML(elem_id="compare-server-msg")
    return SimpleNamespace(form=form, ckpts=ckpts, refresh=refresh, shots=shots, template=template, data=data,
                           limit=limit, max_new=max_new, method=method, server=server, add_server=add_server,
                           server_msg=server_msg)


def results_view(state: AppState, t: Labels) -> SimpleNamespace:
    """The finished evaluations shown: their summary, filters, answer cards and CSV download."""
    shown = t.make(gr.Dropdown, L["shown"], choices=evaluation_choices(state, t.lang), multiselect=True,
                   elem_id="compare-shown")
    summary = t.make(gr.Dataframe, L["summary"], headers=summary_headers(t.lang), interactive=False,
                     elem_id="compare-summary")
    with gr.Row():
        disagree = t.make(gr.Checkbox, L["disagree"], value=False, elem_id="compare-disagree")
        wrong = t.make(gr.Checkbox, L["wrong"], value=False, elem_id="compare-wrong")
        search = t.make(gr.Textbox, L["search"], elem_id="compare-search")
        page_no = t.make(gr.Number, L["page"], value=1, precision=0, minimum=1, elem_id="compare-page")
    with gr.Row():
        train = t.make(gr.Textbox, compare_nearest.L["train"], info=compare_nearest.L["train_info"], scale=4,
                       elem_id="compare-train")
        show_near = t.make(gr.Button, compare_nearest.L["show"], size="sm", scale=1, elem_id="compare-train-show")
    train_msg = gr.HTML(elem_id="compare-train-msg")
    count = gr.Markdown(elem_id="compare-count")
    cards = gr.HTML(elem_id="compare-cards")
    download = t.make(gr.DownloadButton, L["download"], size="sm", elem_id="compare-download")
    return SimpleNamespace(shown=shown, summary=summary, disagree=disagree, wrong=wrong, search=search,
                           page_no=page_no, count=count, cards=cards, download=download, train=train,
                           show_near=show_near, train_msg=train_msg)


def flips_section(t: Labels) -> SimpleNamespace:
    """Two of the shown evaluations (each at a shot setting): the questions that flip between them."""
    t.make(gr.Markdown, compare_flips.L["title"], elem_id="flip-title")
    with gr.Row():
        a = t.make(gr.Dropdown, compare_flips.L["a"], choices=[], elem_id="flip-a")
        b = t.make(gr.Dropdown, compare_flips.L["b"], choices=[], elem_id="flip-b")
    summary = gr.HTML(elem_id="flip-counts-area")
    grid = t.make(gr.Dataframe, compare_flips.L["grid"], interactive=False, wrap=False, max_height=420,
                  elem_id="flip-grid")
    cards = gr.HTML(elem_id="flip-cards")
    return SimpleNamespace(a=a, b=b, summary=summary, grid=grid, cards=cards)


def free_form_section(t: Labels, d: EvalConfig) -> SimpleNamespace:
    """One free-form prompt, sent to every chosen checkpoint."""
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
    return SimpleNamespace(instruction=instruction, input=free_input, fmt=free_fmt, tokens=free_tokens, send=send,
                           out=free_out)


def import_section(t: Labels) -> SimpleNamespace:
    """Published predictions scored as a model would be, shown beside the checkpoints."""
    with t.make(gr.Accordion, L["import_title"], open=False, elem_id="import-accordion"):
        with gr.Row():
            pred = t.make(gr.Textbox, L["import_pred"], scale=3, elem_id="import-pred")
            data = t.make(gr.Textbox, L["import_data"], scale=3, elem_id="import-data")
            label = t.make(gr.Textbox, L["import_label"], scale=2, elem_id="import-label")
        btn = t.make(gr.Button, L["import_btn"], size="sm", elem_id="import-run")
        msg = gr.HTML(elem_id="import-msg")
    return SimpleNamespace(pred=pred, data=data, label=label, btn=btn, msg=msg)


def blind_review_section(t: Labels) -> SimpleNamespace:
    """The blind review: one answer at a time, rated without knowing its checkpoint."""
    with t.make(gr.Accordion, L["blind_title"], open=False, elem_id="blind-accordion"):
        with gr.Row():
            start_review = t.make(gr.Button, L["start_review"], elem_id="blind-start")
            back_btn = t.make(gr.Button, L["back"], size="sm", elem_id="blind-back")
            reveal_btn = t.make(gr.Button, L["reveal"], size="sm", elem_id="blind-reveal")
        review_msg = gr.HTML(elem_id="blind-msg")
        review_card = gr.HTML(elem_id="blind-card")
        with gr.Row():
            rate_btns = [t.make(gr.Button, L[k], elem_id=f"blind-{r}")
                         for k, r in (("correct", "correct"), ("partly", "partly"), ("wrong_btn", "wrong"),
                                      ("harmful", "harmful"))]
            skip_btn = t.make(gr.Button, L["skip"], elem_id="blind-skip")
        review_summary = t.make(gr.Dataframe, L["review_summary"], interactive=False, visible=False,
                                elem_id="blind-summary")
    return SimpleNamespace(start=start_review, back=back_btn, reveal=reveal_btn, msg=review_msg, card=review_card,
                           rate_btns=rate_btns, skip=skip_btn, summary=review_summary)


def create_compare_tab(state: AppState, t: Labels, lang: gr.State) -> dict:
    d = EvalConfig()
    t.make(gr.Markdown, L["intro"])
    settings = evaluation_form(state, t, d)
    with gr.Row():
        run_btn = t.make(gr.Button, L["run"], variant="primary", elem_id="compare-run")
        stop_btn = t.make(gr.Button, L["stop"], variant="stop", elem_id="compare-stop",
                          interactive=compare_eval.stop_button(state)["interactive"])
    status = gr.HTML(elem_id="compare-status")
    with t.make(gr.Accordion, L["command"], open=False):
        command = gr.Code(language="shell", elem_id="compare-command")
    timer = gr.Timer(1.0, active=False)
    imports = import_section(t)
    results = results_view(state, t)
    flips = flips_section(t)
    free = free_form_section(t, d)
    review = blind_review_section(t)
    review_queue, review_done = gr.State([]), gr.State([])

    # -- wiring ------------------------------------------------------------------------
    ckpts, shown, form = settings.ckpts, results.shown, settings.form
    view = bind(compare_view.render_view, state)
    view_inputs = [shown, results.disagree, results.wrong, results.search, results.page_no, lang, results.train]
    view_outputs = [results.cards, results.count, results.summary, results.download]

    def lists(lang_):
        return (gr.update(choices=state.model_choices()), gr.update(choices=evaluation_choices(state, lang_)),
                gr.update(choices=data_choices(state, lang_)))

    settings.refresh.click(lists, [lang], [ckpts, shown, settings.data])
    run_btn.click(bind(compare_eval.start, state),
                  [ckpts, settings.shots, settings.template, settings.data, settings.limit, settings.max_new, lang,
                   settings.method], [status, command, timer, form])
    settings.add_server.click(bind(compare_eval.add_server_model, state), [settings.server, ckpts, lang],
                              [settings.server_msg, ckpts])
    imports.btn.click(bind(compare_eval.import_predictions, state), [imports.pred, imports.data, imports.label, shown, lang],
                      [imports.msg, shown]).then(bind(compare_eval.stop_button, state), None, [stop_btn])
    # Polls show no progress: a status announcement every second is noise (and a screen reader reads it).
    timer.tick(bind(compare_eval.poll, state), [lang, shown], [status, timer, shown], show_progress="hidden").then(
        bind(compare_eval.stop_button, state), None, [stop_btn], show_progress="hidden")
    stop_btn.click(bind(compare_eval.stop, state), [lang], [status])
    shown.change(view, view_inputs, view_outputs)
    for c in (results.disagree, results.wrong, results.page_no):
        c.change(view, view_inputs, view_outputs)
    results.search.submit(view, view_inputs, view_outputs)
    near = (bind(compare_nearest.check, state), [results.train, lang], [results.train_msg])
    for ev in (results.train.submit, results.show_near.click):    # the index is built here, once per file
        ev(*near).then(view, view_inputs, view_outputs)
    flip = (bind(compare_flips.flip_view, state), [shown, flips.a, flips.b, lang], [flips.summary, flips.grid, flips.cards])
    shown.change(bind(compare_flips.pair_choices, state), [shown, flips.a, flips.b, lang], [flips.a, flips.b]).then(*flip)
    for c in (flips.a, flips.b):
        c.input(*flip)                     # the user's choice only: the pair set by ``shown`` is already shown
    lang.change(*flip)
    flips.grid.select(bind(compare_flips.open_question, state), [shown, flips.grid, lang], [flips.cards])
    # A language switch re-renders what the handlers wrote: cards, summary, progress, choices.
    lang.change(view, view_inputs, view_outputs).then(bind(compare_eval.status_now, state), [lang], [status])
    lang.change(lambda lang_: (*lists(lang_)[1:], gr.update(choices=method_choices(lang_))), [lang],
                [shown, settings.data, settings.method])

    free.send.click(bind(ask, state), [ckpts, free.instruction, free.input, free.fmt, free.tokens, lang], [free.out])

    review_in = [review_queue, review_done, shown, lang]
    review_out = [review_queue, review_done, review.card, review.summary, review.msg]
    review.start.click(bind(compare_review.begin, state), [shown, lang], review_out)
    for btn, r in zip(review.rate_btns, reviews.RATINGS):
        btn.click(bind(compare_review.rate, state, r), review_in, review_out)
    review.skip.click(bind(compare_review.rate, state, None), review_in, review_out)
    review.back.click(bind(compare_review.back, state), review_in, review_out)
    review.reveal.click(bind(compare_review.reveal, state), [shown, lang], [review.summary, review.msg])

    return {"checkpoints": ckpts, "shown": shown, "view": (view, view_inputs, view_outputs), "status": status,
            "on_load": (bind(compare_eval.reattach, state), [lang], [status, command, timer, form])}
