"""Reports tab: chest X-ray report evaluations (``jmedlora evaluate --task report``) side by side.
For each study the image (zoomable), the reference report and the reports of two to four
evaluated models, each with finding chips coloured by agreement with the reference; over all
studies a summary with 95% intervals, each model's paired difference from the first, and a
per-finding table; and a blind clinician rating with a harm flag, as the Compare tab's.

Layout and wiring only; the handlers take the app state first (bound with
``workbench.wiring.bind``, tested without a browser): the chosen evaluations and one study in
``reports_view``, the tables in ``reports_tables``, the blind rating in ``reports_review``.
"""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from pipelines.evaluation import reviews
from workbench import reports_review, reports_tables, reports_view
from workbench.i18n import Labels
from workbench.reports_text import L
from workbench.state import AppState
from workbench.wiring import bind

TAB = {"ja": "レポート", "en": "Reports"}
# The zoom slider sets the image's width in the browser: no round trip, the pixels stay where they are.
ZOOM_JS = ("(z) => { document.querySelectorAll('#reports-image img').forEach("
           "(i) => { i.style.width = (Math.max(1, z) * 100) + '%'; }); }")


def current_choices(state: AppState, current, lang: str):
    """The evaluation list as it is on disk now; the choice kept where it still exists, else the default."""
    choices = reports_view.evaluation_choices(state, lang)
    known = {d for _, d in choices}
    kept = [d for d in (current or []) if d in known]
    return gr.update(choices=choices, value=kept or reports_view.default_selection(state))


def study_section(t: Labels) -> SimpleNamespace:
    """One study: navigation, then the image beside the reports."""
    with gr.Row(equal_height=True):
        prev_btn = t.make(gr.Button, L["prev"], size="sm", scale=1, elem_id="reports-prev")
        study = t.make(gr.Dropdown, L["study"], choices=[], scale=4, elem_id="reports-study")
        next_btn = t.make(gr.Button, L["next"], size="sm", scale=1, elem_id="reports-next")
        disagree = t.make(gr.Checkbox, L["disagree"], value=False, scale=2, elem_id="reports-disagree")
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            image = gr.HTML(elem_id="reports-image")
            zoom = t.make(gr.Slider, L["zoom"], minimum=1, maximum=4, step=0.25, value=1, elem_id="reports-zoom")
        with gr.Column(scale=3, min_width=320):
            side = gr.HTML(elem_id="reports-side")
    return SimpleNamespace(prev=prev_btn, study=study, next=next_btn, disagree=disagree, image=image, zoom=zoom,
                           side=side)


def blind_section(t: Labels) -> SimpleNamespace:
    """The blind rating: one generated report at a time, its model hidden."""
    with t.make(gr.Accordion, L["blind_title"], open=False, elem_id="rblind-accordion"):
        with gr.Row():
            start = t.make(gr.Button, L["start_review"], elem_id="rblind-start")
            back = t.make(gr.Button, L["back"], size="sm", elem_id="rblind-back")
            reveal = t.make(gr.Button, L["reveal"], size="sm", elem_id="rblind-reveal")
        msg = gr.HTML(elem_id="rblind-msg")
        card = gr.HTML(elem_id="rblind-card")
        with gr.Row(equal_height=True):
            harm = t.make(gr.Checkbox, L["harm"], value=False, scale=2, elem_id="rblind-harm")
            note = t.make(gr.Textbox, L["note"], lines=1, scale=3, elem_id="rblind-note")
        with gr.Row():
            rate_btns = [t.make(gr.Button, L[r], elem_id=f"rblind-{r}") for r in reviews.REPORT_RATINGS]
            skip = t.make(gr.Button, L["skip"], elem_id="rblind-skip")
        summary = t.make(gr.Dataframe, L["review_summary"], interactive=False, visible=False,
                         elem_id="rblind-summary")
    return SimpleNamespace(start=start, back=back, reveal=reveal, msg=msg, card=card, harm=harm, note=note,
                           rate_btns=rate_btns, skip=skip, summary=summary)


def create_reports_tab(state: AppState, t: Labels, lang: gr.State, tab: gr.Tab | None = None) -> dict:
    """``tab``: this tab, so opening it reads the evaluations on disk now and shows them."""
    t.make(gr.Markdown, L["intro"])
    with gr.Row(equal_height=True):
        shown = t.make(gr.Dropdown, L["shown"], choices=reports_view.evaluation_choices(state, t.lang),
                       value=reports_view.default_selection(state), multiselect=True,
                       max_choices=reports_view.MAX_SHOWN, scale=6, elem_id="reports-shown")
        refresh = t.make(gr.Button, L["refresh"], size="sm", scale=1, elem_id="reports-refresh")
    msg = gr.HTML(elem_id="reports-msg", padding=False, min_height=0)
    one = study_section(t)
    # Tall enough for every row: the 14 findings, the 8 metrics with n and speed.
    summary = t.make(gr.Dataframe, L["summary"], interactive=False, max_height=800, elem_id="reports-summary")
    per_finding = t.make(gr.Dataframe, L["findings"], interactive=False, max_height=800,
                         elem_id="reports-findings")
    comparison = t.make(gr.Dataframe, L["comparison"], interactive=False, max_height=800,
                        elem_id="reports-comparison")
    blind = blind_section(t)
    queue, done = gr.State([]), gr.State([])

    # -- wiring ------------------------------------------------------------------------------
    render_in = [shown, one.disagree, one.study, lang]
    render_out = [msg, summary, comparison, per_finding, one.study]
    study_in, study_out = [shown, one.study, one.zoom, lang], [one.image, one.side]
    render, show = bind(reports_tables.render, state), bind(reports_view.show_study, state)

    def everything(trigger):
        return trigger.then(render, render_in, render_out).then(show, study_in, study_out)

    everything(refresh.click(bind(current_choices, state), [shown, lang], [shown]))
    if tab is not None:
        everything(tab.select(bind(current_choices, state), [shown, lang], [shown]))
    shown.input(render, render_in, render_out).then(show, study_in, study_out)
    one.disagree.input(render, render_in, render_out).then(show, study_in, study_out)
    lang.change(render, render_in, render_out).then(show, study_in, study_out)
    one.study.input(show, study_in, study_out)
    for btn, delta in ((one.prev, -1), (one.next, 1)):
        btn.click(bind(reports_view.step_study, state, delta), [shown, one.study, one.disagree, lang],
                  [one.study]).then(show, study_in, study_out)
    one.zoom.change(None, [one.zoom], None, js=ZOOM_JS)

    review_in = [queue, done, shown]
    review_out = [queue, done, blind.card, blind.summary, blind.msg, blind.harm, blind.note]
    blind.start.click(bind(reports_review.begin, state), [shown, lang], review_out)
    for btn, r in zip(blind.rate_btns, reviews.REPORT_RATINGS):
        btn.click(bind(reports_review.rate, state, r), [*review_in, blind.harm, blind.note, lang], review_out)
    blind.skip.click(bind(reports_review.rate, state, None), [*review_in, blind.harm, blind.note, lang], review_out)
    blind.back.click(bind(reports_review.back, state), [*review_in, lang], review_out)
    blind.reveal.click(bind(reports_review.reveal, state), [shown, lang], [blind.summary, blind.msg])
    # ``draw``: chains the tables and the study after another tab's event that chose evaluations here.
    return {"shown": shown, "study": one.study, "summary": summary, "draw": everything}
