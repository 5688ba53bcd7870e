"""The Compare tab's flip matrix: which questions change between two checkpoints.

Two of the shown evaluations, each at a shot setting (A and B; the same checkpoint 0-shot
against 1-shot too), give the 2×2 counts (right in both, in A only, in B only, in neither),
McNemar's test on the questions that flip (exact binomial under 25 flips, chi-square with
continuity correction from 25) beside the paired bootstrap of the accuracy difference, and the
grid of the flipping questions: one row per question, one column per shown evaluation × shot
setting, ✓ right ✗ wrong. Selecting a row shows that question's answer cards under the grid.
The numbers are ``pipelines/evaluation/flips.py``'s; handlers take the app state first.
"""
from __future__ import annotations

from html import escape as html_escape

import gradio as gr
import pandas as pd

from components import answer_card, notice, side_by_side
from pipelines.core.errors import UserError
from pipelines.evaluation import flips as flip_views
from pipelines.evaluation import insights
from workbench import compare_view, users
from workbench.field_errors import error_html
from workbench.state import AppState

L = {
    "title": {"ja": "### チェックポイント間の正誤の入れ替わり", "en": "### Questions that flip between checkpoints"},
    "a": {"ja": "A（比べる元）", "en": "A (from)"},
    "b": {"ja": "B（比べる先）", "en": "B (to)"},
    "grid": {"ja": "入れ替わった問題（行を選ぶと下に回答カードを表示）",
             "en": "Questions that flip (select a row to see its answer cards below)"},
}
MSG = {
    "pick": {"ja": "上の「表示する評価結果」で評価を選ぶと、ここで2つを比べられます。",
             "en": "Choose evaluations under “Evaluations shown” above to compare two of them here."},
    "same": {"ja": "A と B に同じ評価・同じショットが選ばれています。別のものを選んでください。",
             "en": "A and B are the same evaluation at the same shot setting. Choose two different ones."},
    "none": {"ja": "入れ替わった問題はありません（共通の {n} 問で A と B の正誤はすべて同じ）。",
             "en": "No question flips (A and B are right and wrong on the same of their {n} shared questions)."},
    "accuracy": {"ja": "正答率：A {a} → B {b}（共通の問題 n={n}）", "en": "Accuracy: A {a} → B {b} (shared questions n={n})"},
    "right": {"ja": "正解", "en": "right"},
    "wrong": {"ja": "誤答", "en": "wrong"},
    "exact": {"ja": "マクネマー検定（正確二項検定、入れ替わり {d} 問）：{p}",
              "en": "McNemar's test (exact binomial, {d} flipping questions): {p}"},
    "chi2_cc": {"ja": "マクネマー検定（カイ二乗検定・連続性補正あり、χ² = {x}、入れ替わり {d} 問）：{p}",
                "en": "McNemar's test (chi-square with continuity correction, χ² = {x}, {d} flipping questions): {p}"},
    "bootstrap": {"ja": "対応のあるブートストラップ：差 B − A = {diff} [95%信頼区間 {low}, {high}]、{p}",
                  "en": "Paired bootstrap: difference B − A = {diff} [95% interval {low}, {high}], {p}"},
    "meaning": {"ja": "どちらの検定も、入れ替わった問題が一方向に偏っているかを見ます。p が小さい（例：0.05 未満）ほど、差は偶然だけでは説明しにくくなります。入れ替わりが数問しかなければ、p は小さくなりません。",
                "en": "Both tests ask whether the flipping questions lean one way. The smaller p (e.g. under 0.05), the harder the difference is to explain by chance alone; a few flips can never give a small p."},
    "a_only": {"ja": "A のみ正解", "en": "right in A only"},
    "b_only": {"ja": "B のみ正解", "en": "right in B only"},
    "not_found": {"ja": "問題 {pid} は表示中の評価にありません。", "en": "Question {pid} is not in the evaluations shown."},
}
HEAD = {"problem": {"ja": "問題", "en": "question"}, "change": {"ja": "入れ替わり", "en": "flip"},
        "category": {"ja": "分野", "en": "specialty"}, "examinees": {"ja": "受験者正答率", "en": "examinees right"},
        "text": {"ja": "問題文（冒頭）", "en": "question text (start)"}}
MARK = {1: "✓", 0: "✗"}
SNIPPET = 24


def side_name(label: str, shots: int) -> str:
    return insights.column_name(label, shots)          # 'tiny-run@10 · 0-shot'


def _value(out_dir: str, shots: int) -> str:
    return f"{shots}|{out_dir}"


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value or "|" not in value:
        return None
    shots, out_dir = value.split("|", 1)
    return (out_dir, int(shots)) if shots.lstrip("-").isdigit() else None


def pair_choices(state: AppState, out_dirs, a, b, lang: str):
    """The A and B dropdowns: every shown evaluation × its shot settings; A and B kept when still
    shown, else A the first at its first setting and B another checkpoint at that setting (the
    same checkpoint's other setting when it is the only one shown)."""
    runs, names, _ = compare_view.selected_runs(state, out_dirs)
    choices = []
    for name, d in names.items():
        for s in sorted({r["shots"] for r in runs[name] if isinstance(r.get("shots"), int)}):
            choices.append((side_name(name, s), _value(d, s)))
    values = [v for _, v in choices]
    if a not in values:
        a = values[0] if values else None
    # A pair within one checkpoint is kept only while it is the only one shown: a checkpoint
    # added to the shown ones is what B then compares (a new choice of evaluations, a new pair).
    one_checkpoint = b in values and a is not None and _parse(a)[0] == _parse(b)[0] and len(names) > 1
    if (b not in values or b == a or one_checkpoint) and a is not None:
        a_dir, a_shots = _parse(a)
        others = [v for v in values if v != a]
        other_checkpoint = [v for v in others if _parse(v)[0] != a_dir and _parse(v)[1] == a_shots]
        b = (other_checkpoint or others or [a])[0]
    return gr.update(choices=choices, value=a), gr.update(choices=choices, value=b)


def at_shots(ev: insights.Evaluation, shots: int) -> insights.Evaluation:
    """One evaluation at one shot setting, as an evaluation of that setting alone (read as 0-shot),
    so A 0-shot and B 1-shot pair up question by question."""
    rows = [{**r, "shots": 0} for r in ev.rows if r["shots"] == shots]
    return insights.Evaluation(label=side_name(ev.label, shots), rows=rows, questions=ev.questions, path=ev.path,
                               data=ev.data, imported=ev.imported)


def _p(v: float) -> str:
    return "p < 0.001" if v < 0.001 else f"p = {v:.3f}"


def _share(v: float) -> str:
    return f"{v:.3f}".replace("0.", ".", 1) if 0 <= v < 1 else f"{v:.3f}"


def _signed(v: float) -> str:
    return f"{v:+.3f}".replace("0.", ".", 1)


def counts_html(result: dict, lang: str) -> str:
    """The 2×2 table of A against B (rows A, columns B), the accuracies, both tests, what they mean."""
    m = {k: v[lang] for k, v in MSG.items()}
    table = (f'<div class="t1wrap"><table class="t1" id="flip-counts"><thead><tr><th></th>'
             f'<th>B {m["right"]}</th><th>B {m["wrong"]}</th></tr></thead><tbody>'
             f'<tr><td>A {m["right"]}</td><td>{result["both_right"]}</td><td><b>{len(result["right_in_a_only"])}</b></td></tr>'
             f'<tr><td>A {m["wrong"]}</td><td><b>{len(result["right_in_b_only"])}</b></td><td>{result["both_wrong"]}</td></tr>'
             f"</tbody></table></div>")
    test, boot = result["mcnemar"], result["bootstrap"]
    lines = [m["accuracy"].format(a=_share(result["accuracy_a"]), b=_share(result["accuracy_b"]), n=result["n"]),
             m[test["method"]].format(d=test["discordant"], p=_p(test["p"]),  # exact, or chi2_cc: says which
                                      x=f"{test['statistic']:.2f}" if test.get("statistic") is not None else ""),
             m["bootstrap"].format(diff=_signed(boot["diff"]), low=_signed(boot["ci_low"]), high=_signed(boot["ci_high"]),
                                   p=_p(boot["p"]))]
    body = "".join(f"<li>{html_escape(x)}</li>" for x in lines)
    return (f'<div id="flip-summary">{table}<ul style="margin:6px 0">{body}</ul>'
            f'<p style="font-size:12px;color:#57606a">{html_escape(m["meaning"])}</p></div>')


def grid_frame(evals: list[insights.Evaluation], result: dict, a_name: str, b_name: str, lang: str) -> pd.DataFrame:
    """The flipping questions (A only right, then B only right, each in question order) with the
    start of their text, specialty and the examinees' accuracy, × every shown evaluation and shot
    setting: ✓ / ✗ / – (not answered); A's and B's columns first, headed 'A：'/'B：'."""
    matrix = flip_views.flip_matrix(evals).set_index("problem_id")
    questions = {pid: q for ev in evals for pid, q in ev.questions.items()}
    side = {**{pid: MSG["a_only"][lang] for pid in result["right_in_a_only"]},
            **{pid: MSG["b_only"][lang] for pid in result["right_in_b_only"]}}
    # A's and B's columns first (what was asked), then every other shown evaluation × setting.
    ordered = [c for c in (a_name, b_name) if c in matrix.columns] + [c for c in matrix.columns if c not in (a_name, b_name)]
    heads = {c: ("A：" if c == a_name else "B：" if c == b_name else "") + c for c in ordered}
    if lang == "en":
        heads = {c: h.replace("A：", "A: ").replace("B：", "B: ") for c, h in heads.items()}
    recs = []
    for pid in [*result["right_in_a_only"], *result["right_in_b_only"]]:
        q = questions.get(pid)
        percent = q.human_accuracy if q is not None else None       # as the cards say it: 83.7%
        text = (q.problem_text if q is not None else "").replace("\n", " ")
        rec = {HEAD["problem"][lang]: pid, HEAD["change"][lang]: side[pid],
               HEAD["text"][lang]: text[:SNIPPET] + ("…" if len(text) > SNIPPET else ""),
               HEAD["category"][lang]: (q.category if q is not None and q.category else "–"),
               HEAD["examinees"][lang]: f"{answer_card.percent(percent)}%" if percent is not None else "–"}
        for c, head in heads.items():
            v = matrix.loc[pid, c] if pid in matrix.index else pd.NA
            rec[head] = "–" if pd.isna(v) else MARK[int(v)]
        recs.append(rec)
    columns = [HEAD[k][lang] for k in ("problem", "change", "text", "category", "examinees")] + list(heads.values())
    return pd.DataFrame(recs, columns=columns)


def flip_view(state: AppState, out_dirs, a, b, lang: str, request: gr.Request = None):
    """(counts and tests html, the grid of flipping questions, the cards area emptied)."""
    empty = pd.DataFrame(columns=[HEAD["problem"][lang]])
    runs, names, _ = compare_view.selected_runs(state, out_dirs)
    pa, pb = _parse(a), _parse(b)
    if not runs or pa is None or pb is None:
        return notice.notice("info", MSG["pick"][lang]), empty, ""
    if pa == pb:
        return notice.notice("info", MSG["same"][lang]), empty, ""
    evals = compare_view.shown_evaluations(state, runs, names)
    by_dir = {ev.path: ev for ev in evals}
    if pa[0] not in by_dir or pb[0] not in by_dir:
        return notice.notice("info", MSG["pick"][lang]), empty, ""
    ev_a, ev_b = by_dir[pa[0]], by_dir[pb[0]]
    try:
        for ev, shots in ((ev_a, pa[1]), (ev_b, pb[1])):
            insights.shots_of(ev, shots)               # a setting the evaluation lacks: says what it has
        result = flip_views.flips(at_shots(ev_a, pa[1]), at_shots(ev_b, pb[1]))
    except UserError as exc:
        return error_html(exc, lang=lang), empty, ""
    users.record(state.workspace.root, users.current_user(request), "view", "compare-flips",
                 evaluations=[pa[0], pb[0]], shots=[pa[1], pb[1]])
    flipping = len(result["right_in_a_only"]) + len(result["right_in_b_only"])
    html_out = counts_html(result, lang)
    if not flipping:
        return html_out + notice.notice("info", MSG["none"][lang].format(n=result["n"])), empty, ""
    grid = grid_frame(evals, result, side_name(ev_a.label, pa[1]), side_name(ev_b.label, pb[1]), lang)
    return html_out, grid, ""


def selected_problem(grid, evt) -> str | None:
    """The problem id of the grid row a select event points at (its first column)."""
    row_value = getattr(evt, "row_value", None)
    if row_value:
        return str(row_value[0])
    index = getattr(evt, "index", None)
    row = index[0] if isinstance(index, (list, tuple)) else index
    if isinstance(grid, pd.DataFrame) and isinstance(row, int) and 0 <= row < len(grid):
        return str(grid.iloc[row, 0])
    return None


def open_question(state: AppState, out_dirs, grid, lang: str, evt: gr.SelectData, request: gr.Request = None) -> str:
    """The answer cards of the question whose row was selected in the grid: every shown
    evaluation × shot setting beside it, as the cards above show them."""
    pid = selected_problem(grid, evt)
    runs, names, questions = compare_view.selected_runs(state, out_dirs)
    every = side_by_side.build_items(questions, runs)
    items = [it for it in every if it.problem_id == pid]
    if pid is None or not items:
        return notice.notice("info", MSG["not_found"][lang].format(pid=pid or "?"))
    flagged = compare_view.easy_misses(compare_view.shown_evaluations(state, runs, names))
    present = {k for it in every for k in it.cells}
    users.record(state.workspace.root, users.current_user(request), "view", "compare",
                 evaluations=list(names.values()), questions=1, problem_id=pid)
    return "".join(compare_view.cards_html(items, runs, present, flagged, lang))
