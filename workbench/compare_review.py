"""The Compare tab's blind review: the logged-in user rates the answers of the chosen
evaluations one at a time, in a shuffled order, without knowing which checkpoint wrote them.

Blind until the end: the per-checkpoint summary stays hidden until the reviewer has rated
every answer of the batch (a summary that moved after each rating named the checkpoint of the
answer just rated), or until an administrator reveals it. A rating can be changed ("← change
the previous rating"); the store keeps every earlier rating (``pipelines/evaluation/reviews.py``).

The queue and the answers already rated in this session live in ``gr.State`` as lists of
``reviews.Candidate``; everything else is read from the workspace.
"""
from __future__ import annotations

import hashlib

import gradio as gr
import pandas as pd

from components import answer_card, notice
from pipelines.evaluation import reviews
from workbench import users
from workbench.compare_view import questions_of, selected_runs
from workbench.state import AppState

MSG = {
    "none_shown": {"ja": "評価する結果がありません。上の「表示する評価結果」で評価結果を選んでください。",
                   "en": "Nothing to review. Choose evaluations under \"Evaluations shown\" above."},
    "left": {"ja": "残り {n} 件（評価者: {who}）", "en": "{n} left (reviewer: {who})"},
    "answer": {"ja": "回答 #{k}", "en": "Answer #{k}"},
    "current": {"ja": "現在の評価: {r}（変更すると以前の評価は履歴に残ります）",
                "en": "Current rating: {r} (a change keeps the earlier one in the history)"},
    "done": {"ja": "このバッチの回答はすべて評価しました。チェックポイント別の結果を下に表示します。",
             "en": "You have rated every answer of this batch. The results per checkpoint are below."},
    "hidden": {"ja": "チェックポイント別の結果は、バッチの全回答を評価し終えるまで表示しません（ブラインドを保つため）。",
               "en": "The results per checkpoint stay hidden until you have rated every answer of the batch (to keep it blind)."},
    "nothing_back": {"ja": "変更できる直前の評価はありません。", "en": "No earlier rating to change."},
    "not_admin": {"ja": "結果の開示は管理者だけができます。", "en": "Only an administrator can reveal the results."},
    "not_admin_fix": {"ja": "バッチの全回答を評価すると、自分の結果が表示されます。",
                      "en": "Rate every answer of the batch to see your own results."},
    "revealed": {"ja": "管理者として全評価者の結果を開示しました。", "en": "Revealed as administrator: every reviewer's results."},
}
RATING = {"correct": {"ja": "正しい", "en": "correct"}, "partly": {"ja": "一部正しい", "en": "partly correct"},
          "wrong": {"ja": "誤り", "en": "wrong"}, "harmful": {"ja": "有害", "en": "harmful"}}
HEAD = {"checkpoint": {"ja": "チェックポイント", "en": "checkpoint"}, "n": {"ja": "評価数", "en": "n"}}


def candidates(state: AppState, out_dirs: list[str]) -> list[reviews.Candidate]:
    runs, names, _ = selected_runs(state, out_dirs)
    return [reviews.Candidate(names[n], n, r["problem_id"], r["shots"], r.get("response") or "", r.get("accuracy"))
            for n, rows in runs.items() for r in rows]


def summary_frame(ratings: list[dict], lang: str) -> pd.DataFrame:
    """``reviews.summarize`` with headers in the page language."""
    df = reviews.summarize(ratings)
    names = {"checkpoint": HEAD["checkpoint"][lang], "n": HEAD["n"][lang],
             **{f"{r} %": f"{RATING[r][lang]} %" for r in reviews.RATINGS}}
    return df.rename(columns=names)


def card(state: AppState, queue: list, who: str, lang: str) -> str:
    """The next answer to rate (no checkpoint name, no metric), or the end-of-batch notice."""
    if not queue:
        return notice.notice("ok", MSG["done"][lang])
    c = queue[0]
    evs = {e["out_dir"]: e for e in state.workspace.evaluations()}
    qs = {x["problem_id"]: x for x in questions_of((evs.get(c.eval_dir) or {}).get("data", ""))}
    question = qs.get(c.problem_id, {"problem_id": c.problem_id, "problem_text": "", "choices": []})
    k = int(hashlib.sha1(f"{c.eval_dir}{c.problem_id}{c.shots}".encode()).hexdigest()[:4], 16) % 1000
    head = f'<div class="blind-left" style="color:#57606a">{MSG["left"][lang].format(n=len(queue), who=who)}</div>'
    current = reviews.ReviewStore(state.workspace).rating_of(c, who)
    if current:
        head += notice.notice("info", MSG["current"][lang].format(r=RATING[current][lang]))
    return (head + answer_card.question_card(question, [], lang)
            + answer_card.free_answers([answer_card.free_answer_card(MSG["answer"][lang].format(k=k),
                                                                     c.response, f"{c.shots}-shot")]))


def _after(state: AppState, out_dirs, queue: list, done: list, who: str, lang: str):
    """(queue, done, card, summary): the summary only once the batch is rated through."""
    store = reviews.ReviewStore(state.workspace)
    cands = candidates(state, out_dirs)
    if reviews.batch_done(cands, store.rated_keys(who)):
        mine = store.ratings(who, eval_dirs=list({c.eval_dir for c in cands}))
        return queue, done, card(state, [], who, lang), gr.update(value=summary_frame(mine, lang), visible=True)
    return queue, done, card(state, queue, who, lang), gr.update(value=None, visible=False)


def begin(state: AppState, out_dirs, lang: str, request: gr.Request = None):
    """(queue, done, card, summary, message) for the logged-in reviewer."""
    who = users.current_user(request)
    cands = candidates(state, out_dirs)
    if not cands:
        return [], [], notice.notice("info", MSG["none_shown"][lang]), gr.update(visible=False), ""
    seed = int(hashlib.sha1(who.encode()).hexdigest()[:8], 16)
    queue = reviews.queue(cands, reviews.ReviewStore(state.workspace).rated_keys(who), seed)
    return (*_after(state, out_dirs, queue, [], who, lang), notice.notice("info", MSG["hidden"][lang]))


def rate(state: AppState, rating: str | None, queue: list, done: list, out_dirs, lang: str,
         request: gr.Request = None):
    """Rate the answer shown (``None``: skip it to the end of the queue); the next one follows."""
    who = users.current_user(request)
    if not queue:
        return (*_after(state, out_dirs, queue, done, who, lang), "")
    c, rest = queue[0], list(queue[1:])
    if rating is None:
        rest.append(c)
    else:
        reviews.ReviewStore(state.workspace).rate(c, rating, who)
        users.record(state.workspace.root, who, "rate", f"{c.eval_dir}#{c.problem_id}@{c.shots}", rating=rating)
        done = [*done, c]
    return (*_after(state, out_dirs, rest, done, who, lang), "")


def back(state: AppState, queue: list, done: list, out_dirs, lang: str, request: gr.Request = None):
    """Show the answer rated last again, to change its rating."""
    who = users.current_user(request)
    if not done:
        return (*_after(state, out_dirs, queue, done, who, lang), notice.notice("info", MSG["nothing_back"][lang]))
    queue, done = [done[-1], *queue], list(done[:-1])
    return queue, done, card(state, queue, who, lang), gr.update(visible=False), ""


def reveal(state: AppState, out_dirs, lang: str, request: gr.Request = None):
    """(summary, message): an administrator sees every reviewer's results before the end."""
    who = users.current_user(request)
    if who != users.LOCAL and not users.is_admin(state.workspace.root, who):
        return gr.update(), notice.error(MSG["not_admin"][lang], MSG["not_admin_fix"][lang], lang)
    dirs = list({c.eval_dir for c in candidates(state, out_dirs)})
    users.record(state.workspace.root, who, "admin", "review-summary", evaluations=dirs)
    frame = summary_frame(reviews.ReviewStore(state.workspace).ratings(eval_dirs=dirs), lang)
    return gr.update(value=frame, visible=True), notice.notice("ok", MSG["revealed"][lang])
