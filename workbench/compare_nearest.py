"""Why did it answer that: beside a wrong answer's card in the Compare tab, the training records
nearest its question (``pipelines.evaluation.nearest``: BM25 over character bigrams of the run's
training data), folded, with their line in the file, their score and the text they share with
the question. A record that states another answer to a near-identical question explains a wrong
answer better than any metric.

The training file is typed by the user (checked with ``pipelines.core.page_paths.readable``: a
page reads only the workspace, the samples and the administrator's folders); its BM25 index is
built once per (file, modification time) and kept in the app state, never per card. Training
data is user content: every piece of it is HTML-escaped.
"""
from __future__ import annotations

from html import escape as html_escape
from pathlib import Path

from components import notice
from pipelines.core import page_paths
from pipelines.core.errors import UserError
from pipelines.core.shingles import normalize
from pipelines.evaluation.nearest import Bm25, nearest_records
from pipelines.tasks import train_index
from workbench.field_errors import error_html
from workbench.state import AppState

K = 3                 # records shown per question
KEEP = 2              # indexes kept in memory (100,000 records take some 300 MB)
SHOWN_CHARS = 240     # of a record's text, per record
SHARED_CHARS = 80     # of the shared run

L = {
    "train": {"ja": "学習データ（最も近い記録の表示）", "en": "Training data (show the nearest records)"},
    "train_info": {"ja": "学習に使った JSONL ファイルのパス（任意）。指定すると、誤答したカードに問題と最も近い学習記録を表示します。",
                   "en": "Path of the JSONL file the model was trained on (optional): each wrong answer's card then shows the training records nearest its question."},
    "show": {"ja": "近い記録を表示", "en": "Show nearest records"},
}
MSG = {
    "ready": {"ja": "{file}：{n} 件の学習記録を索引しました。誤答のあるカードの下に、問題に最も近い記録 {k} 件を折りたたんで表示します。",
              "en": "{file}: {n} training records indexed. Under each card with a wrong answer, the {k} records nearest its question are shown, folded."},
    "summary": {"ja": "学習データで問題に最も近い記録 {k} 件（誤答の手がかり）", "en": "The {k} training records nearest this question (why it may have answered so)"},
    "none": {"ja": "この問題と共通する文字列を持つ学習記録はありません。", "en": "No training record shares any text with this question."},
    "line": {"ja": "{line} 行目", "en": "line {line}"},
    "score": {"ja": "近さ {score:.1f}", "en": "closeness (BM25) {score:.1f}"},
    "shared": {"ja": "問題と共通する最長の部分（空白・記号を除く）：", "en": "Longest run shared with the question (spaces and punctuation removed): "},
    "note": {"ja": "近さは学習記録と問題の文字の重なりから計算した値で、大きいほど似ています。",
             "en": "Closeness is computed from the characters the record and the question share: the higher, the more alike."},
}
CSS = """
.qcard details.qnear{margin-top:8px;border-top:1px dashed #d0d7de;padding-top:6px}
.qcard details.qnear summary{cursor:pointer;font-size:13px;color:#0969da}
.qcard .qnear ol{margin:6px 0 0;padding-left:1.4em}.qcard .qnear li{margin:4px 0;font-size:13px}
.qcard .qnear .nmeta{color:#57606a;font-size:12px;margin-right:6px}
.qcard .qnear mark{background:#fff8c5;padding:0 2px}
.qcard .qnear .ntext{white-space:pre-wrap}
"""


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + "…"


def index_for(state: AppState, path: str) -> Bm25:
    """The BM25 index of the training file at ``path`` (a path the page may read), built once per
    (file, modification time) and kept in the app state; raises UserError."""
    raw = page_paths.readable(path, state.workspace.root, "training data")
    file = Path(raw).expanduser()
    if not file.is_file():                                     # the index names what is wrong
        train_index.load(file, state.workspace)
    key = (str(file.resolve()), file.stat().st_mtime)
    cache = state.nearest_indexes
    if key not in cache:
        bm25 = Bm25(train_index.load(file, state.workspace))   # the index files are cached in the workspace
        while len(cache) >= KEEP:
            cache.pop(next(iter(cache)))
        cache[key] = bm25
    return cache[key]


def cached_index(state: AppState, path: str | None) -> Bm25 | None:
    """``index_for``, or None when no file is given or it cannot be read (``check`` says why)."""
    if not (path or "").strip():
        return None
    try:
        return index_for(state, path)
    except UserError:
        return None


def check(state: AppState, path: str, lang: str) -> str:
    """The control's message: how many records were indexed, or what is wrong with the path."""
    if not (path or "").strip():
        return ""
    try:
        bm25 = index_for(state, path)
    except UserError as exc:
        return error_html(exc, lang=lang)
    return notice.notice("ok", MSG["ready"][lang].format(file=Path(path).name, n=len(bm25.index), k=K), lang=lang)


def query_text(question: dict) -> str:
    """What a question is searched with: its text and choices, normalised (as ``overlap.question_text``)."""
    return normalize((question.get("problem_text") or "") + "".join(question.get("choices") or []))


def nearest_for(bm25: Bm25, questions: dict[str, dict]) -> dict[str, list[dict]]:
    """problem_id -> its ``K`` nearest records, for the questions given (one pass over the file)."""
    texts = {pid: query_text(q) for pid, q in questions.items()}
    return nearest_records(bm25, {pid: t for pid, t in texts.items() if t}, K)


def block(records: list[dict], lang: str) -> str:
    """The folded list under a card: each record's line, closeness, shared run and text."""
    m = {k: v[lang] for k, v in MSG.items()}
    if not records:
        body = f'<p class="nmeta">{html_escape(m["none"])}</p>'
    else:
        items = []
        for r in records:
            text = " / ".join(x for x in (r["instruction"], r["input"], r["output"]) if x)
            shared = (f'<div>{html_escape(m["shared"])}<mark>{html_escape(_short(r["shared"], SHARED_CHARS))}</mark></div>'
                      if r.get("shared") else "")
            items.append(f'<li data-line="{int(r["line"])}"><span class="nmeta">{html_escape(m["line"].format(line=r["line"]))}'
                         f' · {html_escape(m["score"].format(score=r["score"]))}</span>{shared}'
                         f'<div class="ntext">{html_escape(_short(text, SHOWN_CHARS))}</div></li>')
        body = f'<ol>{"".join(items)}</ol><p class="nmeta">{html_escape(m["note"])}</p>'
    return (f'<details class="qnear"><summary>{html_escape(m["summary"].format(k=K))}</summary>{body}</details>')
