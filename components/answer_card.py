"""A question with its choices (correct answer and contraindicated choices marked) and the
answers of several models beside it, each with its predicted choice and metric badges.

Model text is untrusted: everything from a result is HTML-escaped before it is shown.
Which metric badges a card shows is passed in as ``(key, name, style)`` triples (the
workbench reads them from the metric registry, ``pipelines/evaluation/metrics.py``).
"""
from __future__ import annotations

import html
import string

LETTERS = string.ascii_lowercase

CSS = """
.qcard{border:1px solid #d0d7de;border-radius:10px;padding:12px 14px;margin:10px 0;background:#fff;color:#1f2328}
.qcard .qhead{display:flex;gap:8px;align-items:baseline;flex-wrap:wrap;margin-bottom:6px}
.qcard .qid{font-weight:700}.qcard .qcat{font-size:12px;color:#57606a;border:1px solid #d0d7de;border-radius:8px;padding:0 6px}
.qcard .qtext{white-space:pre-wrap;margin:4px 0 8px}
.qcard ol.choices{list-style:none;padding-left:0;margin:0 0 8px}
.qcard ol.choices li{padding:2px 6px;border-radius:6px;margin:1px 0}
.qcard li.correct{background:#dafbe1;font-weight:600}
.qcard li.kinki{outline:1px dashed #cf222e}
.qcard .mark{display:inline-block;min-width:1.3em;font-weight:700}
.qcard .answers{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:8px}
.qcard .ans{border:1px solid #d0d7de;border-radius:8px;padding:8px;background:#f6f8fa}
.qcard .ans.ok{border-left:4px solid #1a7f37}.qcard .ans.ng{border-left:4px solid #cf222e}
.qcard .ans .who{font-weight:700;margin-bottom:4px}
.qcard .ans .resp{white-space:pre-wrap;font-size:13px;max-height:12em;overflow:auto;margin:4px 0}
.qcard .badge{display:inline-block;font-size:12px;border-radius:8px;padding:0 6px;margin:0 4px 2px 0;border:1px solid #d0d7de;background:#fff}
.qcard .badge.good{background:#dafbe1;border-color:#1a7f37;color:#116329}
.qcard .badge.bad{background:#ffebe9;border-color:#cf222e;color:#a40e26}
.qcard .badge.warn{background:#fff8c5;border-color:#9a6700;color:#7d4e00}
.qcard .missing{color:#57606a;font-style:italic}
.qcard .qexam{font-size:12px;color:#57606a;border:1px solid #d0d7de;border-radius:8px;padding:0 6px}
.qcard .qexam.miss{color:#a40e26;background:#ffebe9;border-color:#cf222e;font-weight:700}
.qcard ol.choices .share{float:right;font-size:12px;color:#57606a;font-weight:400}
"""

_TEXT = {
    "ja": {"correct": "正解", "kinki": "禁忌肢", "predicted": "予測", "none": "（回答なし）", "shot": "-shot",
           "not_run": "未評価", "match": "類似度 {top:.2f}（次点との差 {margin:.2f}）", "weak": "⚠ 弱い一致",
           "weak_title": "回答はどの選択肢ともほとんど似ていません。予測（と正誤）は偶然に近いものです。",
           "ll": "対数尤度での選択: {pred}", "cut": "{n} トークンで打ち切り",
           "examinees": "受験者正答率 {p}%", "easy_miss": "⚠ 受験者の {p}% が正解",
           "easy_miss_title": "受験者の大半が正解した問題を、表示中のモデルの一つ以上が誤答しました（臨床医なら落とさない問題）。",
           "share": "受験者の {p}%", "share_title": "この選択肢を選んだ受験者の割合"},
    "en": {"correct": "correct", "kinki": "contraindicated", "predicted": "predicted", "none": "(no answer)",
           "shot": "-shot", "not_run": "not evaluated", "match": "similarity {top:.2f} (margin {margin:.2f})",
           "weak": "⚠ weak match",
           "weak_title": "The answer resembles none of the choices: the prediction (and its mark) is close to chance.",
           "ll": "log-likelihood choice: {pred}", "cut": "cut at {n} tokens",
           "examinees": "examinees right {p}%", "easy_miss": "⚠ {p}% of examinees got this right",
           "easy_miss_title": "Most examinees got this question right and at least one model shown missed it (one a clinician would not miss).",
           "share": "{p}% of examinees", "share_title": "share of examinees who picked this choice"},
}
# Below these, the paper-mode prediction (the choice most similar to the answer) is marked weak.
# Measured on the sample questions (pipelines/data, 42 with choices): answers that state a choice
# score 1.0 (the text alone), 0.57-0.91 ("b. text") and 0.40-0.83 ("正解は…です"), with a margin
# to the next choice of at least 0.10; babble ("わかりません。患者の状態によります。" …) scores 0
# for 80% of questions and under 0.12 for 90%. A long answer that states a choice and explains
# it lands at 0.11-0.48 (median 0.30): under 0.20 it can no longer be told from babble.
WEAK_SIMILARITY = 0.20
WEAK_MARGIN = 0.05
BadgeSpec = tuple[str, str, str]   # (result field, name shown, style: pass | match | score | warn)


def _e(text) -> str:
    return html.escape(str(text if text is not None else ""))


def percent(p: float) -> str:
    """A percent as IgakuQA gives it, without a trailing .0: 83.7, 92."""
    return f"{p:.0f}" if abs(p - round(p)) < 0.05 else f"{p:.1f}"


def choice_list(choices: list[str], answer: list[str], kinki: list[str], lang: str = "ja",
                shares: list[float] | None = None) -> str:
    """The choices, the correct ones marked ✓ and contraindicated ones ⚠; ``shares``: the percent
    of examinees who picked each (IgakuQA's ``breakdown``), shown at the right of each choice."""
    t = _TEXT[lang]
    items = []
    shares = shares if shares and len(shares) == len(choices) else [None] * len(choices)
    for letter, text, share in zip(LETTERS, choices, shares):
        cls = []
        mark = ""
        if letter in answer:
            cls.append("correct")
            mark = "✓"
        if letter in kinki:
            cls.append("kinki")
        title = f' title="{t["kinki"]}"' if letter in kinki else ""
        picked = (f'<span class="share" title="{_e(t["share_title"])}">{t["share"].format(p=percent(share))}</span>'
                  if share is not None else "")
        items.append(f'<li class="{" ".join(cls)}"{title}>{picked}<span class="mark">{mark}</span>'
                     f'<b>{letter}.</b> {_e(text)}{" ⚠" if letter in kinki else ""}</li>')
    return f'<ol class="choices">{"".join(items)}</ol>'


def badges(row: dict, lang: str = "ja", metrics: list[BadgeSpec] = ()) -> str:
    """Predicted choice, then one badge per metric the row has, styled as its spec says:
    pass ✓ green / ✗ red, match ✓ green / ✗ plain, score to two decimals, warn while above zero."""
    t = _TEXT[lang]
    pred = ",".join(row.get("predicted") or []) or "–"
    out = [f'<span class="badge">{t["predicted"]}: <b>{_e(pred)}</b></span>']
    out += match_badges(row, lang)
    for key, name, style in metrics:
        v = row.get(key)
        if v is None:
            continue
        if style == "score":
            out.append(f'<span class="badge">{_e(name)} {v:.2f}</span>')
        elif style == "warn":
            if v:
                out.append(f'<span class="badge warn">⚠ {_e(name)}</span>')
        else:
            cls = "good" if v else ("bad" if style == "pass" else "")
            out.append(f'<span class="badge {cls}">{_e(name)} {"✓" if v else "✗"}</span>')
    return "".join(out)


def match_strength(row: dict) -> tuple[float, float] | None:
    """(similarity of the least similar predicted choice, its margin over the best other choice),
    or None when the row was not scored by similarity (exact mode, log-likelihood only)."""
    sims, pred = row.get("similarities") or {}, row.get("predicted") or []
    if not sims or not pred or any(p not in sims for p in pred):
        return None
    top = min(sims[p] for p in pred)
    others = [v for k, v in sims.items() if k not in pred]
    return top, top - max(others, default=0.0)


def is_weak(strength: tuple[float, float] | None) -> bool:
    return strength is not None and (strength[0] < WEAK_SIMILARITY or strength[1] < WEAK_MARGIN)


def match_badges(row: dict, lang: str = "ja") -> list[str]:
    """How the prediction was reached: similarity and margin (weak below the thresholds), the
    log-likelihood choice beside it when the row has one, and a cut at the token limit."""
    t = _TEXT[lang]
    out = []
    strength = match_strength(row)
    if strength is not None:
        out.append(f'<span class="badge sim">{t["match"].format(top=strength[0], margin=strength[1])}</span>')
        if is_weak(strength):
            out.append(f'<span class="badge warn weak" title="{_e(t["weak_title"])}">{t["weak"]}</span>')
    if row.get("ll_predicted") and row.get("response") is not None:
        out.append(f'<span class="badge ll">{_e(t["ll"].format(pred=",".join(row["ll_predicted"])))}</span>')
    if row.get("cut_at_tokens"):
        out.append(f'<span class="badge warn cut">{_e(t["cut"].format(n=row["cut_at_tokens"]))}</span>')
    return out


def answer_box(name: str, row: dict | None, lang: str = "ja", metrics: list[BadgeSpec] = ()) -> str:
    t = _TEXT[lang]
    if row is None:
        return f'<div class="ans"><div class="who">{_e(name)}</div><div class="missing">{t["not_run"]}</div></div>'
    cls = "ok" if row.get("accuracy") else ("ng" if row.get("accuracy") is not None else "")
    resp = row.get("response")
    body = _e(resp) if resp else f'<span class="missing">{t["none"]}</span>'
    return (f'<div class="ans {cls}"><div class="who">{_e(name)}</div>'
            f'<div>{badges(row, lang, metrics)}</div><div class="resp">{body}</div></div>')


def examinee_badge(question: dict, lang: str = "ja", easy_miss: bool = False) -> str:
    """The share of examinees who got the question right (``human_accuracy``, percent), when known;
    ``easy_miss``: most of them got it right and a model shown missed it, marked as such."""
    p = question.get("human_accuracy")
    if p is None:
        return ""
    t = _TEXT[lang]
    if easy_miss:
        return (f'<span class="qexam miss" title="{_e(t["easy_miss_title"])}">'
                f'{_e(t["easy_miss"].format(p=percent(p)))}</span>')
    return f'<span class="qexam">{_e(t["examinees"].format(p=percent(p)))}</span>'


def question_card(question: dict, answers: list[tuple[str, dict | None]], lang: str = "ja",
                  metrics: list[BadgeSpec] = (), easy_miss: bool = False, below: str = "") -> str:
    """One card: the question, its choices, and one answer box per (name, result row); the
    examinees' accuracy in its heading when the question has it (``examinee_badge``); ``below``:
    HTML the caller built (escaped there) shown under the answers, e.g. the nearest training records."""
    cat = f'<span class="qcat">{_e(question.get("category"))}</span>' if question.get("category") else ""
    cat += examinee_badge(question, lang, easy_miss)
    pts = question.get("points")
    pts_html = f'<span class="qcat">{_e(f"{pts:g}")} pt</span>' if isinstance(pts, (int, float)) else ""
    boxes = "".join(answer_box(name, row, lang, metrics) for name, row in answers)
    return (f'<div class="qcard" data-problem-id="{_e(question.get("problem_id"))}">'
            f'<div class="qhead"><span class="qid">{_e(question.get("problem_id"))}</span>{cat}{pts_html}</div>'
            f'<div class="qtext">{_e(question.get("problem_text"))}</div>'
            f'{choice_list(question.get("choices") or [], question.get("answer") or [], question.get("kinki") or [], lang, question.get("breakdown"))}'
            f'<div class="answers">{boxes}</div>{below}</div>')


def free_answer_card(name: str, text: str, info: str = "", cut_at_tokens: int | None = None,
                     lang: str = "ja") -> str:
    """A free-form answer (no choices, no metrics), e.g. the paper's Table 2 prompt."""
    extra = f'<span class="badge">{_e(info)}</span>' if info else ""
    if cut_at_tokens:
        extra += f'<span class="badge warn">{_e(_TEXT[lang]["cut"].format(n=cut_at_tokens))}</span>'
    return (f'<div class="ans"><div class="who">{_e(name)} {extra}</div>'
            f'<div class="resp">{_e(text)}</div></div>')


def free_answers(cards: list[str]) -> str:
    return f'<div class="qcard"><div class="answers">{"".join(cards)}</div></div>'
