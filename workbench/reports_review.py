"""The Reports tab's blind rating: the logged-in clinician rates the generated reports of the
chosen evaluations one at a time, in a shuffled order, beside the image and the reference
report, without knowing which model wrote them; each rating may flag harm (a missed
pneumothorax) and carry a note.

As the Compare tab's blind review (``compare_review``): the per-model summary stays hidden until
the reviewer has rated every report of the batch, or an administrator reveals it; a rating can be
changed and the store keeps every earlier one (``pipelines/evaluation/reviews.py``); every rating
is in the audit log. The queue and the reports already rated live in ``gr.State`` as lists of
``reviews.Candidate`` (problem_id: the study id; shots: 0).
"""
from __future__ import annotations

import hashlib

import gradio as gr
import pandas as pd

from components import notice, report_view
from pipelines.evaluation import reviews
from workbench import users
from workbench.reports_text import HEAD, MSG, RATING
from workbench.reports_view import Shown, image_html, read_shown
from workbench.state import AppState


def candidates(shown: Shown) -> list[reviews.Candidate]:
    return [reviews.Candidate(shown.evs[name]["out_dir"], name, sid, 0, row.get("generated") or "")
            for name, rows in shown.rows.items() for sid, row in rows.items()]


def summary_frame(ratings: list[dict], lang: str) -> pd.DataFrame:
    """``reviews.summarize`` over the report scale and the harm flag, headed in the page language."""
    df = reviews.summarize(ratings, reviews.REPORT_RATINGS, harm=True)
    names = {"checkpoint": HEAD["model"][lang], "n": HEAD["reviewer_n"][lang], "harm %": HEAD["harm"][lang],
             **{f"{r} %": f"{RATING[r][lang]} %" for r in reviews.REPORT_RATINGS}}
    return df.rename(columns=names)


def anonymous_number(c: reviews.Candidate) -> int:
    """A number for the report shown that says nothing of its model (stable across sessions)."""
    return int(hashlib.sha1(f"{c.eval_dir}{c.problem_id}".encode()).hexdigest()[:4], 16) % 1000


def card(state: AppState, shown: Shown, queue: list, who: str, lang: str) -> str:
    """The next report to rate beside its image and the reference (no model name, no score, no
    chip), or the end-of-batch notice."""
    if not queue:
        return notice.notice("ok", MSG["done"][lang])
    c = queue[0]
    head = f'<div class="blind-left" style="color:#57606a">{MSG["left"][lang].format(n=len(queue), who=who)}</div>'
    current = reviews.ReviewStore(state.workspace).current(c, who)
    if current and current["rating"] in RATING:
        harm = MSG["harm_flag"][lang] if current["harm"] else ""
        head += notice.notice("info", MSG["current"][lang].format(r=RATING[current["rating"]][lang], harm=harm))
    ref = shown.reference_row(c.problem_id) or {}
    reports = report_view.side_by_side(
        report_view.report_card(MSG["reference"][lang], ref.get("reference") or "", reference=True, lang=lang,
                                key="reference"),
        [report_view.report_card(MSG["report"][lang].format(k=anonymous_number(c)), c.response, lang=lang,
                                 key="blind")], lang, with_legend=False)       # no chips here: nothing to explain
    return (f'{head}<div class="rv-blind" style="display:grid;grid-template-columns:minmax(0,2fr) minmax(0,3fr);'
            f'gap:10px">{image_html(shown, c.problem_id, 1.0, lang, hint=False)}<div>{reports}</div></div>')


def _controls(state: AppState, queue: list, who: str):
    """The harm flag and note of the report shown: its current ones when it was rated before."""
    current = reviews.ReviewStore(state.workspace).current(queue[0], who) if queue else None
    return (gr.update(value=bool(current and current["harm"])),
            gr.update(value=(current or {}).get("note") or ""))


def _after(state: AppState, shown: Shown, queue: list, done: list, who: str, lang: str, message: str = ""):
    """(queue, done, card, summary, message, harm, note): the summary only once the batch is rated."""
    store = reviews.ReviewStore(state.workspace)
    cands = candidates(shown)
    if reviews.batch_done(cands, store.rated_keys(who)):
        mine = store.ratings(who, eval_dirs=list({c.eval_dir for c in cands}))
        return (queue, done, card(state, shown, [], who, lang),
                gr.update(value=summary_frame(mine, lang), visible=True), message, *_controls(state, [], who))
    return (queue, done, card(state, shown, queue, who, lang), gr.update(value=None, visible=False), message,
            *_controls(state, queue, who))


def begin(state: AppState, out_dirs, lang: str, request: gr.Request = None):
    """Start or resume the logged-in reviewer's batch over the chosen evaluations."""
    who = users.current_user(request)
    shown = read_shown(state, out_dirs)
    cands = candidates(shown)
    if not cands:
        return ([], [], notice.notice("info", MSG["none_to_rate"][lang]), gr.update(visible=False), "",
                gr.update(value=False), gr.update(value=""))
    seed = int(hashlib.sha1(who.encode()).hexdigest()[:8], 16)
    queue = reviews.queue(cands, reviews.ReviewStore(state.workspace).rated_keys(who), seed)
    return _after(state, shown, queue, [], who, lang, notice.notice("info", MSG["hidden"][lang]))


def rate(state: AppState, rating: str | None, queue: list, done: list, out_dirs, harm, note, lang: str,
         request: gr.Request = None):
    """Rate the report shown (``None``: skip it to the end of the queue), with the harm flag and
    note; the next report follows."""
    who = users.current_user(request)
    shown = read_shown(state, out_dirs)
    if not queue:
        return _after(state, shown, queue, done, who, lang)
    c, rest = queue[0], list(queue[1:])
    if rating is None:
        rest.append(c)
    else:
        reviews.ReviewStore(state.workspace).rate(c, rating, who, note=note or "", harm=bool(harm))
        users.record(state.workspace.root, who, "rate", f"{c.eval_dir}#{c.problem_id}", rating=rating,
                     harm=bool(harm), note=bool((note or "").strip()))
        done = [*done, c]
    return _after(state, shown, rest, done, who, lang)


def back(state: AppState, queue: list, done: list, out_dirs, lang: str, request: gr.Request = None):
    """Show the report rated last again (with its harm flag and note), to change its rating."""
    who = users.current_user(request)
    shown = read_shown(state, out_dirs)
    if not done:
        return _after(state, shown, queue, done, who, lang, notice.notice("info", MSG["nothing_back"][lang]))
    queue, done = [done[-1], *queue], list(done[:-1])
    return (queue, done, card(state, shown, queue, who, lang), gr.update(visible=False), "",
            *_controls(state, queue, who))


def reveal(state: AppState, out_dirs, lang: str, request: gr.Request = None):
    """(summary, message): an administrator sees every reviewer's results before the end."""
    who = users.current_user(request)
    if who != users.LOCAL and not users.is_admin(state.workspace.root, who):
        return gr.update(), notice.error(MSG["not_admin"][lang], MSG["not_admin_fix"][lang], lang)
    dirs = [ev["out_dir"] for ev in read_shown(state, out_dirs).evs.values()]
    users.record(state.workspace.root, who, "admin", "report-review-summary", evaluations=dirs)
    frame = summary_frame(reviews.ReviewStore(state.workspace).ratings(eval_dirs=dirs), lang)
    return gr.update(value=frame, visible=True), notice.notice("ok", MSG["revealed"][lang])
