"""The Charts tab's 「学習データとの重複（汚染）の確認」: which questions of an evaluation are in the
training data (a run of 50 or more characters shared with a training record, or a record that
rewrites the question: ``pipelines.tasks.overlap``'s rules), and the evaluation's score with and
without them, each with its 95% interval (``pipelines.evaluation.contamination``). A score that
drops without the flagged questions was partly recall, not knowledge.

The training file is typed or picked (the workspace's exported training sets, and the data of the
run that made the chosen evaluation's checkpoint when the registry knows it), and checked with
``pipelines.core.page_paths.readable``. The training file's index is cached in the workspace.
Handlers take the app state first (``workbench.wiring.bind``); ``tab_charts`` lays them out.
"""
from __future__ import annotations

import json
from html import escape as html_escape
from pathlib import Path

import gradio as gr
import pandas as pd

from components import notice
from components.metric_table import table_html
from pipelines.core import page_paths
from pipelines.core.errors import UserError
from pipelines.evaluation import metrics
from pipelines.evaluation.contamination import ContaminationConfig, run
from workbench import users
from workbench.compare_view import evaluation_choices
from workbench.field_errors import error_html
from workbench.state import AppState

L = {
    "title": {"ja": "### 学習データとの重複（汚染）の確認",
              "en": "### Overlap between the training data and the exam (contamination)"},
    "intro": {"ja": "評価した問題が学習データに含まれていないかを確認し、含まれていた問題を除いたときの成績も示します。",
              "en": "Checks whether the evaluated questions are in the training data, and shows the score without those that are."},
    "eval": {"ja": "評価結果", "en": "Evaluation"},
    "train": {"ja": "学習データ（JSONL ファイル）", "en": "Training data (JSONL file)"},
    "run": {"ja": "重複を確認", "en": "Check overlap"},
}
MSG = {
    "pick": {"ja": "評価結果と学習データを選んで「重複を確認」を押してください。",
             "en": "Pick an evaluation and the training data, then press “Check overlap”."},
    "unknown_eval": {"ja": "選んだ評価結果がこのワークスペースに見つかりません。一覧を更新して選び直してください。",
                     "en": "The chosen evaluation is not in this workspace. Refresh the list and pick it again."},
    "clean": {"ja": "✓ 重複は見つかりませんでした：学習記録 {records} 件 × 問題 {questions} 問を確認しました（{rule}）。",
              "en": "✓ No overlap found: {records} training records × {questions} questions checked ({rule})."},
    "found": {"ja": "⚠ {k} 問が学習データと重なっています（学習記録 {records} 件 × 問題 {questions} 問を確認、{rule}）。",
              "en": "⚠ {k} question(s) overlap the training data ({records} training records × {questions} questions checked; {rule})."},
    "rule": {"ja": "基準：空白・記号を除いて {n} 文字以上の連続一致、または類似度 {j} 以上の言い換え",
             "en": "rules: a run of {n} or more characters in common, spaces and punctuation removed, or a rewrite of similarity {j} or more"},
    "ngram": {"ja": "長い一致", "en": "long shared run"},
    "near-dup": {"ja": "言い換え（ほぼ同じ文）", "en": "rewrite (near-duplicate)"},
    "col_id": {"ja": "問題", "en": "question"}, "col_kind": {"ja": "判定", "en": "rule"},
    "col_how": {"ja": "重なりの程度", "en": "how much is shared"},
    "run_len": {"ja": "{n} 文字が連続して一致", "en": "{n} characters in a row"},
    "similar": {"ja": "類似度 {j:.2f}（1＝同一）", "en": "similarity {j:.2f} (1 = identical)"},
    "col_line": {"ja": "学習データの行", "en": "training file line"},
    "col_text": {"ja": "重なった部分（空白・記号を除く）", "en": "shared text (spaces and punctuation removed)"},
    "more": {"ja": "（ほか {k} 件の記録）", "en": " (+{k} more records)"},
    "score_title": {"ja": "重複した問題を除いた成績", "en": "The score without the overlapping questions"},
    "all": {"ja": "すべての問題", "en": "all questions"},
    "without": {"ja": "重複した問題を除く", "en": "without the overlapping ones"},
    "corner": {"ja": "指標", "en": "metric"},
    "drop": {"ja": "{shots}-shot：重複した問題を除くと正答率は {a} → {b}（{d}）。点数の一部は、学習で見た問題を覚えていたためかもしれません。区間が大きく重なる差は偶然の範囲です。",
             "en": "{shots}-shot: without the overlapping questions, accuracy goes {a} → {b} ({d}). Part of the score may come from having seen these questions in training. A difference within overlapping intervals may be chance."},
    "same": {"ja": "{shots}-shot：重複した問題を除いても正答率は下がりません（{a} → {b}）。重複による点数の水増しは見られません。",
             "en": "{shots}-shot: accuracy does not drop without the overlapping questions ({a} → {b}): no sign the overlap inflated the score."},
    "nothing_left": {"ja": "{shots}-shot：重複を除くと問題が残りません。", "en": "{shots}-shot: no question is left without the overlapping ones."},
    "legend": {"ja": "各値の下：[95%信頼区間] n＝問題数。", "en": "Under each value: [95% interval] n = questions."},
}
SHOWN = ("accuracy", "exact_match", "gestalt", "ll_accuracy")
TEXT_CHARS = 60


def _note(text: str) -> str:
    return f'<p class="t1note" style="font-size:12px;color:#57606a">{html_escape(text)}</p>'


def _v(x: float) -> str:
    return f"{x:.3f}"


def metric_name(key: str, lang: str) -> str:
    """As Table 1 names it (``tab_charts.metric_name``): no English word in a Japanese page."""
    m = metrics.get(key)
    return m.short[lang] if lang != "en" and m.label[lang] == m.table1 else m.label[lang]


# -- choices ------------------------------------------------------------------------------

def eval_choices(state: AppState, lang: str) -> list[tuple[str, str]]:
    finished = {e["out_dir"] for e in state.workspace.evaluations() if e["status"] == "finished"}
    return [(label, d) for label, d in evaluation_choices(state, lang) if d in finished]


def run_data(state: AppState, out_dir: str | None) -> str | None:
    """The training file of the run whose checkpoint made the evaluation in ``out_dir``, when the
    registry knows it: model (or adapter) -> its meta's run_dir -> the run's config.json ``data``."""
    ev = next((e for e in state.workspace.evaluations() if e["out_dir"] == out_dir), None)
    if ev is None:
        return None
    for m in state.workspace.models():
        if m["name"] != ev["model"] and not (ev.get("adapter") and m.get("path") == ev["adapter"]):
            continue
        try:
            meta = json.loads(m["meta"]) if isinstance(m.get("meta"), str) else (m.get("meta") or {})
            run_dir = meta.get("run_dir")
            data = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8")).get("data") if run_dir else None
        except (OSError, ValueError, AttributeError, TypeError):
            continue
        if data and str(data).endswith(".jsonl") and Path(data).is_file():
            return str(data)
    return None


def train_choices(state: AppState, out_dir: str | None = None) -> list[str]:
    """The chosen evaluation's run data first, then the workspace's exported training sets."""
    found = [run_data(state, out_dir)] + [d["path"] for d in reversed(state.workspace.datasets())
                                          if d["kind"] != "questions" and str(d["path"]).endswith(".jsonl")]
    return list(dict.fromkeys(p for p in found if p))


def lists(state: AppState, eval_dir, train, lang: str):
    """Refreshed choices (a tab opened, the language switched): evaluations and training files."""
    return (gr.update(choices=eval_choices(state, lang)), gr.update(choices=train_choices(state, eval_dir)))


def suggest(state: AppState, eval_dir, train):
    """An evaluation picked: its run's training file suggested, unless one is typed already."""
    choices = train_choices(state, eval_dir)
    return gr.update(choices=choices, value=train or (choices[0] if choices else None))


# -- the check ------------------------------------------------------------------------------

def _measure(f: dict, m: dict) -> str:
    """How much the question and the record share, by the rule that flagged it."""
    return m["run_len"].format(n=len(f["overlap"])) if f["kind"] == "ngram" else m["similar"].format(j=f["similarity"])


def findings_table(report: dict, lang: str) -> str:
    """One row per flagged question: the rules that flagged it (both, on one row), how much is
    shared, the closest record's line and the shared text (shortened)."""
    m = {k: v[lang] for k, v in MSG.items()}
    left = ' style="text-align:left"'
    head = "".join(f"<th{left}>{html_escape(m[k])}</th>" for k in ("col_id", "col_kind", "col_how", "col_line", "col_text"))
    by_question: dict[str, list[dict]] = {}
    for f in report["findings"]:
        by_question.setdefault(f["problem_id"], []).append(f)
    rows, sep = [], "・" if lang == "ja" else "; "
    for pid, found in by_question.items():
        first = found[0]
        text = first["overlap"] if len(first["overlap"]) <= TEXT_CHARS else first["overlap"][:TEXT_CHARS] + "…"
        more = max(f["records"] for f in found) - 1
        lines = sep.join(dict.fromkeys(str(f["record_line"]) for f in found)) + (m["more"].format(k=more) if more else "")
        rows.append(f'<tr data-problem-id="{html_escape(pid)}"><td class="data"{left}>{html_escape(pid)}</td>'
                    f'<td{left}>{html_escape(sep.join(m.get(f["kind"], f["kind"]) for f in found))}</td>'
                    f'<td{left}>{html_escape(sep.join(_measure(f, m) for f in found))}</td>'
                    f'<td{left}>{html_escape(lines)}</td><td class="data" style="text-align:left;white-space:normal;min-width:18em">{html_escape(text)}</td></tr>')
    return (f'<div class="t1wrap"><table class="t1" id="contamination-findings"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def score_section(score: dict, lang: str) -> str:
    """Per shot setting and metric: the value over all questions and without the flagged ones,
    each with n and its interval (Table 1's cells), then a plain line on the accuracy's change."""
    m = {k: v[lang] for k, v in MSG.items()}
    rows, details, lines = {}, {}, []
    for shots, both in score["by_shots"].items():
        every, without = both["all"], both["without_flagged"]
        for key in SHOWN:
            if not isinstance(every.get(key), dict) or every[key].get("mean") is None:
                continue
            row = f"{metric_name(key, lang)}（{shots}-shot）" if lang == "ja" else f"{metric_name(key, lang)} ({shots}-shot)"
            rows[row] = {}
            for col, s in ((m["all"], every), (m["without"], without)):
                v = (s or {}).get(key) or {}
                rows[row][col] = v.get("mean")
                if v.get("mean") is not None:
                    details[(row, col)] = (s["n"], v["ci_low"], v["ci_high"])
        a = every["accuracy"]["mean"] if isinstance(every.get("accuracy"), dict) else None
        b = ((without or {}).get("accuracy") or {}).get("mean")
        if a is None:
            continue
        if b is None:
            lines.append(m["nothing_left"].format(shots=shots))
        elif b < a:
            lines.append(m["drop"].format(shots=shots, a=_v(a), b=_v(b), d=f"{b - a:+.3f}"))
        else:
            lines.append(m["same"].format(shots=shots, a=_v(a), b=_v(b)))
    table = pd.DataFrame.from_dict(rows, orient="index", columns=[m["all"], m["without"]], dtype=float)
    return (f'<h4 style="margin:12px 0 6px">{html_escape(m["score_title"])}</h4>'
            + table_html(table, {}, details=details, corner=m["corner"]) + _note(m["legend"])
            + "".join(_note(line) for line in lines))


def render(report: dict, lang: str) -> str:
    s = report["settings"]
    rule = MSG["rule"][lang].format(n=s["ngram_chars"], j=s["near_dup_threshold"])
    counts = {"records": f"{report['n_records']:,}", "questions": f"{report['n_questions']:,}", "rule": rule}
    if not report["flagged"]:
        return notice.notice("ok", MSG["clean"][lang].format(**counts), lang=lang)
    out = notice.notice("info", MSG["found"][lang].format(k=len(report["flagged"]), **counts), lang=lang)
    out += findings_table(report, lang)
    return out + (score_section(report["score"], lang) if report.get("score") else "")


def check(state: AppState, eval_dir: str | None, train: str | None, lang: str, request: gr.Request = None) -> str:
    """The check of the chosen evaluation's questions against the training file, as HTML."""
    ws = state.workspace
    if not eval_dir or not (train or "").strip():
        return notice.notice("info", MSG["pick"][lang], lang=lang)
    ev = next((e for e in ws.evaluations() if e["out_dir"] == eval_dir and e["status"] == "finished"), None)
    if ev is None:
        return notice.error(MSG["unknown_eval"][lang], lang=lang)
    try:
        train = page_paths.readable(train, ws.root, "training data")
        data = ev["data"] if ev.get("data") and Path(ev["data"]).is_file() else None
        report = run(ContaminationConfig(train=train, eval=eval_dir, data=data), workspace=ws)
    except UserError as exc:
        return error_html(exc, lang=lang)
    users.record(ws.root, users.current_user(request), "view", "contamination", evaluation=eval_dir,
                 training_data=train, flagged=report["flagged"])
    return render(report, lang)
