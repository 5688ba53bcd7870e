"""What the Compare tab shows of finished evaluations: the choices of evaluations and question
files, the summary table (mean and 95% interval per metric), the answer cards with filters
and pages, and the side-by-side CSV of exactly the questions the filters show.

The cards put first the questions most examinees got right that a shown model missed (the
ones a clinician would call embarrassing: ``insights.embarrassing``/``compare_order``), each with
a badge saying how many examinees got it right; the evaluations shown are read for that as
``insights.Evaluation``s (``shown_evaluations``), which the flip matrix (``compare_flips``) uses too.

Handlers and pure functions of the workspace; ``tab_compare`` wires them to widgets.
"""
from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import pandas as pd

from components import answer_card, notice, side_by_side
from pipelines.core.errors import UserError
from pipelines.evaluation import insights, metrics
from pipelines.evaluation.evaluator import EvalConfig
from pipelines.evaluation.results import read_results
from pipelines.evaluation.summary import EvalSummary
from pipelines.tasks.igakuqa import load_questions
from workbench import compare_nearest, users
from workbench.state import AppState

MSG = {
    "none_shown": {"ja": "表示する評価結果がありません。上で評価を実行するか、既存の評価結果を選んでください。",
                   "en": "No evaluation shown yet. Run one above, or pick existing evaluations."},
    "no_match": {"ja": "条件に合う問題はありません。", "en": "No question matches these filters."},
    "count": {"ja": "{n} 問中 {k} 問を表示（{p}/{pages} ページ）。CSV には絞り込み後の {k} 問が入ります。",
              "en": "{k} of {n} questions ({p}/{pages}). The CSV holds the {k} questions these filters show."},
    "sample": {"ja": "（サンプル）", "en": " (sample)"},
    "easy_first": {"ja": "受験者の 80% 以上が正解した問題をモデルが誤答したもの {k} 問を先頭に表示しています。",
                   "en": "The {k} question(s) 80% or more of examinees got right that a model missed come first."},
}
EASY = 0.8          # the share of examinees right from which a model's miss is an embarrassing one
HEAD = {"checkpoint": {"ja": "チェックポイント", "en": "checkpoint"}, "shots": {"ja": "ショット", "en": "shots"}}
PER_PAGE = 10


IMPORTED = {"ja": "取り込んだ予測", "en": "imported predictions"}
STATUS = {"running": {"ja": "実行中", "en": "running"}, "finished": {"ja": "完了", "en": "finished"},
          "failed": {"ja": "失敗", "en": "failed"}}


def evaluation_choices(state: AppState, lang: str | None = None) -> list[tuple[str, str]]:
    lang = lang or state.lang
    out = []
    for ev in reversed(state.workspace.evaluations()):
        cfg = ev.get("config") or {}
        summ = ev.get("summary") or {}
        n = max((s.get("n", 0) for s in (summ.get("by_shots") or {}).values()), default=0)
        shots = "/".join(f"{s}s" for s in (summ.get("by_shots") or {}))
        status = STATUS.get(ev["status"], {}).get(lang, ev["status"])
        how = IMPORTED[lang] if cfg.get("imported") else cfg.get("template", "?")   # published predictions: no prompt
        label = f"{ev['model']} · {how} · {Path(ev['data']).name} · n={n} {shots} ({status})"
        out.append((label, ev["out_dir"]))
    return out


def data_choices(state: AppState, lang: str = "ja") -> list[tuple[str, str]]:
    sample = EvalConfig().data
    out = [(Path(sample).name + MSG["sample"][lang], sample)]
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
        except UserError:    # the cards still show every answer, built from the result rows
            qs = []
        _QCACHE[key] = [{**q.to_dict(), "kinki": q.kinki, "category": q.category, "human_accuracy": q.human_accuracy,
                         "breakdown": q.breakdown} for q in qs]
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
    return [HEAD["checkpoint"][lang], HEAD["shots"][lang], "n"] + [m.short[lang] for m in shown]


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


def export_name(state: AppState, out_dirs: list[str]) -> str:
    """``side_by_side_<question file>.csv``, after the question file of the evaluations shown."""
    evs = {e["out_dir"]: e for e in state.workspace.evaluations()}
    stems = sorted({Path(evs[d]["data"]).stem for d in out_dirs or [] if d in evs})
    stem = stems[0] if len(stems) == 1 else "mixed"
    return f"side_by_side_{re.sub(r'[^0-9A-Za-z_.-]+', '_', stem)}.csv"


def shown_evaluations(state: AppState, runs: dict[str, list[dict]], names: dict[str, str]) -> list[insights.Evaluation]:
    """The shown evaluations (``selected_runs``) as ``insights.Evaluation``s, under the names the
    cards use, with their question file's metadata (categories, the examinees' figures)."""
    evs = {e["out_dir"]: e for e in state.workspace.evaluations()}
    out = []
    for name, d in names.items():
        ev = evs.get(d) or {}
        data = ev.get("data") if ev.get("data") and Path(ev["data"]).is_file() else None
        questions, problems = insights.question_metadata(data)
        rows = [r for r in runs[name] if "problem_id" in r and isinstance(r.get("shots"), int)]
        out.append(insights.Evaluation(label=name, rows=rows, questions=questions, path=d,
                                       data=data if questions else None, data_problems=problems,
                                       imported=bool((ev.get("config") or {}).get("imported"))))
    return out


def easy_misses(evals: list[insights.Evaluation], threshold: float = EASY) -> dict[str, float]:
    """problem_id -> the share of examinees right, for the questions at least ``threshold`` of
    them got right that a shown model missed at some shot setting; {} without examinee data."""
    flagged: dict[str, float] = {}
    for s in sorted({s for ev in evals for s in ev.shot_settings}):
        try:
            found = insights.embarrassing([ev for ev in evals if s in ev.shot_settings], threshold, s)
        except UserError:            # no examinee data: nothing is known to be embarrassing
            return {}
        for r in found:
            flagged.setdefault(r["problem_id"], r["examinees"])
    return flagged


def card_order(items: list[side_by_side.Item], evals: list[insights.Evaluation],
               flagged: dict[str, float]) -> list[side_by_side.Item]:
    """The embarrassing misses first (most examinees right first, then question order), then the
    rest in ``insights.compare_order``'s order (the question file's)."""
    settings = sorted({s for ev in evals for s in ev.shot_settings})
    base = insights.compare_order(evals, EASY, settings[0]) if settings else []
    position = {pid: i for i, pid in enumerate(base)}
    first = sorted(flagged, key=lambda pid: (-flagged[pid], position.get(pid, len(position))))
    rank = {pid: i for i, pid in enumerate(dict.fromkeys(first + base))}
    return sorted(items, key=lambda it: rank.get(it.problem_id, len(rank)))     # stable: the rest keep file order


def answered_wrongly(answers: list[tuple[str, dict | None]]) -> bool:
    return any(row is not None and row.get("accuracy") is not None and row["accuracy"] < 1 for _, row in answers)


def cards_html(chunk: list[side_by_side.Item], runs: dict, present: set, flagged: dict[str, float], lang: str,
               bm25=None) -> list[str]:
    """One answer card per item: every shown evaluation × shot setting beside the question;
    with ``bm25`` (a training file's index), a wrong answer's card shows its nearest training records."""
    answers = {it.problem_id: [(f"{n} · {s}-shot", it.cells.get((n, s))) for n in runs for s in (0, 1) if (n, s) in present]
               for it in chunk}
    wrong = {it.problem_id: it.question for it in chunk if answered_wrongly(answers[it.problem_id])}
    near = compare_nearest.nearest_for(bm25, wrong) if bm25 is not None and wrong else {}
    return [answer_card.question_card(it.question, answers[it.problem_id], lang, metrics.badge_specs(lang),
                                      easy_miss=it.problem_id in flagged,
                                      below=compare_nearest.block(near.get(it.problem_id, []), lang)
                                      if it.problem_id in wrong and bm25 is not None else "")
            for it in chunk]


def render_view(state: AppState, out_dirs, disagree, wrong, search, page_no, lang, train: str = "",
                request: gr.Request = None):
    """(cards html, count line, summary frame, CSV download) for the chosen evaluations; ``train``:
    a training file whose records nearest each wrongly answered question the cards show."""
    runs, names, questions = selected_runs(state, out_dirs)
    if not runs:
        return notice.notice("info", MSG["none_shown"][lang]), "", [], gr.update(value=None)
    evals = shown_evaluations(state, runs, names)
    flagged = easy_misses(evals)
    items = card_order(side_by_side.build_items(questions, runs), evals, flagged)
    shown = side_by_side.filter_items(items, disagreements=disagree, only_wrong=wrong, search=search or "")
    chunk, pages = side_by_side.page(shown, page_no or 1, PER_PAGE)
    present = {k for it in items for k in it.cells}
    bm25 = compare_nearest.cached_index(state, train)
    cards = cards_html(chunk, runs, present, flagged, lang, bm25)
    count = MSG["count"][lang].format(n=len(items), k=len(shown), p=min(max(1, int(page_no or 1)), pages), pages=pages)
    easy = sum(1 for it in shown if it.problem_id in flagged)
    if easy:
        count += " " + MSG["easy_first"][lang].format(k=easy)
    html_out = "".join(cards) if cards else notice.notice("info", MSG["no_match"][lang])
    export = state.workspace.subdir("exports") / export_name(state, out_dirs)
    frame = side_by_side.items_frame(shown, list(runs), metrics=metrics.csv_keys())
    frame.to_csv(export, index=False, encoding="utf-8-sig")     # BOM: Excel on Japanese Windows reads UTF-8
    users.record(state.workspace.root, users.current_user(request), "view", "compare",
                 evaluations=list(names.values()), questions=len(shown),
                 **({"training_data": str(bm25.index.path)} if bm25 is not None else {}))
    return html_out, count, summary_rows(state, names, lang), gr.update(value=str(export))
